"""Timing backends: CUDA events through Triton's ``do_bench``, wall clock under the interpreter.

One ``Timer`` re-measures final results, contenders interleaved; where Helion cannot time by
itself (no GPU driver) it also times Helion's searches, each candidate under a deadline.
"""

from __future__ import annotations

import abc
import contextlib
import math
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

Fn = Callable[[], object]


class Timer(abc.ABC):
    """Measures callables in milliseconds. Subclasses provide ``sample``.

    ``label`` says what is timed ("candidate" inside a search, "kernel" or "eager" when
    results are re-measured), so that an injected test timer can tell them apart.
    """

    name = "timer"
    # Per-candidate limit inside a search this timer feeds; None: Helion's own
    # ``autotune_benchmark_timeout``, the limit its benchmark worker applies on a GPU.
    candidate_timeout_s: float | None = None
    timeouts = 0  # candidates this timer's searches stopped at the limit

    @abc.abstractmethod
    def sample(self, fn: Fn, label: str) -> float:
        """One measurement of ``fn`` in ms (itself a median over a short window)."""

    def bench(self, fn: Fn, label: str = "candidate") -> float:
        return self.sample(fn, label)

    def interleaved(
        self, fns: Sequence[Fn], labels: Sequence[str], rounds: int
    ) -> list[list[float]]:
        """``rounds`` samples of each fn, taken round-robin so that drift hits all alike.

        The starting contender rotates each round, so no fn always runs first.
        """
        samples: list[list[float]] = [[] for _ in fns]
        n = len(fns)
        for r in range(rounds):
            for j in range(n):
                i = (r + j) % n
                samples[i].append(self.sample(fns[i], labels[i]))
        return samples

    def medians(self, fns: Sequence[Fn], labels: Sequence[str], rounds: int) -> list[float]:
        return [statistics.median(s) for s in self.interleaved(fns, labels, rounds)]


class CudaTimer(Timer):
    """CUDA events, L2 flushed before each call, median of a window (``triton.testing.do_bench``)."""

    name = "cuda-events"

    def __init__(self, warmup_ms: float = 5.0, rep_ms: float = 25.0) -> None:
        self.warmup_ms = warmup_ms
        self.rep_ms = rep_ms

    def sample(self, fn: Fn, label: str) -> float:
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=self.warmup_ms, rep=self.rep_ms, return_mode="median"))


class WallClockTimer(Timer):
    """Host wall clock around each call, for the Triton interpreter: ranks nothing, runs the flow."""

    name = "wall-clock"

    def __init__(self, calls: int = 3) -> None:
        self.calls = calls

    def sample(self, fn: Fn, label: str) -> float:
        fn()  # the first call may compile; never time it
        times = []
        for _ in range(self.calls):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)


def _helion_do_bench(timer: Timer) -> Callable[..., float]:
    def do_bench(fn: Fn, *_: Any, **__: Any) -> float:
        return timer.bench(fn, "candidate")

    return do_bench


def _helion_interleaved(timer: Timer) -> Callable[..., list[float]]:
    def interleaved_bench(fns: Sequence[Fn], *_: Any, repeat: int = 1, **__: Any) -> list[float]:
        return timer.medians(fns, ["candidate"] * len(fns), max(1, min(int(repeat), 3)))

    return interleaved_bench


class CandidateTimeout(TimeoutError):
    """A candidate ran past its limit; Helion counts it as one failed candidate and goes on."""


@contextlib.contextmanager
def deadline(
    seconds: float | None, on_timeout: Callable[[], None] = lambda: None
) -> Iterator[None]:
    """Raises ``CandidateTimeout`` in the block once ``seconds`` pass (SIGALRM).

    A no-op outside the main thread, without a limit, or while another alarm is armed (an
    outer pytest-timeout keeps priority). The interpreter runs kernels as Python code, so a
    hanging candidate is interrupted between two bytecodes.
    """
    if (
        not seconds
        or seconds <= 0
        or threading.current_thread() is not threading.main_thread()
        or signal.getitimer(signal.ITIMER_REAL)[0] > 0
    ):
        yield
        return

    def expire(_signum: int, _frame: Any) -> None:
        on_timeout()
        raise CandidateTimeout(f"candidate ran past its limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def _bounded_candidates(bound: Any, timer: Timer) -> Iterator[None]:
    """Puts a ``deadline`` around each candidate Helion benchmarks in-process for ``bound``:
    its first run, accuracy check, warm-up and timing. A hang then costs one candidate."""
    try:
        from helion.autotuner.benchmark_provider import LocalBenchmarkProvider
    except ImportError:
        yield
        return
    original = LocalBenchmarkProvider.__dict__.get("_benchmark_function")
    if original is None:
        yield
        return
    limit = timer.candidate_timeout_s or getattr(bound.settings, "autotune_benchmark_timeout", None)

    def count() -> None:
        timer.timeouts += 1

    def bounded(self: Any, config: Any, fn: Any, **kwargs: Any) -> float:
        if self.kernel is not bound:
            return float(original(self, config, fn, **kwargs))
        try:
            with deadline(limit, count):
                return float(original(self, config, fn, **kwargs))
        except CandidateTimeout:  # it fired after Helion had finished handling the candidate
            return math.inf

    # On the class: the search builds its provider itself. Only this kernel's candidates
    # are bounded, and only while its search runs.
    LocalBenchmarkProvider._benchmark_function = bounded
    try:
        yield
    finally:
        LocalBenchmarkProvider._benchmark_function = original


@contextlib.contextmanager
def installed(bound: Any, timer: Timer | None) -> Iterator[None]:
    """Routes the searches of one BoundKernel through ``timer`` (Helion's per-kernel seam),
    each candidate bounded by the timer's ``candidate_timeout_s``.

    ``bound.env.backend`` belongs to this BoundKernel alone, so other kernels and other
    cases keep Helion's own benchmarking. ``None`` leaves Helion's timing (and its
    benchmark worker, with its own timeouts) in place.
    """
    if timer is None:
        yield
        return
    backend = bound.env.backend
    saved = {name: backend.__dict__.get(name) for name in ("get_do_bench", "get_interleaved_bench")}
    do_bench, interleaved = _helion_do_bench(timer), _helion_interleaved(timer)
    backend.get_do_bench = lambda: do_bench
    backend.get_interleaved_bench = lambda: interleaved
    try:
        with _bounded_candidates(bound, timer):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                backend.__dict__.pop(name, None)
            else:
                setattr(backend, name, value)
