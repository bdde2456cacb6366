from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, DTYPE, ON_GPU
from example_kernels.matmul import matmul

from pytest_helion_tune import tune_case

SHAPES = [(2048, 2048, 2048), (16, 4096, 4096)] if ON_GPU else [(16, 16, 16), (8, 32, 16)]


def reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() @ y.float()).to(x.dtype)


@pytest.mark.parametrize("m,k,n", SHAPES)
@tune_case(
    kernel=matmul,
    inputs=lambda m, k, n: (
        torch.randn(m, k, device=DEVICE, dtype=DTYPE),
        torch.randn(k, n, device=DEVICE, dtype=DTYPE),
    ),
    reference=reference,
    atol=5e-2,
    rtol=2e-2,
)
def test_matmul(tuned, m, k, n):
    x = torch.randn(m, k, device=DEVICE, dtype=DTYPE)
    y = torch.randn(k, n, device=DEVICE, dtype=DTYPE)
    torch.testing.assert_close(tuned(x, y), reference(x, y), atol=5e-2, rtol=2e-2)
