"""The README's first command: the example project tuned with the default strategy on the CPU
(`llm-seeded`, which runs as `seeded` with no LLM configured), then read back from its cache.

A real pytest session in a subprocess, real Helion kernels under the Triton interpreter. The
second shape of each kernel is tuned with the first shape's config as a seed, so this also runs
`seeded`'s warm path (it once failed there, when the seed was the default config).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "example_project"


def _pytest(cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    env.pop("PYTEST_XDIST_WORKER", None)
    options = ["-p", "no:cacheprovider", "-p", "no:logging", f"--helion-cache-dir={cache}"]
    return subprocess.run(
        [sys.executable, "-m", "pytest", *options, *extra],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_readme_example_tunes_every_case_then_reads_them_back(tmp_path: Path) -> None:
    cache, report = tmp_path / "store", tmp_path / "report.json"
    tuned = _pytest(cache, "--helion-tune", f"--helion-report={report}")
    assert tuned.returncode == 0, tuned.stdout[-4000:] + tuned.stderr[-2000:]
    cases = json.loads(report.read_text())["cases"]
    assert len(cases) == 6
    for case in cases:
        assert case["origin"] == "tuned" and case["strategy"] == "llm-seeded", case["nodeid"]
        assert case["configs_tested"] > 0 and case["latency_ms"] > 0, case["nodeid"]
    assert any(case["seed_source"].startswith("cache") for case in cases), [
        case["seed_source"] for case in cases
    ]

    plain = _pytest(cache)
    assert plain.returncode == 0, plain.stdout[-4000:] + plain.stderr[-2000:]
    assert "6 passed" in plain.stdout
    assert plain.stdout.count(" cache ") >= 6, plain.stdout[-3000:]
