"""RMS normalization over the last dimension, in Helion."""

from __future__ import annotations

import helion
import helion.language as hl
import torch


@helion.kernel(static_shapes=True)
def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    m, _n = x.size()
    out = torch.empty_like(x)
    for tile_m in hl.tile(m):
        row = x[tile_m, :].to(torch.float32)
        inv_rms = torch.rsqrt(torch.mean(row * row, dim=-1) + 1e-5)
        out[tile_m, :] = (row * inv_rms[:, None] * weight[:].to(torch.float32)).to(x.dtype)
    return out


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    row = x.float()
    inv_rms = torch.rsqrt(row.pow(2).mean(dim=-1, keepdim=True) + 1e-5)
    return (row * inv_rms * weight.float()).to(x.dtype)
