"""``TuneSession``: decides per case whether to tune or read the cache, runs it, keeps the results.

The plugin module only forwards hooks here; the stores, strategies and timers are handed in.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import interpreter
from . import key as keys
from .accuracy import compare
from .cache import ConfigEntry, ConfigStore, Lookup, now_iso
from .case import TuneCase
from .configs import as_dict, describe
from .errors import HelionTuneError, StrategyError
from .options import Options
from .results import CaseResult
from .strategies import Progress, SearchOutcome, SearchProblem, Seed
from .strategies import get as get_strategy
from .timing import CudaTimer, Timer, WallClockTimer
from .tuned import TunedKernel

Say = Callable[[str], None]


@dataclasses.dataclass
class CaseOutcome:
    result: CaseResult
    tuned: TunedKernel


def _seed_source(entry: ConfigEntry, key: keys.CaseKey) -> str:
    if entry.key.specialization == key.specialization and entry.key.device == key.device:
        return "cache: previous source or toolchain"
    if entry.key.device != key.device:
        return "cache: other device"
    return "cache: other shape"


class TuneSession:
    """Owns one pytest run's tuning: options, store, timers, and every case's result."""

    def __init__(
        self,
        options: Options,
        *,
        say: Say = lambda _line: None,
        progress: Callable[[str, Progress], None] | None = None,
        timer_for: Callable[[keys.DeviceInfo], Timer | None] = lambda _d: None,
        log_dir: Callable[[], Path | None] = lambda: None,
        worker: str = "",
    ) -> None:
        self.options = options
        self.store = ConfigStore(options.cache_dir)
        self.say = say
        self.progress = progress
        self.timer_for = timer_for
        self.log_dir = log_dir
        self.worker = worker
        self.outcomes: dict[str, CaseOutcome] = {}
        self.on_result: list[Callable[[CaseResult], None]] = []

    # -- per case -------------------------------------------------------------

    def outcome(self, item: Any) -> CaseOutcome:
        """Runs the case of ``item`` once; later calls return the same outcome."""
        nodeid = item.nodeid
        if nodeid not in self.outcomes:
            self.outcomes[nodeid] = self._run(item)
            for callback in self.on_result:
                callback(self.outcomes[nodeid].result)
        return self.outcomes[nodeid]

    def _run(self, item: Any) -> CaseOutcome:
        result = CaseResult(nodeid=item.nodeid, worker=self.worker)
        kernel: Any = None
        try:
            case = TuneCase.from_item(item)
            kernel = case.kernel
            return self._run_case(case, result)
        except HelionTuneError as exc:
            result.verdict, result.message = "error", str(exc)
        except Exception as exc:  # a bug or a kernel crash must cost one case, not the session
            result.verdict = "error"
            result.message = f"{item.nodeid}: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        return CaseOutcome(
            result,
            TunedKernel(nodeid=item.nodeid, kernel=kernel, config=None, problem=result.message),
        )

    def _timers(self, device: keys.DeviceInfo) -> tuple[Timer | None, Timer]:
        """(timer for searches, timer for final measurements)."""
        injected = self.timer_for(device)
        if injected is not None:
            return injected, injected
        if device.is_interpreter:
            return WallClockTimer(calls=1), WallClockTimer(calls=3)
        return None, CudaTimer()

    def _run_case(self, case: TuneCase, result: CaseResult) -> CaseOutcome:
        start = time.perf_counter()
        args = case.make_inputs()
        expected = case.expected(args)
        tolerance = case.tolerance(expected)
        bound = case.kernel.bind(args)
        device = keys.device_for(args)
        key = keys.make_key(case.kernel, args, device)
        lookup = self.store.lookup(key)
        result.kernel, result.key, result.key_id = key.kernel, key.as_dict(), key.short
        result.device = device.label
        result.stale = lookup.exact is None and bool(lookup.stale)
        result.stale_reason = lookup.stale_reason(key)
        overhead = time.perf_counter() - start
        search_timer, final_timer = self._timers(device)
        result.timer = final_timer.name

        config: dict[str, Any] | None
        wants_tune = self.options.tuning and (self.options.retune or lookup.exact is None)
        if wants_tune:
            assert self.options.strategy is not None
            result.origin, result.strategy = "tuned", self.options.strategy
            try:
                config = self._tune(case, result, bound, args, tolerance, lookup, key, search_timer).config
            except StrategyError as exc:
                # Searches end in a bare error when every candidate was wrong; if the default
                # config is wrong too, the kernel (or its reference) is the problem: say so.
                default = as_dict(bound.config_spec.default_config())
                check = compare(self._compile(bound, default, case.nodeid)(*args), expected, tolerance)
                if check.ok:
                    raise
                result.verdict = "inaccurate"
                result.message = (
                    f"{case.nodeid}: no accurate config: {exc.args[0].split(': ', 1)[-1]}; "
                    f"the default config is inaccurate too: {check.message}"
                )
                result.config = default
                return CaseOutcome(result, TunedKernel(nodeid=case.nodeid, kernel=case.kernel, config=None, problem=result.message))
        elif lookup.exact is not None:
            config = lookup.exact.config
            result.origin, result.strategy = "cache", lookup.exact.strategy
        else:
            config = as_dict(bound.config_spec.default_config())
            result.origin = "default"
            if self.options.strict:
                why = f"stale entry ({result.stale_reason})" if result.stale else "no cache entry"
                result.verdict = "error"
                result.message = (
                    f"{case.nodeid}: {why} for {key.kernel} [{key.specialization}] on {key.device} "
                    f"(--helion-strict); run pytest --helion-tune to tune it"
                )
        result.config = config

        compiled = self._compile(bound, config, case.nodeid)
        check = compare(compiled(*args), expected, tolerance)
        if not check.ok:
            result.verdict = "inaccurate"
            result.message = f"{case.nodeid}: {result.origin} config is inaccurate: {check.message}"
        else:
            result.latency_ms, result.eager_ms = self._measure(final_timer, compiled, case, args)
            if wants_tune:  # only an accurate config is ever stored
                write_start = time.perf_counter()
                self._store(case, result, key, config)
                overhead += time.perf_counter() - write_start
        result.overhead_ms = overhead * 1e3
        tuned = TunedKernel(
            nodeid=case.nodeid,
            kernel=case.kernel,
            config=config if check.ok else None,
            latency_ms=result.latency_ms,
            origin=result.origin,
            stale=result.stale,
            problem=result.message,
        )
        return CaseOutcome(result, tuned)

    # -- steps ----------------------------------------------------------------

    @staticmethod
    def _compile(bound: Any, config: dict[str, Any], nodeid: str) -> Any:
        import helion

        try:
            return bound.compile_config(helion.Config(**config), allow_print=False)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise HelionTuneError(
                f"{nodeid}: config does not compile ({type(exc).__name__}: {first})"
            ) from exc

    def _seeds(self, lookup: Lookup, key: keys.CaseKey) -> list[Seed]:
        ordered = sorted(
            lookup.seeds, key=lambda e: (e.latency_ms is None, e.key.device != key.device)
        )
        return [Seed(e.config, _seed_source(e, key)) for e in ordered]

    def _log_path(self, nodeid: str) -> str | None:
        directory = self.log_dir()
        if directory is None:
            return None
        from .jsonstore import safe_filename

        return str(directory / safe_filename(nodeid.replace("/", ".").replace("::", ".")))

    def _tune(
        self,
        case: TuneCase,
        result: CaseResult,
        bound: Any,
        args: tuple[Any, ...],
        tolerance: Any,
        lookup: Lookup,
        key: keys.CaseKey,
        timer: Timer | None,
    ) -> SearchOutcome:
        assert self.options.strategy is not None
        strategy = get_strategy(self.options.strategy)
        progress = None
        if self.progress is not None:
            report, nodeid = self.progress, case.nodeid
            progress = lambda p: report(nodeid, p)  # noqa: E731
        problem = SearchProblem(
            kernel=case.kernel,
            bound=bound,
            args=args,
            reference=case.reference,
            tolerance=tolerance,
            effort=self.options.effort,
            budget_s=self.options.budget_s,
            seed=self.options.seed,
            seeds=self._seeds(lookup, key),
            timer=timer,
            interpreter=interpreter.active(),
            progress=progress,
            log_path=self._log_path(case.nodeid),
        )
        self.say(f"tuning {case.nodeid} with {strategy.name} ({key.specialization}; {key.device})")
        start = time.perf_counter()
        try:
            outcome = strategy.search(problem)
        except HelionTuneError:
            raise
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "(no message)"
            raise StrategyError(
                f"{case.nodeid}: strategy {strategy.name} failed: {type(exc).__name__}: {first}"
            ) from exc
        result.tune_seconds = time.perf_counter() - start
        result.configs_tested = outcome.configs_tested
        result.failures = outcome.failures
        result.trace = [dataclasses.asdict(p) for p in outcome.trace]
        result.candidates = list(outcome.candidates)
        result.seed_source = outcome.seed_source
        result.notes.extend(outcome.notes)
        self.say(
            f"tuned {case.nodeid}: {outcome.configs_tested} configs in {result.tune_seconds:.1f} s, "
            f"best {describe(outcome.config)}"
        )
        return outcome

    def _store(
        self, case: TuneCase, result: CaseResult, key: keys.CaseKey, config: dict[str, Any]
    ) -> None:
        entry = ConfigEntry(
            key=key,
            config=config,
            latency_ms=result.latency_ms,
            eager_ms=result.eager_ms,
            strategy=result.strategy,
            configs_tested=result.configs_tested,
            tune_seconds=result.tune_seconds,
            nodeid=case.nodeid,
            tuned_at=now_iso(),
        )
        self.store.put(entry)

    def _measure(
        self, timer: Timer, compiled: Any, case: TuneCase, args: tuple[Any, ...]
    ) -> tuple[float, float]:
        rounds = 3 if isinstance(timer, WallClockTimer) else 5
        kernel_ms, eager_ms = timer.medians(
            [lambda: compiled(*args), lambda: case.reference(*args)], ["kernel", "eager"], rounds
        )
        return kernel_ms, eager_ms

    @property
    def results(self) -> list[CaseResult]:
        return [o.result for o in self.outcomes.values()]
