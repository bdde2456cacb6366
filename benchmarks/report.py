"""The benchmark report: reads a results dir written by run.py and writes results.json, results.md
(the table, geomeans, targets met or missed) and best-so-far-vs-time SVG plots.

Pure Python over committed JSON: it runs on any machine, no GPU, no torch, no matplotlib.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# After the path: a checkout without the package installed finds it there.
from pytest_helion_tune.configs import config_id  # noqa: E402

WEAK_GAIN = 0.08  # "LFBO beats the default by 8% or more": a default-weak case
NOISE_FLOOR = 0.015  # re-timing noise floor; a case's own spread (default_noise) counts when larger
QUICK_DONE_S = 30.0  # where nothing beats the default, seeded must be done within this
COLD_TIME_RATIO = 1 / 3
WARM_TIME_RATIO = 1 / 10
GAIN_SHARE = 0.95  # share of LFBO's gain seeded must reach where LFBO gains >= WEAK_GAIN
LFBO_SLACK = 0.03  # no case more than this slower than LFBO quick
WARM_TARGET = "warm seeded <= 1.00x LFBO quick latency at <= 1/10 of its time (geomeans)"
FULL_TARGET = "cold seeded geomean latency <= 1.00x LFBO at its default effort, where measured"
COLORS = {
    "seeded": "#1f77b4",
    "seeded-warm": "#17becf",
    "seeded-climb": "#ff7f0e",
    "seeded-lfbo": "#bcbd22",
    "seeded-pairs": "#aec7e8",
    "seeded-paths3": "#9edae5",
    "seeded-recheck": "#c5b0d5",
    "seeded-extend": "#98df8a",
    "seeded-polish": "#ffbb78",
    "seeded-nopolish": "#f7b6d2",
    "lfbo": "#d62728",
    "lfbo-full": "#9467bd",
    "pattern": "#2ca02c",
    "random": "#8c564b",
    "de": "#e377c2",
    "default": "#7f7f7f",
}


def geomean(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v and v > 0 and math.isfinite(v)]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def load(results: Path) -> dict[str, dict[str, Any]]:
    """Per case: its strategy records and its re-timing, from ``<case>__<strategy>.json`` files."""
    cases: dict[str, dict[str, Any]] = {}
    for path in sorted(results.glob("*__*.json")):
        case, _, strategy = path.stem.partition("__")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        entry = cases.setdefault(case, {"strategies": {}, "retime": None})
        if strategy == "retime":
            entry["retime"] = data
        elif data.get("status") == "ok":
            entry["strategies"][strategy] = data
    return cases


def runlog(results: Path) -> list[dict[str, Any]]:
    path = results / "runlog.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def case_meta(name: str) -> dict[str, Any]:
    try:
        from benchmarks import run  # noqa: F401  (claims the ``benchmarks`` name for this folder)
        from benchmarks.cases import BY_NAME
    except Exception:  # the report must run even where torch is absent
        return {}
    case = BY_NAME.get(name)
    if case is None:
        return {}
    return {"why": case.why, "control": case.control, "suite_shape": list(case.shape)}


def default_noise(contender: dict[str, Any]) -> float:
    """The re-timing noise of a case: the interquartile range of its default config's round
    medians over their median, at least ``NOISE_FLOOR``. One round off by a clock dip (matmul
    16x4096x4096 on the H100: four rounds within 2.9%, one 36% slower) says nothing about the
    others; the full spread of the rounds would call that case 36% noisy, this 2.8%. A
    re-timing without round medians falls back to its round spread."""
    rounds = sorted(contender.get("round_medians_ms") or [])
    if len(rounds) < 4:
        return max(NOISE_FLOOR, float(contender.get("round_spread", 0.0)))
    q1, _, q3 = statistics.quantiles(rounds, n=4, method="inclusive")
    return max(NOISE_FLOOR, (q3 - q1) / statistics.median(rounds))


def summarize(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one case the table and the targets use (None where not measured)."""
    retime = entry["retime"] or {}
    strategies = entry["strategies"]
    default_ms = retime.get("default_ms")
    contenders = retime.get("contenders", [])
    noise = max(
        (default_noise(c) for c in contenders if "default" in c.get("labels", [])),
        default=NOISE_FLOOR,
    )
    timed = [c["median_ms"] for c in contenders if c.get("accurate", True)]
    best_ms = min(timed) if timed else None
    roof = (retime.get("roofline") or {}).get("roofline_ms")

    # Every re-timing of the case, newest first, as config id -> ms. A strategy's figures come
    # from the newest one that timed its current config (a result newer than the latest
    # re-timing is not in it, and may be in none: then no latency, rather than a stale one's);
    # a ratio of two strategies from the newest that timed both side by side.
    latest = {
        c["config_id"]: c["median_ms"]
        for c in contenders
        if "config_id" in c and "median_ms" in c and c.get("accurate", True)
    }
    snapshots = [latest, *(h.get("ms_by_config", {}) for h in reversed(retime.get("history", [])))]
    ids: dict[str, str] = {
        s: config_id(r["config"]) for s, r in strategies.items() if r.get("config") is not None
    }
    timed_default = next((c.get("config_id") for c in contenders if "default" in c["labels"]), None)
    if "default" not in ids and timed_default is not None:
        ids["default"] = str(timed_default)

    def together(*names: str) -> list[list[float]]:
        """The ms of ``names``' current configs in each re-timing that timed them all, newest
        first."""
        if any(n not in ids for n in names):
            return []
        wanted = [ids[n] for n in names]
        return [
            [float(snap[w]) for w in wanted] for snap in snapshots if all(w in snap for w in wanted)
        ]

    def ms(strategy: str) -> float | None:
        found = together(strategy)
        return found[0][0] if found else None

    def gain(strategy: str) -> float | None:
        found = together(strategy, "default")
        return found[0][1] / found[0][0] - 1 if found and found[0][0] else None

    def ratios(a: str, b: str) -> list[float]:
        return [x / y for x, y in together(a, b) if y]

    out: dict[str, Any] = {
        "case": name,
        "dtype": _short_dtype(
            retime.get("dtype") or next(iter(strategies.values()), {}).get("dtype")
        ),
        "default_ms": default_ms,
        "eager_ms": retime.get("eager_ms"),
        "roofline_ms": roof,
        "roofline_bound": (retime.get("roofline") or {}).get("bound"),
        "best_ms": best_ms,
        "roofline_fraction": roof / best_ms if roof and best_ms else None,
        "noise": noise,
        "best_gain": default_ms / best_ms - 1 if default_ms and best_ms else None,
        "strategies": {},
    }
    for strategy, record in strategies.items():
        out["strategies"][strategy] = {
            "ms": ms(strategy),
            "gain": gain(strategy),
            "wall_s": record.get("wall_s"),
            "configs_tested": record.get("configs_tested"),
            "configs_compiled": record.get("configs_compiled"),
            "accurate": record.get("accurate"),
            "budget_capped": record.get("budget_capped", False),
            "notes": record.get("notes", []),
            "seed_sources": sorted({s["source"] for s in record.get("seeds", [])}),
        }
    seeded, lfbo = out["strategies"].get("seeded"), out["strategies"].get("lfbo")
    if seeded_lfbo := ratios("seeded", "lfbo"):
        out["seeded_vs_lfbo_ms"] = seeded_lfbo[0]
        out["seeded_vs_lfbo_ms_earlier"] = seeded_lfbo[:0:-1]  # oldest first
    if seeded and lfbo and seeded["wall_s"] and lfbo["wall_s"]:
        out["seeded_vs_lfbo_s"] = seeded["wall_s"] / lfbo["wall_s"]
    # The gain-share target compares the two gains: both from one re-timing.
    if three := together("seeded", "lfbo", "default"):
        seeded_ms, lfbo_ms, default_then = three[0]
        out["gains_side_by_side"] = (default_then / seeded_ms - 1, default_then / lfbo_ms - 1)
    full = out["strategies"].get("lfbo-full")
    vs_full = ratios("seeded", "lfbo-full")
    if vs_full and seeded and full and seeded["wall_s"] and full["wall_s"]:
        out["seeded_vs_lfbo_full_ms"] = vs_full[0]
        out["seeded_vs_lfbo_full_s"] = seeded["wall_s"] / full["wall_s"]
    warm = out["strategies"].get("seeded-warm")
    if (warm_lfbo := ratios("seeded-warm", "lfbo")) and warm and lfbo:
        out["warm_vs_lfbo_ms"] = warm_lfbo[0]
        out["warm_vs_lfbo_s"] = warm["wall_s"] / lfbo["wall_s"]
    return out


