"""Prepares a BoundKernel's shared Helion settings for one search and restores them afterwards.

Every strategy goes through here, so seed, budget, effort, accuracy and timing reach Helion alike.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

from .. import interpreter
from ..configs import validate
from ..timing import installed
from .base import SearchProblem, Seed

_FIELDS = (
    "autotune_random_seed",
    "autotune_effort",
    "autotune_budget_seconds",
    "autotune_baseline_fn",
    "autotune_baseline_atol",
    "autotune_baseline_rtol",
    "autotune_progress_bar",
    "autotune_ignore_errors",
    "autotune_seed_configs",
    "autotune_log",
    "autotune_accuracy_check",
    "autotune_precompile",
    "autotune_config_filter",
    "autotune_benchmark_subprocess",
    "autotune_compile_timeout",
    "autotune_rebenchmark_threshold",
)
HELION_COMPILE_TIMEOUT_DEFAULT_S = 60  # Helion 1.5's autotune_compile_timeout; above it, the user's


def usable_seeds(
    bound: Any, seeds: list[Seed] | tuple[Seed, ...], notes: list[str]
) -> list[tuple[Seed, Any]]:
    """Seeds this kernel's config spec accepts; the rest are dropped with a note, never an error.

    A config written by another Helion version can carry keys this one rejects.
    """
    out: list[tuple[Seed, Any]] = []
    seen: set[str] = set()
    for seed in seeds:
        try:
            config = validate(bound, seed.config)
        except ValueError as exc:
            notes.append(f"seed from {seed.source} dropped: {exc}")
            continue
        if interpreter.active() and not interpreter.usable_config(config):
            continue
        text = repr(sorted(config.config.items()))
        if text not in seen:
            seen.add(text)
            out.append((seed, config))
    return out


def settle_compile_cache_dir(bound: Any) -> None:
    """Sets ``TRITON_CACHE_DIR`` (when unset) where Helion puts it at a kernel's first compile,
    before a search begins.

    Helion sets it lazily, in ``compile_config``. With a baseline function (this package always
    passes the eager reference) a search's first compile happens inside the search, under its
    ``patch.dict(os.environ)``, which takes the variable away again when the search ends. Every
    compile after it in this process (the re-timing, the summary's timing, the test's first call)
    then went to Triton's default cache and compiled again what the precompile step had put in
    Helion's."""
    env = getattr(bound, "env", None)
    setup = getattr(getattr(env, "backend", None), "setup_compile_cache_dir", None)
    if setup is None:  # another Helion: it keeps its own ways
        return
    index = getattr(getattr(env, "device", None), "index", None)
    with contextlib.suppress(Exception):
        setup(index if index is not None else 0)


def lowered_compile_timeout(current: int, seconds: float) -> int:
    """Helion's ``autotune_compile_timeout`` lowered to ``seconds`` (rounded up), never raised;
    a timeout the user raised above Helion's default (slow compiles on their machine, say) is
    left as it is."""
    if current > HELION_COMPILE_TIMEOUT_DEFAULT_S:
        return current
    return min(current, max(1, math.ceil(seconds)))


def author_seeds(raw: Any) -> list[Any]:
    """A kernel's own ``autotune_seed_configs`` (None, one config or a list) as a list."""
    if raw is None:
        return []
    if isinstance(raw, list | tuple):
        return list(raw)
    return [raw]


@contextlib.contextmanager
def prepared(
    problem: SearchProblem, seed_configs: list[Any], compile_timeout_s: float | None = None
) -> Iterator[Any]:
    """Yields the bound kernel's settings, set up for this problem; restores them on exit.

    Settings are shared by every BoundKernel of a kernel, and some searches change them
    (the adaptive compile timeout), so each case starts from the user's own values.
    ``compile_timeout_s`` lowers the compile timeout for this search (``lowered_compile_timeout``).
    """
    settle_compile_cache_dir(problem.bound)
    settings = problem.bound.settings
    saved = {name: getattr(settings, name) for name in _FIELDS if hasattr(settings, name)}
    saved_env = os.environ.get("HELION_SKIP_CACHE")
    try:
        settings.autotune_random_seed = problem.seed
        settings.autotune_effort = problem.effort
        settings.autotune_budget_seconds = (
            None if problem.budget_s is None else max(1, math.ceil(problem.budget_s))
        )
        settings.autotune_baseline_fn = problem.reference
        settings.autotune_baseline_atol = problem.tolerance.atol
        settings.autotune_baseline_rtol = problem.tolerance.rtol
        settings.autotune_accuracy_check = True
        settings.autotune_progress_bar = False
        # A candidate that raises is a failed candidate, not a failed session.
        settings.autotune_ignore_errors = True
        # The kernel's own ``autotune_seed_configs`` stay, ahead of this problem's seeds.
        own = author_seeds(saved.get("autotune_seed_configs"))
        settings.autotune_seed_configs = [*own, *(c for c in seed_configs if c not in own)] or None
        settings.autotune_log = problem.log_path
        if compile_timeout_s is not None:
            settings.autotune_compile_timeout = lowered_compile_timeout(
                settings.autotune_compile_timeout, compile_timeout_s
            )
        if problem.interpreter:
            interpreter.prepare_settings(settings)
        # Helion's own on-disk cache would seed the search behind our back (and differently
        # on every machine); this plugin's store is the only source of seeds.
        os.environ["HELION_SKIP_CACHE"] = "1"
        with installed(problem.bound, problem.timer):
            yield settings
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        if saved_env is None:
            os.environ.pop("HELION_SKIP_CACHE", None)
        else:
            os.environ["HELION_SKIP_CACHE"] = saved_env
