"""End-to-end runs of real pytest sessions with real Helion kernels under the Triton interpreter."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import Project

pytestmark = pytest.mark.slow


def test_tune_then_read_cache_without_any_search(project: Project) -> None:
    first = project.run("--helion-tune=random")
    first.assert_outcomes(passed=3)
    assert project.searches(), "tuning constructed no Helion search"
    cases = project.cases()
    assert {c["origin"] for c in cases.values()} == {"tuned"}
    assert all(c["configs_tested"] >= 1 for c in cases.values())
    stored = project.store("add")
    assert stored["schema"] == 1
    assert len(stored["entries"]) == 2
    assert {e["specialization"] for e in stored["entries"]} == {
        "x=float32[64] y=float32[64]",
        "x=float32[128] y=float32[128]",
    }
    assert all(e["device"] == "interpreter" for e in stored["entries"])
    # the latency measured after tuning is in the entry, as in the summary, for a reviewer
    measured = {
        c["key"]["specialization"]: (round(c["latency_ms"], 6), round(c["eager_ms"], 6))
        for c in cases.values()
        if c["kernel"].endswith("add")
    }
    assert {e["specialization"]: (e["latency_ms"], e["eager_ms"]) for e in stored["entries"]} == (
        measured
    )
    assert all(ms > 0 for pair in measured.values() for ms in pair)
    before = {p.name: p.read_bytes() for p in (project.cache / "configs").glob("*.json")}

    second = project.run()
    second.assert_outcomes(passed=3)
    assert project.searches() == []
    assert {c["origin"] for c in project.cases().values()} == {"cache"}
    assert all(c["configs_tested"] == 0 for c in project.cases().values())
    after = {p.name: p.read_bytes() for p in (project.cache / "configs").glob("*.json")}
    assert after == before, "a run that tuned nothing changed the store"

    # Tuning again without --helion-retune finds every entry valid: still no search, no write.
    third = project.run("--helion-tune=random")
    third.assert_outcomes(passed=3)
    assert project.searches() == []
    assert {p.name: p.read_bytes() for p in (project.cache / "configs").glob("*.json")} == before


def test_search_logs_keep_each_case_and_stage_apart_in_pytests_cache(project: Project) -> None:
    """With pytest's cache on (a user's default; the other tests here turn it off), each case's
    Helion logs go under .pytest_cache, one file per case and stage. Node ids hold dots
    (``test_kernels.py``): a dotted base name once put every case and stage of a module into
    one ``test_kernels.py.csv``, since Helion derives its files with ``with_suffix``."""
    result = project.run("--helion-tune=seeded", "-k", "add", "-o", "addopts=")
    result.assert_outcomes(passed=2, deselected=1)
    logs = project.path / ".pytest_cache" / "d" / "helion-tune-logs"
    names = sorted(p.name for p in logs.glob("*.csv"))
    assert "test_kernels.py.csv" not in names, names
    for n in (64, 128):
        probe = logs / f"test_kernels_py__test_add_{n}_-probe.csv"
        assert probe.exists(), names
        with probe.open(newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["status"] != "started"]
        assert rows and all(r["generation"] == "0" for r in rows)  # one batch: this case's probe

    again = project.run(
        "--helion-tune=seeded", "--helion-retune", "-k", "add and 64", "-o", "addopts="
    )
    again.assert_outcomes(passed=1, deselected=2)
    with (logs / "test_kernels_py__test_add_64_-probe.csv").open(newline="") as handle:
        runs = {r["run_id"] for r in csv.DictReader(handle)}
    assert len(runs) == 1, "a re-run appended to the last run's log instead of starting afresh"


def test_retune_searches_again(project: Project) -> None:
    project.run("--helion-tune=random", "-k", "softmax").assert_outcomes(passed=1, deselected=2)
    project.run("--helion-tune=random", "--helion-retune", "-k", "softmax").assert_outcomes(
        passed=1, deselected=2
    )
    assert project.searches()
    assert project.cases()["test_softmax"]["origin"] == "tuned"


def test_edited_kernel_makes_entry_stale_and_strict_fails(project: Project) -> None:
    project.run("--helion-tune=random", "-k", "add").assert_outcomes(passed=2, deselected=1)
    project.edit_kernel("out[tile] = x[tile] + y[tile]", "out[tile] = y[tile] + x[tile]")

    result = project.run("-k", "add")
    result.assert_outcomes(passed=2, deselected=1)
    cases = project.cases()
    assert all(c["origin"] == "default" and c["stale"] for c in cases.values())
    assert all(c["stale_reason"] == "kernel source edited" for c in cases.values())
    result.stdout.fnmatch_lines(["*stale: *test_add*kernel source edited*"])
    # The stale entries are kept for later use as seeds.
    assert len(project.store("add")["entries"]) == 2

    strict = project.run("-k", "add", "--helion-strict")
    strict.assert_outcomes(failed=2, deselected=1)
    strict.stdout.fnmatch_lines(["*stale entry (kernel source edited)*--helion-strict*"])

    retuned = project.run("-k", "add", "--helion-tune=random")
    retuned.assert_outcomes(passed=2, deselected=1)
    assert len(project.store("add")["entries"]) == 4, (
        "old entries must survive next to the new ones"
    )
    seeded = project.cases()["test_add[64]"]["seed_source"]
    assert "cache: previous source or toolchain" in seeded


def test_missing_entry_runs_default_and_is_listed(project: Project) -> None:
    result = project.run("-k", "softmax")
    result.assert_outcomes(passed=1, deselected=2)
    assert project.cases()["test_softmax"]["origin"] == "default"
    result.stdout.fnmatch_lines(["*1 case(s) ran Helion's default config*"])
    assert not (project.cache / "configs").exists(), "reading mode must never write"
    project.run("-k", "softmax", "--helion-strict").assert_outcomes(failed=1, deselected=2)


@pytest.mark.parametrize("strategy", ["random", "seeded"])
def test_inaccurate_result_fails_and_is_never_stored(project: Project, strategy: str) -> None:
    project.write_test(
        "test_wrong",
        """
        import torch
        from kernels import add
        from pytest_helion_tune import tune_case

        @tune_case(kernel=add, inputs=lambda: (torch.ones(64), torch.ones(64)),
                   reference=lambda x, y: x + y + 0.5)
        def test_wrong(tuned):
            pass
        """,
    )
    result = project.run("test_wrong.py", f"--helion-tune={strategy}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*inaccurate*largest abs error 0.5*"])
    case = project.cases()["test_wrong"]
    assert case["verdict"] == "inaccurate"
    if strategy == "seeded":  # its probe says what happened, not a bare assertion from Helion
        assert "none of the probe's" in case["message"] and "accuracy" in case["message"]
        assert case["configs_tested"] >= 1 and case["failures"]["accuracy"] >= 1
    assert not (project.cache / "configs" / "kernels.add.json").exists()


def test_two_processes_tuning_one_kernel_file_lose_nothing(project: Project) -> None:
    env_cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--helion-tune=random",
    ]
    procs = [
        subprocess.Popen(
            [*env_cmd, "-k", key],
            cwd=project.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SEARCH_LOG": str(project.search_log)},  # the conftest's log
        )
        for key in ("add and 64", "add and 128")
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    specs = {e["specialization"] for e in project.store("add")["entries"]}
    assert specs == {"x=float32[64] y=float32[64]", "x=float32[128] y=float32[128]"}


def test_corrupt_cache_file_is_moved_aside_and_the_run_goes_on(project: Project) -> None:
    configs = project.cache / "configs"
    configs.mkdir(parents=True)
    damaged = configs / "kernels.add.json"
    damaged.write_text('{"schema": 1, "entries": [\n<<<<<<< HEAD\n')
    result = project.run("-k", "add")
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "*kernels.add.json: contains merge-conflict markers*moved aside to kernels.add.json.damaged-*"
        ]
    )
    aside = list(configs.glob("kernels.add.json.damaged-*"))
    assert len(aside) == 1 and "<<<<<<<" in aside[0].read_text()
    assert not damaged.exists()


def test_bad_case_definitions_fail_with_one_line_naming_the_test(project: Project) -> None:
    project.write_test(
        "test_bad",
        """
        import pytest
        import torch
        from kernels import add
        from pytest_helion_tune import tune_case

        @tune_case(inputs=lambda: (torch.ones(4), torch.ones(4)), reference=lambda x, y: x + y)
        def test_no_kernel(tuned):
            pass

        @tune_case(kernel=add, inputs=lambda: (torch.ones(4), torch.ones(4)))
        def test_no_reference(tuned):
            pass

        def boom():
            raise RuntimeError("factory exploded")

        @tune_case(kernel=add, inputs=boom, reference=lambda x, y: x + y)
        def test_factory_raises(tuned):
            pass

        @tune_case(kernel=add, inputs=lambda: (torch.ones(4),), reference=lambda x: x)
        def test_wrong_arity(tuned):
            pass

        @pytest.mark.parametrize("n", [4])
        @tune_case(kernel=add, inputs=lambda m: (torch.ones(m), torch.ones(m)), reference=lambda x, y: x + y)
        def test_unknown_param(tuned, n):
            pass
        """,
    )
    result = project.run("test_bad.py")
    result.assert_outcomes(failed=5)
    result.stdout.fnmatch_lines(
        [
            "*test_bad.py::test_no_kernel: @tune_case needs kernel=*",
            "*test_bad.py::test_no_reference: @tune_case needs reference=*",
            "*test_bad.py::test_factory_raises: inputs= raised RuntimeError: factory exploded*",
            "*test_bad.py::test_wrong_arity: inputs= returned 1 argument(s); kernel add takes 2*",
            "*test_bad.py::test_unknown_param*: inputs= wants argument 'm'*(it has: n)*",
        ]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--helion-tune=nonsense"],
            "*--helion-tune=nonsense: unknown strategy; choose one of*lfbo*",
        ),
        (["--helion-budget=-3"], "*--helion-budget=-3: must be 0 (no cap) or a positive number*"),
        (["--helion-budget=inf"], "*--helion-budget=inf: must be 0 (no cap) or a positive number*"),
        (["--helion-budget=nan"], "*--helion-budget=nan: must be 0 (no cap) or a positive number*"),
        (["--helion-budget=soon"], "*--helion-budget='soon': expected a number*"),
        (["--helion-effort=max"], "*--helion-effort=max: choose one of quick, full*"),
        (["--helion-perf-tolerance=-1"], "*--helion-perf-tolerance=-1*"),
        (
            ["--helion-tune", "test_kernels.py"],
            "*'test_kernels.py' is a path*--helion-tune=llm-seeded test_kernels.py*",
        ),
    ],
)
def test_bad_options_are_usage_errors(project: Project, args: list[str], message: str) -> None:
    result = project.run(*args, report=False)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("provider", "args", "message"),
    [
        (None, ["--helion-tune=llm"], "--helion-tune=llm needs an LLM: set HELION_LLM_PROVIDER*"),
        ("bogus", ["--helion-tune"], "--helion-tune=llm-seeded: *bogus*"),
    ],
)
def test_an_llm_strategy_without_a_usable_llm_stops_before_any_case(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    provider: str | None,
    args: list[str],
    message: str,
) -> None:
    """``llm`` with no LLM would fail every case: it is a usage error, as a misconfigured LLM
    is. Under xdist the controller's in-flight directory is removed on the way out."""
    for name in ("HELION_LLM_PROVIDER", "HELION_LLM_MODEL", "HELION_LLM_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    if provider is not None:
        monkeypatch.setenv("HELION_LLM_PROVIDER", provider)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    result = project.run("-n", "2", *args, report=False)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])
    assert not list(temp.glob("pytest-helion-tune-inflight-*"))


