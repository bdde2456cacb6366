"""Live progress lines while cases tune: one line per event, never a redrawn bar.

Plain lines read the same on a TTY, in a CI log and from several xdist workers at once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .strategies import Progress

PERIODIC_S = 15.0  # a heartbeat for long searches, so a CI log shows the run is alive


class Announcer:
    """Prints ``[helion-tune]`` lines around pytest's output capture.

    ``quiet`` (pytest -q) silences progress; the session summary is printed regardless.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        quiet: bool = False,
        prefix: str = "[helion-tune]",
        budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self.quiet = quiet
        self.prefix = prefix
        self.budget_s = budget_s
        self.clock = clock
        self._last: dict[str, tuple[float, float | None, int]] = {}

    def say(self, line: str) -> None:
        if not self.quiet:
            self._write(f"{self.prefix} {line}")

    def progress(self, nodeid: str, p: Progress) -> None:
        """A line when the best improves, else at most every ``PERIODIC_S`` seconds."""
        if self.quiet:
            return
        now = self.clock()
        last_time, last_best, last_count = self._last.get(nodeid, (0.0, None, -1))
        improved = p.best_ms is not None and (last_best is None or p.best_ms < last_best)
        if p.configs_tested == last_count or (not improved and now - last_time < PERIODIC_S):
            return
        self._last[nodeid] = (now, p.best_ms if improved else last_best, p.configs_tested)
        best = "-" if p.best_ms is None else f"{p.best_ms:.4g} ms"
        budget = f" / {self.budget_s:.0f} s" if self.budget_s else ""
        failed = f", {p.failures} failed" if p.failures else ""
        name = nodeid.rsplit("::", 1)[-1]
        self._write(
            f"{self.prefix} {name}: {p.configs_tested} configs{failed}, best {best}, {p.elapsed_s:.0f} s{budget}"
        )


def terminal_writer(config: Any, worker: str) -> Callable[[str], None]:
    """A writer that reaches the user's terminal even while pytest captures output.

    In the main process it goes through the terminal reporter; an xdist worker has none, so
    it writes to the worker's real stderr, which the controller's terminal shares.
    """

    def write(line: str) -> None:
        # Looked up per call: both plugins register after this plugin's pytest_configure.
        capman = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        disabled = capman.global_and_fixture_disabled() if capman is not None else None
        stream: TextIO = sys.__stderr__ or sys.stderr
        if disabled is None:
            stream.write(line + "\n")
            stream.flush()
            return
        with disabled:
            if reporter is not None and not worker:
                reporter.ensure_newline()  # pytest's progress dots may be mid-line
                reporter.write_line(line)
            else:
                stream.write(f"[{worker}] {line}\n" if worker else line + "\n")
                stream.flush()

    return write
