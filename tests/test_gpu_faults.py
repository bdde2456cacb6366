"""Faults only a GPU can raise, provoked for real: a candidate that reads far out of bounds (a
CUDA illegal address), candidates that need more shared memory than an SM has, and an input
factory that asks for more device memory than exists. Skipped without a GPU; run with
``pytest -m gpu`` on the device and the log committed to benchmarks/results/.

Each runs a real pytest session (pytester, a subprocess) on a small project and reads its JSON
report and its store from disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gpu_marks
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("helion")

pytestmark = gpu_marks.marks()

HEALTHY = """
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


@tune_case(kernel=scale, inputs=lambda: (torch.randn(1 << 20, device="cuda", dtype=torch.float16),),
           reference=lambda x: x * 2.0)
def test_scale(tuned):
    pass
"""

# Every row index is 2**30 rows past the end of x: each candidate reads about 512 GiB beyond
# its allocation. The reference never gathers (eager indexing would assert on the device).
ILLEGAL_ADDRESS = """
import torch
import helion
import helion.language as hl
from pytest_helion_tune import tune_case


@helion.kernel(static_shapes=True)
def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    out = x.new_empty([idx.size(0), x.size(1)])
    for tile_i, tile_j in hl.tile([idx.size(0), x.size(1)]):
        out[tile_i, tile_j] = x[idx[tile_i], tile_j]
    return out


def inputs():
    x = torch.randn(1024, 256, device="cuda", dtype=torch.float16)
    return x, torch.full((1024,), 1 << 30, device="cuda", dtype=torch.int64)


@tune_case(kernel=gather_rows, inputs=inputs, reference=lambda x, idx: x.new_zeros(1024, 256))
def test_gather(tuned):
    pass
"""

# Two configs: the first needs (128x128 + 128x128) fp16 x 8 stages = 512 KiB of shared memory,
# over the 227 KiB an H100 SM has; the second fits. (A 256x256x128 tile with 6 stages kept ptxas
# busy for minutes.)
OUT_OF_RESOURCES = """
import torch
import helion
import helion.language as hl
from pytest_helion_tune import tune_case

TOO_BIG = helion.Config(block_sizes=[128, 128, 128], num_warps=8, num_stages=8)
FITS = helion.Config(block_sizes=[64, 64, 32], num_warps=4, num_stages=2)


@helion.kernel(static_shapes=True, configs=[TOO_BIG, FITS])
def matmul(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m, k = x.size()
    _, n = y.size()
    out = torch.empty([m, n], dtype=x.dtype, device=x.device)
    for tile_m, tile_n in hl.tile([m, n]):
        acc = hl.zeros([tile_m, tile_n], dtype=torch.float32)
        for tile_k in hl.tile(k):
            acc = torch.addmm(acc, x[tile_m, tile_k], y[tile_k, tile_n])
        out[tile_m, tile_n] = acc.to(x.dtype)
    return out


def inputs():
    return (torch.randn(1024, 1024, device="cuda", dtype=torch.float16),
            torch.randn(1024, 1024, device="cuda", dtype=torch.float16))


@tune_case(kernel=matmul, inputs=inputs, reference=lambda x, y: x @ y, atol=1e-1, rtol=1e-2)
def test_matmul(tuned):
    pass
"""

FINITE_CONFTEST = """
from pytest_helion_tune import strategies
from pytest_helion_tune.strategies.helion_search import HelionSearch

strategies.register("finite", lambda: HelionSearch("finite", "FiniteSearch", "the kernel's configs"))
"""

# 2**40 fp16 elements: 2 TiB, more than any GPU has.
DEVICE_OOM = """
import torch
import helion
import helion.language as hl
from pytest_helion_tune import tune_case


@helion.kernel(static_shapes=True)
def negate(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size()):
        out[tile] = -x[tile]
    return out


@tune_case(kernel=negate, inputs=lambda: (torch.empty(1 << 40, device="cuda", dtype=torch.float16),),
           reference=lambda x: -x)
def test_negate(tuned):
    pass
"""


SEEDED = ("--helion-tune=seeded", "--helion-budget=20")
INNER_TIMEOUT_S = 200  # a session still running then is killed, and its output printed


def _session(
    pytester: pytest.Pytester, *args: str, tune: tuple[str, ...] = SEEDED
) -> tuple[pytest.RunResult, dict[str, Any]]:
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    report = pytester.path / "report.json"
    try:
        result = pytester.runpytest_subprocess(
            *tune, f"--helion-report={report}", *args, timeout=INNER_TIMEOUT_S
        )
    except pytester.TimeoutExpired:
        for name in ("stdout", "stderr"):  # what the killed session had said
            lines = (pytester.path / name).read_text(errors="replace").splitlines()
            print("\n".join([f"--- session {name} (tail, killed)", *lines[-60:]]))
        raise
    # The committed log shows what the session said, whatever the outcome.
    print("\n".join(["--- session stdout (tail)", *result.outlines[-40:]]))
    print("\n".join(["--- session stderr (tail)", *result.errlines[-40:]]))
    cases = {c["nodeid"].split("::")[-1]: c for c in json.loads(report.read_text())["cases"]}
    for name, case in sorted(cases.items()):  # the committed log shows what each case did
        print(name, case["origin"], case["verdict"], case["failures"], case["message"][:300])
    return result, cases


def _stored_kernels(root: Path) -> set[str]:
    configs = root / ".helion-tune" / "configs"
    return (
        {p.stem.rsplit(".", 1)[-1] for p in configs.glob("*.json")} if configs.exists() else set()
    )


def test_illegal_address_candidates_cost_only_their_case(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_healthy=HEALTHY, test_b_illegal=ILLEGAL_ADDRESS)
    result, cases = _session(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1  # tests failed; the session itself finished
    assert cases["test_scale"]["origin"] == "tuned"
    assert cases["test_gather"]["verdict"] == "error"
    assert cases["test_gather"]["message"]
    assert _stored_kernels(pytester.path) == {"scale"}  # nothing stored for the faulty kernel


def test_illegal_address_under_xdist_spares_the_other_worker(pytester: pytest.Pytester) -> None:
    """The faulty case first in its own worker; the healthy one in the other still tunes."""
    pytester.makepyfile(test_a_illegal=ILLEGAL_ADDRESS, test_b_healthy=HEALTHY)
    result, cases = _session(pytester, "-n", "2", "--dist", "loadfile")
    result.assert_outcomes(passed=1, failed=1)
    assert cases["test_scale"]["origin"] == "tuned"
    assert cases["test_gather"]["verdict"] == "error"
    assert _stored_kernels(pytester.path) == {"scale"}


def test_out_of_shared_memory_candidates_are_counted_and_skipped(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(FINITE_CONFTEST)
    pytester.makepyfile(test_matmul=OUT_OF_RESOURCES)
    result, cases = _session(pytester, tune=("--helion-tune=finite",))
    (case,) = cases.values()
    print(case["config"])
    result.assert_outcomes(passed=1)
    assert case["origin"] == "tuned"
    assert case["failures"]["compile"] >= 1  # Helion's name for a candidate that raised
    assert case["config"]["block_sizes"] == [64, 64, 32]


def test_device_out_of_memory_in_inputs_fails_that_case_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_a_oom=DEVICE_OOM, test_b_healthy=HEALTHY)
    result, cases = _session(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert "out of memory" in cases["test_negate"]["message"].lower()  # CUDA's own words
    assert cases["test_scale"]["origin"] == "tuned"  # the CUDA OOM did not poison the process
    assert _stored_kernels(pytester.path) == {"scale"}
