from __future__ import annotations

import pytest
import torch
from conftest import DEVICE, DTYPE, ON_GPU
from example_kernels.rms_norm import rms_norm, rms_norm_reference

from pytest_helion_tune import tune_case

SHAPES = [(4096, 4096), (256, 65536)] if ON_GPU else [(8, 32), (4, 64)]


@pytest.mark.parametrize("m,n", SHAPES)
@tune_case(
    kernel=rms_norm,
    inputs=lambda m, n: (
        torch.randn(m, n, device=DEVICE, dtype=DTYPE),
        torch.randn(n, device=DEVICE, dtype=DTYPE),
    ),
    reference=rms_norm_reference,
    atol=2e-2,
    rtol=2e-2,
)
def test_rms_norm(tuned, m, n):
    x = torch.randn(m, n, device=DEVICE, dtype=DTYPE)
    w = torch.randn(n, device=DEVICE, dtype=DTYPE)
    torch.testing.assert_close(tuned(x, w), rms_norm_reference(x, w), atol=2e-2, rtol=2e-2)
