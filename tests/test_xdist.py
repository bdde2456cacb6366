"""pytest-xdist runs: results reach the controller, one tuner per key, no two timers at once, crashes."""

from __future__ import annotations

import itertools
import json

import pytest
from conftest import Project

pytestmark = pytest.mark.slow

INTERVAL_TIMER = '''
import itertools
import json
import os
import time

from pytest_helion_tune.timing import WallClockTimer


class LoggingTimer(WallClockTimer):
    """The interpreter's wall clock, logging when each process held the clock."""

    name = "logged-wall-clock"

    def sample(self, fn, label):
        start = time.time()
        value = super().sample(fn, label)
        with open(os.environ["TIMING_LOG"], "a") as handle:
            handle.write(json.dumps([os.getpid(), start, time.time()]) + "\\n")
        return value


def pytest_helion_tune_timer(config, device):
    return LoggingTimer(calls=1)
'''

SAME_KEY_TESTS = """
import torch
from kernels import add
from pytest_helion_tune import tune_case

@tune_case(kernel=add, inputs=lambda: (torch.randn(96), torch.randn(96)), reference=lambda x, y: x + y)
def test_twin_{n}(tuned):
    pass
"""


def test_results_of_every_worker_reach_the_controller(project: Project) -> None:
    import os

    log = project.path / "timing.log"
    os.environ["TIMING_LOG"] = str(log)
    project.pytester.makeconftest(INTERVAL_TIMER)
    for n in range(3):
        project.write_test(f"test_twin_{n}", SAME_KEY_TESTS.format(n=n))
    result = project.run("-n", "2", "--helion-tune=random")
    result.assert_outcomes(passed=6)
    cases = project.cases()
    assert set(cases) == {
        "test_add[64]",
        "test_add[128]",
        "test_softmax",
        "test_twin_0",
        "test_twin_1",
        "test_twin_2",
    }
    assert {c["worker"] for c in cases.values()} == {"gw0", "gw1"}
    twins = [cases[f"test_twin_{n}"] for n in range(3)]
    assert sorted(c["origin"] for c in twins) == ["cache", "cache", "tuned"], (
        "one key must be tuned once"
    )
    assert len({c["key_id"] for c in twins}) == 1
    result.stdout.fnmatch_lines(["*test_twin_0*", "*test_twin_2*"])  # the controller's summary

    intervals = [json.loads(line) for line in log.read_text().splitlines()]
    assert len({pid for pid, _, _ in intervals}) == 2, "both workers timed something"
    intervals.sort(key=lambda t: t[1])
    for (pid_a, _start_a, end_a), (pid_b, start_b, _end_b) in itertools.pairwise(intervals):
        if pid_a != pid_b:
            assert start_b >= end_a - 1e-3, "two workers timed on one device at once"


SLEEPY_CONFTEST = """
import time

from pytest_helion_tune import strategies
from pytest_helion_tune.configs import as_dict
from pytest_helion_tune.strategies import SearchOutcome


class Sleepy:
    name = "sleepy"
    description = "sleeps 4 s, then returns the default config (a search longer than the lock timeout)"

    def search(self, problem):
        time.sleep(4)
        config = as_dict(problem.bound.config_spec.default_config())
        return SearchOutcome(config=config, configs_tested=1)


strategies.register("sleepy", Sleepy)
"""


def test_a_worker_waits_on_a_claim_as_long_as_the_search_takes(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both workers run the same case (``--dist each``); one tunes for 4 s, longer than the
    store's lock timeout of 1 s here, and the other waits for it and reads its entry."""
    monkeypatch.setenv("HELION_TUNE_LOCK_TIMEOUT", "1")
    project.pytester.makeconftest(SLEEPY_CONFTEST)
    result = project.run(
        "-n", "2", "--dist", "each", "--helion-tune=sleepy", "-k", "test_add and 64"
    )
    assert result.parseoutcomes()["passed"] == 2, result.stdout.str()
    assert "claim.lock" not in result.stdout.str()


CRASHING_CONFTEST = """
import os

from pytest_helion_tune import strategies
from pytest_helion_tune.strategies.helion_search import HelionSearch


class Crashing(HelionSearch):
    def search(self, problem):
        if tuple(problem.args[0].shape) == (128,):
            os.kill(os.getpid(), 9)  # a segfault or CUDA error killing the worker mid-search
        return super().search(problem)


strategies.register("crashing", lambda: Crashing("crashing", "RandomSearch", "dies on one case"))
"""


def test_a_worker_crash_costs_only_that_case(project: Project) -> None:
    project.pytester.makeconftest(CRASHING_CONFTEST)
    result = project.run("-n", "2", "--helion-tune=crashing")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 2 and outcomes.get("failed") == 1, outcomes
    cases = project.cases()
    crashed = cases["test_add[128]"]
    assert crashed["verdict"] == "error"
    assert (
        "crashed while tuning it" in crashed["message"]
        and "nothing was stored" in crashed["message"]
    )
    assert cases["test_add[64]"]["origin"] == "tuned" and cases["test_softmax"]["origin"] == "tuned"
    specs = {e["specialization"] for e in project.store("add")["entries"]}
    assert specs == {"x=float32[64] y=float32[64]"}
    result.stdout.fnmatch_lines(["*worker gw* crashed while tuning it*"])
