"""Timing backends: CUDA events through Triton's ``do_bench``, wall clock under the interpreter.

One ``Timer`` re-measures final results, contenders interleaved; it also feeds Helion's searches
through the per-kernel timing seam where Helion cannot time by itself (no GPU driver).
"""

from __future__ import annotations

import abc
import contextlib
import statistics
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


@contextlib.contextmanager
def installed(bound: Any, timer: Timer | None) -> Iterator[None]:
    """Routes the searches of one BoundKernel through ``timer`` (Helion's per-kernel seam).

    ``bound.env.backend`` belongs to this BoundKernel alone, so other kernels and other
    cases keep Helion's own benchmarking. ``None`` leaves Helion's timing in place.
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
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                backend.__dict__.pop(name, None)
            else:
                setattr(backend, name, value)
