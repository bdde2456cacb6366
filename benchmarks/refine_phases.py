"""Where an LFBOTreeSearch's gain came from: its seeds, its generations, or its polish round.

Reads Helion's per-candidate CSV log of each search and the text log beside it. Helion numbers
the rows by generation: 0 holds the seeds (for ``seeded``'s refinement, the probe's best configs,
pinned), 1..G the surrogate-guided generations (G is the last "Generation G complete" in the text
log), and every row after G the polish round, a sweep of the best config's one-step neighbours.
Usage::

    python benchmarks/refine_phases.py LOGDIR_OR_CSV [...] [--json OUT.json]

prints one markdown row per search whose name ends in ``lfbo``: the best time in each phase, the
seconds each phase took (from the end of the one before), and which phase brought the gain.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

GAIN = 0.005  # a phase "gains" when its best beats the seeds' best by this fraction
_COMPLETE = re.compile(r"Generation (\d+) complete")


def last_generation(log_text: str) -> int:
    """G: the last surrogate generation that completed (0 when none did)."""
    return max((int(m.group(1)) for m in _COMPLETE.finditer(log_text)), default=0)


def phases(rows: Iterable[dict[str, str]], last_gen: int) -> dict[str, Any]:
    """Best ms and end time of the seeds, the generations and the polish round."""
    best = {"seeds": math.inf, "generations": math.inf, "polish": math.inf}
    end = {"seeds": 0.0, "generations": 0.0, "polish": 0.0}
    for row in rows:
        if row.get("status") == "started":
            continue
        try:
            generation, at = int(row.get("generation", "")), float(row.get("timestamp_s", ""))
        except ValueError:
            continue
        phase = (
            "seeds" if generation == 0 else "generations" if generation <= last_gen else "polish"
        )
        end[phase] = max(end[phase], at)
        with_time = row.get("status") == "ok" and row.get("perf_ms")
        if with_time:
            best[phase] = min(best[phase], float(row["perf_ms"]))
    gens_end = max(end["generations"], end["seeds"])
    seeds = best["seeds"]
    if best["generations"] < seeds * (1 - GAIN):
        source = "generations"
    elif best["polish"] < seeds * (1 - GAIN):
        source = "polish only"
    else:
        source = "none"
    return {
        "seeds_ms": _finite(seeds),
        "generations_ms": _finite(best["generations"]),
        "polish_ms": _finite(best["polish"]),
        "generations_s": round(gens_end - end["seeds"], 3),
        "polish_s": round(max(end["polish"] - gens_end, 0.0), 3),
        "gain_from": source,
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def summarise(csv_path: Path) -> dict[str, Any]:
    log = csv_path.with_suffix(".log")
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    rows = csv_path.read_text(encoding="utf-8", errors="replace")
    whole = rows[: rows.rfind("\n") + 1]  # a last row cut short by a kill is left out
    row = phases(csv.DictReader(whole.splitlines()), last_generation(text))
    return {"search": csv_path.stem, **row}


def lfbo_logs(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
        found.extend(f for f in files if f.stem.endswith("lfbo"))
    return found


def table(rows: Sequence[dict[str, Any]]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    lines = [
        "| search | seeds ms | generations ms | polish ms | generations s | polish s | gain from |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['search']} | {ms(r['seeds_ms'])} | {ms(r['generations_ms'])} "
            f"| {ms(r['polish_ms'])} | {r['generations_s']:.1f} | {r['polish_s']:.1f} "
            f"| {r['gain_from']} |"
        )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["gain_from"]] = counts.get(r["gain_from"], 0) + 1
    lines.append("")
    lines.append(
        f"{len(rows)} searches; gain from: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from benchmarks.log_tools import run
    except ImportError:  # run as a script: this folder is first on sys.path
        from log_tools import run  # type: ignore[no-redef]

    def rows_for(paths: list[Path]) -> list[dict[str, Any]]:
        return [summarise(f) for f in lfbo_logs(paths)]

    return run(__doc__.splitlines()[0], argv, rows_for, table, "LFBO CSV logs (*lfbo.csv)")


if __name__ == "__main__":
    sys.exit(main())
