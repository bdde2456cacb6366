"""Per-case medians over repeated searches of one strategy: reads several ``results.json`` files
of ``report.py`` (the committed dir and copied dirs searched again with ``--seed N``), takes each
search once (by case and start time, from the first file that has it, the run that followed it),
and prints each case's ratios to LFBO ``quick`` (latency and wall time, each from its own run's
interleaved re-timing), their medians, and the geomean of the medians. A file may be gzipped
(``results.json.gz``, as the copied dirs' are committed). Usage::

    python benchmarks/search_medians.py A.json B.json.gz ... [--strategy seeded] [--commit SHA]
        [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    from benchmarks.compare_results import geomean, load, ratios
except ImportError:  # run as a script
    from compare_results import geomean, load, ratios  # type: ignore[no-redef]


def searches(
    docs: Sequence[dict[str, Any]], strategy: str, commit: str | None
) -> dict[str, list[dict[str, Any]]]:
    """case -> one row per distinct search of ``strategy`` (its ratios to LFBO ``quick``), in
    the order of ``docs``; a search found again in a later file is not counted twice."""
    seen: set[tuple[str, str]] = set()
    out: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        found = ratios(doc, strategy)  # case -> (ms, s) against LFBO, where both ran
        for case in doc.get("cases", []):
            if case["name"] not in found:
                continue
            run = (case.get("strategies") or {}).get(strategy) or {}
            made = (run.get("environment") or {}).get("git_commit", "")
            key = (case["name"], str(run.get("started_at", "")))
            if (commit and not made.startswith(commit)) or key in seen:
                continue
            seen.add(key)
            ms, s = found[case["name"]]
            out.setdefault(case["name"], []).append(
                {"started_at": key[1], "commit": made, "ms": ms, "s": s}
            )
    return dict(sorted(out.items()))


def medians(by_case: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    rows = [
        {
            "case": case,
            "ms": [r["ms"] for r in runs],
            "s": [r["s"] for r in runs],
            "median_ms": statistics.median(r["ms"] for r in runs),
            "median_s": statistics.median(r["s"] for r in runs),
        }
        for case, runs in by_case.items()
    ]
    summary: dict[str, Any] = {"cases": len(rows), "searches": sum(len(r["ms"]) for r in rows)}
    if rows:
        summary["geomean_median_ms"] = geomean([r["median_ms"] for r in rows])
        summary["geomean_median_s"] = geomean([r["median_s"] for r in rows])
        summary["over_3pct"] = [r["case"] for r in rows if r["median_ms"] > 1.03]
    return {"summary": summary, "rows": rows}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| case | searches | ms vs LFBO, each | median | s vs LFBO, each | median |",
        "|---|---:|---|---:|---|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['case']} | {len(r['ms'])} | {', '.join(f'{v:.3f}' for v in r['ms'])} "
            f"| {r['median_ms']:.3f} | {', '.join(f'{v:.3f}' for v in r['s'])} "
            f"| {r['median_s']:.3f} |"
        )
    s = result["summary"]
    if s["cases"]:
        lines.append(
            f"| geomean of medians ({s['cases']} cases, {s['searches']} searches) | | "
            f"| {s['geomean_median_ms']:.3f} | | {s['geomean_median_s']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--strategy", default="seeded")
    parser.add_argument("--commit", help="count only searches made at this commit (a prefix)")
    parser.add_argument("--json", type=Path, help="also write the medians here")
    args = parser.parse_args(argv)
    docs = load(parser, args.results)
    result = medians(searches(docs, args.strategy, args.commit))
    if not result["rows"]:
        at = f" at {args.commit}" if args.commit else ""
        parser.error(f"no case has {args.strategy} and lfbo{at}")
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
