"""The benchmark suite as pytest tests, one per case, so that pytest-xdist spreads it over GPUs.

    BENCH_CASES=quick BENCH_STRATEGIES=default,seeded,lfbo \\
        python -m pytest benchmarks/xdist_suite.py -n 2 -p no:cacheprovider -s

Each test runs ``benchmarks/run.py --cases <case>`` in a subprocess. The subprocess inherits the
worker's ``CUDA_VISIBLE_DEVICES``: pytest-helion-tune pins xdist worker ``gwN`` to GPU
``N mod visible`` in ``pytest_configure``, as it does for tuning. The test holds the plugin's lock
of that GPU while ``run.py`` runs, so workers that share a GPU (``-n`` above the number of GPUs)
never time at once. Results land in one results dir, one file per (case, strategy), so the run
resumes like ``run.py`` itself; each test appends one line to ``<results>/xdist_runs.jsonl``:
worker, ``CUDA_VISIBLE_DEVICES``, the GPU's PCI id and UUID, lock wait, when the lock was held
(epoch seconds), wall time, exit code.

Environment: ``BENCH_CASES`` (``quick``, ``all`` or names; default ``quick``),
``BENCH_STRATEGIES`` (default ``default,seeded,lfbo``), ``BENCH_RESULTS`` (default run.py's
``benchmarks/results/<device>``), ``BENCH_ARGS`` (more run.py arguments, e.g.
``--interpreter`` or ``--git-commit SHA``), ``BENCH_TIMEOUT_S`` (per case, default 3600).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases as suite  # noqa: E402
import run as harness  # noqa: E402

EXTRA = shlex.split(os.environ.get("BENCH_ARGS", ""))
INTERPRETER = "--interpreter" in EXTRA


def _gpu() -> dict[str, str]:
    """This worker's GPU as the plugin identifies it: a host-wide name for its lock, and the
    results dir ``run.py`` would choose for it (``benchmarks/results/<device>``)."""
    from pytest_helion_tune import devices

    if INTERPRETER:
        run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID", str(os.getppid()))
        lock, pci, uuid, slug = f"interpreter-bench-{run_id}", "", "", "interpreter"
    else:
        found = devices.identify()
        if found is None:
            pytest.fail("no CUDA GPU visible: run with BENCH_ARGS=--interpreter on a CPU machine")
        lock, pci, uuid = found.lock_name, found.pci_bus_id, found.uuid
        slug = harness.device_slug(found.name)
    results = os.environ.get("BENCH_RESULTS") or str(harness.ROOT / "benchmarks" / "results" / slug)
    return {"lock": lock, "pci": pci, "uuid": uuid, "results": results}


@pytest.mark.parametrize(
    "case", [c.name for c in suite.select(os.environ.get("BENCH_CASES", "quick"))]
)
def test_case(case: str) -> None:
    from pytest_helion_tune.devices import DeviceLock

    command = [
        sys.executable,
        str(HERE / "run.py"),
        "--cases",
        case,
        "--strategies",
        os.environ.get("BENCH_STRATEGIES", "default,seeded,lfbo"),
        *EXTRA,
    ]
    gpu = _gpu()
    results = Path(gpu["results"])
    command += ["--results-dir", str(results)]
    lock = DeviceLock(gpu["lock"])
    start = time.perf_counter()
    with lock.held() as waited:
        held_from = time.time()
        ran = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=float(os.environ.get("BENCH_TIMEOUT_S", "3600")),
            check=False,
        )
        held_to = time.time()
    record: dict[str, Any] = {
        "case": case,
        "worker": os.environ.get("PYTEST_XDIST_WORKER", ""),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "gpu_pci": gpu["pci"],
        "gpu_uuid": gpu["uuid"],
        "lock_wait_s": waited,
        "lock_held": [held_from, held_to],
        "wall_s": time.perf_counter() - start,
        "returncode": ran.returncode,
        "command": shlex.join(command),
    }
    print(ran.stdout[-4000:], ran.stderr[-2000:], json.dumps(record), sep="\n")
    results.mkdir(parents=True, exist_ok=True)
    with (results / "xdist_runs.jsonl").open("a") as log:
        log.write(json.dumps(record) + "\n")
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
