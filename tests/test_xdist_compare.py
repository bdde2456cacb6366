"""benchmarks/xdist_compare.py on a fake OUT dir of benchmarks/xdist_scaling.sh: CPU only."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "xdist_compare.py"
REAL_RETIME = (
    ROOT / "benchmarks" / "results" / "nvidia-h100-80gb-hbm3" / "rms_norm_8192x8192__retime.json"
)
# nvidia-smi writes "GPU-<uuid>"; torch, hence xdist_runs.jsonl, the bare uuid.
UUID_A = "bfecf067-2e97-0c4a-53b5-64f67a3d8b15"
UUID_B = "19318291-2875-f389-9882-869895cce824"
GPUS_CSV = (
    "index, name, pci.bus_id, uuid\n"
    f"0, NVIDIA H200, 00000000:00:06.0, GPU-{UUID_A}\n"
    f"1, NVIDIA H200, 00000000:00:07.0, GPU-{UUID_B}\n"
)
GPU = {UUID_A: "0000:00:06", UUID_B: "0000:00:07"}
ENV = {"device": "NVIDIA H200", "capability": "sm_90", "interpreter": False}


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("xdist_compare", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(num_warps: int) -> dict[str, Any]:
    return {"block_sizes": [1], "num_stages": 1, "num_warps": num_warps, "pid_type": "flat"}


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def run_dir(
    out: Path,
    workers: int,
    wall_s: float | None,
    cases: list[dict[str, Any]],
) -> Path:
    """One run's results dir as xdist_scaling.sh, xdist_suite.py and run.py leave it. Each case:
    name, worker, cvd, uuid, held (from, to), wait, seeded ms and num_warps (None: no retime)."""
    results = out / f"n{workers}"
    results.mkdir(parents=True)
    if wall_s is not None:
        write(results / "session.json", {"workers": workers, "wall_s": wall_s, "returncode": 0})
    lines = []
    for c in cases:
        lines.append(
            {
                "case": c["name"],
                "worker": c["worker"],
                "cuda_visible_devices": c["cvd"],
                "gpu_pci": GPU[c["uuid"]],
                "gpu_uuid": c["uuid"],
                "lock_wait_s": c["wait"],
                "lock_held": list(c["held"]),
                "wall_s": c["held"][1] - c["held"][0] + c["wait"],
                "returncode": 0,
                "command": f"python benchmarks/run.py --cases {c['name']}",
            }
        )
        common = {"schema": 1, "status": "ok", "case": c["name"], "environment": ENV}
        for strategy, warps in (("default", 4), ("seeded", c["warps"])):
            write(
                results / f"{c['name']}__{strategy}.json",
                {**common, "strategy": strategy, "config": config(warps), "wall_s": 10.0},
            )
        if c["ms"] is not None:
            write(results / f"{c['name']}__retime.json", retime(c["name"], c["ms"], c["warps"]))
    (results / "xdist_runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return results


def retime(case: str, seeded_ms: float, warps: int) -> dict[str, Any]:
    """run.py's retime record: contenders by config (labels share one when configs coincide),
    by_strategy label -> that contender's median."""
    default_ms = 0.1

    def contender(labels: list[str], warps: int, ms: float) -> dict[str, Any]:
        return {
            "labels": labels,
            "config": config(warps),
            "config_id": f"id{warps}",
            "accurate": True,
            "median_ms": ms,
            "samples": 2000,
            "round_medians_ms": [ms] * 5,
            "round_spread": 0.005,
        }

    contenders = [contender(["default"], 4, default_ms), contender(["seeded"], warps, seeded_ms)]
    return {
        "schema": 1,
        "case": case,
        "contenders": contenders,
        "by_strategy": {"default": default_ms, "seeded": seeded_ms},
        "default_ms": default_ms,
        "eager_ms": 0.15,
        "eager": {"median_ms": 0.15},
        "rounds": 5,
        "strategies_included": ["default", "seeded"],
        "skipped": [],
        "environment": ENV,
    }


def case(
    name: str, worker: str, cvd: str, uuid: str, held: tuple[float, float], **kw: Any
) -> dict[str, Any]:
    return {"name": name, "worker": worker, "cvd": cvd, "uuid": uuid, "held": held} | {
        "wait": 0.001,
        "ms": 0.05,
        "warps": 8,
        **kw,
    }


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """n0 (serial, GPU 0), n2 (one GPU each, twice as fast, latencies +2% and -1%, case b's
    seeded config changed), n4 cut by a timeout (no session.json, one retime missing) with two
    cases on GPU A that held its lock at once."""
    (tmp_path / "gpus.csv").write_text(GPUS_CSV)
    t = 1_700_000_000.0
    run_dir(
        tmp_path,
        0,
        100.0,
        [case("a", "", "", UUID_A, (t, t + 45)), case("b", "", "", UUID_A, (t + 45, t + 95))],
    )
    run_dir(
        tmp_path,
        2,
        50.0,
        [
            case("a", "gw0", "0", UUID_A, (t, t + 45), ms=0.051),
            case("b", "gw1", "1", UUID_B, (t, t + 48), ms=0.0495, warps=16),
        ],
    )
    run_dir(
        tmp_path,
        4,
        None,
        [
            case("a", "gw0", "0", UUID_A, (t, t + 45)),
            case("b", "gw2", "0", UUID_A, (t + 40, t + 90), wait=40.0, ms=None),
        ],
    )
    return tmp_path


