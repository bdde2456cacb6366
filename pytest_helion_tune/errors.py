"""The exceptions users see.

Every message names what it is about (the test, option or file) in one line.
"""

from __future__ import annotations


def first_line(exc: BaseException, default: str = "") -> str:
    """The first line of an exception's message (Helion's run to pages), or ``default``."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else (default or type(exc).__name__)


class HelionTuneError(Exception):
    """Base of every error this package raises on purpose."""


class CaseDefinitionError(HelionTuneError):
    """A ``@tune_case`` is malformed: a missing argument, a factory that fails."""


class OptionError(HelionTuneError):
    """A command-line or ini option has a value that cannot be used."""


class StoreError(HelionTuneError):
    """A cache or baseline file cannot be read or written."""


class DamagedFileError(StoreError):
    """A store file is not valid; it has been (or must be) moved aside."""


class StrategyError(HelionTuneError):
    """A strategy is unknown, unavailable here, or failed to produce a config.

    A search that ran carries what it tried: ``configs_tested`` and ``failures`` by kind.
    """

    def __init__(
        self, message: str, *, configs_tested: int = 0, failures: dict[str, int] | None = None
    ) -> None:
        super().__init__(message)
        self.configs_tested = configs_tested
        self.failures = dict(failures or {})


class ConfigNotApplicable(HelionTuneError):
    """A tuned config cannot be compiled for the arguments it was called with."""


class LLMError(HelionTuneError):
    """An LLM provider could not be reached or answered with something unusable."""
