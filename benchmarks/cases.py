"""The benchmark suite's cases: kernel family, shape, dtype, why each was chosen, and its tiny
interpreter variant for CPU smoke runs; plus the strategies the full suite runs on each.

Shapes are written the way the kernel reads them: (m, n) for row kernels, (m, k, n) for matmul,
(rows, vocabulary) for cross_entropy. Cases marked ``control`` are expected to leave the default
config nothing to gain; the others are candidates for "the default is weak here", to be
confirmed or rejected by measurement (report.py lists both, with their numbers).
"""

from __future__ import annotations

import dataclasses

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

# What the full suite runs on every case; ``lfbo-full`` only where a case asks for it.
SUITE_STRATEGIES = ("default", "seeded", "lfbo", "seeded-warm")

# LFBO quick on an H100 (MEASURED.md, Helion 1.5.0), seconds: used by the deadline guard
# before this run has measured anything of its own.
_MEASURED_LFBO_S = {
    "matmul_4096x4096x4096": 90.0,
    "matmul_16x4096x4096": 209.0,
    "softmax_4096x8192": 158.0,
    "softmax_1024x65536": 138.0,
    "rms_norm_8192x8192": 121.0,
    "rms_norm_256x65536": 228.0,
}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    family: str
    shape: tuple[int, ...]
    dtype: str  # "fp16" / "bf16"
    why: str
    tiny: tuple[int, ...]  # the interpreter variant's shape (float32, CPU)
    control: bool = False  # expected: nothing beats the default beyond noise
    full_reference: bool = False  # the full suite also runs LFBO at its default effort here
    expected_s: dict[str, float] = dataclasses.field(default_factory=dict)

    def strategies(self) -> tuple[str, ...]:
        return (*SUITE_STRATEGIES, "lfbo-full") if self.full_reference else SUITE_STRATEGIES

    def torch_dtype(self, interpreter: bool) -> torch.dtype:
        # The interpreter runs numpy underneath, which has no bfloat16; fp32 keeps every
        # family's arithmetic exact enough for tight tolerances on tiny shapes.
        return torch.float32 if interpreter else DTYPES[self.dtype]

    def run_shape(self, interpreter: bool) -> tuple[int, ...]:
        return self.tiny if interpreter else self.shape


def _case(
    family: str,
    shape: tuple[int, ...],
    dtype: str,
    why: str,
    tiny: tuple[int, ...],
    **extra: object,
) -> Case:
    name = f"{family}_{'x'.join(str(s) for s in shape)}"
    expected = {"lfbo": _MEASURED_LFBO_S[name]} if name in _MEASURED_LFBO_S else {}
    return Case(name, family, shape, dtype, why, tiny, expected_s=expected, **extra)  # type: ignore[arg-type]


