"""How long each benchmark job took, from Helion's per-candidate CSV logs.

Helion writes a ``started`` row when it sends a candidate to its benchmark worker and an ``ok`` or
``error`` row when the answer comes back; jobs run one at a time, so the gap is the job: loading
the compiled kernel in the worker (or compiling it there, when the worker misses the cache the
precompile step filled), the accuracy check and the timing itself. Usage::

    python benchmarks/job_times.py LOGDIR_OR_CSV [...] [--json OUT.json]

prints one markdown row per search (CSV file): jobs, median and 90th-percentile job time, the
failed jobs and the seconds they cost.
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

DONE = {"ok", "error"}


def job_seconds(rows: Iterable[dict[str, str]]) -> list[tuple[str, float]]:
    """(status, seconds) per job, pairing each candidate's ``started`` row with its next answer."""
    sent: dict[str, float] = {}
    jobs: list[tuple[str, float]] = []
    for row in rows:
        status, config_id = row.get("status", ""), row.get("config_id", "")
        try:
            at = float(row.get("timestamp_s", ""))
        except ValueError:
            continue
        if status == "started":
            sent[config_id] = at
        elif status in DONE and config_id in sent:
            jobs.append((status, round(at - sent.pop(config_id), 6)))
    return jobs


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarise(path: Path, source: str = "") -> dict[str, Any]:
    with path.open(newline="", encoding="utf-8") as handle:
        jobs = job_seconds(csv.DictReader(handle))
    seconds = [s for _, s in jobs]
    failed = [s for status, s in jobs if status == "error"]
    return {
        "source": source,
        "search": path.stem,
        "jobs": len(jobs),
        "median_s": statistics.median(seconds) if seconds else None,
        "p90_s": _quantile(seconds, 0.9) if seconds else None,
        "total_s": round(sum(seconds), 3),
        "failed": len(failed),
        "failed_s": round(sum(failed), 3),
    }


def csv_files(paths: Iterable[Path]) -> list[tuple[str, Path]]:
    """(the argument it was found under, the CSV log) for every log under ``paths``."""
    found: list[tuple[str, Path]] = []
    for path in paths:
        files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
        found.extend((str(path), f) for f in files)
    return found


def table(rows: Sequence[dict[str, Any]]) -> str:
    def num(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        "| logs | search | jobs | median s | p90 s | all jobs s | failed | failed s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['search']} | {r['jobs']} | {num(r['median_s'])} | {num(r['p90_s'])} "
            f"| {r['total_s']:.1f} | {r['failed']} | {r['failed_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from benchmarks.log_tools import run
    except ImportError:  # run as a script: this folder is first on sys.path
        from log_tools import run  # type: ignore[no-redef]

    def rows_for(paths: list[Path]) -> list[dict[str, Any]]:
        return [summarise(f, source) for source, f in csv_files(paths)]

    return run(__doc__.splitlines()[0], argv, rows_for, table, "CSV logs")


if __name__ == "__main__":
    sys.exit(main())