def retiming_agreement(rows: list[dict[str, Any]]) -> tuple[float | None, list[str]]:
    """The geomean over cases of each case's median seeded/LFBO ratio over all its re-timings of
    the same two configs (None when no case has an earlier one), and the cases where an earlier
    re-timing's ratio differs from the latest by more than ``LFBO_SLACK``."""
    medians, moved = [], []
    for s in rows:
        latest, earlier = s["seeded_vs_lfbo_ms"], s.get("seeded_vs_lfbo_ms_earlier", [])
        medians.append(statistics.median([*earlier, latest]))
        far = [r for r in earlier if abs(r / latest - 1) > LFBO_SLACK]
        if far:
            shown = ", ".join(f"{r:.3f}x" for r in earlier)
            moved.append(f"{s['case']}: {latest:.3f}x latest, earlier {shown}")
    if not any(s.get("seeded_vs_lfbo_ms_earlier") for s in rows):
        return None, moved
    return geomean(medians), moved


def _short_dtype(name: Any) -> str:
    return {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}.get(
        str(name), str(name or "")
    )


def _target(name: str, status: str, detail: str, misses: list[str] | None = None) -> dict[str, Any]:
    return {"target": name, "status": status, "detail": detail, "misses": misses or []}


def _cause(summary: dict[str, Any], strategy: str = "seeded") -> str:
    notes = summary["strategies"].get(strategy, {}).get("notes", [])
    return "; ".join(notes) if notes else "no notes recorded"


