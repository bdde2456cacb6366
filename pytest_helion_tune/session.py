"""``TuneSession``: decides per case whether to tune or read the cache, runs it, keeps the results.

The plugin module only forwards hooks here; the stores, strategies and timers are handed in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import gate, interpreter, monitor
from . import key as keys
from .accuracy import Tolerance, compare
from .baselines import BaselineStore
from .cache import ConfigEntry, ConfigStore, Lookup, now_iso
from .case import TuneCase
from .configs import as_dict, describe, validate
from .devices import DeviceLock, identify
from .errors import HelionTuneError, StrategyError, first_line
from .jsonstore import locked, safe_filename
from .options import Options
from .report import describe_failures
from .results import CaseResult
from .strategies import USES_LLM, Progress, SearchOutcome, SearchProblem, Seed, worker
from .strategies import get as get_strategy
from .strategies.helion_search import log_files
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


PARTIAL_SEED = "cache: interrupted search (partial)"
PARTIAL_TRIES = 5  # finished candidates re-checked after an interrupt, fastest first


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turns SIGTERM into KeyboardInterrupt while a search runs, so that a CI job being
    cancelled stores what was found, as Ctrl-C does. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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

    def close(self) -> None:
        """Releases the LLM client's connections, where a case built one."""
        close = getattr(self._llm_client, "close", None)
        if callable(close):
            close()

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
            result.message = (
                f"{item.nodeid}: {type(exc).__name__}: {first_line(exc, '(no message)')}"
            )
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
        if device.label not in self._locks:
            # The interpreter ranks nothing: its lock only keeps this run's own workers apart,
            # never unrelated pytest sessions on the same host.
            name = f"{device.name}-{os.environ.get('PYTEST_XDIST_TESTRUNUID', os.getpid())}"
            if not device.is_interpreter:
                identity = identify()
                name = identity.lock_name if identity is not None else device.label
            self._locks[device.label] = DeviceLock(name)
        return self._locks[device.label]

    def _prepare(self, case: TuneCase, result: CaseResult) -> CaseRun:
        args = case.make_inputs()
        expected = case.expected(args)
        bound = case.kernel.bind(args)
        device = keys.device_for(args)
        start = time.perf_counter()  # the plugin's own work: key, file reads, lookup
        key = keys.make_key(case.kernel, args, device)
        lookup = self.store.lookup(key)
        result.overhead_ms += (time.perf_counter() - start) * 1e3
        result.kernel, result.key, result.key_id = key.kernel, key.as_dict(), key.short
        result.device = device.label
        result.stale = lookup.exact is None and bool(lookup.stale)
        result.stale_reason = lookup.stale_reason(key)
        return CaseRun(
            case, args, expected, case.tolerance(expected), bound, device, key, lookup, result
        )

    def _run_case(self, case: TuneCase, result: CaseResult) -> CaseOutcome:
        run = self._prepare(case, result)
        search_timer, final_timer = self._timers(run.device)
        result.timer = final_timer.name
        lock = self.device_lock(run.device)

        config: dict[str, Any]
        compiled: Any = None
        check: Any = None
        exact = run.lookup.exact
        invalid = self._config_problem(run, exact) if exact is not None else ""
        if invalid:  # never run; a tuning run replaces it
            exact = None
            then = "tuning it again" if self.options.tuning else "Helion's default config runs"
            self._note(result, f"{invalid}; {then}")
        # A partial entry (an interrupted search) answers until a tuning run finishes it.
        wants_tune = self.options.tuning and (self.options.retune or exact is None or exact.partial)
        if wants_tune:
            assert self.options.strategy is not None
            result.origin, result.strategy = "tuned", self.options.strategy
            # The claim is held until the result is stored, so that a worker waiting for this
            # key finds the entry when it gets the claim.
            with self._claim(run) as fresh:
                if fresh is not None:  # another worker tuned this key while we waited
                    config = fresh.config
                    result.origin, result.strategy, wants_tune = "cache", fresh.strategy, False
                else:
                    try:
                        config = self._tune(run, search_timer, lock).config
                    except StrategyError as exc:
                        return self._no_accurate_config(run, exc)
                    result.config = config
                    compiled, check = self._check(run, config, store=True)
        elif exact is not None:
            config = exact.config
            result.origin, result.strategy = "cache", exact.strategy
            result.partial = exact.partial
        else:
            config = as_dict(run.bound.config_spec.default_config())
            result.origin = "default"
            if self.options.strict:
                result.verdict = "error"
                if invalid:
                    result.message = f"{case.nodeid}: {invalid} (--helion-strict)"
                else:
                    why = (
                        f"stale entry ({result.stale_reason})" if result.stale else "no cache entry"
                    )
                    result.message = (
                        f"{case.nodeid}: {why} for {run.key.kernel} [{run.key.specialization}] on "
                        f"{run.key.device} (--helion-strict); run pytest --helion-tune to tune it"
                    )
        result.config = config
        if not wants_tune:
            compiled, check = self._check(run, config, store=False)
        if check.ok:
            with lock.held() as waited:
                result.lock_wait_s += waited
                self._gate(run, final_timer, compiled, config)
            if wants_tune and result.latency_ms is not None:
                # Stored as soon as it was checked (a crash while timing loses nothing); again now
                # with the latency and eager time just measured, for whoever reviews the store.
                self._store(run, config)
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

    def _check(self, run: CaseRun, config: dict[str, Any], *, store: bool) -> tuple[Any, Any]:
        """Compiles ``config``, compares its output with the reference, and stores it if asked
        and accurate: a wrong config is never stored."""
        compiled = self._compile(run.bound, config, run.case.nodeid)
        check = compare(compiled(*run.args), run.expected, run.tolerance)
        result = run.result
        if not check.ok:
            result.verdict = "inaccurate"
            result.message = (
                f"{run.case.nodeid}: {result.origin} config is inaccurate: {check.message}"
            )
        elif store:
            self._store(run, config)
        return compiled, check

    # -- steps ----------------------------------------------------------------

    def _config_problem(self, run: CaseRun, entry: ConfigEntry) -> str:
        """Why the config of a cache entry fails Helion's own config spec, or "". A store file
        is edited by hand and merged: nothing in it runs unchecked."""
        try:
            validate(run.bound, entry.config)
        except ValueError as exc:  # validate turns every rejection into one
            return (
                f"{self.store.path_for(entry.key.kernel)}: the entry for "
                f"[{entry.key.specialization}] on {entry.key.device} holds an invalid config "
                f"({first_line(exc)})"
            )
        return ""

    def _note(self, result: CaseResult, note: str) -> None:
        """A note for the case and, once, for the summary."""
        result.notes.append(note)
        if note not in self.store.notes:
            self.store.notes.append(note)

    @contextlib.contextmanager
    def _claim(self, run: CaseRun) -> Iterator[ConfigEntry | None]:
        """Holds the key's claim, so one process tunes it while the others wait and reuse it.

        Yields the entry another process wrote meanwhile, or None: then this one tunes.
        """
        path = self.store.path_for(run.key.kernel).with_name(
            f"{safe_filename(run.key.kernel)}.{run.key.short}.claim"
        )
        # Held for the whole search: the others wait as long as it lives (a crashed holder's
        # flock dies with it), not the store's lock timeout, which a long search outlasts.
        with locked(path, wait=True):
            latest = self.store.lookup(run.key, fresh=True).exact
            if (
                latest is not None
                and not latest.partial
                and (not self.options.retune or latest.tuned_at >= self.started_at)
                and not self._config_problem(run, latest)
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
        compiled = self._compile(run.bound, default, run.case.nodeid)
        result = run.result
        why = exc.args[0].split(": ", 1)[-1]
        wrong: str | None = None
        if worker.isolates(run.bound):
            # Every candidate failed in Helion's worker; if they crashed there (a CUDA illegal
            # address poisons its process), running the default here would poison this one.
            try:
                wrong = worker.check_in_worker(
                    compiled, run.args, run.expected, run.tolerance.atol, run.tolerance.rtol
                )
            except worker.WorkerUnavailable as missing:
                self._note(result, f"the default config is checked in-process: {missing}")
            except Exception as crash:
                result.verdict = "error"
                result.message = (
                    f"{run.case.nodeid}: no accurate config: {why}; the default config crashed "
                    f"too, in Helion's benchmark worker ({type(crash).__name__}: "
                    f"{first_line(crash, '(no message)')}); nothing stored"
                )
                result.config = default
                return self._failed(run)
        if wrong is None:
            check = compare(compiled(*run.args), run.expected, run.tolerance)
            wrong = "" if check.ok else check.message
        if not wrong:
            raise exc
        result.verdict = "inaccurate"
        result.message = (
            f"{run.case.nodeid}: no accurate config: {why}; "
            f"the default config is inaccurate too: {wrong}"
        )
        result.config = default
        return self._failed(run)

    @staticmethod
    def _failed(run: CaseRun) -> CaseOutcome:
        """The outcome of a case that has no config to run."""
        return CaseOutcome(
            run.result,
            TunedKernel(
                nodeid=run.case.nodeid,
                kernel=run.case.kernel,
                config=None,
                problem=run.result.message,
            ),
        )

    @staticmethod
    def _compile(bound: Any, config: dict[str, Any], nodeid: str) -> Any:
        import helion

        try:
            return bound.compile_config(helion.Config(**config), allow_print=False)
        except Exception as exc:
            raise HelionTuneError(
                f"{nodeid}: config does not compile ({type(exc).__name__}: {first_line(exc, '(no message)')})"
            ) from exc

    def _seeds(self, run: CaseRun) -> list[Seed]:
        lookup, key = run.lookup, run.key
        ordered = sorted(
            lookup.seeds, key=lambda e: (e.latency_ms is None, e.key.device != key.device)
        )
        seeds = [Seed(e.config, _seed_source(e, key)) for e in ordered]
        if lookup.exact is not None and lookup.exact.partial:  # resume where it was stopped
            seeds.insert(0, Seed(lookup.exact.config, PARTIAL_SEED))
        # Strategies drop seeds Helion rejects; a config that even breaks the check is
        # dropped here, so that no file can stop a search.
        usable = []
        for seed in seeds:
            try:
                validate(run.bound, seed.config)
            except ValueError:
                pass
            except Exception as exc:
                self._note(run.result, f"seed from {seed.source} dropped: {type(exc).__name__}")
                continue
            usable.append(seed)
        return usable

    def _log_path(self, nodeid: str) -> str | None:
        """The base path of a case's search logs, one per test. No dots in the name: Helion, and
        the stages after it, derive ``<base>.csv`` and ``<base>-probe.csv`` with ``with_suffix``,
        which would cut a dotted name at its last dot and put every case of a module (and every
        stage) into one file."""
        directory = self.log_dir()
        if directory is None:
            return None
        name = nodeid.replace("::", "__").replace("/", "_").replace(".", "_")
        return str(directory / safe_filename(name))

    @contextlib.contextmanager
    def _search_log(self, nodeid: str) -> Iterator[Path]:
        """The base path of the search's CSV logs: pytest's cache dir, else a temporary one that
        outlives the search, so that an interrupted search can still be read."""
        persistent = self._log_path(nodeid)
        if persistent is None:
            with tempfile.TemporaryDirectory(prefix="helion-tune-") as tmp:
                yield Path(tmp) / "search"
            return
        base = Path(persistent)
        # Helion appends to its logs: rows of an earlier run must not count as this one's.
        for old in self._log_files(base, "*"):
            with contextlib.suppress(OSError):
                old.unlink()
        yield base

    @staticmethod
    def _log_files(base: Path, suffix: str = "csv") -> list[Path]:
        """The search's CSV logs: ``<base>.csv`` and the stages' ``<base>-<stage>.csv``, without
        Helion's ``.sources.csv``."""
        found = log_files(base, suffix)
        return [p for p in found if suffix != "csv" or not p.name.endswith(".sources.csv")]

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
            seeds=self._seeds(run),
            timer=timer,
            interpreter=interpreter.active(),
            progress=progress,
            llm=self.llm_client() if self.options.strategy in USES_LLM else None,
        )
        self.say(
            f"tuning {case.nodeid} with {strategy.name} ({run.key.specialization}; {run.key.device})"
        )
        timeouts = timer.timeouts if timer is not None else 0
        # Compiling and timing interleave inside Helion's searches, so the whole search holds
        # the GPU: two workers timing on one GPU would corrupt each other's numbers.
        with (
            self._search_log(case.nodeid) as log_base,
            lock.held() as waited,
            _sigterm_interrupts(),
        ):
            problem = dataclasses.replace(problem, log_path=str(log_base))
            result.lock_wait_s += waited
            start = time.perf_counter()
            try:
                outcome = strategy.search(problem)
            except KeyboardInterrupt:
                result.tune_seconds = time.perf_counter() - start
                self._store_partial(run, log_base)
                raise
            except HelionTuneError as exc:
                result.tune_seconds = time.perf_counter() - start
                if isinstance(exc, StrategyError):  # what the search tried, for the report
                    result.configs_tested = exc.configs_tested
                    result.failures = dict(exc.failures)
                raise
            except Exception as exc:
                result.tune_seconds = time.perf_counter() - start
                raise StrategyError(
                    f"{case.nodeid}: strategy {strategy.name} failed: {type(exc).__name__}: {first_line(exc, '(no message)')}"
                ) from exc
            result.tune_seconds = time.perf_counter() - start
        result.configs_tested = outcome.configs_tested
        result.failures = dict(outcome.failures)
        timeouts = timer.timeouts - timeouts if timer is not None else 0
        if timeouts:
            # Helion counts a candidate stopped by our deadline as a compile failure.
            result.failures["timeout"] = timeouts
            compile_failures = result.failures.get("compile", 0)
            result.failures["compile"] = max(0, compile_failures - timeouts)
        result.trace = [dataclasses.asdict(p) for p in outcome.trace]
        result.candidates = list(outcome.candidates)
        result.seed_source = outcome.seed_source
        result.notes.extend(outcome.notes)
        failed = describe_failures(result.failures)
        self.say(
            f"tuned {case.nodeid}: {outcome.configs_tested} configs in {result.tune_seconds:.1f} s"
            + (f", {failed}" if failed else "")
            + f", best {describe(outcome.config)}"
        )
        return outcome

    def _store_partial(self, run: CaseRun, log_base: Path) -> None:
        """After Ctrl-C or SIGTERM mid-search: stores the fastest candidate that had finished,
        re-checked against the reference (never a wrong one), marked partial. Never raises but
        for a second interrupt, so that the first one still stops the run."""
        case, result = run.case, run.result
        stored = "no accurate candidate had finished; nothing was stored"
        tested = 0
        try:
            paths = self._log_files(log_base)
            rows = monitor.finished(paths)
            tested = sum(monitor.read_csv(p)[0].tested for p in paths)
            for ms, text in rows[:PARTIAL_TRIES]:
                try:
                    config = as_dict(validate(run.bound, monitor.config_from_repr(text)))
                    compiled = self._compile(run.bound, config, case.nodeid)
                    if not compare(compiled(*run.args), run.expected, run.tolerance).ok:
                        continue
                except Exception:  # a candidate that cannot run now is no candidate
                    continue
                entry = ConfigEntry(
                    key=run.key,
                    config=config,
                    latency_ms=ms,
                    strategy=result.strategy,
                    configs_tested=tested,
                    tune_seconds=result.tune_seconds,
                    nodeid=case.nodeid,
                    tuned_at=now_iso(),
                    partial=True,
                )
                self.store.put(entry)
                result.config, result.partial, result.stored_entry = config, True, entry.to_json()
                stored = (
                    f"the best accurate config of {tested} tested ({describe(config)}) is stored "
                    "as partial; pytest --helion-tune resumes from it"
                )
                break
        except Exception as exc:  # the interrupt must win over any trouble here
            stored = f"nothing was stored ({type(exc).__name__}: {first_line(exc, '(no message)')})"
        note = f"{case.nodeid}: tuning interrupted; {stored}"
        self.say(note)
        self._note(result, note)
        result.verdict, result.message, result.configs_tested = "skipped", note, tested
        self.outcomes.setdefault(
            case.nodeid,
            CaseOutcome(
                result,
                TunedKernel(nodeid=case.nodeid, kernel=case.kernel, config=None, problem=note),
            ),
        )

    def _store(self, run: CaseRun, config: dict[str, Any]) -> None:
        """Writes the case's entry; the write counts as the plugin's own work (overhead_ms)."""
        start = time.perf_counter()
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
        result.overhead_ms += (time.perf_counter() - start) * 1e3

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
        if interpreted and verdict.verdict == "regression":
            # The interpreter's wall clock ranks nothing: report the reading, never fail on it.
            result.notes.append(f"{verdict.message} (interpreter timing: not failed)")
            return
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
