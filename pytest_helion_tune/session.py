"""``TuneSession``: decides per case whether to tune or read the cache, runs it, keeps the results.

The plugin module only forwards hooks here; the stores, strategies and timers are handed in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import gate, interpreter
from . import key as keys
from .accuracy import Tolerance, compare
from .baselines import BaselineStore
from .cache import ConfigEntry, ConfigStore, Lookup, now_iso
from .case import TuneCase
from .configs import as_dict, describe
from .devices import DeviceLock, identify
from .errors import HelionTuneError, StrategyError
from .jsonstore import locked, safe_filename
from .options import Options
from .results import CaseResult
from .strategies import USES_LLM, Progress, SearchOutcome, SearchProblem, Seed
from .strategies import get as get_strategy
from .timing import Timer, WallClockTimer
from .tuned import TunedKernel

Say = Callable[[str], None]


@dataclasses.dataclass
class CaseOutcome:
    result: CaseResult
    tuned: TunedKernel


@dataclasses.dataclass
class CaseRun:
    """Everything known about one case while it runs."""

    case: TuneCase
    args: tuple[Any, ...]
    expected: Any
    tolerance: Tolerance
    bound: Any
    device: keys.DeviceInfo
    key: keys.CaseKey
    lookup: Lookup
    result: CaseResult


def _seed_source(entry: ConfigEntry, key: keys.CaseKey) -> str:
    if entry.key.specialization == key.specialization and entry.key.device == key.device:
        return "cache: previous source or toolchain"
    if entry.key.device != key.device:
        return "cache: other device"
    return "cache: other shape"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


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
        inflight_dir: Path | None = None,
        worker: str = "",
    ) -> None:
        self.options = options
        self.store = ConfigStore(options.cache_dir)
        self.baselines = BaselineStore(options.cache_dir)
        self.say = say
        self.progress = progress
        self.timer_for = timer_for
        self.log_dir = log_dir
        self.inflight_dir = inflight_dir
        self.worker = worker
        self.outcomes: dict[str, CaseOutcome] = {}
        self.remote: dict[str, CaseResult] = {}  # results other processes (xdist workers) reported
        self.on_result: list[Callable[[CaseResult], None]] = []
        self._locks: dict[str, DeviceLock] = {}
        self.started_at = now_iso()
        self.llm_line = ""  # the header's word on the LLM, set when the strategy uses one
        self._llm_client: Any = None
        self._llm_built = False

    # -- the LLM ----------------------------------------------------------------

    def llm_settings(self) -> Any:
        """The configured LLM (``LLMSettings``) or None; ``OptionError`` when misconfigured."""
        from .llm import llm_settings

        return llm_settings(os.environ, dict(self.options.llm_ini))

    def llm_description(self) -> str:
        """What the header says about the LLM: its endpoint, a replay dir, or "offline"."""
        if self.options.llm_replay is not None:
            return f"replaying recorded exchanges from {self.options.llm_replay} (no network)"
        settings = self.llm_settings()
        if settings is None:
            return "offline (no LLM configured)"
        record = f"; recording to {self.options.llm_record}" if self.options.llm_record else ""
        return str(settings.describe()) + record

    def llm_client(self) -> Any:
        """Built once, at the first case that tunes with an LLM strategy."""
        if not self._llm_built:
            self._llm_built = True
            from .llm import RecordingClient, ReplayClient, make_client

            if self.options.llm_replay is not None:
                self._llm_client = ReplayClient(self.options.llm_replay)
            else:
                settings = self.llm_settings()
                if settings is not None:
                    self._llm_client = make_client(settings)
                    if self.options.llm_record is not None:
                        self._llm_client = RecordingClient(
                            self._llm_client, self.options.llm_record, settings
                        )
        return self._llm_client

    # -- results --------------------------------------------------------------

    @property
    def results(self) -> list[CaseResult]:
        merged = {nodeid: o.result for nodeid, o in self.outcomes.items()}
        for nodeid, result in self.remote.items():
            merged.setdefault(nodeid, result)
        return sorted(merged.values(), key=lambda r: r.nodeid)

    def add_remote(self, result: CaseResult) -> None:
        """A result from another process; its tuned entry is written here too (a no-op on a
        shared file system; the only copy for workers on other hosts)."""
        if result.nodeid in self.outcomes:
            return
        self.remote[result.nodeid] = result
        if result.stored_entry and result.kernel:
            with contextlib.suppress(ValueError, HelionTuneError):
                entry = ConfigEntry.from_json(result.kernel, result.stored_entry)
                if self.store.lookup(entry.key, fresh=True).exact is None:
                    self.store.put(entry)

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
            result.message = f"{item.nodeid}: {type(exc).__name__}: {_first_line(exc)}"
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
        return None, gate.default_timer()

    def device_lock(self, device: keys.DeviceInfo) -> DeviceLock:
        """The lock of the physical GPU this process times on (one per host and GPU)."""
        name = device.name
        if not device.is_interpreter:
            identity = identify()
            name = identity.lock_name if identity is not None else device.label
        if name not in self._locks:
            self._locks[name] = DeviceLock(name)
        return self._locks[name]

    def _prepare(self, case: TuneCase, result: CaseResult) -> CaseRun:
        args = case.make_inputs()
        expected = case.expected(args)
        bound = case.kernel.bind(args)
        device = keys.device_for(args)
        key = keys.make_key(case.kernel, args, device)
        lookup = self.store.lookup(key)
        result.kernel, result.key, result.key_id = key.kernel, key.as_dict(), key.short
        result.device = device.label
        result.stale = lookup.exact is None and bool(lookup.stale)
        result.stale_reason = lookup.stale_reason(key)
        return CaseRun(
            case, args, expected, case.tolerance(expected), bound, device, key, lookup, result
        )

    def _run_case(self, case: TuneCase, result: CaseResult) -> CaseOutcome:
        start = time.perf_counter()
        run = self._prepare(case, result)
        overhead = time.perf_counter() - start
        search_timer, final_timer = self._timers(run.device)
        result.timer = final_timer.name
        lock = self.device_lock(run.device)

        config: dict[str, Any]
        wants_tune = self.options.tuning and (self.options.retune or run.lookup.exact is None)
        if wants_tune:
            assert self.options.strategy is not None
            result.origin, result.strategy = "tuned", self.options.strategy
            with self._claim(run) as fresh:
                if fresh is not None:  # another worker tuned this key while we waited
                    config = fresh.config
                    result.origin, result.strategy, wants_tune = "cache", fresh.strategy, False
                else:
                    try:
                        config = self._tune(run, search_timer, lock).config
                    except StrategyError as exc:
                        return self._no_accurate_config(run, exc)
        elif run.lookup.exact is not None:
            config = run.lookup.exact.config
            result.origin, result.strategy = "cache", run.lookup.exact.strategy
        else:
            config = as_dict(run.bound.config_spec.default_config())
            result.origin = "default"
            if self.options.strict:
                why = f"stale entry ({result.stale_reason})" if result.stale else "no cache entry"
                result.verdict = "error"
                result.message = (
                    f"{case.nodeid}: {why} for {run.key.kernel} [{run.key.specialization}] on "
                    f"{run.key.device} (--helion-strict); run pytest --helion-tune to tune it"
                )
        result.config = config

        compiled = self._compile(run.bound, config, case.nodeid)
        check = compare(compiled(*run.args), run.expected, run.tolerance)
        if not check.ok:
            result.verdict = "inaccurate"
            result.message = f"{case.nodeid}: {result.origin} config is inaccurate: {check.message}"
        else:
            if wants_tune:  # only an accurate config is ever stored
                write_start = time.perf_counter()
                self._store(run, config)
                overhead += time.perf_counter() - write_start
            with lock.held() as waited:
                result.lock_wait_s += waited
                self._gate(run, final_timer, compiled, config)
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

    @contextlib.contextmanager
    def _claim(self, run: CaseRun) -> Iterator[ConfigEntry | None]:
        """Holds the key's claim, so one process tunes it while the others wait and reuse it.

        Yields the entry another process wrote meanwhile, or None: then this one tunes.
        """
        path = self.store.path_for(run.key.kernel).with_name(
            f"{safe_filename(run.key.kernel)}.{run.key.short}.claim"
        )
        with locked(path):
            latest = self.store.lookup(run.key, fresh=True).exact
            if latest is not None and (
                not self.options.retune or latest.tuned_at >= self.started_at
            ):
                yield latest
                return
            with self._inflight(run):
                yield None

    @contextlib.contextmanager
    def _inflight(self, run: CaseRun) -> Iterator[None]:
        """Leaves a note while tuning, so that the controller can name the case if we crash."""
        if self.inflight_dir is None or not self.worker:
            yield
            return
        note = self.inflight_dir / f"{self.worker}.json"
        with contextlib.suppress(OSError):
            note.write_text(
                json.dumps({"nodeid": run.case.nodeid, "key": run.key.short, "since": now_iso()})
            )
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                note.unlink()

    def _no_accurate_config(self, run: CaseRun, exc: StrategyError) -> CaseOutcome:
        """Searches end in a bare error when every candidate was wrong; if the default config is
        wrong too, the kernel (or its reference) is the problem: say so, else report the error."""
        default = as_dict(run.bound.config_spec.default_config())
        check = compare(
            self._compile(run.bound, default, run.case.nodeid)(*run.args),
            run.expected,
            run.tolerance,
        )
        if check.ok:
            raise exc
        result = run.result
        result.verdict = "inaccurate"
        result.message = (
            f"{run.case.nodeid}: no accurate config: {exc.args[0].split(': ', 1)[-1]}; "
            f"the default config is inaccurate too: {check.message}"
        )
        result.config = default
        return CaseOutcome(
            result,
            TunedKernel(
                nodeid=run.case.nodeid, kernel=run.case.kernel, config=None, problem=result.message
            ),
        )

    @staticmethod
    def _compile(bound: Any, config: dict[str, Any], nodeid: str) -> Any:
        import helion

        try:
            return bound.compile_config(helion.Config(**config), allow_print=False)
        except Exception as exc:
            raise HelionTuneError(
                f"{nodeid}: config does not compile ({type(exc).__name__}: {_first_line(exc)})"
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
        return str(directory / safe_filename(nodeid.replace("/", ".").replace("::", ".")))

    def _tune(self, run: CaseRun, timer: Timer | None, lock: DeviceLock) -> SearchOutcome:
        assert self.options.strategy is not None
        strategy = get_strategy(self.options.strategy)
        case, result = run.case, run.result
        progress = None
        if self.progress is not None:
            report, nodeid = self.progress, case.nodeid
            progress = lambda p: report(nodeid, p)  # noqa: E731
        problem = SearchProblem(
            kernel=case.kernel,
            bound=run.bound,
            args=run.args,
            reference=case.reference,
            tolerance=run.tolerance,
            effort=self.options.effort,
            budget_s=self.options.budget_s,
            seed=self.options.seed,
            seeds=self._seeds(run.lookup, run.key),
            timer=timer,
            interpreter=interpreter.active(),
            progress=progress,
            log_path=self._log_path(case.nodeid),
            llm=self.llm_client() if self.options.strategy in USES_LLM else None,
        )
        self.say(
            f"tuning {case.nodeid} with {strategy.name} ({run.key.specialization}; {run.key.device})"
        )
        # Compiling and timing interleave inside Helion's searches, so the whole search holds
        # the GPU: two workers timing on one GPU would corrupt each other's numbers.
        with lock.held() as waited:
            result.lock_wait_s += waited
            start = time.perf_counter()
            try:
                outcome = strategy.search(problem)
            except HelionTuneError:
                raise
            except Exception as exc:
                raise StrategyError(
                    f"{case.nodeid}: strategy {strategy.name} failed: {type(exc).__name__}: {_first_line(exc)}"
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

    def _store(self, run: CaseRun, config: dict[str, Any]) -> None:
        result = run.result
        entry = ConfigEntry(
            key=run.key,
            config=config,
            latency_ms=result.latency_ms,
            eager_ms=result.eager_ms,
            strategy=result.strategy,
            configs_tested=result.configs_tested,
            tune_seconds=result.tune_seconds,
            nodeid=run.case.nodeid,
            tuned_at=now_iso(),
        )
        self.store.put(entry)
        result.stored_entry = entry.to_json()

    def _record_baseline(
        self,
        run: CaseRun,
        config: dict[str, Any],
        old: Any,
        measure: Callable[[], gate.Measurement],
    ) -> None:
        """Writes the case's baseline, unless the GPU was too noisy to trust the reading, or
        nothing changed and the reading agrees with the old one (committed files stay quiet)."""
        result, key = run.result, run.key
        measurement = measure()
        if gate.baseline_problem(measurement):
            measurement = measure()  # a busy spell often passes within a second
        problem = gate.baseline_problem(measurement)
        result.latency_ms, result.eager_ms = measurement.kernel_median, measurement.eager_median
        if problem:
            result.notes.append(f"baseline not recorded: {problem}")
            result.message = f"{run.case.nodeid}: baseline not recorded: {problem}"
            return
        if old is not None:
            change = measurement.ratio / old.ratio - 1
            unchanged = not gate.what_changed(old, key.source_hash, key.toolchain_dict, config)
            if unchanged and abs(change) <= self.options.perf_tolerance / 2:
                result.baseline_ms = old.latency_ms
                result.notes.append(
                    f"baseline kept: nothing changed and kernel/eager moved {change * 100:+.1f}%"
                )
                return
        entry = gate.record(
            measurement,
            nodeid=run.case.nodeid,
            specialization=key.specialization,
            device=key.device,
            source_hash=key.source_hash,
            config=config,
            toolchain=key.toolchain_dict,
        )
        self.baselines.put(key.kernel, entry)
        result.baseline_ms = entry.latency_ms
        if old is None:
            result.notes.append(f"baseline recorded: kernel/eager {measurement.ratio:.3f}")
        else:
            change = measurement.ratio / old.ratio - 1
            result.notes.append(
                f"baseline updated: kernel/eager {old.ratio:.3f} -> {measurement.ratio:.3f} ({change * 100:+.1f}%)"
            )

    def _gate(self, run: CaseRun, timer: Timer, compiled: Any, config: dict[str, Any]) -> None:
        """Measures the kernel against its eager reference, interleaved, and judges it against
        the committed baseline (or records a new one under --helion-update-baselines)."""
        args, reference, result, key = run.args, run.case.reference, run.result, run.key
        interpreted = isinstance(timer, WallClockTimer)

        def measure_once(
            rounds: int = 3 if interpreted else gate.DEFAULT_ROUNDS,
        ) -> gate.Measurement:
            return gate.measure(timer, lambda: compiled(*args), lambda: reference(*args), rounds)

        baseline = self.baselines.get(key.kernel, run.case.nodeid, key.specialization, key.device)
        if self.options.update_baselines:
            self._record_baseline(
                run,
                config,
                baseline,
                lambda: measure_once(3 if interpreted else gate.BASELINE_ROUNDS),
            )
            return
        if baseline is None:
            measurement = measure_once()
            result.latency_ms, result.eager_ms = measurement.kernel_median, measurement.eager_median
            if result.verdict == "pass":
                result.verdict = "missing-baseline"
                if self.options.strict:
                    result.must_fail = True
                    result.message = (
                        f"{run.case.nodeid}: no performance baseline for [{key.specialization}] on {key.device} "
                        "(--helion-strict); record one with --helion-update-baselines"
                    )
            return
        tolerance = (
            self.options.perf_tolerance
            if run.case.perf_tolerance is None
            else float(run.case.perf_tolerance)
        )
        verdict = gate.judge(
            baseline,
            measure_once,
            tolerance,
            what_changed=gate.what_changed(baseline, key.source_hash, key.toolchain_dict, config),
        )
        now = verdict.now
        result.latency_ms, result.eager_ms, result.baseline_ms = (
            now.kernel_median,
            now.eager_median,
            baseline.latency_ms,
        )
        result.gate = verdict.to_json()
        if result.verdict == "pass":
            result.verdict = verdict.verdict
            if verdict.verdict in ("regression", "improved"):
                result.message = verdict.message
        result.notes.append(verdict.message)


def inflight_note(directory: Path, worker: str) -> dict[str, Any] | None:
    """What a crashed worker was tuning, from the note it left (None if it left none)."""
    path = directory / f"{worker}.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(OSError):
        os.unlink(path)
    return data
