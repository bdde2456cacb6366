"""Replays the stop of ``seeded``'s climb (rule 3) over recorded searches, under two rules:

- ``here`` (the rule in ``SeededSearch`` until session 13): the climb goes on while a step's
  fastest beats the current config, timed again in the same batch, by ``MIN_IMPROVEMENT``;
- ``best``: while a step's fastest beats the fastest time of every earlier stage of the search
  (the seeds, the probe, the combine batch, earlier steps) by ``MIN_IMPROVEMENT``.

A step's fastest is the least of 15-40 single timings, the current's time in it one timing: the
``here`` rule compares a minimum with a single draw, which a step of neighbours no faster than
the current passes by noise alone. The ``best`` rule compares a minimum with a minimum.

For every search with climb logs (``<case>__<strategy>-climb<k>.csv``, the strategy's ``-``
written ``_``) and a result file (``<case>__<strategy>.json``, in ``--results`` or beside the
logs), prints the steps it ran, where each rule stops (``here`` must reproduce the steps run;
a search where it does not is flagged), the seconds the steps after the ``best`` stop took (a
stage's last CSV timestamp: its compiles and benchmarks), and whether the search's returned
config was first benchmarked in one of those steps (then the ``best`` rule would have returned
another), and how much slower the fastest config benchmarked up to the ``best`` stop is than the
fastest of the whole search. Timings are Helion's, as in the search. Usage::

    python benchmarks/climb_stop.py LOGS_DIR [LOGS_DIR ...] [--results DIR] \
        [--strategies seeded,seeded-warm] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

from pytest_helion_tune.monitor import config_from_repr

MIN_IMPROVEMENT = 0.005  # seeded.MIN_IMPROVEMENT
CLIMB_STEPS_MAX = 4  # seeded.CLIMB_STEPS_MAX
CLIMB = re.compile(r"^(?P<stem>.+)-climb(?P<step>\d+)\.csv$")


def _config_key(config: dict[str, Any]) -> str:
    """A canonical text of a config: a result's dict, or a log's repr read by
    ``monitor.config_from_repr``."""
    return json.dumps(config, sort_keys=True)


def _stage(path: Path) -> tuple[dict[str, float], float]:
    """A stage's configs with their fastest finished time, and its duration (last timestamp)."""
    times: dict[str, float] = {}
    last = 0.0
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("timestamp_s"):
                last = max(last, float(row["timestamp_s"]))
            if row.get("status") != "ok" or row.get("perf_ms") in ("", "inf", None):
                continue
            key = _config_key(config_from_repr(row["config"]))
            ms = float(row["perf_ms"])
            times[key] = min(ms, times.get(key, ms))
    return times, last