def test_help_documents_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    for option in (
        "--helion-tune",
        "--helion-retune",
        "--helion-budget",
        "--helion-effort",
        "--helion-seed",
        "--helion-cache-dir",
        "--helion-update-baselines",
        "--helion-perf-tolerance",
        "--helion-strict",
        "--helion-report",
    ):
        result.stdout.fnmatch_lines([f"*{option}*"])
    for ini in ("helion_tune ", "helion_budget ", "helion_cache_dir ", "helion_perf_tolerance "):
        result.stdout.fnmatch_lines([f"*{ini}*"])


def test_tune_case_marker_passes_strict_markers(project: Project) -> None:
    project.run("--strict-markers", "-k", "softmax").assert_outcomes(passed=1, deselected=2)


PROBE_CONFTEST = """
import json
import os

import helion.autotuner.base_search as base_search
from pytest_helion_tune import strategies
from pytest_helion_tune.strategies.helion_search import HelionSearch

_init = base_search.BaseSearch.__init__


def _counting_init(self, *args, **kwargs):
    with open(os.environ["SEARCH_LOG"], "a") as handle:
        handle.write(type(self).__name__ + "\\n")
    _init(self, *args, **kwargs)


base_search.BaseSearch.__init__ = _counting_init


class Probe(HelionSearch):
    def search(self, problem):
        with open(os.environ["PROBE_LOG"], "a") as handle:
            handle.write(json.dumps({"budget": problem.budget_s, "effort": problem.effort,
                                     "seed": problem.seed, "seeds": len(problem.seeds)}) + "\\n")
        return super().search(problem)


strategies.register("probe", lambda: Probe("probe", "RandomSearch", "records its problem"))
"""


