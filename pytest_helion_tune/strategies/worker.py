"""One Helion benchmark worker per process, shared by the project's own searches.

Helion 1.5 benchmarks candidates in a spawn subprocess (``BenchmarkWorker``) that each search
starts and shuts down again. On an H100 its first job took 12.4-13.0 s (the subprocess imports
torch and Helion and opens a CUDA context); ``seeded`` runs two searches, so 25 s of a 52 s case
went to starting workers (``benchmarks/results/nvidia-h100-80gb-hbm3/overhead.md``). Here the project's searches
(``seeded``, ``llm-seeded``, ``llm``) share one worker for the life of the process: the first
search starts it as soon as it begins, so that it comes up while the first candidates compile, and
every later search and case finds it ready. Helion's own searches run as Helion ships them.

``HELION_TUNE_SHARED_WORKER=0`` turns this off: every search then starts and stops its own
worker, as Helion ships it (to compare the two, or where a shared worker misbehaves).

Helion's own worker is spawned inside the search that uses it, so it inherits the environment that
search compiles under; above all ``TRITON_CACHE_DIR``, which Helion sets at a kernel's first
compilation (and ``BoundKernel.autotune`` points at a temporary directory for the search). A worker
kept across searches was spawned earlier, under another one: its jobs then missed the cache the
precompile step had filled and compiled candidates again (one plugin case on an H100: 10 kernels
compiled outside Helion's cache, 4 with this change, the 4 then found in this process:
``helion_env.settle_compile_cache_dir``). So every job here carries the parent's ``TRITON_*``
variables as they are when it is sent, and the worker takes them on first.

The worker keeps Helion's guarantees: a candidate that hangs or poisons the CUDA context is killed
with the worker, and the next job starts a fresh one. Between searches the worker drops the inputs
and reference outputs it loaded, so they do not pile up in GPU memory over a long session.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import os
import threading
from typing import Any

START_TIMEOUT_S = 120.0
FORGET_TIMEOUT_S = 30.0
# A candidate that kills the worker (a CUDA illegal address, a hang) costs a fresh worker, 12-15 s
# on an H100; a kernel whose every candidate does so would hold the GPU for minutes. A search stops
# after this many jobs in a row left the worker dead, keeping what it had found.
DEATHS_TO_STOP = 3

_lock = threading.Lock()
_worker: Any = None


# The environment a job runs under in the worker is the parent's, for the variables that decide
# where Triton reads and writes compiled kernels and what it stores there.
FORWARDED_PREFIX = "TRITON_"


def _forwarded_env() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIX)))


@dataclasses.dataclass(frozen=True)
class InSendersEnvironment:
    """A worker job run under the sender's ``TRITON_*`` variables as they were when it was sent
    (set where the sender has them, removed where it has not)."""

    job: Any
    env: tuple[tuple[str, str], ...]

    def __call__(self) -> Any:
        wanted = dict(self.env)
        for name in [n for n in os.environ if n.startswith(FORWARDED_PREFIX) and n not in wanted]:
            del os.environ[name]
        os.environ.update(wanted)
        return self.job()


def _ready() -> bool:
    """Runs in the worker: the imports and CUDA context its first benchmark job would need."""
    import torch
    from helion.autotuner import benchmark_job  # noqa: F401

    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")
    return True


def _forget_loaded_args() -> None:
    """Runs in the worker: drops the inputs and baselines Helion's jobs cached by file path."""
    import torch
    from helion.autotuner import benchmark_job, kernel_args

    for cache in (
        getattr(kernel_args, "load_trusted_kernel_args", None),
        getattr(benchmark_job, "_load_trusted_baseline_output", None),
    ):
        clear = getattr(cache, "cache_clear", None)
        if clear is not None:
            clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _forget(worker: Any) -> None:
    """Has a live worker drop what a finished search or check loaded; never raises."""
    with contextlib.suppress(Exception):
        if worker.alive():
            worker.run(_forget_loaded_args, timeout=FORGET_TIMEOUT_S)


def _serial_worker() -> Any:
    """A Helion BenchmarkWorker whose jobs run one at a time: its pipe carries one job at a time,
    and the start-up job runs on a background thread while a search may send its first job."""
    from helion.autotuner.benchmark_worker import BenchmarkWorker

    class SerialWorker(BenchmarkWorker):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(device=None)
            self._serial = threading.Lock()
            self.deaths_in_a_row = 0

        def run(self, job: Any, timeout: float) -> Any:
            with self._serial:  # a job's timeout starts when it is sent, not while it waits
                try:
                    return super().run(InSendersEnvironment(job, _forwarded_env()), timeout)
                finally:
                    self.deaths_in_a_row = 0 if self.alive() else self.deaths_in_a_row + 1

    return SerialWorker()


def shared() -> Any:
    """The process's worker, created if there is none or the last one can no longer be used."""
    global _worker
    with _lock:
        if _worker is None or getattr(_worker, "_fatal_error", None) is not None:
            _worker = _serial_worker()
        return _worker


def warm() -> None:
    """Starts the shared worker in the background unless it is running or switched off
    (returns at once)."""
    if not enabled():
        return
    worker = shared()
    with worker._serial:
        if worker.alive():
            return
        # Started from this thread: Helion's worker asks to be killed when the thread that
        # started it ends (PR_SET_PDEATHSIG), so a short-lived thread cannot start it.
        worker._start()

    def start() -> None:
        with contextlib.suppress(Exception):  # the first real job starts it again and reports
            worker.run(_ready, timeout=START_TIMEOUT_S)

    threading.Thread(target=start, name="helion-tune-worker-start", daemon=True).start()


