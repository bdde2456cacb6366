"""Compares two ``results.json`` files of ``report.py`` (two code versions, one device) for one
strategy: per case its latency and wall time against LFBO ``quick`` in each, and the geomeans over
the cases both have. Each file's ratios come from its own re-timing, so a ratio is measured side
by side within its run. Usage::

    python benchmarks/compare_results.py OLD.json NEW.json [--strategy seeded] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def read_results(path: Path) -> dict[str, Any]:
    """A ``results.json`` of ``report.py``, plain or gzipped (by its ``.gz`` suffix)."""
    raw = path.read_bytes()
    doc = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc


def load(parser: argparse.ArgumentParser, paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Each of ``paths`` read by ``read_results``; a clear argparse error naming a bad one."""
    docs = []
    for path in paths:
        try:
            docs.append(read_results(path))
        except (OSError, ValueError) as exc:
            parser.error(f"{path}: not a results.json of report.py ({exc})")
    return docs


def ratios(doc: dict[str, Any], strategy: str) -> dict[str, tuple[float, float]]:
    """case -> (strategy ms / LFBO ms, strategy s / LFBO s) where both ran."""
    out: dict[str, tuple[float, float]] = {}
    for case in doc.get("cases", []):
        runs = (case.get("summary") or {}).get("strategies", {})
        mine, lfbo = runs.get(strategy), runs.get("lfbo")
        if not mine or not lfbo or not lfbo.get("ms") or not lfbo.get("wall_s"):
            continue
        if mine.get("ms") and mine.get("wall_s"):
            out[case["name"]] = (mine["ms"] / lfbo["ms"], mine["wall_s"] / lfbo["wall_s"])
    return out


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def compare(old: dict[str, Any], new: dict[str, Any], strategy: str) -> dict[str, Any]:
    a, b = ratios(old, strategy), ratios(new, strategy)
    both = sorted(set(a) & set(b))
    rows: list[dict[str, Any]] = [
        {"case": c, "old_ms": a[c][0], "new_ms": b[c][0], "old_s": a[c][1], "new_s": b[c][1]}
        for c in both
    ]
    summary: dict[str, Any] = {
        "strategy": strategy,
        "cases": len(both),
        "only_old": sorted(set(a) - set(b)),
        "only_new": sorted(set(b) - set(a)),
    }
    if both:
        for key in ("old_ms", "new_ms", "old_s", "new_s"):
            summary[key] = geomean([r[key] for r in rows])
    return {"summary": summary, "rows": rows}


def table(result: dict[str, Any], old_name: str, new_name: str) -> str:
    s = result["summary"]
    lines = [
        f"| case | {old_name} ms vs LFBO | {new_name} ms vs LFBO | {old_name} s vs LFBO "
        f"| {new_name} s vs LFBO |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['case']} | {r['old_ms']:.3f} | {r['new_ms']:.3f} | {r['old_s']:.3f} "
            f"| {r['new_s']:.3f} |"
        )
    if s["cases"]:
        lines.append(
            f"| geomean ({s['cases']} cases) | {s['old_ms']:.3f} | {s['new_ms']:.3f} "
            f"| {s['old_s']:.3f} | {s['new_s']:.3f} |"
        )
    for side in ("only_old", "only_new"):
        if s[side]:
            lines.append(f"\n{side.replace('_', ' in ')}: {', '.join(s[side])}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--strategy", default="seeded")
    parser.add_argument("--json", type=Path, help="also write the comparison here")
    args = parser.parse_args(argv)
    docs = load(parser, (args.old, args.new))
    result = compare(docs[0], docs[1], args.strategy)
    if not result["rows"]:
        parser.error(f"no case has {args.strategy} and lfbo in both files")
    print(table(result, args.old.stem, args.new.stem))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
