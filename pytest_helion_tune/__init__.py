"""pytest-helion-tune: autotune Helion kernels in your test suite and commit the configs.

Public names: ``tune_case``, ``TunedKernel``, ``use_configs``, and the error types; nothing heavy is imported here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CaseDefinitionError,
    ConfigNotApplicable,
    HelionTuneError,
    LLMError,
    OptionError,
    StoreError,
    StrategyError,
)
from .tuned import TunedKernel

if TYPE_CHECKING:
    from .case import tune_case
    from .runtime import use_configs

__version__ = "0.1.0"

__all__ = [
    "CaseDefinitionError",
    "ConfigNotApplicable",
    "HelionTuneError",
    "LLMError",
    "OptionError",
    "StoreError",
    "StrategyError",
    "TunedKernel",
    "__version__",
    "tune_case",
    "use_configs",
]

# Imported on first use: tune_case brings pytest, which a production program that
# only calls use_configs must never load.
_LAZY = {"tune_case": ".case", "use_configs": ".runtime"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
