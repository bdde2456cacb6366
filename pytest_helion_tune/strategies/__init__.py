"""The strategy registry: built-in names, Helion's searches, and third-party entry points.

Third parties register a factory ``() -> Strategy`` in the ``pytest_helion_tune.strategies`` group.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable

from ..errors import StrategyError
from .base import Progress, SearchOutcome, SearchProblem, Seed, Strategy, TracePoint
from .helion_search import HelionSearch
from .llm import LLMGuided, LLMSeeded
from .seeded import SeededSearch

ENTRY_POINT_GROUP = "pytest_helion_tune.strategies"

Factory = Callable[[], Strategy]

_BUILTIN: dict[str, Factory] = {
    "lfbo": lambda: HelionSearch(
        "lfbo", "LFBOTreeSearch", "Helion's LFBOTreeSearch (its default autotuner)"
    ),
    "pattern": lambda: HelionSearch("pattern", "PatternSearch", "Helion's PatternSearch"),
    "de": lambda: HelionSearch(
        "de", "DifferentialEvolutionSearch", "Helion's DifferentialEvolutionSearch"
    ),
    "random": lambda: HelionSearch("random", "RandomSearch", "Helion's RandomSearch"),
    "seeded": SeededSearch,
    "llm-seeded": LLMSeeded,
    "llm": LLMGuided,
}

# Strategies that talk to an LLM when one is configured.
USES_LLM = frozenset({"llm-seeded", "llm"})

# Names users may ask for whose implementation is not in this build; asking gives this text.
_PLANNED: dict[str, str] = {}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> set[str]:
    """Every name ``--helion-tune`` accepts."""
    return set(_BUILTIN) | set(_PLANNED) | set(_entry_points())


def get(name: str) -> Strategy:
    if name in _BUILTIN:
        return _BUILTIN[name]()
    if name in _PLANNED:
        raise StrategyError(f"--helion-tune={name}: {_PLANNED[name]}")
    eps = _entry_points()
    if name in eps:
        try:
            factory = eps[name].load()
            strategy: Strategy = factory()
        except Exception as exc:
            raise StrategyError(
                f"--helion-tune={name}: entry point {eps[name].value} failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        return strategy
    raise StrategyError(
        f"--helion-tune={name}: unknown strategy; choose one of {', '.join(sorted(names()))}"
    )


def register(name: str, factory: Factory) -> None:
    """Adds a strategy for this process (tests and conftest files; packages use the entry point)."""
    _BUILTIN[name] = factory
    _PLANNED.pop(name, None)


__all__ = [
    "ENTRY_POINT_GROUP",
    "USES_LLM",
    "Progress",
    "SearchOutcome",
    "SearchProblem",
    "Seed",
    "Strategy",
    "TracePoint",
    "get",
    "names",
    "register",
]