def _latency_target(name: str, rows: list[dict[str, Any]], key: str, detail: str) -> dict[str, Any]:
    """A geomean-of-ratios latency target over ``rows`` (each has ``key``): met at <= 1.00x;
    when missed, each case over 1.00x with its cause. ``{g}`` in ``detail`` is the geomean."""
    g = geomean([s[key] for s in rows])
    assert g is not None
    return _target(
        name,
        "met" if g <= 1.0 else "missed",
        detail.format(g=g),
        [f"{s['case']}: {s[key]:.3f}x ({_cause(s)})" for s in rows if s[key] > 1.0]
        if g > 1.0
        else [],
    )


def targets(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each met, missed (with the cases and causes) or not measured."""
    out = []
    both = [s for s in summaries if "seeded_vs_lfbo_ms" in s]
    if both:
        agreed, moved = retiming_agreement(both)
        target = _latency_target(
            "cold seeded geomean latency <= 1.00x LFBO quick",
            both,
            "seeded_vs_lfbo_ms",
            f"{{g:.3f}}x over {len(both)} cases, each on its latest re-timing"
            + (
                f"; {agreed:.3f}x on each case's median over its re-timings of the same two configs"
                if agreed is not None
                else ""
            ),
        )
        if agreed is not None and agreed > 1.0 and target["status"] == "met":
            # Met on the latest re-timings alone is not met: it must hold on the medians too.
            target["status"] = "missed"
            target["misses"].append(f"on each case's median over its re-timings: {agreed:.3f}x")
        target["misses"] += [f"re-timings disagree by over 3%: {m}" for m in moved]
        out.append(target)
    else:
        out.append(_target("cold seeded geomean latency <= 1.00x LFBO quick", "not measured", ""))
    timed = [s for s in summaries if "seeded_vs_lfbo_s" in s]
    if timed:
        g = geomean([s["seeded_vs_lfbo_s"] for s in timed])
        assert g is not None
        total = sum(s["strategies"]["seeded"]["wall_s"] for s in timed) / sum(
            s["strategies"]["lfbo"]["wall_s"] for s in timed
        )
        out.append(
            _target(
                "cold seeded wall time <= 1/3 of LFBO quick's (geomean of per-case ratios)",
                "met" if g <= COLD_TIME_RATIO else "missed",
                f"{g:.3f} geomean, {total:.3f} in total, over {len(timed)} cases",
                [
                    f"{s['case']}: {s['seeded_vs_lfbo_s']:.2f} ({_cause(s)})"
                    for s in timed
                    if s["seeded_vs_lfbo_s"] > COLD_TIME_RATIO
                ],
            )
        )
    else:
        out.append(_target("cold seeded wall time <= 1/3 of LFBO quick's", "not measured", ""))

    weak = [
        s
        for s in summaries
        if (s["strategies"].get("lfbo") or {}).get("gain") is not None
        and s["strategies"]["lfbo"]["gain"] >= WEAK_GAIN
    ]
    misses = []
    for s in weak:
        if s.get("gains_side_by_side") is None:
            misses.append(f"{s['case']}: seeded not measured")
            continue
        sg, lg = s["gains_side_by_side"]
        if sg < GAIN_SHARE * lg:
            misses.append(
                f"{s['case']}: seeded {sg * 100:+.1f}% vs LFBO {lg * 100:+.1f}% ({_cause(s)})"
            )
    out.append(
        _target(
            "where LFBO gains >= 8% over default, seeded gets >= 95% of that gain",
            ("met" if not misses else "missed") if weak else "not measured",
            f"{len(weak)} default-weak cases: {', '.join(s['case'] for s in weak) or 'none yet'}",
            misses,
        )
    )
    out.append(
        _target(
            "at least 4 cases where LFBO beats the default by >= 8% (interleaved re-timing)",
            "met"
            if len(weak) >= 4
            else (
                "missed" if any(s["strategies"].get("lfbo") for s in summaries) else "not measured"
            ),
            f"{len(weak)} found",
        )
    )

    flat = [
        s
        for s in summaries
        if s.get("best_gain") is not None
        and s["best_gain"] <= s["noise"]
        and (s["strategies"].get("seeded") or {}).get("wall_s") is not None
    ]
    slow = [s for s in flat if s["strategies"]["seeded"]["wall_s"] > QUICK_DONE_S]
    out.append(
        _target(
            "where nothing beats the default beyond noise, seeded is done within 30 s",
            ("met" if not slow else "missed") if flat else "not measured",
            f"{len(flat)} such cases: {', '.join(s['case'] for s in flat) or 'none'}",
            [
                f"{s['case']}: {s['strategies']['seeded']['wall_s']:.0f} s ({_cause(s)})"
                for s in slow
            ],
        )
    )

    warm = [s for s in summaries if "warm_vs_lfbo_ms" in s]
    if warm:
        gm = geomean([s["warm_vs_lfbo_ms"] for s in warm])
        gs = geomean([s["warm_vs_lfbo_s"] for s in warm])
        assert gm is not None and gs is not None
        ok = gm <= 1.0 and gs <= WARM_TIME_RATIO
        out.append(
            _target(
                WARM_TARGET,
                "met" if ok else "missed",
                f"latency {gm:.3f}x, time {gs:.3f} over {len(warm)} cases",
                [
                    f"{s['case']}: {s['warm_vs_lfbo_ms']:.3f}x latency, {s['warm_vs_lfbo_s']:.3f} time"
                    f" ({_cause(s, 'seeded-warm')})"
                    for s in warm
                    if s["warm_vs_lfbo_ms"] > 1.0 or s["warm_vs_lfbo_s"] > WARM_TIME_RATIO
                ],
            )
        )
    else:
        out.append(_target(WARM_TARGET, "not measured", ""))

    full = [s for s in summaries if "seeded_vs_lfbo_full_ms" in s]
    if full:
        gs = geomean([s["seeded_vs_lfbo_full_s"] for s in full])
        assert gs is not None
        out.append(
            _latency_target(
                FULL_TARGET,
                full,
                "seeded_vs_lfbo_full_ms",
                f"latency {{g:.3f}}x at {gs:.3f} of its wall time over {len(full)} case(s)",
            )
        )
    else:
        out.append(_target(FULL_TARGET, "not measured", ""))

    far = [s for s in both if s["seeded_vs_lfbo_ms"] > 1 + LFBO_SLACK]
    out.append(
        _target(
            "no case more than 3% slower than LFBO quick (seeded cold)",
            ("met" if not far else "missed") if both else "not measured",
            f"worst {max(s['seeded_vs_lfbo_ms'] for s in both):.3f}x" if both else "",
            [f"{s['case']}: {s['seeded_vs_lfbo_ms']:.3f}x ({_cause(s)})" for s in far],
        )
    )
    judged = [
        s
        for s in summaries
        if s["default_ms"] and (s["strategies"].get("seeded") or {}).get("ms") is not None
    ]
    behind = []
    for s in judged:
        for name in ("seeded", "seeded-warm"):
            value = (s["strategies"].get(name) or {}).get("ms")
            if value is not None and value > s["default_ms"] * (1 + s["noise"]):
                behind.append(
                    f"{s['case']} ({name}): {value / s['default_ms']:.3f}x the default"
                    f" (noise {s['noise'] * 100:.1f}%)"
                )
    out.append(
        _target(
            "no case slower than the default (beyond the case's re-timing noise)",
            ("met" if not behind else "missed") if judged else "not measured",
            f"{len(judged)} cases judged",
            behind,
        )
    )
    return out


def _fmt(value: float | None, spec: str = ".4f", suffix: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:{spec}}{suffix}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.1f}%"


def commits(cases: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Which commits produced each strategy's results and the re-timings ("retime")."""
    found: dict[str, set[str]] = {}
    for entry in cases.values():
        records = [*entry["strategies"].items(), ("retime", entry["retime"] or {})]
        for strategy, record in records:
            commit = (record.get("environment") or {}).get("git_commit")
            if commit:
                found.setdefault(strategy, set()).add(str(commit)[:12])
    return {k: sorted(v) for k, v in sorted(found.items())}


def markdown(
    summaries: list[dict[str, Any]],
    goals: list[dict[str, Any]],
    env: dict[str, Any],
    meta: dict[str, dict[str, Any]],
    skipped: list[str],
    by_commit: dict[str, list[str]] | None = None,
) -> str:
    if env.get("interpreter"):
        timing = (
            "CPU smoke run under the Triton interpreter: tiny shapes (not the names' shapes), "
            "wall-clock timings that rank nothing, no roofline."
        )
    else:
        timing = (
            "Latencies in ms, all contenders of a case re-timed interleaved in one process (each "
            "its own compiled callable, L2 flushed, median of >= 100 calls); roofline frac = "
            "roofline time / fastest Helion config."
        )
    lines = [
        "# Tuning benchmark results",
        "",
        f"Device: {env.get('device', '?')} {env.get('capability', '')}; helion {env.get('helion', '?')}, "
        f"triton {env.get('triton', '?')}, torch {env.get('torch', '?')}; "
        + (
            "commits: " + "; ".join(f"{k} {', '.join(v)}" for k, v in by_commit.items())
            if by_commit
            else f"commit {str(env.get('git_commit', '?'))[:12]}"
        )
        + f". {timing} LFBO = Helion's LFBOTreeSearch at "
        "effort quick (lfbo-full: at its default effort, full); s = wall seconds; cfg = configs "
        "benchmarked; gain = default / strategy - 1.",
        "",
        "| case | default | eager | LFBO ms / s / cfg | seeded ms / s / cfg | seeded/LFBO ms | seeded/LFBO s | LFBO gain | roofline frac |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        lf = s["strategies"].get("lfbo") or {}
        sd = s["strategies"].get("seeded") or {}

        def cell(d: dict[str, Any]) -> str:
            if not d:
                return "-"
            flags = " (cut)" if d.get("budget_capped") else ""
            flags += " (inaccurate)" if d.get("accurate") is False else ""
            return f"{_fmt(d.get('ms'))} / {_fmt(d.get('wall_s'), '.0f')} / {d.get('configs_tested', '-')}{flags}"

        lines.append(
            f"| {(s['case'] + ' ' + s['dtype']).strip()} | {_fmt(s['default_ms'])} | {_fmt(s['eager_ms'])} | {cell(lf)} | {cell(sd)} "
            f"| {_fmt(s.get('seeded_vs_lfbo_ms'), '.3f')} | {_fmt(s.get('seeded_vs_lfbo_s'), '.2f')} "
            f"| {_pct(lf.get('gain'))} | {_fmt(s['roofline_fraction'], '.2f')} |"
        )
    both = [s for s in summaries if "seeded_vs_lfbo_ms" in s]
    lines += [
        "",
        f"Geomeans over {len(both)} cases with both: seeded/LFBO latency "
        f"{_fmt(geomean([s['seeded_vs_lfbo_ms'] for s in both]), '.3f')}, wall time "
        f"{_fmt(geomean([s['seeded_vs_lfbo_s'] for s in both if 'seeded_vs_lfbo_s' in s]), '.3f')}; "
        f"LFBO gain over default {_pct(_gm_gain([s['strategies']['lfbo'].get('gain') for s in both]))}.",
    ]
    others = sorted({k for s in summaries for k in s["strategies"]} - {"lfbo", "seeded", "default"})
    if others:
        lines += ["", "Other strategies (ms / s / configs; gain over default):", ""]
        lines += ["| case | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
        for s in summaries:
            cells = []
            for name in others:
                d = s["strategies"].get(name)
                cells.append(
                    "-"
                    if not d
                    else f"{_fmt(d['ms'])} / {_fmt(d['wall_s'], '.0f')} / {d['configs_tested']} ({_pct(d['gain'])})"
                )
            lines.append(f"| {s['case']} | " + " | ".join(cells) + " |")
    lines += ["", "## Targets", ""]
    for g in goals:
        lines.append(f"- **{g['status']}**: {g['target']}. {g['detail']}")
        lines += [f"  - {m}" for m in g["misses"]]
    weak = [
        s for s in summaries if ((s["strategies"].get("lfbo") or {}).get("gain") or 0) >= WEAK_GAIN
    ]
    rejected = [
        s
        for s in summaries
        if s not in weak and (s["strategies"].get("lfbo") or {}).get("gain") is not None
    ]
    lines += ["", "## Default-weak cases (LFBO >= 8% over the default, re-timed)", ""]
    lines += [
        f"- {s['case']}: LFBO {_pct(s['strategies']['lfbo']['gain'])} ({meta.get(s['case'], {}).get('why', '')})"
        for s in weak
    ] or ["- none measured yet"]
    lines += ["", "## Tried and rejected (LFBO < 8% over the default)", ""]
    lines += [
        f"- {s['case']}: LFBO {_pct(s['strategies']['lfbo']['gain'])}, best of all contenders "
        f"{_pct(s['best_gain'])}, default {_fmt(s['default_ms'])} ms"
        + (" (control)" if meta.get(s["case"], {}).get("control") else "")
        for s in rejected
    ] or ["- none measured yet"]
    if skipped:
        lines += [
            "",
            "## Not run yet (skipped by a deadline, or failed; a later run resumes them)",
            "",
        ]
        lines += [f"- {line}" for line in skipped]
    lines += [
        "",
        "Plots: best-so-far vs wall time per case in `plots/` (search-time timings; "
        "the dashed line is the re-timed default, dots the re-timed finals).",
        "",
    ]
    return "\n".join(lines)


def _gm_gain(gains: Sequence[float | None]) -> float | None:
    g = geomean([1 + x for x in gains if x is not None])
    return None if g is None else g - 1


# -- plots ------------------------------------------------------------------------------


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + 1e-12:
        out.append(round(v, 12))
        v += step
    return out


def svg_plot(name: str, entry: dict[str, Any], summary: dict[str, Any]) -> str:
    """Best-so-far (search-time ms) against wall seconds, one step line per strategy."""
    w, h, left, right, top, bottom = 720, 420, 70, 130, 58, 50
    series = []
    for strategy, record in sorted(entry["strategies"].items()):
        trace = [p for p in record.get("trace", []) if p.get("best_ms") and p["best_ms"] > 0]
        end = float(record.get("wall_s") or 0.0)
        final = summary["strategies"].get(strategy, {}).get("ms")
        series.append((strategy, trace, end, final))
    xs = [p["seconds"] for _, t, _, _ in series for p in t] + [e for _, _, e, _ in series]
    ys = [p["best_ms"] for _, t, _, _ in series for p in t]
    ys += [f for _, _, _, f in series if f]
    # Eager and the roofline are drawn only when they fall in range: far off, they would
    # flatten the curves this plot exists to show.
    if summary.get("default_ms"):
        ys.append(summary["default_ms"])
    if not ys:
        ys = [1.0]
    x_hi = float(max(xs, default=1.0)) or 1.0
    y_lo, y_hi = float(min(ys)), float(max(ys))
    pad = (y_hi - y_lo) * 0.08 or y_hi * 0.05 or 1.0
    y_lo, y_hi = max(0.0, y_lo - pad), y_hi + pad
    pw, ph = w - left - right, h - top - bottom

    def sx(x: float) -> float:
        return left + pw * x / x_hi

    def sy(y: float) -> float:
        return top + ph * (1 - (y - y_lo) / (y_hi - y_lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14">{html.escape(name)}: best so far vs wall time</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>',
    ]
    for t in _ticks(0, x_hi):
        out.append(
            f'<line x1="{sx(t):.1f}" y1="{top + ph}" x2="{sx(t):.1f}" y2="{top + ph + 4}" stroke="#444"/>'
        )
        out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{t:g}</text>')
    for t in _ticks(y_lo, y_hi):
        out.append(
            f'<line x1="{left - 4}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" stroke="#eee"/>'
        )
        out.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{t:.4g}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle">wall seconds</text>')
    out.append(
        f'<text x="16" y="{top + ph / 2}" transform="rotate(-90 16 {top + ph / 2})" '
        'text-anchor="middle">ms (search timings)</text>'
    )
    for key, label, dash in (
        ("default_ms", "default (re-timed)", "6,4"),
        ("eager_ms", "eager (re-timed)", "2,3"),
        ("roofline_ms", "roofline", "1,5"),
    ):
        y = summary.get(key)
        if y and y_lo <= y <= y_hi:
            out.append(
                f'<line x1="{left}" y1="{sy(y):.1f}" x2="{left + pw}" y2="{sy(y):.1f}" '
                f'stroke="#333" stroke-dasharray="{dash}"/>'
            )
            out.append(f'<text x="{left + pw + 4}" y="{sy(y) + 4:.1f}">{label}</text>')
    legend_x = float(left)
    for strategy, trace, end, final in series:
        color = COLORS.get(strategy, "#bcbd22")
        if trace:
            pts = []
            for j, p in enumerate(trace):
                if j:
                    pts.append(f"{sx(p['seconds']):.1f},{sy(trace[j - 1]['best_ms']):.1f}")
                pts.append(f"{sx(p['seconds']):.1f},{sy(p['best_ms']):.1f}")
            pts.append(f"{sx(end):.1f},{sy(trace[-1]['best_ms']):.1f}")
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{" ".join(pts)}"/>'
            )
        if final:
            out.append(f'<circle cx="{sx(end):.1f}" cy="{sy(final):.1f}" r="4" fill="{color}"/>')
        # One legend row under the title: the right margin belongs to the reference lines.
        out.append(f'<rect x="{legend_x:.0f}" y="32" width="10" height="10" fill="{color}"/>')
        out.append(f'<text x="{legend_x + 14:.0f}" y="41">{html.escape(strategy)}</text>')
        legend_x += 24 + 7 * len(strategy)
    out.append("</svg>")
    return "\n".join(out) + "\n"


# -- entry point ---------------------------------------------------------------------------


def not_run(log: list[dict[str, Any]], cases: dict[str, dict[str, Any]]) -> list[str]:
    """Runs the log says were skipped or failed and that no later run has finished."""
    left: dict[tuple[str, str], str] = {}
    for record in log:
        key = (record.get("case", ""), record.get("strategy", ""))
        if record.get("event") in ("skipped", "failed"):
            left[key] = record.get("reason") or record.get("error") or record["event"]
        elif record.get("event") in ("done", "retimed"):
            left.pop(key, None)
            if record.get("event") == "retimed":
                left.pop((key[0], "retime"), None)
    out = []
    for (case, strategy), why in sorted(left.items()):
        if strategy in cases.get(case, {}).get("strategies", {}):
            continue
        out.append(f"{case} / {strategy}: {why}")
    return out


def build(results: Path, out_dir: Path | None = None) -> dict[str, Any]:
    out_dir = out_dir or results
    cases = load(results)
    summaries = [summarize(name, entry) for name, entry in cases.items()]
    meta = {name: case_meta(name) for name in cases}
    goals = targets(summaries)
    envs = {}
    for entry in cases.values():
        for record in [*entry["strategies"].values(), entry["retime"] or {}]:
            env = record.get("environment")
            if env:
                envs[json.dumps(env, sort_keys=True)] = env
    env = next(iter(envs.values()), {})
    skipped = not_run(runlog(results), cases)
    device_file = results / "_device.json"
    peaks = json.loads(device_file.read_text()) if device_file.exists() else None
    doc = {
        "schema": 1,
        "generated_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "environments": list(envs.values()),
        "commits": commits(cases),
        "peaks": peaks,
        "thresholds": {
            "weak_gain": WEAK_GAIN,
            "noise_floor": NOISE_FLOOR,
            "quick_done_s": QUICK_DONE_S,
            "cold_time_ratio": COLD_TIME_RATIO,
            "warm_time_ratio": WARM_TIME_RATIO,
            "gain_share": GAIN_SHARE,
            "lfbo_slack": LFBO_SLACK,
        },
        "targets": goals,
        "not_run": skipped,
        "cases": [
            {**meta[s["case"]], "summary": s, **cases[s["case"]], "name": s["case"]}
            for s in summaries
        ],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    (out_dir / "results.md").write_text(
        markdown(summaries, goals, env, meta, skipped, commits(cases))
    )
    plots = out_dir / "plots"
    plots.mkdir(exist_ok=True)
    for s in summaries:
        (plots / f"{s['case']}.svg").write_text(svg_plot(s["case"], cases[s["case"]], s))
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Write results.json, results.md and plots from run.py's files."
    )
    p.add_argument("results_dir", type=Path, help="the directory run.py wrote")
    p.add_argument(
        "--out", type=Path, default=None, help="where to write (default: the results dir)"
    )
    args = p.parse_args(argv)
    if not args.results_dir.is_dir():
        raise SystemExit(f"{args.results_dir}: no such directory")
    doc = build(args.results_dir, args.out)
    out = args.out or args.results_dir
    print(
        f"{len(doc['cases'])} cases -> {out / 'results.md'}, {out / 'results.json'}, {out / 'plots'}/"
    )
    for g in doc["targets"]:
        print(f"  {g['status']:>12}: {g['target']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
