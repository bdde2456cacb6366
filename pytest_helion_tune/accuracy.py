"""Comparison of a kernel's output with the eager reference, and default tolerances per dtype.

A leaf: torch only, no Helion, no pytest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .errors import first_line

# The same defaults torch.testing.assert_close uses, loosened for the reduced-precision
# types whose kernels legitimately reorder reductions.
_DEFAULTS: dict[str, tuple[float, float]] = {
    "float16": (1e-2, 1e-2),
    "bfloat16": (2e-2, 2e-2),
    "float32": (1e-4, 1e-4),
    "float64": (1e-7, 1e-7),
}


@dataclasses.dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


@dataclasses.dataclass(frozen=True)
class AccuracyResult:
    ok: bool
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    message: str = ""


def default_tolerance(outputs: Any) -> Tolerance:
    """The loosest default over the floating-point tensors in ``outputs``."""
    atol = rtol = 0.0
    for tensor in _tensors(outputs):
        a, r = _DEFAULTS.get(str(tensor.dtype).removeprefix("torch."), (0.0, 0.0))
        atol, rtol = max(atol, a), max(rtol, r)
    return Tolerance(atol or 1e-5, rtol or 1.3e-6)


def _tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _largest_error(actual: Sequence[Any], expected: Sequence[Any]) -> tuple[float, float]:
    import torch

    max_abs = max_rel = 0.0
    for a, e in zip(actual, expected, strict=False):
        if a.shape != e.shape or not a.is_floating_point():
            continue
        diff = (a.double() - e.double()).abs()
        if diff.numel() == 0:
            continue
        finite = torch.isfinite(diff)
        if not bool(finite.all()):
            return float("inf"), float("inf")
        max_abs = max(max_abs, float(diff.max()))
        rel = diff / e.double().abs().clamp_min(1e-12)
        max_rel = max(max_rel, float(rel.max()))
    return max_abs, max_rel


def compare(actual: Any, expected: Any, tolerance: Tolerance) -> AccuracyResult:
    """``torch.testing.assert_close`` with the largest errors kept for the message."""
    import torch

    try:
        torch.testing.assert_close(actual, expected, atol=tolerance.atol, rtol=tolerance.rtol)
    except AssertionError as exc:
        max_abs, max_rel = _largest_error(_tensors(actual), _tensors(expected))
        first = first_line(exc, "outputs differ")
        return AccuracyResult(
            ok=False,
            max_abs_error=max_abs,
            max_rel_error=max_rel,
            message=(
                f"{first} (largest abs error {max_abs:.3g}, largest rel error {max_rel:.3g}; "
                f"atol={tolerance.atol:g}, rtol={tolerance.rtol:g})"
            ),
        )
    max_abs, max_rel = _largest_error(_tensors(actual), _tensors(expected))
    return AccuracyResult(ok=True, max_abs_error=max_abs, max_rel_error=max_rel)
