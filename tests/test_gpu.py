"""Tests that need a CUDA GPU: the real timer, a real search, real pinning. Skipped without one."""

from __future__ import annotations

import os
import statistics

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
        reason="needs a CUDA GPU (and no Triton interpreter)",
    ),
]

GPU_TESTS = """
import pytest
import torch
import helion
import helion.language as hl
from pytest_helion_tune import tune_case


@helion.kernel(static_shapes=True)
def scale(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size()):
        out[tile] = x[tile] * 2.0
    return out


@pytest.mark.parametrize("n", [1 << 20, 1 << 22])
@tune_case(kernel=scale, inputs=lambda n: (torch.randn(n, device="cuda", dtype=torch.float16),),
           reference=lambda x: x * 2.0)
def test_scale(tuned, n):
    x = torch.randn(n, device="cuda", dtype=torch.float16)
    torch.testing.assert_close(tuned(x), x * 2.0)
"""


def test_known_slower_config_times_slower() -> None:
    """The control of every timing claim: a config that must be slower is measured slower."""
    import helion
    import helion.language as hl

    from pytest_helion_tune.timing import CudaTimer

    @helion.kernel(static_shapes=True)
    def copy(x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        for tile in hl.tile(out.size()):
            out[tile] = x[tile]
        return out

    x = torch.randn(1 << 24, device="cuda", dtype=torch.float16)
    bound = copy.bind((x,))
    fast = bound.compile_config(helion.Config(block_sizes=[1024], num_warps=4), allow_print=False)
    slow = bound.compile_config(helion.Config(block_sizes=[32], num_warps=1), allow_print=False)
    samples = CudaTimer().interleaved([lambda: fast(x), lambda: slow(x)], ["fast", "slow"], 5)
    fast_ms, slow_ms = (statistics.median(s) for s in samples)
    assert slow_ms > 1.5 * fast_ms, (fast_ms, slow_ms)


def test_tune_then_read_on_the_gpu(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gpu_kernels=GPU_TESTS)
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    report = pytester.path / "report.json"
    tuned = pytester.runpytest_subprocess(
        "--helion-tune=seeded", "--helion-budget=20", f"--helion-report={report}"
    )
    tuned.assert_outcomes(passed=2)
    import json

    cases = json.loads(report.read_text())["cases"]
    assert {c["origin"] for c in cases} == {"tuned"}
    assert all("sm_" in c["device"] and c["latency_ms"] > 0 for c in cases)
    again = pytester.runpytest_subprocess(f"--helion-report={report}")
    again.assert_outcomes(passed=2)
    cases = json.loads(report.read_text())["cases"]
    assert {c["origin"] for c in cases} == {"cache"}
    assert all(c["overhead_ms"] < 50 for c in cases), [c["overhead_ms"] for c in cases]


def test_xdist_workers_pinned_to_gpus(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_pin="""
import os
import pytest

@pytest.mark.parametrize("i", range(4))
def test_where(i):
    import torch
    props = torch.cuda.get_device_properties(0)
    with open(os.environ["PIN_LOG"], "a") as log:
        log.write(" ".join(["PIN", os.environ["PYTEST_XDIST_WORKER"], os.environ["CUDA_VISIBLE_DEVICES"],
                            str(getattr(props, "pci_bus_id", "?")), str(torch.cuda.device_count())]) + "\\n")
"""
    )
    log = pytester.path / "pin.log"
    os.environ["PIN_LOG"] = str(log)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    visible = torch.cuda.device_count()
    lines = log.read_text().splitlines()
    assert len(lines) == 4
    print("\n".join(lines))  # the committed GPU log shows each worker's GPU
    for line in lines:
        _, worker, cvd, _pci, count = line.split()
        assert count == "1", line
        assert cvd == str(int(worker[2:]) % visible), line
