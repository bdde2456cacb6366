from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, DTYPE, ON_GPU
from example_kernels.softmax import softmax

from pytest_helion_tune import tune_case

SHAPES = [(4096, 8192), (1024, 65536)] if ON_GPU else [(8, 32), (4, 64)]


def reference(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x.float(), dim=-1).to(x.dtype)


@pytest.mark.parametrize("m,n", SHAPES)
@tune_case(
    kernel=softmax,
    inputs=lambda m, n: (torch.randn(m, n, device=DEVICE, dtype=DTYPE),),
    reference=reference,
    atol=1e-2,
    rtol=1e-2,
)
def test_softmax(tuned, m, n):
    x = torch.randn(m, n, device=DEVICE, dtype=DTYPE)
    torch.testing.assert_close(tuned(x), reference(x), atol=1e-2, rtol=1e-2)
