"""The LLM strategies: ``llm`` (Helion's LLMGuidedSearch talking through this plugin's client)
and ``llm-seeded`` (one proposal round, then the project's seeded search; falls back offline).

An LLM that is missing, slow, down or talking nonsense never fails a case here: the search goes
on with what it has, and the outcome's notes say what happened.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import monitor
from ..configs import as_dict
from ..errors import LLMError, StrategyError
from ..llm import prompts
from ..llm.client import Message
from .base import Progress, SearchOutcome, SearchProblem, Seed
from .helion_env import prepared, usable_seeds
from .helion_search import collected_metrics, log_path, metrics_outcome, search_kwargs
from .seeded import SeededSearch
from .worker import attach

NO_LLM = (
    "--helion-tune=llm needs an LLM: set HELION_LLM_PROVIDER (anthropic, openai or "
    "openai-chat), HELION_LLM_MODEL and HELION_LLM_API_BASE/HELION_LLM_API_KEY as needed, "
    "or use --helion-tune=llm-seeded, which works without one (see README)"
)

# `llm`: at least this many rounds at quick effort (Helion's quick profile asks once, which
# leaves no round for the measured results to come back), and the stop margin: a round
# that improves the best by less ends the search.
MIN_ROUNDS = 3
MIN_ROUND_GAIN = 0.01

# Under the interpreter timings rank nothing: the flow only has to run, on few candidates.
_INTERPRETER_GUIDED = {"max_rounds": 2, "initial_random_configs": 2}

# Keyword arguments through which Helion would pick its own transport (read from
# HELION_LLM_* by get_kwargs_from_profile); our client replaces that transport, and
# Helion rejects our provider names (openai-chat) outright.
_TRANSPORT_KWARGS = ("provider", "api_base", "api_key", "effort_level", "fast_mode")

_REASON_CHARS = 200
_HELION_DEFAULT_REQUEST_TIMEOUT_S = 120.0


def _one_line(exc: BaseException, client: Any) -> str:
    """A short reason for the report; the key is redacted where the client knows it."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(exc, LLMError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    settings = getattr(client, "settings", None)
    redact = getattr(settings, "redact", None)
    if callable(redact):
        text = str(redact(text))
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


def _model_name(client: Any) -> str:
    model = getattr(getattr(client, "settings", None), "model", None)
    return str(model) if model else type(client).__name__


def _client_total_s(client: Any) -> float | None:
    value = getattr(getattr(client, "settings", None), "total_timeout_s", None)
    return float(value) if isinstance(value, int | float) else None


class LLMBudget:
    """Every LLM call of one case goes through ``call``, which never waits past the case's cap.

    The client bounds each request by its own timeouts; the cap bounds all of a case's
    requests together (``SearchProblem.llm_budget_s``, and the case budget).
    """

    def __init__(self, client: Any, cap_s: float | None) -> None:
        self.client = client
        self.cap_s = cap_s
        self.spent_s = 0.0
        self.calls = 0
        self.replies = 0

    def remaining_s(self) -> float | None:
        return None if self.cap_s is None else self.cap_s - self.spent_s

    def call(self, messages: Sequence[Message]) -> str:
        """The reply text; raises ``LLMError`` for any failure, the cap included."""
        remaining = self.remaining_s()
        if remaining is not None and remaining <= 0:
            raise LLMError(f"the LLM time budget of {self.cap_s:g} s is spent")
        self.calls += 1
        start = time.monotonic()
        try:
            reply = _within(lambda: self.client.complete(list(messages)), remaining)
        except LLMError:
            raise
        except Exception as exc:  # a client is third-party code: any failure is an LLM failure
            raise LLMError(_one_line(exc, self.client)) from None
        finally:
            self.spent_s += time.monotonic() - start
        if not isinstance(reply, str):
            raise LLMError(f"the LLM client returned {type(reply).__name__}, not text")
        self.replies += 1
        return reply


