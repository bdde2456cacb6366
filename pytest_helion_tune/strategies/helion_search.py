"""Helion's own searches (LFBOTreeSearch, PatternSearch, DE, Random) as strategies.

They are the references the project's own search is judged against; run as Helion ships them.
"""

from __future__ import annotations

import contextlib
import glob
import inspect
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import monitor
from ..configs import as_dict
from ..errors import StrategyError
from .base import SearchOutcome, SearchProblem, budget_note
from .helion_env import prepared, usable_seeds

# Under the Triton interpreter timings rank nothing: the search only has to run for real,
# on a handful of candidates, so that CI exercises the whole flow in seconds.
INTERPRETER_TRIM: dict[str, dict[str, Any]] = {
    "LFBOTreeSearch": {"max_generations": 1, "copies": 1, "polish_rounds": 0, "num_neighbors": 16},
    "PatternSearch": {"max_generations": 1, "copies": 1, "initial_population": 4},
    "DifferentialEvolutionSearch": {"population_size": 4, "max_generations": 1},
    "RandomSearch": {"count": 4},
}


@contextlib.contextmanager
def collected_metrics() -> Iterator[list[Any]]:
    """Collects the AutotuneMetrics Helion reports at the end of each (nested) search."""
    from helion.autotuner import metrics as helion_metrics

    seen: list[Any] = []
    helion_metrics.register_post_autotune_hook(seen.append)
    try:
        yield seen
    finally:
        hooks = getattr(helion_metrics, "_post_autotune_hooks", [])
        if seen.append in hooks:
            hooks.remove(seen.append)


def search_kwargs(cls: Any, problem: SearchProblem, settings: Any) -> dict[str, Any]:
    """The constructor arguments Helion itself would use for this effort, filtered by signature."""
    from helion.autotuner.effort_profile import get_effort_profile

    kwargs: dict[str, Any] = dict(
        cls.get_kwargs_from_profile(get_effort_profile(problem.effort), settings)
    )
    if cls.__name__ == "DifferentialEvolutionSearch":
        # Quick effort seeds DE from the default config alone, and DE then cannot draw its
        # mutation parents (Helion: "Sample larger than population"): pad with random configs.
        kwargs["best_available_pad_random"] = True
    if problem.interpreter:
        kwargs.update(INTERPRETER_TRIM.get(cls.__name__, {}))
    accepted = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    return kwargs


def metrics_outcome(metrics: list[Any], outcome: SearchOutcome) -> None:
    if not metrics:
        return
    last = metrics[-1]
    outcome.failures = {
        "compile": int(getattr(last, "num_compile_failures", 0) or 0),
        "accuracy": int(getattr(last, "num_accuracy_failures", 0) or 0),
        "worker": int(getattr(last, "num_worker_failures", 0) or 0),
    }
    tested = int(getattr(last, "num_configs_tested", 0) or 0)
    outcome.configs_tested = max(outcome.configs_tested, tested)


def log_files(base: Path, suffix: str = "*") -> list[Path]:
    """A search's log files with this suffix: ``<base>.<suffix>`` (Helion's) and
    ``<base>-<stage>.<suffix>`` (the stages of ``seeded``), sorted."""
    if not base.parent.is_dir():
        return []
    name = glob.escape(base.name)
    found = [*base.parent.glob(f"{name}.{suffix}"), *base.parent.glob(f"{name}-*.{suffix}")]
    return sorted(found)


@contextlib.contextmanager
def log_path(problem: SearchProblem) -> Iterator[Path]:
    """The base path of the search's logs (Helion writes ``<base>.csv`` and ``<base>.log``, the
    stages of ``seeded`` ``<base>-<stage>.csv``): ``problem.log_path`` if given, its earlier
    logs removed (Helion appends, and a re-run would read the last run's rows), else a
    temporary one. ``ValueError`` for a name with a dot: Helion derives its files with
    ``with_suffix``, which would cut the name at the dot and merge logs of different stages."""
    if problem.log_path:
        path = Path(problem.log_path)
        if "." in path.name:
            raise ValueError(f"log path {path}: the name must not contain a dot")
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in log_files(path):
            old.unlink(missing_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="helion-tune-") as tmp:
        yield Path(tmp) / "search"


class HelionSearch:
    """A Helion search class run as Helion ships it, with this plugin's seeds, timer and budget."""

    def __init__(self, name: str, class_name: str, description: str) -> None:
        self.name = name
        self.class_name = class_name
        self.description = description

    def search(self, problem: SearchProblem) -> SearchOutcome:
        from helion.autotuner import search_algorithms

        cls = search_algorithms.get(self.class_name)
        if cls is None:
            raise StrategyError(f"strategy {self.name}: this Helion has no {self.class_name}")
        notes: list[str] = []
        seeds = usable_seeds(problem.bound, list(problem.seeds), notes)
        start = time.perf_counter()
        with log_path(problem) as base:
            local = SearchProblem(**{**problem.__dict__, "log_path": str(base)})
            with prepared(local, [c for _, c in seeds]) as settings:
                kwargs = search_kwargs(cls, local, settings)
                with (
                    collected_metrics() as metrics,
                    monitor.follow(
                        base.with_suffix(".csv"), problem.progress, time.perf_counter
                    ) as log,
                ):
                    best = cls(problem.bound, problem.args, **kwargs).autotune(skip_cache=True)
        outcome = SearchOutcome(
            config=as_dict(best),
            configs_tested=log.tested,
            best_ms=log.best_ms,
            trace=log.trace,
            candidates=log.candidates,
            seed_source=", ".join(sorted({s.source for s, _ in seeds})) or "default config",
            notes=notes,
        )
        metrics_outcome(metrics, outcome)
        outcome.configs_compiled = log.started or outcome.configs_tested
        spent = budget_note(outcome.configs_tested, time.perf_counter() - start, problem.budget_s)
        if spent:
            notes.append(spent)
        return outcome
