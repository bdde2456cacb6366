"""A Helion kernel that names ``committed_autotuner_fn`` itself, so import order cannot matter.

Imported by the demo after ``use_configs`` and never scanned for.
"""

from __future__ import annotations

import helion
import helion.language as hl
import torch

from pytest_helion_tune.runtime import committed_autotuner_fn


@helion.kernel(static_shapes=True, autotuner_fn=committed_autotuner_fn)
def decorated_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size()):
        out[tile] = x[tile] + y[tile]
    return out
