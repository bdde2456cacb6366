"""The marks of a test module that needs a CUDA GPU: ``pytestmark = gpu_marks.marks()``."""

from __future__ import annotations

import os

import pytest


def marks() -> list[pytest.MarkDecorator]:
    """The ``gpu`` marker, and a skip without a CUDA GPU or under the Triton interpreter."""
    import torch

    return [
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        pytest.mark.skipif(
            os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
            reason="TRITON_INTERPRET is set: GPU tests need the real GPU",
        ),
    ]