def started() -> bool:
    """Starts the shared worker unless it is running or switched off, and waits until it
    answers; whether it did. For a benchmark harness that keeps the start out of its first
    search's time."""
    if not enabled():
        return False
    try:
        return bool(shared().run(_ready, timeout=START_TIMEOUT_S))
    except Exception:
        return False


def uses_worker(settings: Any) -> bool:
    """Whether Helion will benchmark in a subprocess under these settings."""
    return bool(getattr(settings, "autotune_benchmark_subprocess", False))


def enabled() -> bool:
    """Whether the project's searches share one worker (``HELION_TUNE_SHARED_WORKER``, default on)."""
    return os.environ.get("HELION_TUNE_SHARED_WORKER", "1").strip().lower() not in {
        "0",
        "false",
        "no",
        "off",
    }


@functools.cache
def _shared_provider_class(rep_ms: int | None) -> Any:
    from helion.autotuner.benchmark_provider import LocalBenchmarkProvider

    class SharedWorkerProvider(LocalBenchmarkProvider):  # type: ignore[misc]
        """Helion's local provider, with the process's worker instead of a fresh one."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._benchmark_worker = shared()
            self._benchmark_worker.deaths_in_a_row = 0

        def _run_subprocess_benchmark_job(self, fn: Any, *, rep: int, **kwargs: Any) -> Any:
            # Helion times each candidate for ``rep`` ms (50); ``rep_ms`` caps it.
            capped = rep if rep_ms is None else min(rep, rep_ms)
            return super()._run_subprocess_benchmark_job(fn, rep=capped, **kwargs)

        def set_budget_exceeded_fn(self, fn: Any) -> None:
            said: list[bool] = []

            def exceeded() -> bool:
                if fn():
                    return True
                deaths = getattr(self._benchmark_worker, "deaths_in_a_row", 0)
                if deaths < DEATHS_TO_STOP:
                    return False
                if not said:
                    said.append(True)
                    self.log.warning(
                        f"helion-tune: {deaths} candidates in a row killed the benchmark "
                        "worker; this search stops with what it has"
                    )
                return True

            super().set_budget_exceeded_fn(exceeded)

        def cleanup(self) -> None:
            worker = self._benchmark_worker
            if worker is not None and worker is _worker:
                self._benchmark_worker = None  # kept for the next search, not shut down
                _forget(worker)
            super().cleanup()

    return SharedWorkerProvider


def attach(search: Any, rep_ms: int | None = None) -> Any:
    """Makes a Helion search use the shared worker; a Helion without the seam runs unchanged.
    ``rep_ms``: each candidate is timed in the worker for at most this many milliseconds
    (Helion's own searches: 50); None keeps Helion's."""
    from helion.autotuner.benchmark_provider import LocalBenchmarkProvider

    if enabled() and getattr(search, "_benchmark_provider_cls", None) is LocalBenchmarkProvider:
        search._benchmark_provider_cls = _shared_provider_class(rep_ms)
    return search


class WorkerUnavailable(RuntimeError):
    """The worker cannot take this job (this Helion lacks a seam, or the job cannot be sent to
    another process); nothing ran."""


def isolates(bound: Any) -> bool:
    """Whether candidates of ``bound`` can run in the worker rather than in this process."""
    from .. import interpreter

    return not interpreter.active() and uses_worker(bound.settings)


def check_in_worker(compiled: Any, args: Any, expected: Any, atol: float, rtol: float) -> str:
    """Runs ``compiled(*args)`` in the shared worker and compares it with ``expected`` there, as
    Helion checks its candidates: "" when it matches, else why not. A config that crashes (a CUDA
    illegal address poisons the process it runs in) takes the worker down, not this process; the
    error (Helion's BenchmarkWorkerDied or the CUDA error) is raised here. ``WorkerUnavailable``
    when this Helion lacks the job, before anything runs."""
    import tempfile
    from pathlib import Path

    import torch

    try:
        from helion.autotuner.benchmark_job import AccuracyCheckJob
        from helion.autotuner.precompile_future import _serialize_compiled_fn
    except ImportError as exc:  # another Helion: the caller decides where to check instead
        raise WorkerUnavailable(f"this Helion has no worker accuracy job ({exc})") from exc

    with tempfile.TemporaryDirectory(prefix="helion-tune-check-") as tmp:
        args_path, expected_path = str(Path(tmp) / "args.pt"), str(Path(tmp) / "expected.pt")
        try:  # what cannot cross to the worker (a closure in the inputs, a nested kernel) ...
            torch.save(tuple(args), args_path)
            torch.save(expected, expected_path)
            spec = _serialize_compiled_fn(compiled)
        except Exception as exc:  # ... is checked by the caller instead; nothing ran yet
            raise WorkerUnavailable(
                f"the config cannot be sent to the worker ({type(exc).__name__}: {exc})"
            ) from exc
        job = AccuracyCheckJob(
            fn_spec=spec, args_path=args_path, baseline_path=expected_path, atol=atol, rtol=rtol
        )
        worker = shared()
        try:
            result = worker.run(job, timeout=START_TIMEOUT_S)
        finally:
            _forget(worker)
    return "" if result.ok else str(result.message or "outputs differ")


def shutdown() -> None:
    """Stops the shared worker (at exit, or in tests)."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None:
        with contextlib.suppress(Exception):
            worker.shutdown()


atexit.register(shutdown)