def test_budget_effort_and_seed_reach_the_strategy(project: Project) -> None:
    project.pytester.makeconftest(PROBE_CONFTEST)
    log = project.path / "probe.log"
    import os

    os.environ["PROBE_LOG"] = str(log)
    project.run(
        "--helion-tune=probe",
        "--helion-budget=7",
        "--helion-effort=full",
        "--helion-seed=3",
        "-k",
        "softmax",
    ).assert_outcomes(passed=1, deselected=2)
    import json

    seen = [json.loads(line) for line in log.read_text().splitlines()]
    assert seen == [{"budget": 7.0, "effort": "full", "seed": 3, "seeds": 0}]
    assert project.cases()["test_softmax"]["strategy"] == "probe"


DETERMINISTIC_TIMER = '''
import functools
import hashlib

from pytest_helion_tune.timing import Timer


class CodeHashTimer(Timer):
    """A deterministic stand-in for a GPU clock: a fixed "latency" per generated kernel."""

    name = "code-hash"

    def sample(self, fn, label):
        fn()
        inner = fn
        while isinstance(inner, functools.partial):
            inner = inner.func
        code = getattr(inner, "__code__", None)
        text = code.co_filename if code is not None else label
        return 1.0 + int(hashlib.sha256(text.encode()).hexdigest()[:6], 16) / 2**24


def pytest_helion_tune_timer(config, device):
    return CodeHashTimer()
'''


