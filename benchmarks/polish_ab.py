"""Rule 3b's A/B inside each search that polished: what its polish climb added to the final
re-timing, and what the search came to against LFBO ``quick`` on the benchmark's re-timing.

A ``seeded-polish`` search (session 15), or a plain ``seeded`` one since rule 3b is on by
default, re-times, interleaved on the common timer, everything ``seeded`` without rule 3b would
(the default, the probe's best, LFBO's best and its top four) beside the polish climb's best
three. The finalists that only the polish climb benchmarked (their id in a
``-polish-climbN.csv`` log and in no earlier stage's) are the B arm; the others are the A arm,
what ``seeded`` without rule 3b would have picked from. Usage::

    python benchmarks/polish_ab.py RESULTS_DIR [...] [--json OUT]

Each RESULTS_DIR holds ``CASE__seeded-polish.json`` or ``CASE__seeded.json``, ``results.json``
or ``results.json.gz`` (``benchmarks/report.py``) and the stage logs in ``logs/``, ``logs-cold/``
(the committed dir's) or ``logs.tar.gz`` (a copied dir as committed). A search without a polish
log (it climbed, or stopped) gives no row.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the package may not be installed
    sys.path.insert(0, str(ROOT))

from benchmarks import log_tools  # noqa: E402
from benchmarks.compare_results import read_results  # noqa: E402

STRATEGIES = ("seeded-polish", "seeded")


def stage_logs(folder: Path, stem: str) -> dict[str, list[dict[str, str]]]:
    """The rows of each of a search's CSV stage logs (``STEM-STAGE.csv``), by file name, from
    the folder's ``logs/`` or ``logs-cold/``, else from its ``logs.tar.gz``."""
    out: dict[str, list[dict[str, str]]] = {}
    for name in ("logs", "logs-cold"):
        if (folder / name).is_dir():
            for path in sorted((folder / name).glob(f"{stem}-*.csv")):
                with path.open(newline="") as handle:
                    out[path.name] = list(csv.DictReader(handle))
            return out
    if (folder / "logs.tar.gz").is_file():
        with tarfile.open(folder / "logs.tar.gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                raw = tar.extractfile(member) if member.isfile() else None
                if raw and name.startswith(f"{stem}-") and name.endswith(".csv"):
                    text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                    out[name] = list(csv.DictReader(text))
    return dict(sorted(out.items()))


def _ids(logs: Sequence[Sequence[dict[str, str]]]) -> set[str]:
    return {row.get("config_id", "") for rows in logs for row in rows}


def search_row(
    folder: Path, result_path: Path, cases: dict[str, Any], strategy: str
) -> dict[str, Any] | None:
    """One search's row; None where it did not refine with LFBO (no polish ran)."""
    result = json.loads(result_path.read_text())
    case = result_path.name.split("__")[0]
    logs = stage_logs(folder, f"{case}__{strategy.replace('-', '_')}")
    polish_rows = [rows for name, rows in logs.items() if "-polish-climb" in name]
    if not polish_rows:
        return None
    earlier = [rows for name, rows in logs.items() if "-polish-" not in name]
    polished_only = _ids(polish_rows) - _ids(earlier)
    final = [r for r in result.get("retimings", []) if r.get("stage") == "final"][-1]
    a_arm: list[float] = []
    b_arm: list[float] = []
    for label, samples in zip(final["labels"], final["samples_ms"], strict=True):
        config_id = label.split(":", 1)[1]
        (b_arm if config_id in polished_only else a_arm).append(statistics.median(samples))
    polish_s = sum(
        max((float(r["timestamp_s"]) for r in rows if r["timestamp_s"]), default=0.0)
        for rows in polish_rows
    )
    summary = cases.get(case, {})
    by_strategy = summary.get("retime", {}).get("by_strategy", {})
    lfbo = summary.get("strategies", {}).get("lfbo", {})
    row: dict[str, Any] = {
        "case": case,
        "strategy": strategy,
        "dir": str(folder),
        "wall_s": result.get("wall_s"),
        "polish_s": round(polish_s, 2),
        "a_best_ms": min(a_arm),
        "b_best_ms": min(b_arm) if b_arm else None,
        "polish_gain": (min(a_arm) / min(b_arm) - 1) if b_arm else 0.0,
        "vs_lfbo_ms": None,
        "vs_lfbo_s": None,
    }
    if by_strategy.get(strategy) and by_strategy.get("lfbo"):
        row["vs_lfbo_ms"] = by_strategy[strategy] / by_strategy["lfbo"]
    if lfbo.get("wall_s") and result.get("wall_s"):
        row["vs_lfbo_s"] = result["wall_s"] / lfbo["wall_s"]
    return row


def rows(dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """The rows of every ``seeded-polish`` or ``seeded`` search that polished in these dirs."""
    out: list[dict[str, Any]] = []
    for folder in dirs:
        cases = {}
        for summary_path in (folder / "results.json", folder / "results.json.gz"):
            if summary_path.exists():
                cases = {c["name"]: c for c in read_results(summary_path)["cases"]}
                break
        for strategy in STRATEGIES:
            for path in sorted(folder.glob(f"*__{strategy}.json")):
                row = search_row(folder, path, cases, strategy)
                if row is not None:
                    out.append(row)
    return out


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(found: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| case | dir | A: best without polish (ms) | B: best polish-only (ms) | polish gain "
        "| polish s | search s | ms vs LFBO | s vs LFBO |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in found:
        lines.append(
            f"| {r['case']} | {Path(r['dir']).name} | {r['a_best_ms']:.5f} | "
            f"{'-' if r['b_best_ms'] is None else format(r['b_best_ms'], '.5f')} | "
            f"{r['polish_gain'] * 100:+.1f}% | {r['polish_s']:.1f} | {r['wall_s']:.1f} | "
            f"{_x(r['vs_lfbo_ms'])} | {_x(r['vs_lfbo_s'])} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    description = __doc__.split("\n\n")[0] if __doc__ else ""
    return log_tools.run(description, argv, rows, table, "search that polished")


if __name__ == "__main__":
    raise SystemExit(main())
