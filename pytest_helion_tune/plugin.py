"""The pytest hooks of pytest-helion-tune; each forwards to ``TuneSession``.

Registered through the ``pytest11`` entry point; nothing imports this module.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import hookspecs, interpreter
from .case import MARKER
from .errors import OptionError
from .options import add_options, parse_options
from .report import summary_lines, write_json
from .results import CaseResult
from .session import TuneSession
from .tuned import TunedKernel

SESSION_KEY = pytest.StashKey[TuneSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _header(session: TuneSession) -> dict[str, Any]:
    from .key import toolchain

    opts = session.options
    return {
        "strategy": opts.strategy or "cache only",
        "effort": opts.effort,
        "budget_s": opts.budget_s,
        "seed": opts.seed,
        "cache_dir": str(opts.cache_dir),
        "interpreter": interpreter.active(),
        "toolchain": dict(toolchain()),
    }


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(kernel, inputs, reference, atol=None, rtol=None, perf_tolerance=None): "
        "a Helion kernel test tuned and checked by pytest-helion-tune",
    )
    from . import strategies

    try:
        options = parse_options(config, strategies.names())
    except OptionError as exc:
        raise pytest.UsageError(str(exc)) from None
    if interpreter.enable_before_import():
        interpreter.patch_libdevice()

    def log_dir() -> Path | None:
        # pytest's own cache dir (not the committed one); absent under -p no:cacheprovider
        cache = getattr(config, "cache", None)
        return None if cache is None else Path(cache.mkdir("helion-tune-logs"))

    worker = str(getattr(config, "workerinput", {}).get("workerid", ""))
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None and config.get_verbosity() >= 0:
            reporter.write_line(f"[helion-tune] {line}")

    session = TuneSession(
        options,
        say=say,
        timer_for=lambda device: config.hook.pytest_helion_tune_timer(config=config, device=device),
        log_dir=log_dir,
        worker=worker,
    )
    session.on_result.append(
        lambda result: config.hook.pytest_helion_tune_case_done(config=config, result=result)
    )
    config.stash[SESSION_KEY] = session


def _session(config: pytest.Config) -> TuneSession:
    return config.stash[SESSION_KEY]


@pytest.fixture
def tuned(request: pytest.FixtureRequest) -> TunedKernel:
    """The @tune_case kernel with its chosen config (from the cache, tuned now, or Helion's default)."""
    if request.node.get_closest_marker(MARKER) is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the 'tuned' fixture needs a @tune_case marker on the test"
        )
    return _session(request.config).outcome(request.node).tuned


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker(MARKER) is not None:
        result = _session(item.config).outcome(item).result
        if result.failed:
            pytest.fail(result.message or f"{item.nodeid}: {result.verdict}", pytrace=False)
    return (yield)


def pytest_report_header(config: pytest.Config) -> str | None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return None
    h = _header(session)
    mode = (
        f"tuning with {h['strategy']}"
        if session.options.tuning
        else "reading the cache (no tuning)"
    )
    where = "Triton interpreter (CPU)" if h["interpreter"] else "GPU"
    return f"helion-tune: {mode}, effort {h['effort']}, cache {h['cache_dir']}, {where}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    results: list[CaseResult] = session.results
    notes = session.store.notes
    if not results and not notes:
        return
    terminalreporter.section("helion-tune")
    for line in summary_lines(results):
        terminalreporter.write_line(line)
    for note in notes:
        terminalreporter.write_line(f"note: {note}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    tune = session.config.stash.get(SESSION_KEY, None)
    if tune is None:
        return
    if tune.options.report is not None:
        write_json(tune.options.report, tune.results, _header(tune))
    if tune.options.report_html is not None:
        import datetime

        from .report_html import write_html

        # The date goes into the HTML only, so that the JSON report stays byte-stable.
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        write_html(tune.options.report_html, tune.results, {**_header(tune), "date": date})
