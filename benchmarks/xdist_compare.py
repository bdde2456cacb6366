"""Summarises a scaling run of benchmarks/xdist_scaling.sh: one results dir per ``-n``.

    python benchmarks/xdist_compare.py xdist-scaling

Reads ``OUT/gpus.csv`` (nvidia-smi's list, or its error text) and every ``OUT/n<int>/``
(``session.json``, ``xdist_runs.jsonl``, run.py's ``<case>__<strategy>.json`` and
``<case>__retime.json``) and writes ``OUT/scaling.json`` and ``OUT/scaling.md`` (also printed):
each run's wall time and speed-up over ``-n 0``, which GPU each worker had, whether two cases
ever held one GPU's lock at once, the re-timed latencies against ``-n 0``'s, and the scaling
target. A run cut short says "missing" where it has no figure. Standard library only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import read_json  # run.py imports only the standard library at its top

# A case holds its GPU's lock for its whole run.py (tens of seconds); shorter waits are the lock's
# own bookkeeping, not another worker's case. Same threshold as gpu_evidence.py's lock check.
SHARED_WAIT_S = 1.0
TARGET_SHARE = 0.9  # target: speed-up >= 0.9 x the number of GPUs
MISSING = "missing"


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The records of a JSON-lines file, and how many lines could not be read (a cut write)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return [], 0
    records, bad = [], 0
    for line in filter(str.strip, lines):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def uuid_key(uuid: str) -> str:
    """nvidia-smi writes ``GPU-<uuid>``; torch (hence xdist_runs.jsonl) writes the bare uuid."""
    return uuid.strip().lower().removeprefix("gpu-")


def read_gpus(path: Path) -> tuple[list[dict[str, str]], str | None]:
    """nvidia-smi's rows (index, name, pci, uuid), or none and the file's text when it is not the
    csv (no nvidia-smi on the host)."""
    try:
        text = path.read_text()
    except OSError:
        return [], f"{path.name} missing"
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].lower().startswith("index"):
        return [], text.strip()[:200] or "empty"
    rows = []
    for line in lines[1:]:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 4 and fields[0].isdigit():
            rows.append(dict(zip(("index", "name", "pci", "uuid"), fields, strict=True)))
    return rows, None


def num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def overlapping_pairs(records: list[dict[str, Any]]) -> int:
    """Pairs of different cases whose ``lock_held`` intervals overlap (touching ends do not)."""
    spans = []
    for r in records:
        held = r.get("lock_held")
        if isinstance(held, list) and len(held) == 2 and all(num(t) is not None for t in held):
            spans.append((str(r.get("case")), float(held[0]), float(held[1])))
    return sum(
        1
        for (c1, a1, b1), (c2, a2, b2) in itertools.combinations(spans, 2)
        if c1 != c2 and max(a1, a2) < min(b1, b2)
    )


def gpu_of(record: dict[str, Any]) -> str:
    """The GPU a record's lock named: its uuid, else its PCI id (the interpreter has neither and
    one lock for the whole run)."""
    return str(record.get("gpu_uuid") or record.get("gpu_pci") or "(no GPU id)")


def load_run(path: Path, gpus_csv: list[dict[str, str]]) -> dict[str, Any]:
    session = read_json(path / "session.json")
    records, bad = read_jsonl(path / "xdist_runs.jsonl")
    notes = []
    if session is None:
        notes.append("session.json missing (run cut short?)")
    if not (path / "xdist_runs.jsonl").exists():
        notes.append("xdist_runs.jsonl missing")
    if bad:
        notes.append(f"{bad} unreadable line(s) in xdist_runs.jsonl")
    rc = session.get("returncode") if session else None
    rc = rc if isinstance(rc, int) else None
    if rc == 124:
        notes.append("pytest killed by RUN_TIMEOUT_S (rc 124)")
    counts: dict[str, int] = {}
    for r in records:
        counts[str(r.get("case"))] = counts.get(str(r.get("case")), 0) + 1
    notes += [f"{c} recorded {k} times (OUT reused?)" for c, k in counts.items() if k > 1]
    failed = sorted({str(r.get("case")) for r in records if r.get("returncode") != 0})
    if failed:
        notes.append("run.py failed: " + ", ".join(failed))

    index = {uuid_key(g["uuid"]): g["index"] for g in gpus_csv}
    by_worker: dict[str, dict[str, Any]] = {}
    for r in records:
        w = by_worker.setdefault(
            str(r.get("worker") or "main"),
            {"wall_s": 0.0, "cvd": set(), "pci": set(), "uuid": set(), "cases": []},
        )
        w["wall_s"] += num(r.get("wall_s")) or 0.0
        w["cvd"].add(str(r.get("cuda_visible_devices") or "(unset)"))
        w["pci"].add(str(r.get("gpu_pci") or "-"))
        w["uuid"].add(str(r.get("gpu_uuid") or "-"))
        w["cases"].append(str(r.get("case")))
    pinning = [
        {
            "worker": name,
            "cuda_visible_devices": "/".join(sorted(w["cvd"])),
            "gpu_pci": "/".join(sorted(w["pci"])),
            "gpu_uuid": "/".join(sorted(w["uuid"])),
            "nvidia_smi_index": "/".join(sorted(index.get(uuid_key(u), "?") for u in w["uuid"])),
            "cases": w["cases"],
        }
        for name, w in sorted(by_worker.items())
    ]
    by_gpu: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_gpu.setdefault(gpu_of(r), []).append(r)
    waits = [num(r.get("lock_wait_s")) or 0.0 for r in records]
    workers = session.get("workers") if session else None
    if not isinstance(workers, int):  # no session.json: the dir's name says
        workers = int(path.name[1:])
    return {
        "name": path.name,
        "path": str(path),
        "workers": workers,
        "wall_s": num(session.get("wall_s")) if session else None,
        "returncode": rc,
        "cases": sorted(counts),
        "case_wall_s_by_worker": {name: w["wall_s"] for name, w in sorted(by_worker.items())},
        "lock_wait_s": sum(waits),
        "contended_cases": sum(1 for s in waits if s >= SHARED_WAIT_S),
        "pinning": pinning,
        "overlapping_pairs": {gpu: overlapping_pairs(rs) for gpu, rs in sorted(by_gpu.items())},
        "gpu_uuids": sorted({uuid_key(str(r.get("gpu_uuid") or "")) for r in records} - {""}),
        "case_walls": [num(r.get("wall_s")) or 0.0 for r in records],
        "notes": notes,
    }


def latencies(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(case, strategy) -> re-timed median ms and chosen config, for every strategy and Helion's
    ``default`` config, which is the same config in every run: its ratio is the noise between
    runs. The ms comes from ``by_strategy`` (label -> median of the contender that label
    chose; labels whose configs coincide share one contender); the config from the strategy's
    result file, else from that contender."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for file in sorted(path.glob("*__*.json")):
        case, strategy = file.stem.split("__", 1)
        if strategy == "retime":
            data = read_json(file) or {}
            by_strategy = data.get("by_strategy")
            contenders = data.get("contenders")
            for label, ms in (by_strategy if isinstance(by_strategy, dict) else {}).items():
                entry = out.setdefault((case, label), {"ms": None, "config": None})
                entry["ms"] = num(ms)
                for c in contenders if isinstance(contenders, list) else []:
                    if isinstance(c, dict) and label in c.get("labels", []):
                        entry["config"] = entry["config"] or c.get("config")
        else:
            data = read_json(file) or {}
            if data.get("status") == "ok":
                entry = out.setdefault((case, strategy), {"ms": None, "config": None})
                entry["config"] = data.get("config") or entry["config"]
    return out


def summarise(out: Path) -> dict[str, Any]:
    gpus_csv, csv_note = read_gpus(out / "gpus.csv")
    dirs = [p for p in out.iterdir() if p.is_dir() and re.fullmatch(r"n\d+", p.name)]
    dirs.sort(key=lambda p: int(p.name[1:]))
    runs = [load_run(p, gpus_csv) for p in dirs]
    uuids = {u for r in runs for u in r["gpu_uuids"]}
    gpus = len(uuids) or len(gpus_csv)
    gpus_source = "distinct gpu_uuid" if uuids else "gpus.csv rows" if gpus_csv else "none"

    base = next((r for r in runs if r["workers"] == 0), None)
    base_wall = base["wall_s"] if base else None
    for r in runs:
        r["speedup"] = base_wall / r["wall_s"] if base_wall and r["wall_s"] else None
        r["waits_expected"] = r["workers"] > gpus if gpus and r["workers"] else None
        r["waits_ok"] = r["contended_cases"] > 0 if r["waits_expected"] else None

    lat = {r["name"]: latencies(Path(r["path"])) for r in runs}
    keys = sorted({k for table in lat.values() for k in table})
    base_lat = lat[base["name"]] if base else {}
    rows: list[dict[str, Any]] = []
    for case, strategy in keys:
        ref = base_lat.get((case, strategy), {})
        cells: dict[str, dict[str, Any]] = {}
        for r in runs:
            mine = lat[r["name"]].get((case, strategy), {})
            ms, ref_ms = mine.get("ms"), ref.get("ms")
            same = None
            if mine.get("config") is not None and ref.get("config") is not None:
                same = mine["config"] == ref["config"]
            cells[r["name"]] = {
                "ms": ms,
                "ratio": ms / ref_ms if ms is not None and ref_ms else None,
                "same_config": same,
            }
        rows.append({"case": case, "strategy": strategy, "runs": cells})
    max_dev: dict[str, float | None] = {}
    for r in runs:
        ratios = [row["runs"][r["name"]]["ratio"] for row in rows]
        devs = [abs(x - 1) for x in ratios if x is not None]
        max_dev[r["name"]] = max(devs) if devs and r is not base else None

    fitting = [r for r in runs if 0 < r["workers"] <= gpus]
    pick = max(fitting, key=lambda r: r["workers"]) if fitting else None
    target: dict[str, Any] = {"gpus": gpus, "gpus_source": gpus_source, "goal": TARGET_SHARE * gpus}
    if pick:
        walls = base["case_walls"] if base else []
        # Cases do not split: the makespan is at least the longest case and the even share.
        floor = max(max(walls), sum(walls) / pick["workers"]) if walls else 0
        target.update(
            run=pick["name"],
            speedup=pick["speedup"],
            met=pick["speedup"] >= TARGET_SHARE * gpus if pick["speedup"] else None,
            case_bound=sum(walls) / floor if floor else None,
        )
    for r in runs:
        del r["path"], r["case_walls"]
    return {
        "out": str(out),
        "gpus": {"count": gpus, "source": gpus_source, "nvidia_smi": gpus_csv, "note": csv_note},
        "shared_wait_s": SHARED_WAIT_S,
        "runs": runs,
        "latency": rows,
        "latency_max_dev": max_dev,
        "target": target,
    }


def fmt(value: Any, spec: str = ".1f") -> str:
    return MISSING if value is None else format(value, spec)


def markdown(doc: dict[str, Any]) -> str:
    runs, g = doc["runs"], doc["gpus"]
    lines = [f"# xdist scaling: {doc['out']}", ""]
    lines.append(f"GPUs: {g['count']} ({g['source']}); gpus.csv: {len(g['nvidia_smi'])} row(s)")
    if g["note"]:
        lines.append(f"gpus.csv is not nvidia-smi's list: `{g['note'].splitlines()[0]}`")
    lines += ["", "## Runs", ""]
    lines.append(
        "| run | workers | wall s | speed-up vs n0 | case wall s by worker "
        f"| lock wait s | cases waiting >= {SHARED_WAIT_S:g} s | pytest rc |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in runs:
        by_worker = ", ".join(f"{w} {s:.1f}" for w, s in r["case_wall_s_by_worker"].items())
        lines.append(
            f"| {r['name']} | {fmt(r['workers'], 'd')} | {fmt(r['wall_s'])} "
            f"| {fmt(r['speedup'], '.2f')} | {by_worker or MISSING} | {r['lock_wait_s']:.1f} "
            f"| {r['contended_cases']} | {fmt(r['returncode'], 'd')} |"
        )
    notes = [f"- {r['name']}: {n}" for r in runs for n in r["notes"]]
    lines += ["", *notes] if notes else []

    lines += [
        "",
        "## Pinning",
        "",
        "| run | worker | CUDA_VISIBLE_DEVICES | nvidia-smi index | PCI | UUID | cases |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        if not r["pinning"]:
            lines.append(f"| {r['name']} | {MISSING} | | | | | |")
        for p in r["pinning"]:
            lines.append(
                f"| {r['name']} | {p['worker']} | {p['cuda_visible_devices']} "
                f"| {p['nvidia_smi_index']} | {p['gpu_pci']} | {p['gpu_uuid']} "
                f"| {', '.join(p['cases'])} |"
            )

    lines += [
        "",
        "## GPU locks",
        "",
        "Pairs of different cases that held one GPU's lock at once (0 expected).",
        "",
    ]
    index = {uuid_key(row["uuid"]): row["index"] for row in g["nvidia_smi"]}
    for r in runs:
        pairs = [
            (f"GPU {index[uuid_key(gpu)]} ({gpu[:8]})" if uuid_key(gpu) in index else gpu)
            + f" {n}"
            + (" OVERLAP" if n else "")
            for gpu, n in r["overlapping_pairs"].items()
        ]
        line = f"- {r['name']}: {', '.join(pairs) or MISSING}"
        waits = f"lock waits >= {doc['shared_wait_s']:g} s: {r['contended_cases']} case(s)"
        if r["waits_expected"]:
            verdict = "ok" if r["waits_ok"] else "NONE, expected some"
            line += f"; {r['workers']} workers > {g['count']} GPUs, {waits}: {verdict}"
        elif r["waits_expected"] is False and r["contended_cases"]:
            line += f"; a GPU per worker, yet {waits}: UNEXPECTED"
        lines.append(line)

    base = next((r["name"] for r in runs if r["workers"] == 0), None)
    lines += ["", f"## Re-timed latency (median ms; x ratio to {base or 'n0: ' + MISSING})", ""]
    lines += (
        [
            "`*`: a config other than n0's. `default` is Helion's default config, the same in",
            "every run: its ratio is the timing noise between runs (and GPUs).",
            "",
        ]
        if base
        else []
    )
    lines.append("| case | strategy | " + " | ".join(r["name"] for r in runs) + " |")
    lines.append("|---|---|" + "---|" * len(runs))
    for row in doc["latency"]:
        cells = []
        for r in runs:
            c = row["runs"][r["name"]]
            cell = fmt(c["ms"], ".4f")
            if c["ratio"] is not None and r["name"] != base:
                cell += f" x{c['ratio']:.3f}"
            cell += "*" if c["same_config"] is False else ""
            cells.append(cell)
        lines.append(f"| {row['case']} | {row['strategy']} | " + " | ".join(cells) + " |")
    devs = [
        "-" if r["name"] == base else fmt(doc["latency_max_dev"][r["name"]], ".3f") for r in runs
    ]
    lines.append("| max \\|ratio-1\\| | | " + " | ".join(devs) + " |")

    t = doc["target"]
    lines += ["", "## Target", ""]
    if "run" not in t:
        lines.append(f"No run with 0 < -n <= {t['gpus']} GPUs: target {MISSING}.")
    else:
        met = {True: "met", False: "NOT met", None: MISSING}[t["met"]]
        bound = "; ideal from n0's case times (whole cases, no fixed cost): "
        bound += fmt(t["case_bound"], ".2f")
        lines.append(
            f"{t['run']}: speed-up {fmt(t['speedup'], '.2f')} vs {TARGET_SHARE:g} x {t['gpus']} "
            f"GPUs = {t['goal']:.2f}: {met}" + (bound if t["case_bound"] else "")
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Compare the runs of benchmarks/xdist_scaling.sh.")
    p.add_argument("out", type=Path, help="the OUT dir xdist_scaling.sh wrote")
    args = p.parse_args(argv)
    if not args.out.is_dir():
        raise SystemExit(f"{args.out}: no such directory")
    doc = summarise(args.out)
    (args.out / "scaling.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    text = markdown(doc)
    (args.out / "scaling.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
