"""The benchmark's kernel families: Helion kernels, their eager PyTorch versions, accuracy references,
input builders and roofline counts (bytes moved, FLOPs).

The kernels are written the way a user writes them (one program per row tile, no split reductions):
the suite measures how well a tuner serves such kernels, not how clever the kernels are.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helion
import helion.language as hl
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
# matmul, softmax and rms_norm are the example project's own kernels: the suite tunes the
# same source users see in the README, not a copy that could drift from it.
if str(ROOT / "example_project") not in sys.path:
    sys.path.insert(0, str(ROOT / "example_project"))

from example_kernels.matmul import matmul  # noqa: E402
from example_kernels.rms_norm import rms_norm, rms_norm_reference  # noqa: E402
from example_kernels.softmax import softmax  # noqa: E402

EPS = 1e-5


@helion.kernel(static_shapes=True)
def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    m, _n = x.size()
    out = torch.empty_like(x)
    for tile_m in hl.tile(m):
        row = x[tile_m, :].to(torch.float32)
        mean = torch.mean(row, dim=-1)
        centered = row - mean[:, None]
        var = torch.mean(centered * centered, dim=-1)
        normed = centered * torch.rsqrt(var + 1e-5)[:, None]
        out[tile_m, :] = (normed * weight[:].to(torch.float32) + bias[:].to(torch.float32)).to(
            x.dtype
        )
    return out


@helion.kernel(static_shapes=True)
def row_sum(x: torch.Tensor) -> torch.Tensor:
    m, _n = x.size()
    out = torch.empty([m], dtype=x.dtype, device=x.device)
    for tile_m in hl.tile(m):
        out[tile_m] = torch.sum(x[tile_m, :].to(torch.float32), dim=-1).to(x.dtype)
    return out


@helion.kernel(static_shapes=True)
def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(gate)
    for tile in hl.tile(out.size()):
        g = gate[tile].to(torch.float32)
        out[tile] = (g * torch.sigmoid(g) * up[tile].to(torch.float32)).to(gate.dtype)
    return out


@helion.kernel(static_shapes=True, ignore_warnings=[helion.exc.TensorOperationInWrapper])
def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    n, v = logits.size()
    losses = torch.empty([n], dtype=torch.float32, device=logits.device)
    flat = logits.view(-1)
    for tile_n in hl.tile(n):
        # The target logit by one flat load per row: the kernel stays one pass over the rows.
        target = hl.load(flat, [tile_n.index * v + labels[tile_n]]).to(torch.float32)
        rows = logits[tile_n, :].to(torch.float32)
        top = torch.amax(rows, dim=-1)
        lse = torch.log(torch.sum(torch.exp(rows - top[:, None]), dim=-1)) + top
        losses[tile_n] = lse - target
    return losses


# -- eager versions (timed) and references (accuracy) ----------------------------------


def _softmax_eager(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, dim=-1)


def _softmax_reference(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x.float(), dim=-1).to(x.dtype)


def _matmul_eager(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.matmul(x, y)


def _matmul_reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.matmul(x.float(), y.float()).to(x.dtype)


def _rms_norm_eager(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.shape[-1],), weight, eps=EPS)


def _layer_norm_eager(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), weight, bias, eps=EPS)


def _layer_norm_reference(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    return F.layer_norm(x.float(), (x.shape[-1],), weight.float(), bias.float(), eps=EPS).to(
        x.dtype
    )


def _row_sum_eager(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=-1)


def _row_sum_reference(x: torch.Tensor) -> torch.Tensor:
    return x.float().sum(dim=-1).to(x.dtype)


def _swiglu_eager(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def _swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return (F.silu(gate.float()) * up.float()).to(gate.dtype)


def _cross_entropy_eager(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels, reduction="none")


def _cross_entropy_reference(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels, reduction="none")


# -- inputs and roofline counts ------------------------------------------------------------


def _randn(shape: tuple[int, ...], dtype: torch.dtype, device: str, gen: torch.Generator) -> Any:
    return torch.randn(shape, dtype=torch.float32, device=device, generator=gen).to(dtype)


def _rows_inputs(
    shape: tuple[int, ...], dtype: torch.dtype, device: str, gen: Any
) -> tuple[Any, ...]:
    return (_randn(shape, dtype, device, gen),)


def _norm_inputs(
    shape: tuple[int, ...], dtype: torch.dtype, device: str, gen: Any
) -> tuple[Any, ...]:
    m, n = shape
    return (_randn((m, n), dtype, device, gen), _randn((n,), dtype, device, gen))


def _layer_norm_inputs(
    shape: tuple[int, ...], dtype: torch.dtype, device: str, gen: Any
) -> tuple[Any, ...]:
    m, n = shape
    return (
        _randn((m, n), dtype, device, gen),
        _randn((n,), dtype, device, gen),
        _randn((n,), dtype, device, gen),
    )


def _matmul_inputs(
    shape: tuple[int, ...], dtype: torch.dtype, device: str, gen: Any
) -> tuple[Any, ...]:
    m, k, n = shape
    return (_randn((m, k), dtype, device, gen), _randn((k, n), dtype, device, gen))


def _swiglu_inputs(
    shape: tuple[int, ...], dtype: torch.dtype, device: str, gen: Any
) -> tuple[Any, ...]:
    return (_randn(shape, dtype, device, gen), _randn(shape, dtype, device, gen))


def _cross_entropy_inputs(
    shape: tuple[int, ...], dtype: torch.dtype, device: str, gen: Any
) -> tuple[Any, ...]:
    n, v = shape
    labels = torch.randint(0, v, (n,), device=device, generator=gen, dtype=torch.int64)
    return (_randn((n, v), dtype, device, gen), labels)


@dataclasses.dataclass(frozen=True)
class Family:
    """One kernel family: the Helion kernel and everything the harness needs around it.

    ``shape`` is the case's tuple: (m, n) for row kernels, (m, k, n) for matmul.
    ``bytes_moved`` counts inputs read once and outputs written once (the memory roofline);
    ``flops`` is nonzero only where compute can bound the kernel (matmul).
    """

    name: str
    kernel: Any
    eager: Callable[..., Any]
    reference: Callable[..., Any]
    make_inputs: Callable[[tuple[int, ...], torch.dtype, str, Any], tuple[Any, ...]]
    bytes_moved: Callable[[tuple[int, ...], int], int]
    flops: Callable[[tuple[int, ...]], int] = lambda _shape: 0
    shape_names: tuple[str, ...] = ("m", "n")

    def inputs(
        self, shape: tuple[int, ...], dtype: torch.dtype, device: str, seed: int = 0
    ) -> tuple[Any, ...]:
        """The case's arguments, the same on every run: a fixed seed, a private generator."""
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
        return self.make_inputs(shape, dtype, device, gen)


