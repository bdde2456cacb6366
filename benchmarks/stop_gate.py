"""Replays ``seeded``'s early-stop gate (rule 2) over recorded searches: for every ``seeded*``
result in a results directory, the probe's lead over its start on the common timer (from the
search's notes) and on Helion's timer (from its stage logs), whether it stopped, whether a
second witness on Helion's timer at ``--helion`` would have kept it going, how the case ended
against the default on the benchmark's re-timing, and how the default's early-stop re-timing
compares with its time on Helion's timer. Usage::

    python benchmarks/stop_gate.py RESULTS_DIR [--logs-dir logs-cold] [--helion 0.10]

Only searches whose probe log is in ``RESULTS_DIR/LOGS_DIR`` are listed (their stage logs are
``<case>__<strategy>-{seeds,probe,combine}.csv``, the strategy's ``-`` written ``_``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

PROBE = re.compile(r"^probe: .*?best ([+-][0-9.]+)% vs")  # cold: the start is the default
START = re.compile(r"^start: .*the probe's best is ([+-][0-9.]+)% vs it")  # warm: a seed


def helion_times(stem: Path) -> tuple[str | None, dict[str, float]]:
    """The probe's first config (the start) and each config's fastest time on Helion's timer,
    over the seeds, probe and combine batches."""
    start: str | None = None
    fastest: dict[str, float] = {}
    for stage in ("seeds", "probe", "combine"):
        path = stem.with_name(f"{stem.name}-{stage}.csv")
        if not path.exists():
            continue
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        if stage == "probe" and rows:
            start = rows[0]["config_id"]
        for row in rows:
            if row["status"] == "ok" and row["perf_ms"]:
                ms = float(row["perf_ms"])
                fastest[row["config_id"]] = min(ms, fastest.get(row["config_id"], ms))
    return start, fastest


def common_lead(notes: list[str]) -> float | None:
    """The probe's lead over the start on the common timer, in %, as the notes state it."""
    found = None
    for pattern in (PROBE, START):  # a warm search's "start:" note, where there is one, decides
        for note in notes:
            if match := pattern.match(note):
                found = float(match.group(1))
    return found


def default_ratio(record: dict[str, Any], fastest: dict[str, float]) -> float | None:
    """The default config's early-stop re-timing (median of its rounds, in the search's own
    process) over its time on Helion's timer: 1.0 where the two timers agree."""
    for retiming in record.get("retimings", []):
        if retiming.get("stage") != "early-stop":
            continue
        for label, samples in zip(retiming["labels"], retiming["samples_ms"], strict=True):
            role, _, config_id = label.partition(":")
            if role == "default" and config_id in fastest and samples:
                return statistics.median(samples) / fastest[config_id]
    return None


def rows(results: Path, logs: Path, helion_gate: float) -> list[dict[str, Any]]:
    out = []
    for path in sorted(results.glob("*__seeded*.json")):
        case, strategy = path.stem.split("__")
        record = json.loads(path.read_text())
        start, fastest = helion_times(logs / f"{case}__{strategy.replace('-', '_')}")
        if start is None or start not in fastest:
            continue
        on_helion = (fastest[start] / min(fastest.values()) - 1) * 100
        notes = record.get("notes", [])
        stopped = any("stopped after the probe" in n for n in notes)
        went_on_helion = any(n.startswith("going on: ") for n in notes)
        common = common_lead(notes)
        retime = results / f"{case}__retime.json"
        by = json.loads(retime.read_text()).get("by_strategy", {}) if retime.exists() else {}
        final = (
            (by["default"] / by[strategy] - 1) * 100 if strategy in by and "default" in by else None
        )
        lfbo = (by["default"] / by["lfbo"] - 1) * 100 if "lfbo" in by and "default" in by else None
        out.append(
            {
                "default_ratio": default_ratio(record, fastest),
                "case": case,
                "strategy": strategy,
                "common": common,
                "helion": on_helion,
                "stopped": stopped,
                "gate_goes_on": stopped and on_helion >= helion_gate * 100,
                "went_on_helion": went_on_helion,
                "final": final,
                "lfbo": lfbo,
            }
        )
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--logs-dir", default="logs-cold")
    parser.add_argument("--helion", type=float, default=0.10, help="Helion-timer lead to go on")
    args = parser.parse_args(argv)
    table = rows(args.results, args.results / args.logs_dir, args.helion)
    if not table:
        print(f"no seeded search with stage logs in {args.results}", file=sys.stderr)
        return 1
    print(
        "| case | strategy | lead, common timer | lead, Helion's timer | stopped | "
        f"goes on at {args.helion * 100:.0f}% | final vs default | LFBO vs default | "
        "default re-timed / Helion's |"
    )
    print("|---|---|---:|---:|---|---|---:|---:|---:|")
    for r in table:
        stopped = (
            "yes" if r["stopped"] else ("no (Helion's timer)" if r["went_on_helion"] else "no")
        )
        print(
            f"| {r['case']} | {r['strategy']} | {_pct(r['common'])} | {_pct(r['helion'])} | "
            f"{stopped} | {'**yes**' if r['gate_goes_on'] else ''} | {_pct(r['final'])} | "
            f"{_pct(r['lfbo'])} | {_ratio(r['default_ratio'])} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
