"""Follows a running Helion search through the per-candidate CSV its ``autotune_log`` writes.

Gives live progress, the best-so-far trace and the order candidates were tried, on GPU and CPU.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from .strategies.base import Progress, TracePoint


@dataclasses.dataclass
class SearchLog:
    """What the CSV said: every finished candidate in order."""

    trace: list[TracePoint] = dataclasses.field(default_factory=list)
    candidates: list[str] = dataclasses.field(default_factory=list)
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    tested: int = 0
    started: int = 0
    best_ms: float | None = None


def read_csv(path: Path, log: SearchLog | None = None, offset: int = 0) -> tuple[SearchLog, int]:
    """Parses rows after byte ``offset``; returns the log and the new offset (whole lines only)."""
    log = log or SearchLog()
    try:
        with path.open("r", encoding="utf-8", newline="") as handle:
            handle.seek(offset)
            chunk = handle.read()
    except FileNotFoundError:
        return log, offset
    end = chunk.rfind("\n")
    if end < 0:
        return log, offset
    complete = chunk[: end + 1]
    for row in csv.reader(complete.splitlines()):
        if len(row) < 6 or row[0] == "run_id":
            continue
        _, stamp, config_id, _generation, status, perf = row[:6]
        if status == "started":
            log.started += 1
            continue
        log.tested += 1
        log.statuses[status] = log.statuses.get(status, 0) + 1
        log.candidates.append(config_id)
        try:
            ms = float(perf) if perf else math.inf
            seconds = float(stamp) if stamp else 0.0
        except ValueError:
            continue
        if math.isfinite(ms) and (log.best_ms is None or ms < log.best_ms):
            log.best_ms = ms
            log.trace.append(TracePoint(seconds=seconds, configs=log.tested, best_ms=ms))
    return log, offset + len(complete.encode("utf-8"))


@contextlib.contextmanager
def follow(
    path: Path,
    progress: Callable[[Progress], None] | None,
    clock: Callable[[], float],
    interval_s: float = 1.0,
) -> Iterator[SearchLog]:
    """Polls the CSV while the search runs; the yielded log is complete when the block exits."""
    log = SearchLog()
    offset = 0
    start = clock()
    stop = threading.Event()
    lock = threading.Lock()

    def poll() -> None:
        nonlocal offset
        with lock:
            _, offset = read_csv(path, log, offset)
            if progress is not None:
                failures = sum(n for s, n in log.statuses.items() if s != "ok")
                progress(Progress(log.tested, failures, log.best_ms, clock() - start, "search"))

    def loop() -> None:
        while not stop.wait(interval_s):
            with contextlib.suppress(Exception):  # progress must never break a search
                poll()

    thread = threading.Thread(target=loop, name="helion-tune-monitor", daemon=True)
    thread.start()
    try:
        yield log
    finally:
        stop.set()
        thread.join()
        poll()
