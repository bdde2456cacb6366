"""Follows a running Helion search through the per-candidate CSV its ``autotune_log`` writes.

Gives live progress, the best-so-far trace, the order candidates were tried, and after an
interrupted search the candidates that finished, on GPU and CPU.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import dataclasses
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .strategies.base import COMPILE_TIMEOUT_MIN_S, Progress, TracePoint


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
    """Polls the CSV while the search runs; the yielded log is complete when the block exits.
    Rows already in the file belong to an earlier search of the same log (Helion appends)."""
    log = SearchLog()
    try:
        offset = path.stat().st_size
    except OSError:
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


def _complete_rows(paths: Iterable[Path]) -> Iterator[list[str]]:
    """The rows of these CSV logs, without the header and a last row cut short by a kill."""
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        whole = text[: text.rfind("\n") + 1]
        for row in csv.reader(whole.splitlines()):
            if row and row[0] != "run_id":
                yield row


def finished(paths: Iterable[Path]) -> list[tuple[float, str]]:
    """(ms, config text) of every candidate that finished accurate ("ok", a finite time) in
    these CSV logs, fastest first."""
    found: list[tuple[float, str]] = []
    for row in _complete_rows(paths):
        if len(row) < 8 or row[4] != "ok":
            continue
        with contextlib.suppress(ValueError):
            ms = float(row[5])
            if math.isfinite(ms):
                found.append((ms, row[7]))
    return sorted(found, key=lambda item: item[0])


def compile_cut_off(status: str, seconds: float) -> bool:
    """Whether a CSV row (its status and time) is a compile that a timeout cut off: a "timeout"
    of at least ``COMPILE_TIMEOUT_MIN_S`` (a shorter one is a benchmark that timed out after its
    compile)."""
    return status == "timeout" and seconds >= COMPILE_TIMEOUT_MIN_S


def compile_times(paths: Iterable[Path]) -> list[float]:
    """Seconds each candidate took to compile in these CSV logs: every row with a final status
    (not "started") and a positive time, except compile timeouts, whose time is the timeout's,
    not the compile's. Helion writes "timeout" for a benchmark that timed out too, after a real
    compile: a timeout row counts when under ``COMPILE_TIMEOUT_MIN_S``, the least any compile
    timeout of ``seeded`` lasts."""
    found: list[float] = []
    for row in _complete_rows(paths):
        if len(row) < 7 or row[4] == "started":
            continue
        with contextlib.suppress(ValueError):
            seconds = float(row[6])
            if compile_cut_off(row[4], seconds):
                continue
            if math.isfinite(seconds) and seconds > 0:
                found.append(seconds)
    return found


def compile_outcomes(paths: Iterable[Path]) -> list[tuple[str, float | None]]:
    """(config text, cut) of every candidate with a final row in these CSV logs: ``cut`` is the
    timeout in seconds where a compile timeout cut it off (a "timeout" of at least
    ``COMPILE_TIMEOUT_MIN_S``, see ``compile_times``), ``None`` where its compile ended (whatever
    the benchmark then said)."""
    found: list[tuple[str, float | None]] = []
    for row in _complete_rows(paths):
        if len(row) < 8 or row[4] == "started":
            continue
        with contextlib.suppress(ValueError):
            seconds = float(row[6]) if row[6] else 0.0
            found.append((row[7], seconds if compile_cut_off(row[4], seconds) else None))
    return found


def compile_timeouts(paths: Iterable[Path]) -> list[str]:
    """The config text of every candidate whose compile was cut off in these CSV logs."""
    return [text for text, cut in compile_outcomes(paths) if cut is not None]


def config_from_repr(text: str) -> dict[str, Any]:
    """The dict of a ``Config(a=[1, 2], b='x')`` repr (the CSV's config column).

    Literals only (``ast.literal_eval``), never ``eval``: the log is a file, hence untrusted.
    ``ValueError`` for anything else.
    """
    text = text.strip()
    if not (text.startswith("Config(") and text.endswith(")")):
        raise ValueError("not a Config(...) repr")
    try:
        call = ast.parse(f"f({text[7:-1]})", mode="eval").body
        if not isinstance(call, ast.Call) or call.args:
            raise ValueError("not keyword arguments")
        if any(kw.arg is None for kw in call.keywords):
            raise ValueError("not keyword arguments")
        return {str(kw.arg): ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, RecursionError, MemoryError, TypeError) as exc:
        raise ValueError(f"not a Config(...) repr ({type(exc).__name__})") from None
