"""The probe's lead in ``seeded``'s early-stop re-timing (rule 2) under other statistics of the
same rounds: for every ``seeded*`` result below a results directory (subdirectories of earlier
rounds included), the start's lead over the fastest contender by the median of each contender's
rounds (rule 2's statistic), by their minimum, and by the median over rounds of the per-round
ratio (each round times every contender interleaved), next to whether the search stopped and
how it ended against the default. Which statistic would have stopped which search, on the
samples the searches recorded. Usage::

    python benchmarks/stop_statistics.py RESULTS_DIR [--threshold 0.015]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

FINAL = re.compile(r"^refined: .*best ([+-][0-9.]+)% vs")
STATISTICS = ("median", "minimum", "paired")


def leads(labels: list[str], samples: list[list[float]]) -> dict[str, float]:
    """The start's lead (``start:`` label, else ``default:``) over the fastest contender, per
    statistic, as a fraction (0.02: the fastest is 2% faster than the start)."""
    roles = [label.partition(":")[0] for label in labels]
    start = roles.index("start") if "start" in roles else roles.index("default")
    out = {}
    for name, summary in (("median", statistics.median), ("minimum", min)):
        values = [summary(s) for s in samples]
        out[name] = values[start] / min(values) - 1
    rounds = min(len(s) for s in samples)
    out["paired"] = (
        max(statistics.median(samples[start][k] / s[k] for k in range(rounds)) for s in samples) - 1
    )
    return out


def rows(results: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(results.rglob("*__seeded*.json")):
        record = json.loads(path.read_text())
        early = [r for r in record.get("retimings", []) if r.get("stage") == "early-stop"]
        if not early or len(early[0]["labels"]) < 2:
            continue
        notes = record.get("notes", [])
        final = next((float(m.group(1)) for n in notes if (m := FINAL.match(n))), None)
        out.append(
            {
                "file": str(path.relative_to(results)),
                "case": record.get("case", path.stem.split("__")[0]),
                "strategy": record.get("strategy", path.stem.split("__")[1]),
                "leads": leads(early[0]["labels"], early[0]["samples_ms"]),
                "stopped": any("stopped after the probe" in n for n in notes),
                "final": final,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--threshold", type=float, default=0.015, help="rule 2's lead to go on")
    args = parser.parse_args(argv)
    table = rows(args.results)
    if not table:
        print(f"no seeded result with an early-stop re-timing in {args.results}", file=sys.stderr)
        return 1

    def goes_on(r: dict[str, Any], statistic: str) -> bool:
        return bool(r["leads"][statistic] >= args.threshold)

    def cell(r: dict[str, Any], statistic: str) -> str:
        text = f"{r['leads'][statistic] * 100:+.1f}%"
        return f"**{text}**" if goes_on(r, statistic) != goes_on(r, "median") else text

    head = " | ".join(f"lead, {name}" for name in STATISTICS)
    print(f"| case | strategy | file | {head} | stopped | final vs default |")
    print("|---|---|---|" + "---:|" * len(STATISTICS) + "---|---:|")
    for r in table:
        cells = " | ".join(cell(r, s) for s in STATISTICS)
        final = "-" if r["final"] is None else f"{r['final']:+.1f}%"
        stopped = "yes" if r["stopped"] else "no"
        print(f"| {r['case']} | {r['strategy']} | {r['file']} | {cells} | {stopped} | {final} |")
    print()
    for s in STATISTICS[1:]:
        flips = [r for r in table if goes_on(r, s) != goes_on(r, "median")]
        print(
            f"- {s}: {len(flips)} of {len(table)} searches on the other side of "
            f"{args.threshold * 100:.1f}% from the median's lead"
            + (": " + ", ".join(f"{r['case']} ({r['strategy']})" for r in flips) if flips else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
