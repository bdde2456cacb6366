"""Device and dtype for the example tests: fp16 on a GPU, float32 under the CPU interpreter."""

from __future__ import annotations

import torch

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
DTYPE = torch.float16 if ON_GPU else torch.float32