def test_same_seed_same_candidate_sequence(project: Project) -> None:
    project.pytester.makeconftest(COUNTING_AND_TIMER)
    sequences = []
    for seed in ("5", "5", "6"):
        shutil_rmtree(project.cache)
        project.run("--helion-tune=lfbo", f"--helion-seed={seed}", "-k", "softmax").assert_outcomes(
            passed=1, deselected=2
        )
        case = project.cases()["test_softmax"]
        assert case["timer"] == "code-hash"
        sequences.append(case["candidates"])
    assert sequences[0], "no candidates recorded"
    assert sequences[0] == sequences[1]


def shutil_rmtree(path: object) -> None:
    import shutil

    shutil.rmtree(str(path), ignore_errors=True)


COUNTING_AND_TIMER = (
    textwrap.dedent(
        """
import os

import helion.autotuner.base_search as base_search

_init = base_search.BaseSearch.__init__


def _counting_init(self, *args, **kwargs):
    with open(os.environ["SEARCH_LOG"], "a") as handle:
        handle.write(type(self).__name__ + "\\n")
    _init(self, *args, **kwargs)


base_search.BaseSearch.__init__ = _counting_init
"""
    )
    + DETERMINISTIC_TIMER
)


def test_ini_mirrors_and_cache_dir_and_html_report(project: Project) -> None:
    project.pytester.makeini(
        "[pytest]\naddopts = -p no:cacheprovider\nhelion_tune = random\nhelion_cache_dir = store\nhelion_budget = 30\n"
    )
    html = project.path / "out" / "report.html"
    result = project.run("-k", "softmax", f"--helion-report-html={html}")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.re_match_lines(
        [r"helion-tune: tuning with random \(effort quick, budget 30 s/case, seed 0\)"]
    )
    assert (project.path / "store" / "configs" / "kernels.softmax.json").exists()
    assert not project.cache.exists()
    page = html.read_text()
    assert "<svg" in page and "test_softmax" in page
    # The command line wins over the ini file.
    again = project.run("-k", "softmax", "--helion-cache-dir=other", "--helion-tune=random")
    again.assert_outcomes(passed=1, deselected=2)
    assert (project.path / "other" / "configs" / "kernels.softmax.json").exists()