def test_scaling_summary(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load().main([str(out)]) == 0
    doc = json.loads((out / "scaling.json").read_text())
    md = (out / "scaling.md").read_text()
    assert capsys.readouterr().out == md
    runs = {r["name"]: r for r in doc["runs"]}
    assert list(runs) == ["n0", "n2", "n4"]

    assert doc["gpus"]["count"] == 2 and doc["gpus"]["source"] == "distinct gpu_uuid"
    assert runs["n0"]["speedup"] == pytest.approx(1.0)
    assert runs["n2"]["speedup"] == pytest.approx(2.0)
    assert runs["n0"]["case_wall_s_by_worker"] == pytest.approx({"main": 95.002})
    assert runs["n2"]["case_wall_s_by_worker"] == pytest.approx({"gw0": 45.001, "gw1": 48.001})
    pins = {p["worker"]: p for p in runs["n2"]["pinning"]}
    assert pins["gw1"]["cuda_visible_devices"] == "1" and pins["gw1"]["gpu_uuid"] == UUID_B
    assert pins["gw1"]["nvidia_smi_index"] == "1" and pins["gw1"]["cases"] == ["b"]

    # Locks: serial on one GPU, one GPU each, and the planted overlap on GPU A.
    assert runs["n0"]["overlapping_pairs"] == {UUID_A: 0}
    assert runs["n2"]["overlapping_pairs"] == {UUID_A: 0, UUID_B: 0}
    assert runs["n4"]["overlapping_pairs"] == {UUID_A: 1}
    assert "- n4: GPU 0 (bfecf067) 1 OVERLAP" in md
    assert runs["n2"]["waits_expected"] is False
    assert runs["n4"]["waits_expected"] is True and runs["n4"]["waits_ok"] is True
    assert runs["n4"]["lock_wait_s"] == pytest.approx(40.001)

    # The cut run: missing, not a crash.
    assert runs["n4"]["wall_s"] is None and runs["n4"]["speedup"] is None
    assert any("session.json missing" in n for n in runs["n4"]["notes"])
    assert "| n4 | 4 | missing | missing |" in md

    lat = {(r["case"], r["strategy"]): r["runs"] for r in doc["latency"]}
    assert list(lat) == [("a", "default"), ("a", "seeded"), ("b", "default"), ("b", "seeded")]
    assert lat["a", "default"]["n2"]["ratio"] == pytest.approx(1.0)  # the noise control
    assert lat["a", "seeded"]["n2"]["ratio"] == pytest.approx(1.02)
    assert lat["b", "seeded"]["n2"]["ratio"] == pytest.approx(0.99)
    assert lat["a", "seeded"]["n2"]["same_config"] is True
    assert lat["b", "seeded"]["n2"]["same_config"] is False
    assert lat["b", "seeded"]["n4"]["ms"] is None  # no retime file; its config still compares
    assert lat["b", "seeded"]["n4"]["same_config"] is True
    assert doc["latency_max_dev"] == pytest.approx({"n0": None, "n2": 0.02, "n4": 0.0})

    target = doc["target"]
    assert target["run"] == "n2" and target["goal"] == pytest.approx(1.8)
    assert target["speedup"] == pytest.approx(2.0) and target["met"] is True
    assert target["case_bound"] == pytest.approx(95.002 / 50.001)


def test_real_retime_file_and_no_nvidia_smi(tmp_path: Path) -> None:
    """A retime file run.py wrote on an H100, read as is; a CPU host's gpus.csv (an error text)
    and a run dir with nothing in it yet, through the command line."""
    if not REAL_RETIME.exists():
        pytest.skip("the committed H100 results are not in this checkout")
    (tmp_path / "gpus.csv").write_text("bash: line 1: nvidia-smi: command not found\n")
    for n, wall in ((0, 30.0), (2, 20.0)):
        write(tmp_path / f"n{n}" / "session.json", {"workers": n, "wall_s": wall, "returncode": 0})
        shutil.copy(REAL_RETIME, tmp_path / f"n{n}" / REAL_RETIME.name)
    (tmp_path / "n4").mkdir()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "scaling.json").read_text())
    real = json.loads(REAL_RETIME.read_text())
    rows = {(r["case"], r["strategy"]): r["runs"] for r in doc["latency"]}
    assert set(rows) == {("rms_norm_8192x8192", s) for s in real["by_strategy"]}
    seeded = rows["rms_norm_8192x8192", "seeded"]
    assert seeded["n2"]["ms"] == real["by_strategy"]["seeded"]
    assert seeded["n2"]["ratio"] == pytest.approx(1.0) and seeded["n2"]["same_config"] is True
    assert doc["gpus"]["count"] == 0 and "nvidia-smi" in doc["gpus"]["note"]
    assert doc["target"]["goal"] == 0 and "run" not in doc["target"]
    assert "| n4 | 4 | missing | missing | missing |" in done.stdout
