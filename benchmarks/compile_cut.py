"""Replays compile-cut rules over ``seeded``'s recorded stage logs: what each rule would have saved
in waiting for slow compiles, and which good configs it would have cut off.

``seeded`` benchmarks its stages (seeds, probe, combine, climb steps, LFBO) as Helion batches; a
batch waits for its slowest compile, up to the compile timeout. A rule here is (first, per_q90,
least): the first batch's cut, and each later batch's ``per_q90`` times the 90th percentile of the
compile times of the batches before it, never under ``least`` nor over 30 s (Helion's adaptive
floor). LFBO's generations count as batches. Usage::

    python benchmarks/compile_cut.py LOGDIR [...] [--near 0.10]

For each rule: the seconds the batches would have waited on their slowest compile (a batch that
hit the recorded cut counts that cut: a lower bound for a rule with a longer cut), and the
configs within ``--near`` of their case's best time (over every search in the logs) that compiled
for longer than the rule's cut, which that rule would have lost.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the package may not be installed
    sys.path.insert(0, str(ROOT))

from pytest_helion_tune.strategies.seeded import refine_compile_timeout  # noqa: E402

# In the order a search runs them; rule 3b's polish climbs (``-polish-climbN``) follow LFBO.
STAGES = (
    *("seeds", "probe", "combine", "climb1", "climb2", "climb3", "climb4", "lfbo"),
    *(f"polish-climb{k}" for k in range(1, 5)),
)
# The shortest strategy that leaves a stage: ``seeded_warm-climb1``, ``seeded_polish-polish-climb1``
# and the older ``seeded-warm-climb1`` (before ``-`` was written ``_``).
_NAME = re.compile(r"(.+?)__(.+?)-(" + "|".join(STAGES) + r")$")
# (first batch, x q90 of earlier batches, least): until session 8, sessions 8-13, since session
# 14, and tighter ones
RULES = (
    (30.0, 10.0, 10.0),
    (10.0, 10.0, 10.0),
    (10.0, 5.0, 5.0),
    (5.0, 5.0, 5.0),
    (10.0, 3.0, 3.0),
    (3.0, 3.0, 3.0),
)

Row = tuple[int, float | None, float, str]  # generation, ms (None unless ok), compile s, status
R = TypeVar("R")  # a stage log's row as a reader makes it


def read_rows(path: Path) -> list[Row]:
    out: list[Row] = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            status = row.get("status", "")
            try:
                seconds = float(row.get("compile_time_s") or 0)
                generation = int(row.get("generation") or 0)
            except ValueError:
                continue
            if status == "ok" and row.get("perf_ms"):
                out.append((generation, float(row["perf_ms"]), seconds, status))
            elif status == "timeout":
                out.append((generation, None, seconds, status))
    return out


def stage_logs(dirs: Sequence[Path]) -> dict[tuple[str, str, str], dict[str, Path]]:
    """(log dir, case, strategy) -> stage -> its CSV log."""
    found: dict[tuple[str, str, str], dict[str, Path]] = defaultdict(dict)
    for folder in dirs:
        for path in sorted(folder.glob("*.csv")):
            match = _NAME.match(path.stem)
            if match:
                found[(str(folder), match.group(1), match.group(2))][match.group(3)] = path
    return found


def read_stage_logs(
    dirs: Sequence[Path], read: Callable[[Path], list[R]]
) -> dict[tuple[str, str, str], dict[str, list[R]]]:
    """(log dir, case, strategy) -> stage -> the rows ``read`` takes from its CSV log."""
    return {
        key: {stage: read(path) for stage, path in stages.items()}
        for key, stages in stage_logs(dirs).items()
    }


def searches(dirs: Sequence[Path]) -> dict[tuple[str, str, str], dict[str, list[Row]]]:
    """(log dir, case, strategy) -> stage -> rows."""
    return read_stage_logs(dirs, read_rows)


def command_line(prog: str, doc: str | None, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments of a replay over stage logs (``dirs``, ``--near``); exits with status 2
    naming a path that is not a directory."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--near", type=float, default=0.10)
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        parser.error(f"not a directory: {', '.join(missing)}")
    return args


def cut_for(rule: tuple[float, float, float], earlier: Sequence[float]) -> float:
    """The cut a rule gives a batch: ``seeded``'s own computation with the rule's knobs."""
    first, per_q90, least = rule
    cut = refine_compile_timeout(earlier, per_q90, least)
    return first if cut is None else cut


def best_times(found: dict[tuple[str, str, str], dict[str, list[Row]]]) -> dict[str, float]:
    """Each case's best time over every search in the logs."""
    best: dict[str, float] = {}
    for (_dir, case, _strategy), stages in found.items():
        for rows in stages.values():
            for _g, ms, _s, _st in rows:
                if ms is not None:
                    best[case] = min(best.get(case, ms), ms)
    return best


def replay(
    found: dict[tuple[str, str, str], dict[str, list[Row]]],
    rule: tuple[float, float, float],
    near: float,
) -> tuple[float, list[str]]:
    """Seconds waited on the slowest compile of each batch, and the near-best configs lost."""
    best = best_times(found)
    waited = 0.0
    lost: list[str] = []
    for (_dir, case, strategy), stages in sorted(found.items()):
        earlier: list[float] = []
        for stage in STAGES:
            batches: dict[int, list[Row]] = defaultdict(list)
            for row in stages.get(stage, []):
                batches[row[0] if stage == "lfbo" else 0].append(row)
            for generation in sorted(batches):
                batch = batches[generation]
                cut = cut_for(rule, earlier)
                waited += min(max(s for _g, _ms, s, _st in batch), cut)
                for _g, ms, seconds, _st in batch:
                    if ms is not None and seconds > cut and ms <= best[case] * (1 + near):
                        lost.append(
                            f"{case}/{strategy}/{stage}: {ms / best[case]:.3f}x best, {seconds:.1f} s"
                        )
                earlier += [s for _g, ms, s, _st in batch if ms is not None]
    return waited, lost


def main(argv: Sequence[str] | None = None) -> int:
    args = command_line("compile_cut", __doc__, argv)
    found = searches(args.dirs)
    if not found:
        print("compile_cut: no seeded stage logs (NAME__STRATEGY-STAGE.csv) found", file=sys.stderr)
        return 1
    slowest = max(
        (r[2], case)
        for (_d, case, _s), stages in found.items()
        for rows in stages.values()
        for r in rows
        if r[1] is not None and r[1] <= best_times(found)[case] * (1 + args.near)
    )
    print(
        f"{len(found)} searches; near-best = within {args.near:.0%} of the case's best; the "
        f"slowest near-best compile took {slowest[0]:.2f} s ({slowest[1]})\n"
    )
    print("| first batch | later: x q90 | least | waited on slowest compiles | near-best lost |")
    print("|---|---|---|---|---|")
    for rule in RULES:
        waited, lost = replay(found, rule, args.near)
        shown = "; ".join(lost[:3]) + (" ..." if len(lost) > 3 else "")
        print(
            f"| {rule[0]:.0f} s | {rule[1]:.0f} | {rule[2]:.0f} s | {waited:.0f} s | {len(lost)} {shown} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
