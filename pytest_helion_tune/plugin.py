"""The pytest hooks of pytest-helion-tune; each forwards to ``TuneSession``.

Registered through the ``pytest11`` entry point; nothing imports this module.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from . import devices, hookspecs, interpreter
from .case import MARKER
from .errors import OptionError
from .options import add_options, parse_options
from .progress import Announcer, terminal_writer
from .report import summary_lines, write_json
from .results import CaseResult
from .session import TuneSession, inflight_note
from .tuned import TunedKernel

SESSION_KEY = pytest.StashKey[TuneSession]()
ASSIGNMENT_KEY = pytest.StashKey[devices.Assignment | None]()
RESULT_PROPERTY = "helion_tune_result"
INFLIGHT_INPUT = "helion_tune_inflight_dir"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Before any conftest imports torch and initializes CUDA: CUDA_VISIBLE_DEVICES set later
    # would be ignored by the worker's CUDA context.
    early_config.stash[ASSIGNMENT_KEY] = devices.pin_xdist_worker()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _header(session: TuneSession) -> dict[str, Any]:
    from .key import toolchain

    opts = session.options
    return {
        "device": devices.describe_host(
            interpreter.active(),
            controller=getattr(session, "inflight_dir", None) is not None and not session.worker,
        ),
        "strategy": opts.strategy or "cache only",
        "effort": opts.effort,
        "budget_s": opts.budget_s,
        "seed": opts.seed,
        "cache_dir": str(opts.cache_dir),
        "interpreter": interpreter.active(),
        "llm": session.llm_line or "not used by this strategy",
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

    workerinput = getattr(config, "workerinput", {})
    worker = str(workerinput.get("workerid", ""))
    inflight = workerinput.get(INFLIGHT_INPUT)
    created = None
    # (xdist registers its controller plugin after this hook, so ask its options instead)
    if not worker and getattr(config.option, "dist", "no") != "no":
        import tempfile

        # The xdist controller: workers leave a note here while tuning, so that a crash
        # can be pinned on the case that caused it.
        inflight = created = tempfile.mkdtemp(prefix="pytest-helion-tune-inflight-")
    announcer = Announcer(
        terminal_writer(config, worker),
        quiet=config.get_verbosity() < 0,
        budget_s=options.budget_s,
    )

    session = TuneSession(
        options,
        say=announcer.say,
        progress=announcer.progress,
        timer_for=lambda device: config.hook.pytest_helion_tune_timer(config=config, device=device),
        log_dir=log_dir,
        inflight_dir=Path(inflight) if inflight else None,
        worker=worker,
    )
    session.on_result.append(
        lambda result: config.hook.pytest_helion_tune_case_done(config=config, result=result)
    )
    if options.strategy in strategies.USES_LLM:
        # A misconfigured LLM is a usage error, said up front; so is `llm` with none, which
        # would fail every case. pytest_unconfigure never sees this session: the in-flight
        # directory goes here.
        try:
            llm = session.llm_description()
        except OptionError as exc:
            _remove(created)
            raise pytest.UsageError(f"--helion-tune={options.strategy}: {exc}") from None
        if options.strategy == "llm" and llm.startswith("offline"):
            from .strategies.llm import NO_LLM

            _remove(created)
            raise pytest.UsageError(NO_LLM)
        if options.strategy == "llm-seeded" and llm.startswith("offline"):
            llm = "offline (no LLM configured): llm-seeded runs as seeded"
        session.llm_line = llm
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(_Collector(session), "helion-tune-collector")


def _remove(directory: str | None) -> None:
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


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


def _record(item: pytest.Item, result: CaseResult) -> None:
    """Attaches the result to the item's reports: JUnit XML shows the short properties, and
    xdist carries the full result to the controller as soon as the test ends."""
    names = {name for name, _ in item.user_properties}
    if RESULT_PROPERTY in names:
        return
    item.user_properties.extend(
        [
            ("helion_origin", result.origin),
            ("helion_verdict", result.verdict),
            ("helion_latency_ms", "" if result.latency_ms is None else f"{result.latency_ms:.6g}"),
            (RESULT_PROPERTY, json.dumps(result.to_json(), sort_keys=True, default=str)),
        ]
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker(MARKER) is not None:
        result = _session(item.config).outcome(item).result
        _record(item, result)
        if result.failed:
            pytest.fail(result.message or f"{item.nodeid}: {result.verdict}", pytrace=False)
    return (yield)


class _Collector:
    """Hooks that need the session: results arriving from xdist workers, and worker crashes."""

    def __init__(self, session: TuneSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                self.session.add_remote(CaseResult.from_json(json.loads(str(value))))

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self.session.inflight_dir is not None:
            node.workerinput[INFLIGHT_INPUT] = str(self.session.inflight_dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        notes = self.session.store.notes
        for note in getattr(node, "workeroutput", {}).get("helion_tune_notes", []):
            if note not in notes:
                notes.append(note)
        worker = str(node.workerinput.get("workerid", ""))
        if not error or self.session.inflight_dir is None:
            return
        crashed = inflight_note(self.session.inflight_dir, worker)
        if crashed is None:
            return
        last = str(error).strip().splitlines()[-1] if str(error).strip() else "no message"
        self.session.add_remote(
            CaseResult(
                nodeid=crashed["nodeid"],
                verdict="error",
                worker=worker,
                message=(
                    f"{crashed['nodeid']}: worker {worker} crashed while tuning it (key {crashed['key']}): "
                    f"{last}; nothing was stored for this case, every other case kept its results"
                ),
            )
        )


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return None
    h = _header(session)
    opts = session.options
    if opts.tuning:
        budget = f"{opts.budget_s:.0f} s" if opts.budget_s else "no cap"
        mode = f"tuning with {h['strategy']} (effort {opts.effort}, budget {budget}/case, seed {opts.seed})"
    else:
        mode = "reading the cache, never tuning"
    tools = ", ".join(f"{k} {v}" for k, v in h["toolchain"].items())
    lines = [
        f"helion-tune: {mode}",
        f"helion-tune: device {h['device']}; {tools}",
        f"helion-tune: cache {h['cache_dir']}",
    ]
    if session.llm_line:
        lines.append(f"helion-tune: LLM {session.llm_line}")
    assignment = config.stash.get(ASSIGNMENT_KEY, None)
    if assignment is not None:
        lines.append(f"helion-tune: {assignment.describe()}")
    return lines


def _notes(session: TuneSession) -> list[str]:
    """What the config and baseline stores noted (damaged files, skipped entries), once each."""
    return [
        *session.store.notes,
        *(n for n in session.baselines.notes if n not in session.store.notes),
    ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    results: list[CaseResult] = session.results
    notes = _notes(session)
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
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["helion_tune_notes"] = _notes(tune)  # the baselines' too
        return  # the controller writes the reports
    if tune.options.report is not None:
        write_json(tune.options.report, tune.results, _header(tune))
    if tune.options.report_html is not None:
        import datetime

        from .report_html import write_html

        # The date goes into the HTML only, so that the JSON report stays byte-stable.
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        write_html(tune.options.report_html, tune.results, {**_header(tune), "date": date})


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    session.close()
    if session.inflight_dir is not None and not session.worker:
        shutil.rmtree(session.inflight_dir, ignore_errors=True)