def _mn(shape: tuple[int, ...]) -> int:
    return shape[0] * shape[1]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "matmul",
            matmul,
            _matmul_eager,
            _matmul_reference,
            _matmul_inputs,
            lambda s, e: (s[0] * s[1] + s[1] * s[2] + s[0] * s[2]) * e,
            flops=lambda s: 2 * s[0] * s[1] * s[2],
            shape_names=("m", "k", "n"),
        ),
        Family(
            "softmax",
            softmax,
            _softmax_eager,
            _softmax_reference,
            _rows_inputs,
            lambda s, e: 2 * _mn(s) * e,
        ),
        Family(
            "rms_norm",
            rms_norm,
            _rms_norm_eager,
            rms_norm_reference,
            _norm_inputs,
            lambda s, e: (2 * _mn(s) + s[1]) * e,
        ),
        Family(
            "layer_norm",
            layer_norm,
            _layer_norm_eager,
            _layer_norm_reference,
            _layer_norm_inputs,
            lambda s, e: (2 * _mn(s) + 2 * s[1]) * e,
        ),
        Family(
            "row_sum",
            row_sum,
            _row_sum_eager,
            _row_sum_reference,
            _rows_inputs,
            lambda s, e: (_mn(s) + s[0]) * e,
        ),
        Family(
            "swiglu",
            swiglu,
            _swiglu_eager,
            _swiglu_reference,
            _swiglu_inputs,
            lambda s, e: 3 * _mn(s) * e,
        ),
        Family(
            "cross_entropy",
            cross_entropy,
            _cross_entropy_eager,
            _cross_entropy_reference,
            _cross_entropy_inputs,
            # logits read once, int64 labels read, float32 losses written
            lambda s, e: _mn(s) * e + s[0] * 8 + s[0] * 4,
            shape_names=("n", "v"),
        ),
    )
}