def replay(stem: Path, result: dict[str, Any]) -> dict[str, Any]:
    """One search: its stages before the climb, its climb steps, and both rules' stops."""
    earlier: dict[str, float] = {}
    for name in ("seeds", "probe", "combine"):
        path = stem.with_name(f"{stem.name}-{name}.csv")
        if path.exists():
            for key, ms in _stage(path)[0].items():
                earlier[key] = min(ms, earlier.get(key, ms))
    steps = sorted(
        (int(m.group("step")), p)
        for p in stem.parent.glob(f"{stem.name}-climb*.csv")
        if (m := CLIMB.match(p.name))
    )
    seen = dict(earlier)
    first_step: dict[str, int] = {}  # each config's first climb step, where not benchmarked before
    rows: list[dict[str, Any]] = []
    here_stop = best_stop = None
    for step, path in steps:
        times, seconds = _stage(path)
        if not times:
            rows.append({"step": step, "seconds": seconds, "empty": True})
            here_stop = here_stop or step
            best_stop = best_stop or step
            continue
        fastest = min(times.values())
        current = [k for k in times if k in seen]  # the config the step climbed from
        here = times[current[0]] if current else None
        best_before = min(seen.values()) if seen else None
        goes_on_here = here is not None and fastest <= here * (1 - MIN_IMPROVEMENT)
        goes_on_best = best_before is not None and fastest <= best_before * (1 - MIN_IMPROVEMENT)
        rows.append(
            {
                "step": step,
                "seconds": seconds,
                "fastest_ms": fastest,
                "current_ms": here,
                "best_before_ms": best_before,
                "on_here": goes_on_here,
                "on_best": goes_on_best,
            }
        )
        if here_stop is None and not goes_on_here:
            here_stop = step
        if best_stop is None and not goes_on_best:
            best_stop = step
        for key, ms in times.items():
            if key not in seen:
                first_step[key] = step
            seen[key] = min(ms, seen.get(key, ms))
    ran = len(steps)
    best_stop = best_stop or ran
    skipped = [r for r in rows if r["step"] > best_stop]
    chosen = _config_key(result.get("config", {}))
    found_after = first_step.get(chosen, 0) > best_stop
    return {
        "search": stem.name,
        "steps_run": ran,
        "here_stop": here_stop,
        "here_reproduces": here_stop == ran or (here_stop is None and ran == CLIMB_STEPS_MAX),
        "best_stop": best_stop,
        "seconds_saved": round(sum(r["seconds"] for r in skipped), 1),
        "wall_s": result.get("wall_s"),
        "result_found_after_best_stop": found_after,
        "fastest_before_stop_ms": min(
            [v for k, v in seen.items() if k in earlier]
            + [r["fastest_ms"] for r in rows if r["step"] <= best_stop and "fastest_ms" in r]
        ),
        "fastest_ms": min(seen.values()),
        "steps": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path)
    parser.add_argument("--results", type=Path, help="where <case>__<strategy>.json lie")
    parser.add_argument(
        "--strategies", default="", help="comma-separated; only these strategies' searches"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    wanted = {s.strip() for s in args.strategies.split(",") if s.strip()}
    out: list[dict[str, Any]] = []
    for logs in args.logs:
        for climb1 in sorted(logs.glob("*-climb1.csv")):
            stem = climb1.with_name(climb1.name[: -len("-climb1.csv")])
            case, _, strategy = stem.name.partition("__")
            strategy = strategy.replace("_", "-")
            if wanted and strategy not in wanted:
                continue
            name = f"{case}__{strategy}.json"
            found = [d / name for d in (logs, args.results) if d and (d / name).exists()]
            if not found:
                continue
            result = json.loads(found[0].read_text())
            row = replay(stem, result)
            row["logs"] = str(logs)
            out.append(row)
    print(
        "| logs | search | steps | `here` stop | `best` stop | s saved | of s "
        "| result after stop | fastest up to stop vs all |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    for r in out:
        flag = "" if r["here_reproduces"] else " (replay differs)"
        print(
            f"| {Path(r['logs']).name} | {r['search']} | {r['steps_run']} | {r['here_stop']}{flag} "
            f"| {r['best_stop']} | {r['seconds_saved']} | {r['wall_s'] and round(r['wall_s'], 1)} "
            f"| {'yes' if r['result_found_after_best_stop'] else 'no'} "
            f"| {(r['fastest_before_stop_ms'] / r['fastest_ms'] - 1) * 100:+.1f}% |"
        )
    saved = sum(r["seconds_saved"] for r in out)
    wall = sum(r["wall_s"] or 0 for r in out)
    lost = [r for r in out if r["result_found_after_best_stop"]]
    slower = [r for r in out if r["fastest_before_stop_ms"] > r["fastest_ms"] * 1.02]
    print(
        f"\n{len(out)} searches; the `best` rule skips {saved:.0f} s of {wall:.0f} s; "
        f"{len(lost)} returned a config first benchmarked in a skipped step; in {len(slower)} "
        "the fastest up to its stop is over 2% slower than the search's fastest"
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
