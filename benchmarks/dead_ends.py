"""Replays ``seeded``'s rule 6 (compile dead ends) over recorded stage logs: which configs of each
probe and climb step it would have left out, what waiting on cut-off compiles that saves, and
which configs that finished it would have lost.

Rule 6 leaves out of a probe or climb step every neighbour carrying a field value, or a pair of
them, that was cut off in two or more configs of the search so far, at a timeout no shorter than
the batch's, and that no config whose compile ended carried (``pytest_helion_tune.strategies.seeded.dead_ends``). Usage::

    python benchmarks/dead_ends.py LOGDIR [...] [--near 0.10]

A batch waits for its slowest compile (a cut-off one for its cut). The saving per batch is its
slowest compile less the slowest of the configs the rule keeps. In a real search the search
proposes other neighbours in the place of those it leaves out; their compiles are not in the
logs, so the saving is an upper bound where a stand-in compiles slowly. Logs before session 14
were taken with other first-batch cuts; a batch's cut is the timeout recorded on its cut-off
rows, else rule 3's from the batches before it.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the package may not be installed
    sys.path.insert(0, str(ROOT))

from benchmarks.compile_cut import STAGES, command_line, read_stage_logs  # noqa: E402
from pytest_helion_tune.monitor import compile_cut_off, config_from_repr  # noqa: E402
from pytest_helion_tune.strategies.seeded import (  # noqa: E402
    FIRST_BATCH_COMPILE_TIMEOUT_S,
    dead_ends,
    doomed,
    refine_compile_timeout,
)

# The batches rule 6 shapes: the probe and the climb steps, rule 3b's among them.
SHAPED = ("probe", "climb")


@dataclass
class Row:
    status: str
    ms: float | None
    seconds: float
    config: dict[str, Any]

    @property
    def cut_at(self) -> float | None:
        """The timeout that cut this compile off, None where the compile ended."""
        return self.seconds if compile_cut_off(self.status, self.seconds) else None


@dataclass
class Replay:
    searches: int = 0
    batches_shaped: int = 0
    left_out: int = 0
    left_out_cut: int = 0
    saved_s: float = 0.0
    lost: list[str] = field(default_factory=list)  # finished configs left out, near-best or not
    near_lost: list[str] = field(default_factory=list)
    by_search: list[str] = field(default_factory=list)


def read_rows(path: Path) -> list[Row]:
    """A stage log's final rows (not "started"), each config once (its last row)."""
    out: dict[str, Row] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            status = row.get("status", "")
            if status in ("", "started"):
                continue
            try:
                config = config_from_repr(row.get("config", ""))
                seconds = float(row.get("compile_time_s") or 0)
                ms = float(row["perf_ms"]) if status == "ok" and row.get("perf_ms") else None
            except ValueError:
                continue
            out[row.get("config", "")] = Row(status, ms, seconds, config)
    return list(out.values())


def searches(dirs: Sequence[Path]) -> dict[tuple[str, str, str], dict[str, list[Row]]]:
    """(log dir, case, strategy) -> stage -> rows."""
    return read_stage_logs(dirs, read_rows)


def batch_cut(rows: Sequence[Row], earlier: Sequence[Row]) -> float:
    """The timeout a batch ran under: recorded on its cut-off rows, else rule 3's."""
    recorded = [r.cut_at for r in rows if r.cut_at is not None]
    if recorded:
        return max(recorded)
    compiled = [r.seconds for r in earlier if r.cut_at is None and r.seconds > 0]
    return refine_compile_timeout(compiled) or FIRST_BATCH_COMPILE_TIMEOUT_S


def replay(found: dict[tuple[str, str, str], dict[str, list[Row]]], near: float) -> Replay:
    best: dict[str, float] = {}
    for (_d, case, _s), stages in found.items():
        for rows in stages.values():
            for r in rows:
                if r.ms is not None:
                    best[case] = min(best.get(case, r.ms), r.ms)
    out = Replay(searches=len(found))
    for (_d, case, strategy), stages in sorted(found.items()):
        earlier: list[Row] = []
        left_here = 0
        saved_here = 0.0
        for stage in STAGES:
            rows = stages.get(stage, [])
            if rows and stage.split("-")[-1].startswith(SHAPED):
                cut = batch_cut(rows, earlier)
                dead = dead_ends([(r.config, r.cut_at) for r in earlier], cut)
                out.batches_shaped += 1
                left = [r for r in rows if doomed(r.config, dead)]
                kept = [r for r in rows if r not in left]
                if left and kept:
                    saved = max(r.seconds for r in rows) - max(r.seconds for r in kept)
                    out.saved_s += saved
                    saved_here += saved
                out.left_out += len(left)
                out.left_out_cut += sum(r.cut_at is not None for r in left)
                left_here += len(left)
                for r in left:
                    if r.ms is None:
                        continue
                    text = f"{case}/{strategy}/{stage}: {r.ms / best[case]:.3f}x best"
                    out.lost.append(text)
                    if r.ms <= best[case] * (1 + near):
                        out.near_lost.append(text)
            earlier += rows
        if left_here:
            out.by_search.append(f"{case}/{strategy}: {left_here} left out, {saved_here:.1f} s")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = command_line("dead_ends", __doc__, argv)
    found = searches(args.dirs)
    if not found:
        print("dead_ends: no seeded stage logs (NAME__STRATEGY-STAGE.csv) found", file=sys.stderr)
        return 1
    result = replay(found, args.near)
    print(
        f"{result.searches} searches, {result.batches_shaped} probe and climb batches: rule 6 "
        f"leaves out {result.left_out} configs, {result.left_out_cut} of them cut off; "
        f"about {result.saved_s:.0f} s less waiting on the slowest compile; "
        f"{len(result.lost)} that finished left out, {len(result.near_lost)} within "
        f"{args.near:.0%} of their case's best"
    )
    for line in [*result.by_search, *(f"lost: {t}" for t in result.lost)]:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
