"""``pytest -m gpu`` on the project's own tests collects the GPU modules alone. Several CPU test
modules set ``TRITON_INTERPRET=1`` when imported; on the H100 in session 6, ``pytest -m gpu
tests/`` imported them first and skipped all 9 GPU tests ("no Triton interpreter")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_selection_collects_only_the_gpu_modules() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "gpu",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "deselected" not in out, out  # the other modules were never imported
    items = [line for line in run.stdout.splitlines() if "::" in line]
    assert len(items) >= 9, out
    assert {item.split("::")[0] for item in items} == {
        "tests/test_gpu.py",
        "tests/test_gpu_faults.py",
    }
