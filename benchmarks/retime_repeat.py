"""How well the common timer repeats: inside one search, each config that two of the search's
own re-timings (``early-stop``, then ``final``) both timed, its ratio to the default config in
the later one against that in the earlier one; and the same between consecutive benchmark
re-timings of a case (``CASE__retime.json``: its ``history`` and newest entry; these may come
from other runs and other machines of the same GPU model).

A search's two re-timings run in its process, seconds apart, every contender interleaved with
the default, so a ratio that moves between them is what the decision at the end of a search
cannot see: a lead within that movement may be noise. Also the same config's median alone
(``ms``), which moves with the GPU's state and is what interleaving cancels.

And for each search that picked a config other than the default: the pick's lead over the
default in its ``final`` re-timing against the lead in the benchmark's next re-timing of both
(``CASE__retime.json`` beside the search, its first entry at or after the search's end), the
timer the issue's targets are judged on: how many small leads were still leads there. Usage::

    python benchmarks/retime_repeat.py RESULTS_DIR [...] [--json OUT]

Each RESULTS_DIR holds ``CASE__STRATEGY.json`` search results of ``benchmarks/run.py`` (every
strategy whose name starts with ``seeded``) and ``CASE__retime.json`` files, read recursively;
a search found in several dirs (by case and start time), or a pair of benchmark re-timings, counts
once.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the package may not be installed
    sys.path.insert(0, str(ROOT))

from benchmarks import log_tools  # noqa: E402
from pytest_helion_tune.configs import config_id  # noqa: E402

THRESHOLDS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05)
# (name, row kind, field): what the table's rows measure
MEASURES = (
    ("ratio_to_the_default", "pair", "vs_default_ratio"),
    ("ms_alone", "pair", "ms_ratio"),
    ("benchmark_ratio_to_the_default", "bench-pair", "vs_default_ratio"),
)
SMALL_LEAD = 0.03  # a pick's lead over the default this small is listed with its benchmark lead


def _medians(retiming: dict[str, Any]) -> dict[str, tuple[str, float]]:
    """config id -> (its label, the median of its samples) in one re-timing."""
    out = {}
    for label, samples in zip(retiming["labels"], retiming["samples_ms"], strict=True):
        role, _, config = label.partition(":")
        if samples:
            out[config] = (role, statistics.median(samples))
    return out


def search_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per config timed in two consecutive re-timings of the search, the default's too."""
    out: list[dict[str, Any]] = []
    timings = [_medians(r) for r in result.get("retimings", [])]
    stages = [str(r.get("stage")) for r in result.get("retimings", [])]
    for i in range(1, len(timings)):
        before, after = timings[i - 1], timings[i]
        default = next((c for c, (role, _) in after.items() if role == "default"), None)
        for config, (role, ms) in after.items():
            if config not in before:
                continue
            row: dict[str, Any] = {
                "kind": "pair",
                "case": result.get("case"),
                "strategy": result.get("strategy"),
                "started_at": result.get("started_at"),
                "commit": (result.get("environment") or {}).get("git_commit"),
                "stages": f"{stages[i - 1]} -> {stages[i]}",
                "config": config,
                "role": role,
                "ms_ratio": ms / before[config][1],
                "vs_default_ratio": None,
            }
            if default is not None and default in before and config != default:
                then = before[config][1] / before[default][1]
                row["vs_default_ratio"] = (ms / after[default][1]) / then
            out.append(row)
    return out


def _bench_entries(retime: dict[str, Any]) -> list[dict[str, Any]]:
    """A case's benchmark re-timings, oldest first: its ``history`` and the newest (the file's
    own ``contenders``), each as ``finished_at``, ``git_commit`` and ``ms_by_config``."""
    entries = [e for e in retime.get("history", []) if isinstance(e, dict)]
    entries.append(
        {
            "finished_at": retime.get("finished_at", ""),
            "git_commit": (retime.get("environment") or {}).get("git_commit"),
            "ms_by_config": {
                c.get("config_id"): c.get("median_ms") for c in retime.get("contenders", [])
            },
        }
    )
    return sorted(entries, key=lambda e: str(e.get("finished_at", "")))


def _bench_lead(retime: dict[str, Any], after: str, pick: str, default: str) -> float | None:
    """The default's ms over the pick's in the first benchmark re-timing finished at or after
    ``after`` that timed both; None where there is none."""
    for entry in _bench_entries(retime):
        ms = entry.get("ms_by_config") or {}
        if str(entry.get("finished_at", "")) >= after and ms.get(pick) and ms.get(default):
            return float(ms[default]) / float(ms[pick]) - 1
    return None


def bench_rows(retime: dict[str, Any]) -> list[dict[str, Any]]:
    """For each two consecutive benchmark re-timings of a case, each config both timed beside
    the default: its ratio to the default in the later over that in the earlier."""
    default = next(
        (
            c.get("config_id")
            for c in retime.get("contenders", [])
            if "default" in c.get("labels", [])
        ),
        None,
    )
    out: list[dict[str, Any]] = []
    entries = _bench_entries(retime)
    for before, after in itertools.pairwise(entries):
        then, now = before.get("ms_by_config") or {}, after.get("ms_by_config") or {}
        if not (then.get(default) and now.get(default)):
            continue
        for config in sorted(set(then) & set(now)):
            if config == default or not (then[config] and now[config]):
                continue
            out.append(
                {
                    "kind": "bench-pair",
                    "case": retime.get("case"),
                    "started_at": before.get("finished_at"),
                    "finished_at": after.get("finished_at"),
                    "commit": after.get("git_commit"),
                    "config": config,
                    "vs_default_ratio": (now[config] / now[default])
                    / (then[config] / then[default]),
                }
            )
    return out


