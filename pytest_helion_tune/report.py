"""What people read: the header line, the summary table, and the JSON report.

Reads ``CaseResult`` objects only; knows nothing of searches.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .jsonstore import write_atomic
from .results import CaseResult
from .strategies.base import BUDGET_SPENT

REPORT_SCHEMA = 1


def describe_failures(failures: dict[str, int]) -> str:
    """``3 failed (1 accuracy, 1 compile, 1 timeout)``, or "" when none failed."""
    counts = {k: v for k, v in sorted(failures.items()) if isinstance(v, int) and v > 0}
    if not counts:
        return ""
    kinds = ", ".join(f"{v} {k}" for k, v in counts.items())
    return f"{sum(counts.values())} failed ({kinds})"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if value < 10 else f"{value:.1f}"


def _short_nodeid(nodeid: str, width: int = 48) -> str:
    # The file's directories go; a "/" in a parameter id (test_mm[a/b]) stays.
    path, sep, rest = nodeid.partition("::")
    name = path.rsplit("/", 1)[-1] + sep + rest
    return name if len(name) <= width else "..." + name[-(width - 3) :]


def summary_lines(results: Sequence[CaseResult]) -> list[str]:
    """The summary table, one row per case, plus lines for anything needing attention."""
    if not results:
        return []
    header = (
        "case",
        "origin",
        "strategy",
        "configs",
        "tune s",
        "ms",
        "eager ms",
        "vs eager",
        "baseline",
        "change",
        "verdict",
    )
    rows: list[tuple[str, ...]] = [header]
    for r in results:
        speedup = r.speedup_vs_eager
        change = "-"
        if r.gate and isinstance(r.gate.get("change"), int | float):
            change = f"{r.gate['change'] * 100:+.1f}%"  # the gate's kernel/eager ratio change
        elif r.baseline_ms and r.latency_ms:
            change = f"{(r.latency_ms / r.baseline_ms - 1) * 100:+.1f}%"
        origin = r.origin + (" (stale)" if r.stale else "") + (" (partial)" if r.partial else "")
        rows.append(
            (
                _short_nodeid(r.nodeid),
                origin or "-",
                r.strategy or "-",
                str(r.configs_tested) if r.origin == "tuned" else "-",
                f"{r.tune_seconds:.1f}" if r.origin == "tuned" else "-",
                _ms(r.latency_ms),
                _ms(r.eager_ms),
                f"{speedup:.2f}x" if speedup and r.device != "interpreter" else "-",
                _ms(r.baseline_ms),
                change,
                r.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    defaults = [r for r in results if r.origin == "default"]
    if defaults:
        lines.append(
            f"{len(defaults)} case(s) ran Helion's default config (no valid cache entry); "
            "tune them with pytest --helion-tune"
        )
    missing = [r for r in results if r.verdict == "missing-baseline"]
    if missing:
        lines.append(
            f"{len(missing)} case(s) have no performance baseline on this device; "
            "record them with pytest --helion-update-baselines"
        )
    partial = [r for r in results if r.partial and r.origin == "cache"]
    if partial:
        lines.append(
            f"{len(partial)} case(s) use the best config of an interrupted search (partial); "
            "finish them with pytest --helion-tune"
        )
    for r in results:
        failed = describe_failures(r.failures)
        if failed:
            lines.append(f"candidates of {_short_nodeid(r.nodeid)}: {failed}; the search went on")
    for r in results:
        lines.extend(
            f"{_short_nodeid(r.nodeid)}: {note}"
            for note in r.notes
            if note.startswith(BUDGET_SPENT)
        )
    for r in results:
        if r.stale and r.stale_reason:
            lines.append(f"stale: {_short_nodeid(r.nodeid)}: {r.stale_reason}")
        if r.failed and r.message:
            lines.append(f"{r.verdict}: {r.message}")
    return lines


def report_document(results: Sequence[CaseResult], header: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "session": header,
        "cases": [r.to_json() for r in sorted(results, key=lambda r: r.nodeid)],
    }


def write_json(path: Path, results: Sequence[CaseResult], header: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        json.dumps(report_document(results, header), indent=2, sort_keys=True, default=str) + "\n"
    )
    write_atomic(path, text)
