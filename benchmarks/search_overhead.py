"""Where a Helion search spends its time before and between benchmarks.

Runs ``benchmarks/run.py`` in this process with timers wrapped around Helion's phases (the
benchmark provider's construction, which compiles and runs the baseline; its setup; the benchmark
worker's start and its first job; each compile-and-benchmark batch) and prints one line per phase,
in seconds since the strategy started. Arguments after ``--`` go to ``run.py``, e.g.::

    python benchmarks/search_overhead.py -- --cases rms_norm_256x65536 --strategies seeded \
        --force --results-dir /tmp/overhead

Set ``HELION_AUTOTUNE_BENCHMARK_SUBPROCESS=0`` to compare without Helion's benchmark worker.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVENTS: list[dict[str, Any]] = []
_T0 = time.perf_counter()


def _wrap(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            end = time.perf_counter()
            size = ""
            if name == "benchmark_batch" and len(args) > 1:
                size = f" ({len(args[1])} configs)"
            EVENTS.append({"phase": label + size, "start_s": start - _T0, "seconds": end - start})
            print(f"[overhead] {start - _T0:8.2f}s  {label}{size}: {end - start:.2f} s", flush=True)

    setattr(owner, name, timed)


def instrument() -> None:
    from helion.autotuner import base_search, benchmark_provider, benchmark_worker

    provider = benchmark_provider.LocalBenchmarkProvider
    _wrap(provider, "__init__", "provider init (baseline compile + run)")
    _wrap(provider, "setup", "provider setup (args saved for the worker)")
    _wrap(provider, "cleanup", "provider cleanup (worker shutdown)")
    _wrap(benchmark_worker.BenchmarkWorker, "_start", "worker spawn call")
    worker_run = benchmark_worker.BenchmarkWorker.run
    first: set[int] = set()

    def run(self: Any, job: Any, timeout: float) -> Any:
        start = time.perf_counter()
        try:
            return worker_run(self, job, timeout)
        finally:
            if id(self) not in first:
                first.add(id(self))
                seconds = time.perf_counter() - start
                EVENTS.append(
                    {"phase": "worker first job", "start_s": start - _T0, "seconds": seconds}
                )
                print(
                    f"[overhead] {start - _T0:8.2f}s  worker first job: {seconds:.2f} s",
                    flush=True,
                )

    benchmark_worker.BenchmarkWorker.run = run  # type: ignore[method-assign]
    _wrap(base_search.BaseSearch, "_prepare", "search prepare")
    _wrap(base_search.BaseSearch, "benchmark_batch", "compile+benchmark batch")


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    instrument()
    from benchmarks import run

    rest = argv[argv.index("--") + 1 :] if "--" in argv else argv
    code = run.main(rest)
    out = Path("search_overhead.json")
    out.write_text(json.dumps(EVENTS, indent=1) + "\n")
    print(f"[overhead] {len(EVENTS)} events in {out}")
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