def _within(fn: Callable[[], str], timeout_s: float | None) -> str:
    """``fn()``, or ``LLMError`` once ``timeout_s`` passes.

    A daemon thread rather than an executor: a request left behind keeps running until the
    client's own timeout ends it, and must not hold up the interpreter's exit meanwhile.
    """
    if timeout_s is None:
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["reply"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, name="helion-tune-llm", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise LLMError(f"no reply within the LLM time budget ({timeout_s:.3g} s left of it)")
    if "error" in box:
        raise box["error"]
    reply: str = box["reply"]
    return reply


def _cap(problem: SearchProblem) -> float | None:
    caps = [c for c in (problem.llm_budget_s, problem.budget_s) if c is not None and c > 0]
    return min(caps) if caps else None


def _sources(seeds: Sequence[tuple[Seed, Any]]) -> list[str]:
    return list(dict.fromkeys(seed.source for seed, _ in seeds))


def _seeded_from(sources: Sequence[str]) -> str:
    return f"{', '.join(sources)} and heuristics" if sources else "heuristics"


# -- llm ------------------------------------------------------------------------------


@dataclasses.dataclass
class _GuidedState:
    """What the LLMGuidedSearch subclass reports back to the strategy."""

    budget: LLMBudget
    seeds: list[tuple[str, Any]]
    proposals: prompts.Proposals = dataclasses.field(
        default_factory=lambda: prompts.Proposals(configs=[])
    )
    used: int = 0
    failure: str = ""
    failed_round: int = -1
    stop_reason: str = ""


@functools.cache
def guided_search_class() -> Any:
    """Helion's LLMGuidedSearch with this plugin's client, cached seeds, counts and stop rule.

    Built on first use so that importing this module never imports Helion (Triton must see
    ``TRITON_INTERPRET`` first).
    """
    from helion.autotuner.llm_search import LLMGuidedSearch

    class PluginLLMGuidedSearch(LLMGuidedSearch):  # type: ignore[misc]
        plugin: _GuidedState

        def _call_llm(self, messages: list[dict[str, str]]) -> str:
            start = time.perf_counter()
            try:
                if self.plugin.failure:
                    raise LLMError(f"not asking again after: {self.plugin.failure}")
                return self.plugin.budget.call(messages)
            finally:
                self._llm_call_times.append(time.perf_counter() - start)

        def _build_initial_prompt(self) -> str:
            return prompts.initial_prompt(
                self.kernel,
                self.args,
                seeds=self.plugin.seeds,
                configs_per_round=self.configs_per_round,
                compile_timeout_s=self.settings.autotune_compile_timeout,
            )

        def _parse_configs(self, response: str) -> list[Any]:
            found = prompts.parse_proposals(response, self.config_spec, self._default_config_dict)
            self.plugin.proposals.add(found)
            self.plugin.used += len(found.configs)
            self.log(
                f"Parsed {len(found.configs)} valid configs from LLM response "
                f"({found.dropped} dropped as illegal, {found.duplicates} duplicates)"
            )
            if not found.found_list:
                self.log.warning("Failed to parse LLM response as a config list")
            return list(found.configs)

        def _note_failure(self, round_num: int, exc: BaseException) -> None:
            if not self.plugin.failure:
                self.plugin.failure = _one_line(exc, self.plugin.budget.client)
                self.plugin.failed_round = round_num
            self.log.warning(f"LLM round {round_num} failed: {self.plugin.failure}")

        def _wait_for_initial_llm_response(
            self, future: concurrent.futures.Future[str] | None
        ) -> str | None:
            # Helion makes this fatal; here the round-0 seeds already measured are a result.
            try:
                reply: str | None = super()._wait_for_initial_llm_response(future)
            except (LLMError, concurrent.futures.TimeoutError) as exc:
                self._note_failure(0, exc)
                return None
            return reply

        def _run_refinement_round(self, round_num: int, state: Any) -> bool:
            if self.plugin.failure:
                return True
            try:
                stop: bool = super()._run_refinement_round(round_num, state)
            except LLMError as exc:  # raised only by _call_llm: the search ends on what it has
                self._note_failure(round_num, exc)
                return True
            return stop

        def _update_early_stop_state(self, state: Any) -> bool:
            # One round below the margin ends the search (Helion waits for two).
            current, previous = self.best.perf, state.prev_best_perf
            state.prev_best_perf = current
            if math.isfinite(current) and math.isfinite(previous) and previous > 0:
                gain = (previous - current) / previous
                if gain < self.min_improvement_delta:
                    self.plugin.stop_reason = (
                        f"a round gained {gain * 100:.1f}% < {self.min_improvement_delta * 100:g}%"
                    )
                    self.log(f"Early stopping: {self.plugin.stop_reason}")
                    return True
            return False

    return PluginLLMGuidedSearch


class LLMGuided:
    """``llm``: rounds of LLM proposals, measured, with the results fed back (Helion's loop)."""

    name = "llm"
    description = (
        "LLM proposals only: rounds of propose, benchmark, feed back (Helion's LLMGuidedSearch)"
    )

    def search(self, problem: SearchProblem) -> SearchOutcome:
        if problem.llm is None:
            raise StrategyError(NO_LLM)
        cls = guided_search_class()
        notes: list[str] = []
        seeds = usable_seeds(problem.bound, list(problem.seeds), notes)
        cap = _cap(problem)
        state = _GuidedState(
            budget=LLMBudget(problem.llm, cap),
            seeds=[(seed.source, config) for seed, config in seeds],
        )
        with log_path(problem) as base:
            local = dataclasses.replace(problem, log_path=str(base))
            # ``prepared`` keeps the kernel's own seed configs, so Helion's prompt shows them.
            with prepared(local, []) as settings:
                kwargs = search_kwargs(cls, local, settings)
                for name in _TRANSPORT_KWARGS:
                    kwargs.pop(name, None)
                rounds = int(kwargs.get("max_rounds", 1) or 1)
                if problem.effort == "quick":
                    rounds = max(rounds, MIN_ROUNDS)
                # Round 0's reply is awaited with this timeout; our own cap should speak first.
                wait_s = cap or _client_total_s(problem.llm) or _HELION_DEFAULT_REQUEST_TIMEOUT_S
                kwargs.update(
                    model=_model_name(problem.llm),
                    max_rounds=rounds,
                    min_improvement_delta=MIN_ROUND_GAIN,
                    request_timeout_s=wait_s + 2.0,
                )
                if problem.interpreter:
                    kwargs.update(_INTERPRETER_GUIDED)
                with (
                    collected_metrics() as metrics,
                    monitor.follow(
                        base.with_suffix(".csv"), problem.progress, time.perf_counter
                    ) as log,
                ):
                    search = attach(cls(problem.bound, problem.args, **kwargs))
                    search.plugin = state
                    best = search.autotune(skip_cache=True)
        sources = _sources(seeds)
        outcome = SearchOutcome(
            config=as_dict(best),
            configs_tested=log.tested,
            best_ms=log.best_ms,
            trace=log.trace,
            candidates=log.candidates,
            seed_source=", ".join(["llm", *sources])
            if state.used
            else "default and random configs (the LLM gave none)",
            notes=notes,
        )
        metrics_outcome(metrics, outcome)
        outcome.configs_compiled = log.started or outcome.configs_tested
        line = prompts.summary(state.budget.replies, state.proposals)
        line += f", {state.budget.spent_s:.1f} s waiting for the LLM"
        if state.stop_reason:
            line += f"; stopped: {state.stop_reason}"
        notes.insert(0, line)
        if state.failure:
            notes.insert(
                1,
                f"LLM failed in round {state.failed_round} ({state.failure}): "
                "the search ended on the configs measured so far",
            )
        return outcome


# -- llm-seeded -------------------------------------------------------------------------


class LLMSeeded:
    """``llm-seeded``: one LLM proposal round, then the project's seeded search.

    The LLM's configs go first among the seeds, the cached ones after; without an LLM, or
    when it fails, the cached seeds and heuristics seed the same search.
    """

    name = "llm-seeded"
    description = (
        "LLM proposals plus cached seeds, refined by the project's seeded search "
        "(runs as seeded when no LLM is configured or it fails)"
    )

    def __init__(self, configs_per_round: int = prompts.DEFAULT_CONFIGS_PER_ROUND) -> None:
        self.configs_per_round = configs_per_round

    def search(self, problem: SearchProblem) -> SearchOutcome:
        inner = SeededSearch(name=self.name)
        cache_seeds = usable_seeds(problem.bound, list(problem.seeds), [])
        seeded_from = _seeded_from(_sources(cache_seeds))
        if problem.llm is None:
            outcome = inner.search(problem)
            outcome.notes.insert(0, f"offline: no LLM configured; seeded from {seeded_from}")
            return outcome
        start = time.monotonic()
        notes: list[str] = []
        llm_seeds = self.propose(problem, cache_seeds, notes, seeded_from)
        budget = problem.budget_s
        if budget is not None and budget > 0:
            budget = max(1.0, budget - (time.monotonic() - start))
        local = dataclasses.replace(problem, seeds=(*llm_seeds, *problem.seeds), budget_s=budget)
        outcome = inner.search(local)
        outcome.notes[:0] = notes
        return outcome

    def propose(
        self,
        problem: SearchProblem,
        cache_seeds: Sequence[tuple[Seed, Any]],
        notes: list[str],
        seeded_from: str = "heuristics",
    ) -> list[Seed]:
        """One proposal round: the LLM's legal configs as ``Seed(config, "llm")``, best effort.

        Any failure (prompt, transport, timeout, reply) becomes a note and no seeds.
        """
        client = problem.llm
        budget = LLMBudget(client, _cap(problem))
        if problem.progress is not None:
            problem.progress(Progress(phase="llm: asking for configs"))
        try:
            messages = prompts.initial_messages(
                problem.bound,
                problem.args,
                seeds=[(seed.source, config) for seed, config in cache_seeds],
                configs_per_round=self.configs_per_round,
            )
        except Exception as exc:  # Helion's prompt code on an unusual kernel: no LLM round
            notes.append(
                f"LLM prompt not built ({_one_line(exc, client)}): seeded from {seeded_from}"
            )
            return []
        try:
            reply = budget.call(messages)
        except LLMError as exc:
            notes.append(f"LLM unreachable ({_one_line(exc, client)}): seeded from {seeded_from}")
            return []
        try:
            found = prompts.parse_proposals(reply, problem.bound.config_spec)
        except Exception as exc:
            found = prompts.Proposals(configs=[], found_list=False)
            reason = _one_line(exc, client)
        else:
            reason = ""
        if not found.configs:
            if not found.found_list:
                reason = reason or f"no JSON config list in {len(reply)} characters"
            else:
                reason = f"all {found.offered} proposals illegal" + (
                    f", first: {found.reasons[0]}" if found.reasons else ""
                )
            notes.append(f"LLM reply unusable ({reason}): seeded from {seeded_from}")
            return []
        line = prompts.summary(1, found, used=len(found.configs))
        notes.append(f"{line}, {budget.spent_s:.1f} s waiting for the LLM")
        return [Seed(as_dict(config), "llm") for config in found.configs]
