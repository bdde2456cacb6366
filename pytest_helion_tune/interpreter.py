"""What it takes for real Helion kernels and searches to run under ``TRITON_INTERPRET=1``.

Active only under the interpreter: libdevice routing, no fork precompile, no persistent pid types.
"""

from __future__ import annotations

import os
from typing import Any

_patched = False


def active() -> bool:
    return os.environ.get("TRITON_INTERPRET", "") not in ("", "0")


def enable_before_import() -> bool:
    """Turns the interpreter on where no GPU exists, before Triton is imported by test modules.

    Returns whether it is on. Without a GPU, Triton has no driver and nothing else could run.
    """
    if active():
        return True
    if "TRITON_INTERPRET" in os.environ:
        return False  # the user said 0 explicitly
    import torch

    if torch.cuda.is_available():
        return False
    os.environ["TRITON_INTERPRET"] = "1"
    return True


def patch_libdevice() -> None:
    """Routes Triton's libdevice stubs to ``tl.math``.

    Without a GPU backend the stubs in ``triton.language.extra.libdevice`` return None, so
    generated code calling ``libdevice.exp`` (softmax, rms_norm's rsqrt) fails.
    """
    global _patched
    if _patched or not active():
        return
    import triton.language as tl
    import triton.language.extra.libdevice as libdevice

    def route(name: str) -> Any:
        # Looked up at call time: the interpreter swaps tl.math's functions while it runs.
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(tl.math, name)(*args, **kwargs)

        return call

    for name in dir(libdevice):
        if not name.startswith("_") and callable(getattr(tl.math, name, None)):
            setattr(libdevice, name, route(name))
    _patched = True


def _flat_only(config: Any) -> Any:
    # Persistent pid types ask the driver for the SM count, which the interpreter lacks.
    inner = getattr(config, "config", config)
    return config if inner.get("pid_type", "flat") == "flat" else None


def prepare_settings(settings: Any) -> None:
    """Settings a search needs under the interpreter (the caller snapshots and restores them)."""
    settings.autotune_precompile = None  # fork precompile needs a compiled Triton function
    settings.autotune_config_filter = _flat_only
    settings.autotune_benchmark_subprocess = False


def usable_config(config: Any) -> bool:
    return _flat_only(config) is not None
