"""pytest-helion-tune: autotune Helion kernels in your test suite and commit the configs.

Public names: ``tune_case``, ``TunedKernel``, and the error types; nothing heavy is imported here.
"""

from __future__ import annotations

from .case import tune_case
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
]
