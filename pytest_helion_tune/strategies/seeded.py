"""``seeded``: the project's own search. A cheap probe around the default config and the seeds
decides in seconds whether anything beats the default; only then it refines: a climb of more
probes, or, where the probe gained 10% or more, a short LFBO seeded with the probe's best.

Rules (stated, not tuned per kernel):
0. Start: without seeds the start is Helion's default config. With seeds (cache entries for
   other shapes or an earlier source, LLM proposals) Helion first benchmarks the default and
   every usable seed as one batch; the fastest of them is the start.
1. Probe: Helion benchmarks the start and its radius-1 pattern neighbours (one field changed,
   two block sizes, or a block size and the warp count), capped and sampled with the search
   seed. A block size (a tile or a reduction loop: the work of one program) and the warp count
   (the threads that do it) trade against each other: cross_entropy 4096x32000's optimum loops
   its reduction in 16384-wide chunks with 16 warps, two fields from the default, each move
   alone no faster. Measured side by side twice on 8 cases on the H100 (``seeded-pairs``,
   ``benchmarks/results/nvidia-h100-80gb-hbm3/pairs_ab.md``): 1.030x and 1.020x LFBO's latency
   against 1.011x and 1.064x without; cross_entropy 4096x32000 0.997x against 1.065x. The
   probe is benchmarked in full: Helion's budget check is off inside it, since Helion compiles
   the whole batch first and a budget that runs out during compilation would leave it
   benchmarking one config. Instead a budget sizes it: at most one neighbour per second of budget
   (``PROBE_NEIGHBOURS_PER_S``), never fewer than ``PROBE_NEIGHBOURS_MIN``.
1b. Combine: the probe's changes that each beat the start in its batch (fastest first; a change
   is per field, and per entry of list fields such as eviction policies, one per load; a change
   to what a faster one changed is left out) are applied together, the best two, then three, up
   to ``COMBINE_MAX`` configs, and benchmarked as one more batch. A probe measures each change alone;
   gains that add up (an eviction policy on one load, a longer reduction loop) are then found
   without waiting for the refinement. Skipped when less than ``BUDGET_LEFT_TO_GO_ON_S`` of the
   budget is left. With ``extend`` (on since ecc65bc; ``extend=False`` turns it off) the batch
   also holds each of the best ``COMBINE_MAX`` changes taken one step further in its integer
   fields (a pattern move): matmul 2047x2049x1023's probe found 4 -> 8 warps 45% faster, and
   configs with 32 warps time faster still in LFBO's logs. On the H100 four searches with it
   there ended at 0.946-1.138x LFBO's latency (median 1.09x; ``extend_ab.md``), against
   0.979-1.210x (median 1.11x) for six without.
1c. Contested entries (``contested``, 0: off; ``seeded-contested`` in ``benchmarks/run.py``, not
   measured as a variant yet): rule 1b keeps, of two changes to the same entries, the one the
   probe timed faster, though both beat the start and the probe's timings of the two can lie
   within its noise. With ``contested=N`` the combine batch also holds up to N copies of its
   largest join with one kept change swapped for such a runner-up. On the H100 at f5a717e one of
   three cold searches of softmax 128x131072 stopped at the default (1.122x LFBO ``quick``'s
   latency): its probe timed ``last`` eviction on load 2 0.1% faster than ``first`` there, the
   combine joined ``last`` on loads 1 and 2 (slower), where the search that joined ``last`` on
   load 1 with ``first`` on load 2 gained 8% in that batch and ended at 0.995x
   (``benchmarks/results/nvidia-h100-80gb-hbm3/cold_f5a717e.md``).
2. Early stop: the default, the start and the best three that finished are re-timed interleaved
   on the common timer. Unless the best beats the start by at least ``GAIN_TO_CONTINUE`` (1.5%,
   above the re-timing noise), the search stops here and returns the start (warm: the faster
   of the start and the default, re-timed): cold, nothing near the default beats it beyond
   noise, so the default stays; warm, the best seed is already at a local optimum of its
   neighbourhood, and a longer search is not worth its time. (Until
   session 6 it returned the fastest re-timed, however small its lead: on the H100,
   rms_norm 64x131072 stopped with its pick +0.2% over the default on this timer and 1.7% behind
   it on the benchmark's.) When the budget is spent first, the fastest re-timed is returned
   where it leads the start by ``GAIN_TO_CONTINUE``; where only the second witness below would
   have kept the search going, the start (or a faster default), as in a stop for noise.
   A second witness keeps the search going: where the probe's fastest leads the start by
   ``HELION_GAIN_TO_CONTINUE`` (10%) or more on Helion's own timer (its benchmark worker, the
   probe's batch), the search goes on (rule 3, from Helion's fastest) however the re-timing
   came out. On the H100 the early-stop re-timing, taken right after the probe, timed
   rms_norm 256x65536's default 9-14% faster than Helion's timer and the benchmark's re-timing
   did (about 0.031 against 0.035 ms) in 7 of 9 searches, and one search stopped there at 1.14x
   LFBO's latency (``benchmarks/results/nvidia-h100-80gb-hbm3/stop_gate.md``). No control case
   led by more than 3.1% on Helion's timer; the searches this rule would have kept going
   (rms_norm 256x65536 and 64x131072, layer_norm 256x32768 and 4096x4096, swiglu 16x14336) are
   all on cases where LFBO gains 2.5% or more. The 10% was chosen on those logs.
2b. Marginal lead (``marginal``, on since ecc65bc; ``marginal=False`` turns it off): where the
   re-timed lead lies between ``MARGINAL_GAIN`` (0.5%) and ``GAIN_TO_CONTINUE``, the search goes
   on with rule 3's climb from the re-timed best, and the final pick (rule 4) must then lead the
   start by ``GAIN_TO_CONTINUE`` on the final re-timing, else the start (or a faster default) is
   returned, as in a stop for noise. A small lead can be the first step towards a gain that
   needs two or three changes: on the H100 softmax 1024x65536's probes led by 1.3-2.1% in its
   ten recorded searches and two stopped (+1.46% and +1.3%: 1.08x LFBO's latency), while LFBO's
   optimum there is 7% faster than the default and joins a 4096-wide reduction loop (two steps
   from the default's 16384; 8192 alone times as the default) with ``last`` eviction; the six
   that went on with the climb ended at 0.98-1.02x LFBO's latency. It costs time where
   nothing is gained: in the 4 H100 searches where it decided (rms_norm 8192x8192 twice,
   softmax 4096x8192, matmul 4096x4096x4096) it kept the default each time and took 14-25 s
   against 6-9 s for a stop (``marginal_ab.md``).
3. Refine: otherwise, when the probe's best beats the start by ``STEEP_GAIN`` (10%) or more on
   the common timer, Helion's LFBOTreeSearch starts from the probe's best configs (pinned as
   seeds) with a plateau stop (a path ends after ``PATIENCE`` generations that improve the best by
   less than ``MIN_IMPROVEMENT``), one polish round and a short final shootout, inside the
   remaining budget (Helion checks it between candidates).
   Below ``STEEP_GAIN`` it climbs instead: probes around the best so far, each from the last
   one's best while it gains ``MIN_IMPROVEMENT`` on Helion's timer, at most ``CLIMB_STEPS_MAX``.
   A large first gain says the default sits far from the optimum, where moves of several fields
   at once pay and LFBO's surrogate finds them; a small one says the optimum is near, where the
   climb finds what LFBO would in a fraction of its time. Measured side by side on the H100
   (``benchmarks/results/nvidia-h100-80gb-hbm3/refine_ab.md``), 15 cases against LFBO ``quick``:
   always LFBO 1.011x its latency at 0.393x its time; always the climb 1.022x at 0.185x, all of
   the climb's loss on one case (matmul 2047x2049x1023: 1.290x; its probe gained +33%); the
   switch 0.997x at 0.293x, the threshold chosen on the first two runs. ``refine="lfbo"`` and
   ``refine="climb"`` force one (``seeded-lfbo`` and ``seeded-climb`` in ``benchmarks/run.py``,
   not plugin strategies). A search that rule 2's second witness sent on climbs (its re-timed
   gain is under ``STEEP_GAIN``); ``witness_refine="lfbo"`` refines it with LFBO instead, as
   for the 10%+ gain Helion's timer saw (``seeded-witness`` in ``benchmarks/run.py``; not
   measured as a variant yet). On the H100 at f5a717e the three searches the witness sent on in
   layer_norm 256x32768 and rms_norm 256x65536 climbed and ended at 1.018-1.059x LFBO
   ``quick``'s latency, their picks at 0.94-1.01x the default; the one rms_norm 256x65536 search
   whose probe gained +10.4% refined with LFBO and ended at 1.002x
   (``benchmarks/results/nvidia-h100-80gb-hbm3/cold_f5a717e.md``).
   LFBO re-benchmarks (in Helion's worker) every member that times faster than the best so far
   (``RECHECK``; Helion's ``quick`` re-times only a member that claims a 10%+ lead) before its
   paths follow it: a single in-search timing can flatter a config. On the H100, matmul
   2047x2049x1023's refinement timed [128, 128, 64] with 16 warps at 0.0562 ms in generation 4;
   the same config timed 0.0649 ms in a batch of its own on Helion's timer and 0.0679 ms on the
   common timer (``benchmarks/timer_agreement.py``, ``.../timer_agreement.md``), and the search
   ended at 1.18x LFBO's latency. With the re-check, 6 searches ended at 0.98-1.21x (median
   1.11x; two reached LFBO's latency), against 1.06-1.15x (median 1.15x; none) for 3 without,
   at the same time; 3 other cases LFBO refines moved by at most 0.3%
   (``.../matmul2047_ab.md``). Thin evidence, taken for its cause. Three search paths from a
   30% probe gain instead of two (``very_steep_paths``, ``seeded-paths3``) ended at
   1.18-1.20x there: not taken.
   Compiles, in every batch (seeds, probe, combine, climb steps, LFBO): a candidate's compile is
   cut off at ``REFINE_COMPILE_TIMEOUT_PER_Q90`` (5) times the 90th percentile of the compile
   times of the batches before it, never under ``REFINE_COMPILE_TIMEOUT_MIN_S`` (5 s) nor over
   Helion's adaptive floor of 30 s; the first batch at ``FIRST_BATCH_COMPILE_TIMEOUT_S`` (5 s,
   the least of the later cut; 10 s until session 14).
   Helion's own timeout is 60 s; one the user raised above that is left alone. A batch waits
   for its slowest compile: in the H100 logs of ``benchmarks/results/nvidia-h100-80gb-hbm3/``,
   9 of 7559 compiles took over 10 s and none of those configs came near its search's best, and
   no config within 10% of its case's best took over 2.65 s to compile. Replayed over the 64
   searches of ``seeded`` logged there (``benchmarks/compile_cut.py``), this rule waits 472 s
   where the one before (30 s first, then 10x q90 from 10 s) waited 599 s, and cuts no config
   within 50% of its case's best. The first batch's 5 s, replayed over the 172 searches logged
   there by session 14: 41 s less waiting, no config within 10% of its case's best cut; 5 s of
   each warm search of softmax 1024x65536 and 128x131072 (30-40 s in all), whose seeds batch
   waited out the 10 s on two seeds from the family's short rows (a whole row a program, 4 warps)
   that do not compile for a 64K-128K row. A batch whose cut stopped the default config's
   compile, or every compile that did not fail, compiles the stopped configs again at 30 s.
3b. Polish (``polish_steps``, ``POLISH_STEPS`` (2) since session 15; ``polish_steps=0`` turns it
   off): after LFBO refines, up to ``polish_steps`` climb steps from its best, as rule 3's climb,
   their best three among the finalists. On the H100 the LFBO refinement of matmul
   2047x2049x1023 (from a +45% probe) ended on [128, 128, 64] and [128, 128, 128] tiles in two
   of three searches at 2b06c84 (1.178x and 1.148x LFBO ``quick``'s latency), never having
   benchmarked LFBO's [128, 128, 256] with 16 warps (``cold_repeat.md``). Measured on the 4 cases
   LFBO refines, two searches each (``benchmarks/results/nvidia-h100-80gb-hbm3/polish_ab.md``):
   in each search's own final re-timing the polish climb's best beat everything the search had
   without it in 5 of 8 (+1.1% to +7.7%: matmul 2047x2049x1023 reached that tile in its second
   step; median over the 8 +1.5%) at 9-18 s a search; all 8 ended at 0.951-0.997x LFBO
   ``quick``'s latency at 0.36-0.58x its time. ``seeded-nopolish`` in ``benchmarks/run.py``
   runs without it.
4. Final: the default, the probe's best and the search's best four are re-timed interleaved
   on the common timer; the fastest wins, so the result is never slower than the default there.
5. Search timing: Helion times each candidate in its benchmark worker for 50 ms (Triton's
   ``do_bench`` ``rep``: about 70 ms a candidate with its warm-up on the H100). The search's own
   timings only rank candidates, and every decision that returns a config is taken on the common
   timer (rules 2 and 4), so ``seeded`` times each candidate for ``SEARCH_REP_MS`` (15 ms; 36 ms
   a candidate): still 75 or more runs of any kernel under 0.2 ms, fewer of a longer one (a
   median of about 15 at 1 ms). Side by side on 10 cases on the H100, one search each
   (``benchmarks/results/nvidia-h100-80gb-hbm3/rep_ab.md``): 1.002x LFBO ``quick``'s latency at
   0.202x its time, against 1.015x at 0.260x with Helion's 50 ms. Applies where the searches
   share the project's worker (a GPU, ``HELION_TUNE_SHARED_WORKER`` on); ``rep_ms=None`` keeps
   Helion's.
6. Compile dead ends (``skip_dead_ends``, on; ``skip_dead_ends=False`` turns it off): the probe
   and each climb step leave out the neighbours that carry a field value (one entry of a list
   field), or a pair of field values, whose compile was cut off in ``DEAD_END_TIMEOUTS`` (2) or
   more configs of this search, at a timeout at least as long as the coming batch's, and that
   no config whose compile ended carried. Such a neighbour would wait out the cut again, and a
   batch waits for its slowest compile. Pairs, since a compile can be slow for two values
   together: on the H100 the warm search of row_sum 128x262144 at 2b06c84 (57.9 s, 0.571x LFBO
   ``quick``'s time) proposed ``reduction_loops=[131072]`` in 21 configs over its probe and four
   climb steps, 3-5 a batch, each cut off at 5-12 s (about 40 s of the search), while the same
   loop with one row a program and 16 warps compiled in 2.2 s. ``benchmarks/dead_ends.py``
   replays the rule over logged searches: over the 207 in ``benchmarks/results/`` at 555ca38 it
   leaves out 18 configs, 15 of them cut off, about 20 s less waiting, none that finished within
   10% of its case's best. Runs 79-80 have since replaced session 14's warm logs (that row_sum
   search's among them): over the 217 there now, 3 configs, about 4 s.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
import os
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import monitor, report
from ..configs import as_dict
from ..errors import StrategyError
from ..timing import CudaTimer, Timer, WallClockTimer
from .base import COMPILE_TIMEOUT_MIN_S, Retiming, SearchOutcome, SearchProblem, TracePoint
from .helion_env import lowered_compile_timeout, prepared, usable_seeds
from .helion_search import collected_metrics, log_path, metrics_outcome
from .worker import attach, uses_worker, warm

GAIN_TO_CONTINUE = 0.015
MARGINAL_GAIN = 0.005  # rule 2b (``marginal``): from this lead up to GAIN_TO_CONTINUE
HELION_GAIN_TO_CONTINUE = 0.10  # rule 2's second witness: the probe's lead on Helion's own timer
MIN_IMPROVEMENT = 0.005
PATIENCE = 1
PROBE_NEIGHBOURS = 40  # cold: around the default config
# Warm: around a seed that beat the default, usually close already. Where no seed beat it the
# probe is the cold one: on the H100 a 24-config probe around the default (warm, every seed
# slower) missed what the cold 40 found on softmax 128x131072 (1.126x LFBO against 1.006x).
PROBE_NEIGHBOURS_WARM = 24
# H100, 16 cores: the probe compiled 26-41 configs in 15-23 s (benchmarks/results/evidence_h100/).
PROBE_NEIGHBOURS_PER_S = 1.0
PROBE_NEIGHBOURS_MIN = 8
RETIME_ROUNDS = 7
COMBINE_MAX = 4  # configs joining the best 2, 3, ... of the probe's improving changes
BUDGET_LEFT_TO_GO_ON_S = 5.0  # below this, neither the combine batch nor the refinement starts
REFINE_COMPILE_TIMEOUT_MIN_S = COMPILE_TIMEOUT_MIN_S  # 5 s; monitor reads timeouts by it
REFINE_COMPILE_TIMEOUT_PER_Q90 = 5.0
FIRST_BATCH_COMPILE_TIMEOUT_S = REFINE_COMPILE_TIMEOUT_MIN_S  # no compile times known yet
HELION_COMPILE_TIMEOUT_FLOOR_S = 30.0  # Helion 1.5's adaptive floor: the cut never raises it
CLIMB_STEPS_MAX = 4
STEEP_GAIN = 0.10  # rule 3: from this gain of the probe's best over the start, LFBO refines
LFBO_PATHS = 2  # rule 3: LFBO's search paths (Helion's ``copies``), from its fastest seeds
VERY_STEEP_GAIN = 0.30  # rule 3: from this gain, ``very_steep_paths`` search paths
RECHECK = 1.0  # rule 3: LFBO re-benchmarks every member that times under this x the best so far
REFINEMENTS = ("auto", "lfbo", "climb")  # rule 3; the forced two are measured beside it
WITNESS_REFINEMENTS = ("climb", "lfbo")  # rule 3 after rule 2's second witness (``witness_refine``)
POLISH_STEPS = 2  # rule 3b: climb steps after the LFBO refinement
DEAD_END_TIMEOUTS = 2  # rule 6: a value cut off this often, never compiled, is left out
SEARCH_REP_MS = 15  # rule 5: each candidate's timing in Helion's worker, against Helion's 50 ms

# Under the interpreter timings rank nothing: keep every stage to a handful of candidates.
_INTERPRETER = {
    "neighbours": 4,
    "max_generations": 1,
    "copies": 1,
    "num_neighbors": 16,
    "polish_rounds": 0,
    "rounds": 2,
    "combine": 1,
    "climb_steps": 2,
}


def probe_size(problem: SearchProblem, warm: bool) -> int:
    """How many neighbours the probe takes (rule 1 of the module docstring); ``warm`` when the
    start is a seed, not the default config."""
    if problem.interpreter:
        return int(_INTERPRETER["neighbours"])
    cap = PROBE_NEIGHBOURS_WARM if warm else PROBE_NEIGHBOURS
    if problem.budget_s is not None and problem.budget_s > 0:
        cap = budget_sized(cap, problem.budget_s)
    return cap


def budget_sized(cap: int, seconds: float) -> int:
    """A batch benchmarked whole within ``seconds`` of budget: at most one neighbour per second
    (``PROBE_NEIGHBOURS_PER_S``), never fewer than ``PROBE_NEIGHBOURS_MIN``, never over ``cap``."""
    return min(cap, max(PROBE_NEIGHBOURS_MIN, int(seconds * PROBE_NEIGHBOURS_PER_S)))


def refine_compile_timeout(
    compile_s: Sequence[float],
    per_q90: float = REFINE_COMPILE_TIMEOUT_PER_Q90,
    least: float = REFINE_COMPILE_TIMEOUT_MIN_S,
) -> float | None:
    """A batch's compile timeout (rule 3): ``per_q90`` times the 90th percentile of the compile
    times seen so far, at least ``least`` and at most Helion's adaptive floor. ``None`` when there
    are none (the first batch: the caller's ``FIRST_BATCH_COMPILE_TIMEOUT_S``). The two knobs are
    for ``benchmarks/compile_cut.py``, which replays other rules over recorded logs."""
    if not compile_s:
        return None
    ranked = sorted(compile_s)
    q90 = ranked[min(int(len(ranked) * 0.9), len(ranked) - 1)]
    return min(max(least, per_q90 * q90), HELION_COMPILE_TIMEOUT_FLOOR_S)


def compile_cut(earlier: Sequence[Path]) -> float | None:
    """Rule 3's compile timeout from the compile times in the CSV logs of these batches."""
    return refine_compile_timeout(monitor.compile_times(log.with_suffix(".csv") for log in earlier))


def batch_cut(earlier: Sequence[Path]) -> float:
    """The compile timeout of the batch after these: rule 3's, ``FIRST_BATCH_COMPILE_TIMEOUT_S``
    for the first."""
    return compile_cut(earlier) or FIRST_BATCH_COMPILE_TIMEOUT_S


FieldValue = tuple[str, int | None, str]  # (field, list position or None, repr of the value)
Feature = tuple[FieldValue, ...]  # one field value, or two that a config carries together


def field_values(config: dict[str, Any]) -> list[FieldValue]:
    """A config's field values; list fields (one entry per load, loop or block) entry by entry."""
    out: list[FieldValue] = []
    for key, value in sorted(config.items()):
        if isinstance(value, list):
            out.extend((key, j, repr(v)) for j, v in enumerate(value))
        else:
            out.append((key, None, repr(value)))
    return out


def features(config: dict[str, Any]) -> set[Feature]:
    """Each field value of a config, and each pair of them: a compile can be slow for one value
    (a long unrolled loop) or for two together (that loop with few warps, or a larger block)."""
    values = field_values(config)
    return {(v,) for v in values} | set(itertools.combinations(values, 2))


def dead_ends(
    outcomes: Sequence[tuple[dict[str, Any], float | None]],
    cut: float,
    least: int = DEAD_END_TIMEOUTS,
) -> set[Feature]:
    """Rule 6: the field values and pairs of field values of configs whose compile was cut off
    (``outcomes``: config and the timeout that cut it, ``None`` where its compile ended) at
    ``cut`` seconds or longer, in ``least`` configs or more, that no config whose compile ended
    carried."""
    compiled: set[Feature] = set()
    cut_counts: dict[Feature, int] = {}
    for config, cut_at in outcomes:
        if cut_at is None:
            compiled |= features(config)
        elif cut_at >= math.ceil(cut):  # Helion's timeouts are whole seconds
            for feature in features(config):
                cut_counts[feature] = cut_counts.get(feature, 0) + 1
    return {f for f, n in cut_counts.items() if n >= least and f not in compiled}


def doomed(config: dict[str, Any], dead: set[Feature]) -> bool:
    """Whether ``config`` carries one of rule 6's dead ends."""
    return bool(dead) and not features(config).isdisjoint(dead)


def shown_dead_ends(dead: set[Feature]) -> list[str]:
    """Rule 6's dead ends as a note shows them: the values, then the pairs of values neither of
    which is dead alone."""
    singles = {f[0] for f in dead if len(f) == 1}
    pairs = [f for f in dead if len(f) == 2 and not singles.intersection(f)]
    return [
        " & ".join(_shown(v) for v in feature)
        for feature in sorted((v,) for v in singles) + sorted(pairs)
    ]


DEAD_END_NOTE = ": leaves out neighbours with"


def _shown(value: FieldValue) -> str:
    key, position, text = value
    return f"{key}{'' if position is None else f'[{position}]'}={text}"


def logged_dead_ends(earlier: Sequence[Path], users_timeout: int) -> set[Feature]:
    """Rule 6 over these batches' CSV logs, for the batch that follows them (its cut as
    ``_finite`` sets it: rule 3's, lowered into the user's timeout)."""
    logged = monitor.compile_outcomes(log.with_suffix(".csv") for log in earlier)
    if all(cut_at is None for _text, cut_at in logged):
        return set()  # nothing cut off: no config text to parse
    cut = lowered_compile_timeout(users_timeout, batch_cut(earlier))
    outcomes = []
    for text, cut_at in logged:
        with contextlib.suppress(ValueError):
            outcomes.append((monitor.config_from_repr(text), cut_at))
    return dead_ends(outcomes, cut)


def early_stop_choice(
    times: Sequence[float], best: int, start: int, default_ran: bool, gain_on_start: float
) -> int:
    """Which re-timed contender an early stop returns (rule 2): the fastest where it leads the
    start by ``GAIN_TO_CONTINUE`` (a stop for the budget); else the start, or the default
    (contender 0, when it ran) where it re-timed faster than the start: also for a budget stop
    where only Helion's timer saw a lead, which the common timer, deciding here, does not."""
    if gain_on_start >= GAIN_TO_CONTINUE:
        return best
    kept = [start, 0] if default_ran else [start]
    return min(kept, key=lambda i: times[i])


def _standing(
    times: Sequence[float], contenders: Sequence[Any], start_id: str
) -> tuple[int, float, int, float]:
    """A re-timing's fastest contender, its gain over contender 0 (the default, or the fastest
    that ran), where the start (``start_id``) is (0 when it is not there), and the fastest's gain
    over the start."""
    best = min(range(len(contenders)), key=lambda i: times[i])
    gain = times[0] / times[best] - 1 if times[best] > 0 else 0.0
    at_start = next((i for i, c in enumerate(contenders) if _canonical_id(c) == start_id), 0)
    gain_on_start = times[at_start] / times[best] - 1 if times[best] > 0 else 0.0
    return best, gain, at_start, gain_on_start


def stop_reason(
    gain_on_start: float, on_helion: bool, remaining_s: float | None, start_is_default: bool
) -> str | None:
    """Why the search stops after the probe (rule 2), or ``None`` when it goes on: it goes on
    where the re-timed lead reaches ``GAIN_TO_CONTINUE`` or another rule sends it on
    (``on_helion``: Helion's timer witnessed a lead, or rule 2b's marginal lead), and
    ``BUDGET_LEFT_TO_GO_ON_S`` of the budget is left."""
    if gain_on_start >= GAIN_TO_CONTINUE or on_helion:
        if remaining_s is not None and remaining_s < BUDGET_LEFT_TO_GO_ON_S:
            return "budget spent"
        return None
    if start_is_default:
        return "the default is not beaten beyond noise"
    return "no neighbour beats the start beyond noise"


def helion_lead(timed: Sequence[tuple[float, Any]], start_id: str) -> float:
    """How far the fastest of ``timed`` ((ms, config) on Helion's timer, fastest first) leads the
    start there: rule 2's second witness. 0 when the start did not finish."""
    start_ms = next((ms for ms, c in timed if _canonical_id(c) == start_id), None)
    if start_ms is None or timed[0][0] <= 0:
        return 0.0
    return start_ms / timed[0][0] - 1


def refinement(refine: str, gain_on_start: float, witness: str | None = None) -> str:
    """Which refinement rule 3 runs: ``refine`` when forced, else LFBO from a gain of
    ``STEEP_GAIN`` of the probe's best over the start (re-timed), the climb below it; ``witness``
    (``witness_refine``) where rule 2's second witness sent the search on."""
    if refine != "auto":
        return refine
    if witness is not None:
        return witness
    return "lfbo" if gain_on_start >= STEEP_GAIN else "climb"


def lfbo_paths(gain_on_start: float, very_steep_paths: int) -> int:
    """How many search paths rule 3's LFBO runs: ``LFBO_PATHS``, or ``very_steep_paths`` from a
    probe gain of ``VERY_STEEP_GAIN`` over the start, where the default sits far from the
    optimum and the probe's fastest may lie in more than one basin."""
    return very_steep_paths if gain_on_start >= VERY_STEEP_GAIN else LFBO_PATHS


def _canonical_id(config: Any) -> str:
    try:
        from helion.autotuner.logger import canonical_config_id
    except ImportError:  # Helion 1.5.0 keeps it elsewhere
        from helion.autotuner.search_space_logger import canonical_config_id
    return str(canonical_config_id(config))


def batch_around(
    problem: SearchProblem,
    centre: Any,
    known: dict[str, Any],
    size: int,
    seed: int,
    warp_pairs: bool,
    dead: set[Feature] | None = None,
) -> dict[str, Any]:
    """``centre`` and up to ``size`` of its one-step neighbours not in ``known`` and carrying none
    of the ``dead`` ends (rule 6), sampled with ``seed``, by canonical id: the batch of the probe
    (rule 1) and of a climb step (rule 3)."""
    neighbours = pattern_neighbours(problem.bound, centre, problem.bound.settings, warp_pairs)
    random.Random(seed).shuffle(neighbours)
    batch: dict[str, Any] = {_canonical_id(centre): centre}  # compared within the batch
    for config in neighbours:
        if len(batch) >= size + 1:
            break
        if _canonical_id(config) in known or (dead and doomed(as_dict(config), dead)):
            continue
        batch.setdefault(_canonical_id(config), config)
    return batch


def _generation(bound: Any, settings: Any) -> Any:
    """Helion's flat view of ``bound``'s config space, with the user's config overrides."""
    return bound.config_spec.create_config_generation(
        overrides=settings.autotune_config_overrides or None
    )


def pattern_neighbours(bound: Any, base: Any, settings: Any, warp_pairs: bool) -> list[Any]:
    """Configs one step from ``base``: each field to a neighbouring value, block sizes in pairs
    (tile sizes and reduction loops, both Helion block-size fields); with ``warp_pairs`` also
    each block size paired with the warp count, the work one program does against the threads
    that do it (rule 1)."""
    gen = _generation(bound, settings)
    flat = gen.flatten(base)
    overridden = set(getattr(gen, "overridden_flat_indices", ()) or ())
    options = [
        [] if i in overridden else list(spec.pattern_neighbors(flat[i]))
        for i, spec in enumerate(gen.flat_spec)
    ]
    flats: list[list[Any]] = []
    for i, values in enumerate(options):
        flats.extend([*flat[:i], v, *flat[i + 1 :]] for v in values)
    blocks = [i for i in gen.block_size_indices if i not in overridden]
    warps = getattr(gen, "num_warps_index", -1)
    if warp_pairs and warps >= 0 and warps not in overridden:
        blocks.append(warps)
    for a_pos, a in enumerate(blocks):
        for b in blocks[a_pos + 1 :]:
            for va in options[a]:
                for vb in options[b]:
                    pair = list(flat)
                    pair[a], pair[b] = va, vb
                    flats.append(pair)
    out = []
    for candidate in flats:
        with contextlib.suppress(Exception):  # an illegal combination is simply not a neighbour
            out.append(gen.unflatten(candidate))
    return out


Change = dict[tuple[int, int | None], Any]  # (flat index, list position or None) -> value


def _change(flat: Sequence[Any], base: Sequence[Any]) -> Change:
    """What ``flat`` changes of ``base``: list-valued fields (eviction policies, indexing, one
    entry per load) element by element, so that changes to two loads can join."""
    out: Change = {}
    for i, (value, was) in enumerate(zip(flat, base, strict=True)):
        if value == was:
            continue
        if isinstance(value, list) and isinstance(was, list) and len(value) == len(was):
            out.update(
                {(i, j): v for j, (v, w) in enumerate(zip(value, was, strict=True)) if v != w}
            )
        else:
            out[(i, None)] = value
    return out


def _overlap(a: Change, b: Change) -> bool:
    return any(i == k and (j is None or m is None or j == m) for i, j in a for k, m in b)


def _improving_changes(
    gen: Any, start: Any, timed: Sequence[tuple[float, Any]]
) -> tuple[list[Any], list[Change]]:
    """``start`` flattened, and the changes of the configs in ``timed`` that beat it, fastest
    first; a change touching what a faster one already changed is left out. Empty when
    ``start`` is not in ``timed``."""
    base, changes, _rivals = _ranked_changes(gen, start, timed)
    return base, changes


def _ranked_changes(
    gen: Any, start: Any, timed: Sequence[tuple[float, Any]]
) -> tuple[list[Any], list[Change], list[tuple[int, Change]]]:
    """``_improving_changes``, and the runners-up it left out: (the index of the kept change,
    the left-out change) where both beat ``start`` and set the same entries to other values
    (``load_eviction_policies[2]`` to ``last`` and to ``first``), fastest first."""
    start_ms = next((ms for ms, c in timed if _canonical_id(c) == _canonical_id(start)), None)
    base = gen.flatten(start)
    changes: list[Change] = []
    rivals: list[tuple[int, Change]] = []
    if start_ms is None:
        return base, changes, rivals
    for ms, config in sorted(timed, key=lambda item: item[0]):
        if ms >= start_ms:
            break
        with contextlib.suppress(Exception):
            change = _change(gen.flatten(config), base)
            if not change:
                continue
            touched = [i for i, c in enumerate(changes) if _overlap(change, c)]
            if not touched:
                changes.append(change)
            elif len(touched) == 1 and changes[touched[0]].keys() == change.keys():
                rivals.append((touched[0], change))
    return base, changes, rivals


def _applied(gen: Any, base: Sequence[Any], changes: Sequence[Change]) -> Any | None:
    """``base`` with ``changes`` applied, as a config; None for an illegal combination."""
    flat = [list(v) if isinstance(v, list) else v for v in base]
    for change in changes:
        for (i, j), value in change.items():
            if j is None:
                flat[i] = value
            else:
                flat[i][j] = value
    try:
        return gen.unflatten(flat)
    except Exception:  # an illegal combination is simply not tried
        return None


def combined_changes(
    bound: Any,
    start: Any,
    timed: Sequence[tuple[float, Any]],
    cap: int,
    contested: int = 0,
) -> list[Any]:
    """Rule 1b: configs joining the probe's changes that each beat ``start``.

    ``timed`` is (ms, config) of what finished, ``start`` among them. Each faster config's
    difference from the start is one change; a change touching what an earlier (faster) one
    already changed is left out. Returns the start with the best 2, 3, ... changes applied, at
    most ``cap`` configs (none with fewer than two changes). With ``contested`` (rule 1c), up to
    that many more: the largest of those joins with one kept change swapped for a runner-up that
    set the same entries to other values and also beat the start (the probe timed the two within
    its noise, so which one joins the others is not settled by the probe)."""
    gen = _generation(bound, bound.settings)
    base, changes, rivals = _ranked_changes(gen, start, timed)
    out: list[Any] = []
    largest: list[Change] = []  # the changes of the largest legal join
    for count in range(2, len(changes) + 1):
        if len(out) >= cap:
            break
        config = _applied(gen, base, changes[:count])
        if config is not None:
            out.append(config)
            largest = changes[:count]
    swaps: list[Any] = []
    for kept, rival in rivals:
        if len(swaps) >= contested:
            break
        if kept < len(largest):
            joined = [rival if i == kept else c for i, c in enumerate(largest)]
            swapped = _applied(gen, base, joined)
            if swapped is not None:
                swaps.append(swapped)
    return out + swaps


def extended_changes(
    bound: Any, start: Any, timed: Sequence[tuple[float, Any]], cap: int
) -> list[Any]:
    """Rule 1b's pattern moves (``extend``): each of the probe's ``cap`` fastest changes that beat
    ``start`` (as ``combined_changes`` selects them) taken one step further in every scalar
    integer field it moved (a block size, a reduction loop, the warp or stage count; not the
    per-loop lists), whatever else it changed kept. A change with no such field, or none that
    can move further, gives nothing."""
    from helion.autotuner.config_fragment import BaseIntegerFragment

    gen = _generation(bound, bound.settings)
    base, changes = _improving_changes(gen, start, timed)
    out: list[Any] = []
    for change in changes[:cap]:
        further = dict(change)
        for (i, j), value in change.items():
            spec, was = gen.flat_spec[i], base[i]
            if j is not None or not isinstance(spec, BaseIntegerFragment):
                continue
            beyond = [v for v in spec.pattern_neighbors(value) if (v - value) * (value - was) > 0]
            if beyond:
                further[(i, j)] = min(beyond, key=lambda v: abs(v - value))
        if further != change:
            config = _applied(gen, base, [further])
            if config is not None:
                out.append(config)
    return out


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _unique(configs: Sequence[Any]) -> list[Any]:
    """``configs`` without repeats (the same canonical config), in first-seen order."""
    out: dict[str, Any] = {}
    for config in configs:
        out.setdefault(_canonical_id(config), config)
    return list(out.values())


def _timed(bases: Sequence[Path]) -> list[tuple[float, Any]]:
    """(ms, config) of the distinct configs that finished accurate in these searches' CSV logs,
    fastest first (a config's first, fastest row)."""
    import helion

    out: list[tuple[float, Any]] = []
    seen: set[str] = set()
    for ms, text in monitor.finished([base.with_suffix(".csv") for base in bases]):
        if text in seen:
            continue
        seen.add(text)
        with contextlib.suppress(ValueError, TypeError):  # a row Helion's Config would not take
            out.append((ms, helion.Config(**monitor.config_from_repr(text))))
    return out


def cut_off(base: Path, done: set[str]) -> list[Any]:
    """The configs whose compile the cut stopped in this batch's CSV log and that are not in
    ``done`` (the config texts that finished in it), once each."""
    import helion

    out: list[Any] = []
    for text in monitor.compile_timeouts([base.with_suffix(".csv")]):
        if text not in done:
            with contextlib.suppress(ValueError, TypeError):
                out.append(helion.Config(**monitor.config_from_repr(text)))
    return _unique(out)


def _best(bases: Sequence[Path], count: int) -> list[Any]:
    """The ``count`` fastest distinct configs that finished accurate in these searches' CSV logs."""
    return [config for _ms, config in _timed(bases)[:count]]


class SeededSearch:
    """The project's own search; see the module docstring for its rules."""

    name = "seeded"
    description = (
        "probe around the default and the cached seeds, stop early unless it pays, then climb "
        "(or a short seeded LFBO where the probe gained 10%+)"
    )

    def __init__(
        self,
        name: str = "seeded",
        extra_seed_source: str = "",
        refine: str = "auto",
        warp_pairs: bool = True,
        very_steep_paths: int = LFBO_PATHS,
        recheck: float | None = RECHECK,
        extend: bool = True,
        marginal: bool = True,
        rep_ms: int | None = SEARCH_REP_MS,
        polish_steps: int = POLISH_STEPS,
        skip_dead_ends: bool = True,
        witness_refine: str = "climb",
        contested: int = 0,
    ) -> None:
        if refine not in REFINEMENTS:
            raise ValueError(f"refine must be one of {', '.join(REFINEMENTS)}, not {refine!r}")
        if witness_refine not in WITNESS_REFINEMENTS:
            raise ValueError(
                f"witness_refine must be one of {', '.join(WITNESS_REFINEMENTS)}, "
                f"not {witness_refine!r}"
            )
        self.name = name
        self.extra_seed_source = extra_seed_source
        self.refine = refine
        self.warp_pairs = warp_pairs
        self.very_steep_paths = very_steep_paths
        # Rule 3's LFBO re-benchmarks a member timed under ``recheck`` x the best so far before
        # it counts (Helion's ``autotune_rebenchmark_threshold``); None: Helion's effort default
        # (0.9 at ``quick``: only a member claiming a 10%+ lead is re-timed).
        self.recheck = recheck
        # Rule 1b also takes the probe's improving changes one step further (``extended_changes``).
        self.extend = extend
        # Rule 2b: a lead under GAIN_TO_CONTINUE but over MARGINAL_GAIN goes on with the climb.
        self.marginal = marginal
        # Rule 5: each candidate's timing in the shared worker lasts at most this many ms
        # (None: Helion's 50 ms).
        self.rep_ms = rep_ms
        # Rule 3b: after LFBO refines, up to this many climb steps from its best, each a probe
        # of one-step neighbours and block-size/warp pairs.
        if polish_steps < 0:
            raise ValueError(f"polish_steps must be 0 or more, not {polish_steps}")
        self.polish_steps = polish_steps
        # Rule 6: the probe and climb steps leave out field values that only ever timed out.
        self.skip_dead_ends = skip_dead_ends
        # Rule 3 after rule 2's second witness: the climb (as it was), or LFBO, as for a probe
        # gain of STEEP_GAIN or more (which Helion's timer saw). Not measured yet.
        self.witness_refine = witness_refine
        # Rule 1c: up to this many more combine configs, each swapping one joined change for a
        # runner-up to the same entries. Not measured yet; 0 leaves rule 1b as it was.
        if contested < 0:
            raise ValueError(f"contested must be 0 or more, not {contested}")
        self.contested = contested

    def search(self, problem: SearchProblem) -> SearchOutcome:
        start = time.perf_counter()
        if not problem.interpreter and uses_worker(problem.bound.settings):
            # Comes up while the probe compiles; shared by both searches and later cases. Only a
            # head start: if it fails, the first job starts the worker (and reports its trouble).
            with contextlib.suppress(Exception):
                warm()
        notes: list[str] = []
        seeds = usable_seeds(problem.bound, list(problem.seeds), notes)
        trim = _INTERPRETER if problem.interpreter else {}
        timer: Timer = problem.timer or (WallClockTimer() if problem.interpreter else CudaTimer())
        rounds = int(trim.get("rounds", RETIME_ROUNDS))
        outcome = SearchOutcome(config={}, notes=notes)
        outcome.seed_source = (
            ", ".join(dict.fromkeys(s.source for s, _ in seeds)) or "none (default config)"
        )

        with log_path(problem) as base:
            default = problem.bound.config_spec.default_config()
            default_id = _canonical_id(default)
            known: dict[str, Any] = {default_id: default}
            logs: list[Path] = []
            start_config, start_source = self._start(
                problem, default, seeds, known, logs, base, outcome
            )
            start_id = _canonical_id(start_config)
            warm_start = start_id != default_id  # a seed beat the default: the warm probe size
            joined = self._probe(
                problem, start_config, warm_start, known, logs, base, outcome, start
            )
            timed_all = _timed(logs)  # the logs, read once
            finished = [config for _ms, config in timed_all[: len(known)]]
            lead_on_helion = helion_lead(timed_all, start_id)
            # Only what finished in Helion's worker runs in this process: a config that crashed
            # there (a CUDA illegal address) would poison this process's CUDA context.
            ran = {_canonical_id(c) for c in finished}
            default_ran = default_id in ran
            if not finished:
                failed = report.describe_failures(outcome.failures) or "none finished"
                raise StrategyError(
                    f"strategy {self.name}: none of the probe's {len(known)} configs ran "
                    f"accurately ({failed})",
                    configs_tested=outcome.configs_tested,
                    failures=outcome.failures,
                )
            pool = [default] if default_ran else []
            if not default_ran:  # the fastest that ran stands in for the default as the baseline
                notes.append("the default config failed in the probe; it is not re-timed")
            pool += [start_config] if start_id in ran else []
            contenders = _unique([*pool, *finished[:3]])
            baseline = "default" if default_ran else "the probe's fastest"
            roles = {start_id: "start", default_id: "default"}
            times = self._retime(problem, timer, contenders, rounds, outcome, "early-stop", roles)
            best, gain, at_start, gain_on_start = _standing(times, contenders, start_id)
            verb = "joining or extending" if self.extend else "joining"
            joining = f" ({len(joined)} {verb} its improving changes)" if joined else ""
            notes.append(
                f"probe: {len(known)} configs{joining}, best {gain * 100:+.1f}% vs {baseline} "
                "on the common timer"
            )
            if seeds:
                notes.append(
                    f"start: the fastest of the default and {len(seeds)} seeds was "
                    f"{start_source}; the probe's best is {gain_on_start * 100:+.1f}% vs it"
                )
            elapsed = time.perf_counter() - start
            remaining = None if problem.budget_s is None else problem.budget_s - elapsed
            on_helion = (
                gain_on_start < GAIN_TO_CONTINUE and lead_on_helion >= HELION_GAIN_TO_CONTINUE
            )
            marginal = (  # rule 2b
                self.marginal
                and not on_helion
                and MARGINAL_GAIN <= gain_on_start < GAIN_TO_CONTINUE
            )
            reason = stop_reason(
                gain_on_start, on_helion or marginal, remaining, start_id == default_id
            )
            if reason is not None:
                notes.append(f"stopped after the probe: {reason}")
                chosen = early_stop_choice(times, best, at_start, default_ran, gain_on_start)
                outcome.config = as_dict(contenders[chosen])
                outcome.best_ms = times[chosen]
                return outcome
            if marginal:
                notes.append(
                    f"going on: a marginal lead of {gain_on_start * 100:+.1f}% vs the start; the "
                    f"final pick must lead it by {GAIN_TO_CONTINUE * 100:.1f}%"
                )
            if on_helion:
                notes.append(
                    f"going on: the probe's best is {lead_on_helion * 100:+.1f}% vs the start on "
                    f"Helion's timer, {gain_on_start * 100:+.1f}% on the common timer"
                )

            # The default (the climb) is rule 3's choice for a re-timed gain under STEEP_GAIN.
            witness = "lfbo" if on_helion and self.witness_refine == "lfbo" else None
            refine = refinement(self.refine, gain_on_start, witness)
            if self.refine != "auto":
                why = f"forced by refine={self.refine!r}"
            elif witness is not None:
                why = f"after the second witness, witness_refine={self.witness_refine!r}"
            else:
                why = f"LFBO from {STEEP_GAIN * 100:+.0f}%"
            notes.append(
                f"refinement: {refine} (the probe's best is {gain_on_start * 100:+.1f}% vs the start"
                f"; {why})"
            )
            if refine == "climb":
                found, top = self._climb(
                    problem,
                    outcome,
                    known,
                    finished[0] if on_helion else contenders[best],
                    probe_size(problem, warm_start),
                    base,
                    start,
                    int(trim.get("climb_steps", CLIMB_STEPS_MAX)),
                    logs,
                )
            else:
                paths = lfbo_paths(gain_on_start, self.very_steep_paths)
                if paths != LFBO_PATHS and "copies" not in trim:  # the interpreter runs one
                    notes.append(
                        f"LFBO: {paths} search paths (the probe gained {VERY_STEEP_GAIN * 100:.0f}%+)"
                    )
                found, lfbo_log = self._lfbo(
                    problem, outcome, logs, finished[:5], trim, base, start, paths
                )
                lfbo_timed = _timed([lfbo_log])
                top = [config for _ms, config in lfbo_timed[:4]]
                if self.polish_steps and found is not None:  # rule 3b
                    known.update((_canonical_id(c), c) for _ms, c in lfbo_timed)
                    top += self._polish(
                        problem,
                        outcome,
                        known,
                        found,
                        probe_size(problem, warm_start),
                        base,
                        start,
                        [*logs, lfbo_log],
                    )
            final_pool = _unique([contenders[0], contenders[best], found, *top])
            # Rule 2b decides against what the early stop compared with: the start (or, where it
            # did not run, the contender that stood in for it), re-timed beside the finalists.
            anchor_id = _canonical_id(contenders[at_start])
            if marginal:
                final_pool = _unique([*final_pool, contenders[at_start]])
            roles = {_canonical_id(contenders[best]): "probe-best", default_id: "default"}
            if found is not None:
                roles.setdefault(_canonical_id(found), f"{refine}-best")
            times = self._retime(problem, timer, final_pool, rounds, outcome, "final", roles)
            best, gain, at_anchor, lead = _standing(times, final_pool, anchor_id)
            notes.append(
                f"refined: {len(final_pool)} finalists re-timed, best {gain * 100:+.1f}% vs {baseline}"
            )
            if marginal:
                best = early_stop_choice(times, best, at_anchor, default_ran, lead)
                if lead < GAIN_TO_CONTINUE:
                    notes.append(
                        f"marginal: the best led the start by {lead * 100:+.1f}%, under "
                        f"{GAIN_TO_CONTINUE * 100:.1f}%; kept "
                        + ("the start" if best == at_anchor else "the default")
                    )
            outcome.config = as_dict(final_pool[best])
            outcome.best_ms = times[best]
            return outcome

    # -- pieces -----------------------------------------------------------------

    def _start(
        self,
        problem: SearchProblem,
        default: Any,
        seeds: Sequence[tuple[Any, Any]],
        known: dict[str, Any],
        logs: list[Path],
        base: Path,
        outcome: SearchOutcome,
    ) -> tuple[Any, str]:
        """Rule 0: the start and where it came from. With seeds, the fastest of the default and
        the seeds, benchmarked as one batch (added to ``known`` and its log to ``logs``);
        without, the default config."""
        for _seed, config in seeds:
            known.setdefault(_canonical_id(config), config)
        if len(known) == 1:
            return default, "the default config"
        source = {_canonical_id(c): s.source for s, c in seeds}
        logs.append(base.with_name(base.name + "-seeds"))
        self._finite(problem, list(known.values()), logs[-1], outcome, 0.0)
        ranked = _best(logs, 1)
        if not ranked:
            return default, "the default config"
        return ranked[0], source.get(_canonical_id(ranked[0]), "the default config")

    def _probe(
        self,
        problem: SearchProblem,
        start_config: Any,
        warm_start: bool,
        known: dict[str, Any],
        logs: list[Path],
        base: Path,
        outcome: SearchOutcome,
        began: float,
    ) -> list[Any]:
        """Rules 1 and 1b: the probe around the start, then one batch joining its improving
        changes (skipped when the budget is all but spent). Both go into ``known`` and their
        logs into ``logs``; returns the joined configs."""
        probe_log = base.with_name(base.name + "-probe")
        logs.append(probe_log)
        size = probe_size(problem, warm_start)
        dead = self._dead_ends(problem, logs[:-1], outcome, "probe")
        probe = batch_around(
            problem, start_config, known, size, problem.seed, self.warp_pairs, dead
        )
        known.update(probe)
        if len(probe) > 1 or len(logs) == 1:  # not when only the start, benchmarked already
            elapsed = time.perf_counter() - began
            self._finite(problem, list(probe.values()), probe_log, outcome, elapsed, logs[:-1])
        trim = _INTERPRETER if problem.interpreter else {}
        spent = problem.budget_s is not None and (
            time.perf_counter() - began > problem.budget_s - BUDGET_LEFT_TO_GO_ON_S
        )
        timed = [] if spent else _timed([probe_log])
        cap = int(trim.get("combine", COMBINE_MAX))
        joined = combined_changes(problem.bound, start_config, timed, cap, self.contested)
        if self.extend:
            joined += extended_changes(problem.bound, start_config, timed, cap)
        joined = [c for c in _unique(joined) if _canonical_id(c) not in known]
        if joined:  # rule 1b
            logs.append(base.with_name(base.name + "-combine"))
            elapsed = time.perf_counter() - began
            self._finite(problem, joined, logs[-1], outcome, elapsed, logs[:-1])
            known.update((_canonical_id(c), c) for c in joined)
        return joined

    def _lfbo(
        self,
        problem: SearchProblem,
        outcome: SearchOutcome,
        logs: Sequence[Path],
        pinned: list[Any],
        trim: dict[str, int],
        base: Path,
        start: float,
        paths: int,
    ) -> tuple[Any, Path]:
        """Rule 3: Helion's LFBOTreeSearch from the probe's best (pinned), ``paths`` search paths;
        its best and its log (``_timed`` reads what it benchmarked)."""
        elapsed = time.perf_counter() - start
        remaining = None if problem.budget_s is None else problem.budget_s - elapsed
        lfbo_log = base.with_name(base.name + "-lfbo")
        kwargs: dict[str, Any] = {
            "copies": int(trim.get("copies", paths)),
            "max_generations": int(
                trim.get("max_generations", 4 if problem.effort == "quick" else 10)
            ),
            "patience": PATIENCE,
            "min_improvement_delta": MIN_IMPROVEMENT,
            "polish_rounds": int(trim.get("polish_rounds", 1)),
            "num_neighbors": int(trim.get("num_neighbors", 200)),
            "best_available_pad_random": False,
        }
        timeout = compile_cut(logs)
        if timeout is not None:
            kwargs["compile_timeout_lower_bound"] = timeout
        local = SearchProblem(
            **{**problem.__dict__, "log_path": str(lfbo_log), "budget_s": remaining}
        )
        with (
            prepared(local, pinned, timeout or HELION_COMPILE_TIMEOUT_FLOOR_S) as settings,
            _env(
                # Helion's final shootout re-times each finalist for 5 s; ours follows instead.
                HELION_AUTOTUNE_FINAL_REBENCHMARK_TARGET_MS="300",
                HELION_AUTOTUNE_FINAL_REBENCHMARK_TOP_K="4",
            ),
        ):
            if self.recheck is not None:
                settings.autotune_rebenchmark_threshold = self.recheck
            found = self._run_helion(problem, "LFBOTreeSearch", kwargs, lfbo_log, outcome, elapsed)
        return found, lfbo_log

    def _polish(
        self,
        problem: SearchProblem,
        outcome: SearchOutcome,
        known: dict[str, Any],
        found: Any,
        cap: int,
        base: Path,
        start: float,
        earlier: Sequence[Path],
    ) -> list[Any]:
        """Rule 3b: up to ``polish_steps`` climb steps from LFBO's best (logs ``-polish-climbN``);
        the climb's last best and its two fastest, for the finalists."""
        polished, more = self._climb(
            problem,
            outcome,
            known,
            found,
            cap,
            base,
            start,
            self.polish_steps,
            earlier,
            stage="polish-climb",
        )
        moved = _canonical_id(polished) != _canonical_id(found)
        outcome.notes.append(
            f"polish: {self.polish_steps} climb step(s) at most from LFBO's best; "
            + ("it found a faster config" if moved else "nothing faster")
        )
        return [polished, *more[:2]]

    def _climb(
        self,
        problem: SearchProblem,
        outcome: SearchOutcome,
        known: dict[str, Any],
        current: Any,
        cap: int,
        base: Path,
        start: float,
        steps: int,
        earlier: Sequence[Path] = (),
        stage: str = "climb",
    ) -> tuple[Any, list[Any]]:
        """Rule 3, climb variant: a probe around the best so far (it in the batch, with up to
        ``cap`` of its one-step neighbours not benchmarked yet, fewer when little budget is left,
        as for the probe), again from a better one while a
        step gains ``MIN_IMPROVEMENT`` on Helion's timer, at most ``steps`` steps and never with
        less than ``BUDGET_LEFT_TO_GO_ON_S`` of the budget left. Its last best and the four
        fastest it benchmarked. ``stage`` names its steps, in the logs (``BASE-climb1.csv``) and
        the notes (``climb1``; ``polish-climb1`` for rule 3b's)."""
        logs: list[Path] = []
        for step in range(1, steps + 1):
            elapsed = time.perf_counter() - start
            size = cap
            if problem.budget_s is not None:
                left = problem.budget_s - elapsed
                if left < BUDGET_LEFT_TO_GO_ON_S:
                    break
                size = budget_sized(cap, left)  # a step is benchmarked whole, like the probe
            current_id = _canonical_id(current)
            name = f"{stage}{step}"
            dead = self._dead_ends(problem, [*earlier, *logs], outcome, name)
            batch = batch_around(
                problem, current, known, size, problem.seed + step, self.warp_pairs, dead
            )
            if len(batch) == 1:
                break
            known.update(batch)
            logs.append(base.with_name(f"{base.name}-{name}"))
            self._finite(
                problem, list(batch.values()), logs[-1], outcome, elapsed, [*earlier, *logs[:-1]]
            )
            timed = _timed(logs[-1:])
            here = next((ms for ms, c in timed if _canonical_id(c) == current_id), None)
            if not timed or here is None or timed[0][0] > here * (1 - MIN_IMPROVEMENT):
                break
            current = timed[0][1]
        return current, _best(logs, 4)

    def _dead_ends(
        self, problem: SearchProblem, earlier: Sequence[Path], outcome: SearchOutcome, stage: str
    ) -> set[Feature]:
        """Rule 6's dead ends for the batch after ``earlier`` (none when off); the values not
        noted yet go into the notes."""
        if not self.skip_dead_ends or not earlier:
            return set()
        users = problem.bound.settings.autotune_compile_timeout
        dead = logged_dead_ends(earlier, users)
        said = " ".join(n for n in outcome.notes if DEAD_END_NOTE in n)
        new = [shown for shown in shown_dead_ends(dead) if f"`{shown}`" not in said]
        if new:
            outcome.notes.append(
                f"{stage}{DEAD_END_NOTE} {', '.join(f'`{shown}`' for shown in new[:6])}"
                + (f" and {len(new) - 6} more" if len(new) > 6 else "")
                + " (compiles "
                f"cut off {DEAD_END_TIMEOUTS}+ times, never compiled; rule 6)"
            )
        return dead

    def _finite(
        self,
        problem: SearchProblem,
        configs: list[Any],
        base: Path,
        outcome: SearchOutcome,
        offset_s: float,
        earlier: Sequence[Path] = (),
    ) -> None:
        """Helion benchmarks exactly ``configs``, in full (no budget check inside the batch), each
        compile cut off as rule 3 says from the ``earlier`` batches' compile times
        (``FIRST_BATCH_COMPILE_TIMEOUT_S`` for the first batch). Where the cut stopped the
        default config's compile, or every compile that did not fail, the configs it stopped go
        again at Helion's 30 s floor: a kernel whose configs all compile slowly (a large kernel,
        a slow host) keeps its probe and its baseline. Helion's FiniteSearch takes no fewer than
        two configs: a lone config goes in twice."""
        local = SearchProblem(**{**problem.__dict__, "log_path": str(base), "budget_s": None})

        def batch(batch_configs: list[Any], timeout: float, offset: float) -> None:
            if len(batch_configs) == 1:
                batch_configs = batch_configs * 2
            with prepared(local, [], timeout):
                kwargs = {"configs": batch_configs}
                self._run_helion(problem, "FiniteSearch", kwargs, base, outcome, offset)

        cut = batch_cut(earlier)
        users = problem.bound.settings.autotune_compile_timeout
        began = time.perf_counter()
        batch(configs, cut, offset_s)
        floor = HELION_COMPILE_TIMEOUT_FLOOR_S
        if lowered_compile_timeout(users, floor) <= lowered_compile_timeout(users, cut):
            return  # nothing to gain: the cut was the floor, or the user's timeout is lower
        done = {text for _ms, text in monitor.finished([base.with_suffix(".csv")])}
        stopped = cut_off(base, done)
        default_id = _canonical_id(problem.bound.config_spec.default_config())
        if not stopped or (done and default_id not in {_canonical_id(c) for c in stopped}):
            return  # something finished, and the default was not among the configs cut
        outcome.notes.append(
            f"{base.name.rsplit('-', 1)[-1]}: {len(stopped)} compiles cut at {cut:.0f} s"
            + (", none finished" if not done else ", the default's among them")
            + f"; compiled again at {lowered_compile_timeout(users, floor)} s"
        )
        batch(stopped, floor, offset_s + time.perf_counter() - began)

    def _run_helion(
        self,
        problem: SearchProblem,
        class_name: str,
        kwargs: dict[str, Any],
        base: Path,
        outcome: SearchOutcome,
        offset_s: float,
    ) -> Any:
        """Runs one Helion search class; adds its candidates and trace to ``outcome``; returns its
        best (None when a FiniteSearch had no candidate finish)."""
        from helion.autotuner import search_algorithms

        from .helion_search import search_kwargs

        cls = search_algorithms.get(class_name)
        if cls is None:
            raise StrategyError(f"strategy {self.name}: this Helion has no {class_name}")
        if class_name != "FiniteSearch":
            merged = {**search_kwargs(cls, problem, problem.bound.settings), **kwargs}
            accepted = inspect.signature(cls.__init__).parameters
            kwargs = {k: v for k, v in merged.items() if k in accepted}
        with (
            collected_metrics() as metrics,
            monitor.follow(base.with_suffix(".csv"), problem.progress, time.perf_counter) as log,
        ):
            search = attach(cls(problem.bound, problem.args, **kwargs), self.rep_ms)
            try:
                best = search.autotune(skip_cache=True)
            except AssertionError:
                if class_name != "FiniteSearch":
                    raise
                best = None  # Helion's FiniteSearch asserts when no candidate finished
        tested_before = outcome.configs_tested
        for point in log.trace:
            if outcome.best_ms is None or point.best_ms < outcome.best_ms:
                outcome.best_ms = point.best_ms
                outcome.trace.append(
                    TracePoint(
                        point.seconds + offset_s, point.configs + tested_before, point.best_ms
                    )
                )
        outcome.candidates.extend(log.candidates)
        outcome.configs_tested += log.tested
        outcome.configs_compiled += log.started or log.tested
        before = dict(outcome.failures)
        metrics_outcome(metrics, outcome)
        for k, v in before.items():
            outcome.failures[k] = outcome.failures.get(k, 0) + v
        outcome.configs_tested = max(outcome.configs_tested, tested_before + log.tested)
        return best

    @staticmethod
    def _retime(
        problem: SearchProblem,
        timer: Timer,
        configs: Sequence[Any],
        rounds: int,
        outcome: SearchOutcome,
        stage: str,
        roles: dict[str, str],
    ) -> list[float]:
        """Medians of interleaved rounds, each config its own compiled callable. Every round's
        sample goes into ``outcome.retimings``, labelled with its role (else "candidate")."""
        args = problem.args
        fns = []
        for config in configs:
            compiled = problem.bound.compile_config(config, allow_print=False)
            fns.append(lambda c=compiled: c(*args))
        samples = timer.interleaved(fns, ["candidate"] * len(fns), rounds)
        ids = [_canonical_id(c) for c in configs]
        labels = [f"{roles.get(i, 'candidate')}:{i}" for i in ids]
        outcome.retimings.append(Retiming(stage, labels, [list(s) for s in samples]))
        return [statistics.median(s) for s in samples]