CASES: tuple[Case, ...] = (
    # -- matmul ---------------------------------------------------------------------------
    _case(
        "matmul",
        (4096, 4096, 4096),
        "fp16",
        "square and large, every SM busy; MEASURED.md: LFBO +2.1% over default",
        (32, 32, 32),
        control=True,
        full_reference=True,
    ),
    _case(
        "matmul",
        (16, 4096, 4096),
        "fp16",
        "small batch: 16 rows leave most output tiles empty; MEASURED.md: LFBO +9.7%",
        (8, 64, 32),
        full_reference=True,
    ),
    _case(
        "matmul",
        (32, 8192, 1024),
        "bf16",
        "skinny, long K, narrow N: few output tiles for 132 SMs and no split-K in the kernel",
        (8, 64, 16),
    ),
    _case(
        "matmul",
        (8, 4096, 11008),
        "bf16",
        "decode-like GEMV (8 rows, Llama MLP width): bandwidth-bound, tile shape decides",
        (4, 32, 48),
    ),
    _case(
        "matmul",
        (2047, 2049, 1023),
        "fp16",
        "odd sizes: unaligned rows (no vectorized or TMA loads), ragged edge tiles",
        (15, 17, 13),
    ),
    # -- softmax --------------------------------------------------------------------------
    _case(
        "softmax",
        (4096, 8192),
        "fp16",
        "many rows, moderate length; MEASURED.md: LFBO +1.3%",
        (8, 64),
        control=True,
    ),
    _case(
        "softmax",
        (1024, 65536),
        "fp16",
        "few rows, very long rows (looped reduction); MEASURED.md: LFBO +6.8%, Pattern +8.6%",
        (4, 256),
        full_reference=True,
    ),
    _case(
        "softmax",
        (128, 131072),
        "bf16",
        "fewer rows than SMs, 256 KiB rows: one program per row leaves SMs idle",
        (2, 512),
    ),
    _case(
        "softmax",
        (4095, 4097),
        "fp16",
        "odd sizes: unaligned rows, a ragged last row tile",
        (7, 65),
    ),
    # -- rms_norm -------------------------------------------------------------------------
    _case(
        "rms_norm",
        (8192, 8192),
        "fp16",
        "large and regular; MEASURED.md: LFBO +0.0%",
        (8, 64),
        control=True,
    ),
    _case(
        "rms_norm",
        (256, 65536),
        "fp16",
        "few rows with long reductions; MEASURED.md: LFBO +12.9%",
        (4, 256),
    ),
    _case(
        "rms_norm",
        (64, 131072),
        "bf16",
        "64 rows for 132 SMs, 256 KiB rows: the most idle SMs of the row kernels",
        (2, 512),
    ),
    # -- layer_norm -----------------------------------------------------------------------
    _case(
        "layer_norm",
        (4096, 4096),
        "bf16",
        "ordinary transformer shape",
        (8, 64),
        control=True,
    ),
    _case(
        "layer_norm",
        (256, 32768),
        "bf16",
        "few rows, long rows, two reductions per row (mean, variance)",
        (4, 256),
    ),
    # -- row_sum --------------------------------------------------------------------------
    _case(
        "row_sum",
        (128, 262144),
        "fp16",
        "128 rows of 512 KiB: a pure long reduction with fewer rows than SMs",
        (2, 1024),
    ),
    _case(
        "row_sum",
        (4095, 4097),
        "bf16",
        "odd sizes: unaligned rows, a ragged last row tile",
        (7, 65),
    ),
    # -- swiglu ---------------------------------------------------------------------------
    _case(
        "swiglu",
        (8192, 11008),
        "bf16",
        "large elementwise, bandwidth-bound at any sane tile",
        (8, 64),
        control=True,
    ),
    _case(
        "swiglu",
        (16, 14336),
        "bf16",
        "small batch: 16 rows against a 2-D tile, a kernel too short to fill the GPU",
        (2, 96),
    ),
    # -- cross_entropy --------------------------------------------------------------------
    _case(
        "cross_entropy",
        (4096, 32000),
        "bf16",
        "ordinary loss over a 32k vocabulary",
        (8, 64),
    ),
    _case(
        "cross_entropy",
        (64, 128256),
        "bf16",
        "decode-size loss over a 128k vocabulary: 64 rows of 250 KiB",
        (2, 512),
    ),
)

BY_NAME: dict[str, Case] = {c.name: c for c in CASES}

# The informative few for a short GPU session: the default is known to be weak on the
# first two (MEASURED.md), the third is the control a tuner must leave fast.
QUICK = ("rms_norm_256x65536", "matmul_16x4096x4096", "rms_norm_8192x8192")


def select(names: str | None) -> list[Case]:
    """Cases by comma-separated names (``None`` or "all": every case), in the suite's order."""
    if not names or names == "all":
        return list(CASES)
    if names == "quick":
        return [BY_NAME[n] for n in QUICK]
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in wanted]


def family_cases(family: str) -> list[Case]:
    return [c for c in CASES if c.family == family]