def pick_row(result: dict[str, Any], retime: dict[str, Any]) -> dict[str, Any] | None:
    """The search's pick against the default, in its ``final`` re-timing and the benchmark's
    next one (in ``retime``, the case's ``__retime.json``); None where it picked the default or
    has no ``final`` re-timing."""
    finals = [r for r in result.get("retimings", []) if r.get("stage") == "final"]
    if not finals or not isinstance(result.get("config"), dict):
        return None
    final = _medians(finals[-1])
    pick = config_id(result["config"])
    default = next((c for c, (role, _) in final.items() if role == "default"), None)
    if default is None or pick == default or pick not in final:
        return None
    return {
        "kind": "pick",
        "case": result.get("case"),
        "strategy": result.get("strategy"),
        "started_at": result.get("started_at"),
        "commit": (result.get("environment") or {}).get("git_commit"),
        "config": pick,
        "final_lead": final[default][1] / final[pick][1] - 1,
        "bench_lead": _bench_lead(retime, str(result.get("finished_at", "")), pick, default),
    }


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None for an unreadable file or anything else."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def rows(dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """The rows of every ``seeded*`` search under these dirs, each search once: its configs
    timed in two re-timings (``kind`` ``"pair"``), then its pick (``"pick"``); and of every
    case's benchmark re-timings, each pair of consecutive ones once (``"bench-pair"``)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    bench_seen: set[tuple[str, str, str, str]] = set()
    for folder in dirs:
        retimes: dict[Path, dict[str, Any]] = {}
        for path in sorted(folder.rglob("*__retime.json")):
            retime = _json_object(path)
            if retime is None:
                continue
            retimes[path] = retime
            for row in bench_rows(retime):
                key = (row["case"], row["started_at"], row["finished_at"], row["config"])
                if key not in bench_seen:  # a copied dir holds the committed dir's history too
                    bench_seen.add(key)
                    out.append(row)
        for path in sorted(folder.rglob("*__seeded*.json")):
            result = _json_object(path)
            if result is None or "retimings" not in result:
                continue
            key = (str(result.get("case")), str(result.get("started_at")))
            if key not in seen:
                seen.add(key)
                out += search_rows(result)
                retime = retimes.get(path.with_name(f"{result.get('case')}__retime.json"), {})
                picked = pick_row(result, retime)
                if picked:
                    out.append(picked)
    return out


def summary(found: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """For each of ``MEASURES``: pairs, the median change (signed: above 0 where the later
    re-timing found the config slower), the median |change|, and the share of pairs whose
    |change| is over each of ``THRESHOLDS``."""
    pairs = [r for r in found if r.get("kind") == "pair"]
    out: dict[str, Any] = {"searches": len({(r["case"], r["started_at"]) for r in pairs})}
    for name, kind, field in MEASURES:
        signed = [r[field] - 1 for r in found if r.get("kind") == kind and r.get(field) is not None]
        moved = [abs(m) for m in signed]
        out[name] = {
            "pairs": len(moved),
            "median_signed": statistics.median(signed) if signed else None,
            "median_change": statistics.median(moved) if moved else None,
            "over": {f"{t:g}": sum(m > t for m in moved) / len(moved) for t in THRESHOLDS}
            if moved
            else {},
        }
    return out


def table(found: Sequence[dict[str, Any]]) -> str:
    info = summary(found)
    lines = [
        f"{info['searches']} searches",
        "",
        "| measure | pairs | median change | median abs change | "
        + " | ".join(f"> {t * 100:g}%" for t in THRESHOLDS)
        + " |",
        "|---|---|---|---|" + "---|" * len(THRESHOLDS),
    ]
    for key, _kind, _field in MEASURES:
        part, name = info[key], key.replace("_", " ")
        if not part["pairs"]:
            continue
        shares = " | ".join(f"{part['over'][f'{t:g}'] * 100:.0f}%" for t in THRESHOLDS)
        lines.append(
            f"| {name} | {part['pairs']} | {part['median_signed'] * 100:+.2f}% | "
            f"{part['median_change'] * 100:.2f}% | {shares} |"
        )
    picks = [r for r in found if r.get("kind") == "pick" and r["bench_lead"] is not None]
    small = [r for r in picks if r["final_lead"] < SMALL_LEAD]
    behind = [r for r in small if r["bench_lead"] < 0]
    lines += [
        "",
        f"{len(picks)} picks other than the default with a benchmark re-timing of both after the "
        f"search; {sum(r['bench_lead'] < 0 for r in picks)} of them behind the default there. "
        f"{len(small)} led by under {SMALL_LEAD * 100:g}% in their own final re-timing, "
        f"{len(behind)} of those behind the default on the benchmark's:",
        "",
        "| case | commit | lead, own final | lead, benchmark |",
        "|---|---|---|---|",
    ]
    for r in sorted(small, key=lambda r: r["bench_lead"]):
        lines.append(
            f"| {r['case']} | {r['commit']} | {r['final_lead'] * 100:+.1f}% | "
            f"{r['bench_lead'] * 100:+.1f}% |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    description = __doc__.split("\n\n")[0] if __doc__ else ""
    return log_tools.run(description, argv, rows, table, "search re-timed twice")


if __name__ == "__main__":
    raise SystemExit(main())
