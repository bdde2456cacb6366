"""Many processes writing one store, some killed with SIGKILL mid-write: nothing completed is lost."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WRITER = r"""
import os, sys
from pathlib import Path
from pytest_helion_tune.cache import ConfigEntry, ConfigStore
from pytest_helion_tune.key import CaseKey

root, name, count, done_log = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
store = ConfigStore(root)
with open(done_log, "a") as log:
    for i in range(count):
        key = CaseKey("stress.kernel", "hash", f"x=float16[{name},{i}]", "interpreter", (("torch", "2"),))
        store.put(ConfigEntry(key=key, config={"block_sizes": [i], "num_warps": 4}, latency_ms=float(i)))
        # Logged only after put() returned: these are the completed writes.
        log.write(f"{name} {i}\n")
        log.flush()
        os.fsync(log.fileno())
"""


def test_eight_writers_fifty_writes_some_killed(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "store"
    procs = []
    for n in range(8):
        log = tmp_path / f"done-{n}.log"
        procs.append(
            (
                n,
                log,
                subprocess.Popen([sys.executable, str(script), str(root), f"w{n}", "50", str(log)]),
            )
        )
    rng = random.Random(1)
    victims = {1, 4, 6}
    time.sleep(1.5)
    for n, _log, proc in procs:
        if n in victims:
            time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
    for _n, _log, proc in procs:
        proc.wait(timeout=300)

    path = root / "configs" / "stress.kernel.json"
    doc = json.loads(path.read_text())  # valid JSON, whatever was killed when
    stored = {e["specialization"] for e in doc["entries"]}
    completed = set()
    for _n, log, _proc in procs:
        if log.exists():
            for line in log.read_text().splitlines():
                name, i = line.split()
                completed.add(f"x=float16[{name},{i}]")
    assert completed, "no writer completed anything"
    assert completed <= stored, f"lost writes: {sorted(completed - stored)[:5]}"
    killed = [p for n, _l, p in procs if n in victims]
    assert any(p.returncode == -signal.SIGKILL for p in killed), "no process was killed mid-run"
    survivors_total = sum(50 for n, _l, p in procs if n not in victims)
    assert len(stored) >= survivors_total

    # One more write sweeps temporary files that killed writers left behind.
    from pytest_helion_tune.cache import ConfigEntry, ConfigStore
    from pytest_helion_tune.key import CaseKey

    orphan = root / "configs" / ".stress.kernel.json.999999999.x.tmp"  # no such pid
    orphan.write_text("{half")
    key = CaseKey("stress.kernel", "hash", "x=float16[final]", "interpreter", (("torch", "2"),))
    ConfigStore(root).put(ConfigEntry(key=key, config={"num_warps": 8}))
    leftovers = [p.name for p in (root / "configs").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert sorted(p.name for p in (root / "configs").iterdir()) == [
        "stress.kernel.json",
        "stress.kernel.json.lock",
    ]


@pytest.mark.parametrize(
    "env, worker, expected",
    [
        ({"CUDA_VISIBLE_DEVICES": "3,5"}, "gw3", "5"),
        ({"CUDA_VISIBLE_DEVICES": "3,5"}, "gw2", "3"),
        ({"CUDA_VISIBLE_DEVICES": "GPU-aaa,GPU-bbb,GPU-ccc"}, "gw4", "GPU-bbb"),
        ({"CUDA_VISIBLE_DEVICES": "7"}, "gw1", "7"),
    ],
)
def test_worker_pinning_respects_visible_devices(
    env: dict[str, str], worker: str, expected: str
) -> None:
    from pytest_helion_tune.devices import pin_xdist_worker

    mapping = {**env, "PYTEST_XDIST_WORKER": worker}
    assignment = pin_xdist_worker(mapping)
    assert assignment is not None
    assert mapping["CUDA_VISIBLE_DEVICES"] == expected
    assert assignment.visible == expected and assignment.worker == worker


def test_no_pinning_outside_xdist_or_without_gpus() -> None:
    from pytest_helion_tune.devices import pin_xdist_worker

    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert pin_xdist_worker(env) is None and env == {"CUDA_VISIBLE_DEVICES": "0,1"}
    empty = {"PYTEST_XDIST_WORKER": "gw0", "CUDA_VISIBLE_DEVICES": ""}
    assert pin_xdist_worker(empty) is None
    interpreted = {
        "PYTEST_XDIST_WORKER": "gw0",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "TRITON_INTERPRET": "1",
    }
    assert pin_xdist_worker(interpreted) is None and interpreted["CUDA_VISIBLE_DEVICES"] == "0,1"
