"""Faults, each provoked for real: failing candidates, interrupts, damaged and untrusted files,
leaked secrets, read-only and full disks, stuck locks. docs/reliability.md lists them.

End-to-end cases run real pytest sessions on real Helion kernels under the Triton interpreter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TRITON_INTERPRET", "1")  # before helion/triton are imported

# Imported here, before any pytester fixture snapshots sys.modules: re-importing them after a
# test's snapshot is restored would register torch's operator libraries twice.
import helion  # noqa: F401
import pytest
import torch
from conftest import COUNTING_CONFTEST, Project
from llm_server import Reply, ScriptedServer

from pytest_helion_tune import jsonstore, monitor, timing
from pytest_helion_tune import key as keys
from pytest_helion_tune.cache import ConfigEntry, ConfigStore
from pytest_helion_tune.errors import StoreError
from pytest_helion_tune.key import CaseKey

ADD64 = "x=float32[64] y=float32[64]"
ADD128 = "x=float32[128] y=float32[128]"
DAMAGED_NAME = re.compile(r"\.damaged-\d{8}T\d{12}Z$")


def run(project: Project, *args: str, timeout: float = 240) -> pytest.RunResult:
    """``Project.run`` with a time limit: a fault that hangs fails the test instead."""
    if project.search_log.exists():
        project.search_log.unlink()
    os.environ["SEARCH_LOG"] = str(project.search_log)
    return project.pytester.runpytest_subprocess(
        f"--helion-report={project.report_path}", *args, timeout=timeout
    )


def literal(text: str) -> str:
    """``text`` for ``fnmatch_lines``, its brackets matching themselves."""
    return text.replace("[", "[[]")


def entry(spec: str, config: dict[str, Any] | None = None, **kw: Any) -> ConfigEntry:
    key = CaseKey("m.k", "abc", spec, "interpreter", (("torch", "2.13"),))
    return ConfigEntry(key=key, config=config or {"block_sizes": [32]}, **kw)


# -- candidates that fail in every way ------------------------------------------------------

FAULTY_KERNELS = """
import helion
import helion.language as hl
import torch

BLOCKS = (32, 16, 64, 8, 4, 2)


@helion.kernel(static_shapes=True, configs=[helion.Config(block_sizes=[b]) for b in BLOCKS])
def faulty(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size(0)):
        bs = x[tile] * 0.0 + tile.block_size  # the candidate's block size, as a tensor
        # NaN when the block size is 16, off by one when it is 64, right otherwise
        out[tile] = x[tile] * 2.0 + (x[tile] - x[tile]) / (bs - 16.0) + torch.where(
            bs == 64.0, 1.0, 0.0
        )
    return out
"""

FAULTY_TESTS = """
import pytest
import torch
from faulty_kernels import faulty
from pytest_helion_tune import tune_case


@pytest.mark.parametrize("n", [64, 128, 256])
@tune_case(kernel=faulty, inputs=lambda n: (torch.randn(n),), reference=lambda x: x * 2.0)
def test_faulty(tuned, n):
    x = torch.randn(n)
    torch.testing.assert_close(tuned(x), x * 2.0)
"""

# Faults the kernel itself cannot make: block 8 raises while compiling, block 4 hangs, block 2
# runs out of memory (with FAULTY_KILLERS: segfaults at 64 elements, illegal address at 256).
FAULTY_CONFTEST = (
    COUNTING_CONFTEST
    + """
import time

import torch
from helion.runtime.kernel import BoundKernel

from pytest_helion_tune import strategies
from pytest_helion_tune.strategies.helion_search import HelionSearch
from pytest_helion_tune.timing import WallClockTimer

_compile_config = BoundKernel.compile_config


def _hang(*args):
    time.sleep(3600)


def _out_of_memory(*args):
    if os.environ.get("FAULTY_KILLERS") and args[0].numel() == 64:
        os.kill(os.getpid(), 11)  # a segfault
    if os.environ.get("FAULTY_KILLERS") and args[0].numel() == 256:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")


def compile_config(self, config=None, **kwargs):
    block = dict(config or {}).get("block_sizes", [None])[0]
    if self.kernel.name == "faulty":
        if block == 8:
            raise RuntimeError("simulated compiler crash for block_sizes=[8]")
        if block == 4:
            return _hang
        if block == 2:
            return _out_of_memory
    return _compile_config(self, config, **kwargs)


BoundKernel.compile_config = compile_config
strategies.register(
    "faulty", lambda: HelionSearch("faulty", "FiniteSearch", "the kernel's own configs")
)


class Timer(WallClockTimer):
    candidate_timeout_s = 1.0


def pytest_helion_tune_timer(config, device):
    return Timer(calls=1)
"""
)


@pytest.fixture
def faulty(project: Project) -> Project:
    project.pytester.makeconftest(FAULTY_CONFTEST)
    project.pytester.makepyfile(faulty_kernels=FAULTY_KERNELS, test_faulty=FAULTY_TESTS)
    return project


@pytest.mark.slow
def test_failing_candidates_are_counted_and_the_search_goes_on(faulty: Project) -> None:
    result = run(faulty, "--helion-tune=faulty", "test_faulty.py", "-k", "64", timeout=120)
    result.assert_outcomes(passed=1, deselected=2)
    case = faulty.cases()["test_faulty[64]"]
    assert case["origin"] == "tuned" and case["verdict"] == "missing-baseline"
    # 16 gives NaN and 64 a wrong value (accuracy); 8 raises compiling and 2 runs out of
    # memory (compile: Helion's name for raised while compiling or running); 4 hangs (timeout)
    assert case["failures"]["accuracy"] == 2
    assert case["failures"]["compile"] == 2
    assert case["failures"]["timeout"] == 1
    assert case["config"]["block_sizes"] == [32], "the only candidate that runs and is right"
    assert case["tune_seconds"] < 30, "the hanging candidate cost about its 1 s limit"
    stored = json.loads((faulty.cache / "configs" / "faulty_kernels.faulty.json").read_text())
    assert [e["config"]["block_sizes"] for e in stored["entries"]] == [[32]]
    result.stdout.fnmatch_lines(
        [
            "*tuned test_faulty.py::test_faulty[[]64[]]: * 5 failed (2 accuracy, 2 compile, 1 timeout)*",
            "candidates of test_faulty.py::test_faulty[[]64[]]: 5 failed (2 accuracy, 2 compile, 1 timeout); the search went on",
        ]
    )


@pytest.mark.slow
def test_candidates_that_kill_their_process_cost_only_their_case_under_xdist(
    faulty: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTY_KILLERS", "1")
    result = run(
        faulty, "-n", "3", "--max-worker-restart=0", "--helion-tune=faulty", "test_faulty.py"
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1 and outcomes.get("failed") == 2, outcomes
    cases = faulty.cases()
    # a segfault kills the xdist worker: the controller names the case
    assert "crashed while tuning it" in cases["test_faulty[64]"]["message"]
    # an illegal address in-process (no worker of Helion's under the interpreter): Helion stops
    # the search, since on a GPU the process's CUDA context would be lost
    assert "TritonUnrecoverableRuntimeError" in cases["test_faulty[256]"]["message"]
    assert cases["test_faulty[128]"]["origin"] == "tuned"
    stored = json.loads((faulty.cache / "configs" / "faulty_kernels.faulty.json").read_text())
    assert [e["specialization"] for e in stored["entries"]] == ["x=float32[128]"]


def test_deadline_interrupts_a_hang_and_counts_it() -> None:
    fired: list[int] = []
    start = time.monotonic()
    with pytest.raises(timing.CandidateTimeout), timing.deadline(0.2, lambda: fired.append(1)):
        time.sleep(5)
    assert time.monotonic() - start < 2 and fired == [1]
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0, "the alarm is disarmed afterwards"


def test_deadline_leaves_an_outer_alarm_and_other_threads_alone() -> None:
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    signal.setitimer(signal.ITIMER_REAL, 30)
    try:
        with timing.deadline(0.05):
            time.sleep(0.2)  # the outer alarm (pytest-timeout) keeps priority: no timeout here
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 20
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with timing.deadline(0.05):
                time.sleep(0.2)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert errors == []


# -- Ctrl-C and SIGTERM in the middle of a search ----------------------------------------

SLOW_KERNELS = """
import helion
import helion.language as hl
import torch


@helion.kernel(
    static_shapes=True, configs=[helion.Config(block_sizes=[b]) for b in (32, 16, 8, 4, 2, 64)]
)
def double(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size(0)):
        out[tile] = x[tile] * 2.0
    return out
"""

SLOW_TESTS = """
import torch
from slow_kernels import double
from pytest_helion_tune import tune_case


@tune_case(kernel=double, inputs=lambda: (torch.randn(64),), reference=lambda x: x * 2.0)
def test_double(tuned):
    pass
"""

SLOW_CONFTEST = (
    COUNTING_CONFTEST
    + """
import time

from pytest_helion_tune import strategies
from pytest_helion_tune.strategies.helion_search import HelionSearch
from pytest_helion_tune.timing import WallClockTimer

strategies.register("finite", lambda: HelionSearch("finite", "FiniteSearch", "the kernel's configs"))


class SlowTimer(WallClockTimer):
    \"\"\"Logs and sleeps before timing each candidate, so that a signal lands mid-search.\"\"\"

    def sample(self, fn, label):
        if label == "candidate":
            with open(os.environ["SAMPLES_LOG"], "a") as handle:
                handle.write("sample\\n")
            time.sleep(float(os.environ.get("SLOW_TIMER_S", "0")))
        return super().sample(fn, label)


def pytest_helion_tune_timer(config, device):
    return SlowTimer(calls=1)
"""
)


@pytest.fixture
def slow(project: Project, monkeypatch: pytest.MonkeyPatch) -> Project:
    project.pytester.makeconftest(SLOW_CONFTEST)
    project.pytester.makepyfile(slow_kernels=SLOW_KERNELS, test_slow=SLOW_TESTS)
    monkeypatch.setenv("SAMPLES_LOG", str(project.path / "samples.log"))
    monkeypatch.setenv("SEARCH_LOG", str(project.search_log))
    return project


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_mid_search(project: Project, sig: signal.Signals) -> tuple[int, str, float]:
    """Starts a slow tuning run, signals it once two candidates have finished; returns the
    exit code, the output, and how long the process took to stop after the signal."""
    samples = project.path / "samples.log"
    samples.unlink(missing_ok=True)
    env = {**os.environ, "SLOW_TIMER_S": "1"}
    command = [sys.executable, "-m", "pytest", "--helion-tune=finite", "test_slow.py"]
    command.append(f"--helion-report={project.report_path}")
    proc = subprocess.Popen(
        command,
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # As from a terminal: a suite started in the background (``pytest &``) passes an
        # ignored SIGINT on to its children, and Python keeps it ignored.
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if samples.exists() and len(samples.read_text().split()) >= 3:
                break  # the third candidate is being timed: two have finished
            time.sleep(0.05)
        assert proc.poll() is None, "the search ended before it could be interrupted"
        sent = time.monotonic()
        proc.send_signal(sig)
        output = proc.communicate(timeout=60)[0].decode()
        return proc.returncode, output, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stored_double(project: Project) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (project.cache / "configs" / "slow_kernels.double.json").read_text()
    )
    return data


@pytest.mark.slow
def test_sigterm_mid_search_stores_the_best_so_far_as_partial_and_the_next_run_resumes(
    slow: Project,
) -> None:
    code, output, stopped_in = interrupt_mid_search(slow, signal.SIGTERM)
    assert code == pytest.ExitCode.INTERRUPTED, output
    assert stopped_in < 30
    assert "KeyboardInterrupt: signal SIGTERM" in output
    assert "tuning interrupted; the best accurate config of 2 tested" in output
    (partial,) = stored_double(slow)["entries"]  # valid JSON, one entry
    assert partial["partial"] is True and partial["configs_tested"] == 2
    assert partial["config"]["block_sizes"] in ([32], [16])  # one of the two that finished
    assert not list((slow.cache / "configs").glob("*.tmp")), "no half-written file left"
    case = slow.cases()["test_double"]
    assert case["verdict"] == "skipped" and case["partial"] is True

    read = run(slow, "test_slow.py")  # reading: the partial entry answers, marked so
    read.assert_outcomes(passed=1)
    assert slow.searches() == []
    assert slow.cases()["test_double"]["origin"] == "cache"
    read.stdout.fnmatch_lines(
        ["*test_double*cache (partial)*", "1 case(s) use the best config of an interrupted*"]
    )

    resumed = run(slow, "--helion-tune=finite", "test_slow.py")  # tuning finishes it
    resumed.assert_outcomes(passed=1)
    assert slow.searches() == ["FiniteSearch"]
    case = slow.cases()["test_double"]
    assert case["origin"] == "tuned" and not case["partial"]
    assert "cache: interrupted search (partial)" in case["seed_source"]
    (done,) = stored_double(slow)["entries"]
    assert "partial" not in done and done["configs_tested"] == 6


@pytest.mark.slow
def test_ctrl_c_mid_search_stores_the_best_so_far_as_partial(slow: Project) -> None:
    code, output, _ = interrupt_mid_search(slow, signal.SIGINT)
    assert code == pytest.ExitCode.INTERRUPTED, output
    (partial,) = stored_double(slow)["entries"]
    assert partial["partial"] is True
    assert "stored as partial; pytest --helion-tune resumes from it" in output


def test_only_candidates_that_finished_accurate_are_read_back_from_a_log(tmp_path: Path) -> None:
    log = tmp_path / "search.csv"
    log.write_text(
        "run_id,timestamp_s,config_id,generation,status,perf_ms,compile_time_s,config\n"
        "r,0.1,a,0,started,,,Config(block_sizes=[16])\n"
        "r,0.2,a,0,error,,,Config(block_sizes=[16])\n"
        "r,0.3,b,0,ok,inf,,Config(block_sizes=[32])\n"
        "r,0.4,c,0,ok,1.5,,Config(block_sizes=[8])\n"
        "r,0.5,d,0,ok,0.5,,Config(block_siz"  # a row cut short by the kill
    )
    assert monitor.finished([log]) == [(1.5, "Config(block_sizes=[8])")]


def test_config_text_from_a_log_is_read_as_literals_only() -> None:
    assert monitor.config_from_repr("Config(block_sizes=[8], pid_type='flat', x=None)") == {
        "block_sizes": [8],
        "pid_type": "flat",
        "x": None,
    }
    for text in (
        "Config(block_sizes=__import__('os').getcwd())",
        "Config(**{'a': 1})",
        "os.system('true')",
        "Config(block_sizes=[1]) or exec('x')",
        "Config(" * 10_000,
    ):
        with pytest.raises(ValueError):
            monitor.config_from_repr(text)


# -- damaged and hand-edited files ---------------------------------------------------------


def add_keys(project: Project) -> dict[str, CaseKey]:
    """The keys of the project's two add cases, computed as the plugin computes them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("kernels", project.path / "kernels.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = {}
    for n in (64, 128):
        args = (torch.randn(n), torch.randn(n))
        key = keys.make_key(module.add, args, keys.device_for(args))
        found[key.specialization] = key
    return found


@pytest.mark.slow
def test_damaged_files_are_moved_aside_and_what_parses_is_used_and_written_back(
    project: Project,
) -> None:
    store = ConfigStore(project.cache)
    for key in add_keys(project).values():
        store.put(ConfigEntry(key=key, config={"block_sizes": [32]}, strategy="random"))
    configs = project.cache / "configs"
    add = configs / "kernels.add.json"
    text = add.read_text()
    # entries are sorted: [128] then [64]; cutting inside the second leaves the first whole
    truncated = text[: text.index(f'"specialization": "{ADD64}"')]
    add.write_text(truncated)
    softmax = configs / "kernels.softmax.json"
    softmax.write_text('{"schema": 99, "entries": []}\n')
    gone = configs / "kernels.gone.json"
    gone.write_text(text.replace('"kernels.add"', '"kernels.gone"'))

    read = run(project)
    read.assert_outcomes(passed=2, failed=1)
    cases = project.cases()
    assert cases["test_add[128]"]["origin"] == "cache"  # recovered from the damaged file
    assert cases["test_add[64]"]["origin"] == "default"  # its entry was cut in half
    assert "schema 99 is newer" in cases["test_softmax"]["message"]
    read.stdout.fnmatch_lines(
        [
            "note: */kernels.add.json: not valid JSON (*); moved aside to kernels.add.json.damaged-*; "
            "1 entry recovered and written back"
        ]
    )
    (aside,) = configs.glob("kernels.add.json.damaged-*")
    assert DAMAGED_NAME.search(aside.name) and aside.read_text() == truncated
    assert softmax.read_text() == '{"schema": 99, "entries": []}\n', "a newer file is left alone"
    assert gone.read_text() == text.replace('"kernels.add"', '"kernels.gone"')
    recovered = project.store("add")["entries"]  # written back in place of the damaged file
    assert [e["specialization"] for e in recovered] == [ADD128]

    run(project, "--helion-tune=random", "-k", "add").assert_outcomes(passed=2, deselected=1)
    assert project.searches() == ["RandomSearch"]  # only the lost [64] was tuned again
    written = project.store("add")
    assert {e["specialization"] for e in written["entries"]} == {ADD64, ADD128}
    assert aside.read_text() == truncated, "the moved-aside copy is never overwritten"


@pytest.mark.slow
def test_configs_from_files_are_checked_and_unknown_fields_kept(project: Project) -> None:
    keys = {spec: key.as_dict() for spec, key in add_keys(project).items()}
    pwned = project.path / "PWNED"

    def raw(spec: str, config: dict[str, Any], **extra: Any) -> dict[str, Any]:
        key = keys[spec]
        fields = ("source_hash", "specialization", "device", "toolchain")
        return {**{f: key[f] for f in fields}, "config": config, **extra}

    configs = project.cache / "configs"
    configs.mkdir(parents=True)
    doc = {
        "schema": 0,  # older: migrated
        "kernel": "../../../escaped",  # crafted: never a path
        "comment": "tuned on the lab box",  # unknown top-level field: kept
        "entries": [
            raw(ADD64, {"block_sizes": [64], "evil": f"__import__('os').system('touch {pwned}')"}),
            raw(ADD128, {"block_sizes": [32]}, reviewed_by="alice"),
            {"config": "not an object"},
        ],
    }
    (configs / "kernels.add.json").write_text(json.dumps(doc, indent=1))

    read = run(project, "-k", "add", "--helion-strict")
    read.assert_outcomes(failed=2, deselected=1)  # [128] for its missing baseline only
    cases = project.cases()
    assert cases["test_add[64]"]["origin"] == "default"
    assert cases["test_add[64]"]["message"].endswith(
        f"kernels.add.json: the entry for [{ADD64}] on interpreter holds an invalid config "
        "(Invalid config keys ['evil']) (--helion-strict)"
    )
    assert cases["test_add[128]"]["origin"] == "cache"
    assert cases["test_add[128]"]["config"] == {"block_sizes": [32]}
    assert "no performance baseline" in cases["test_add[128]"]["message"]
    read.stdout.fnmatch_lines(
        [
            "note: */kernels.add.json: entry 2 skipped (field 'config' missing or not a dict); "
            "it is kept in the file",
            "note: */kernels.add.json: "
            + literal(
                f"the entry for [{ADD64}] on interpreter holds an invalid config "
                "(Invalid config keys ['evil']); Helion's default config runs"
            ),
        ]
    )

    run(project, "--helion-tune=random", "-k", "add").assert_outcomes(passed=2, deselected=1)
    assert project.searches() == ["RandomSearch"]  # the invalid entry is tuned again
    written = project.store("add")
    assert written["schema"] == 1 and written["kernel"] == "kernels.add"
    assert written["comment"] == "tuned on the lab box"
    by_spec = {e.get("specialization"): e for e in written["entries"]}
    assert "evil" not in by_spec[ADD64]["config"]
    assert by_spec[ADD128]["reviewed_by"] == "alice"
    assert {"config": "not an object"} in written["entries"]
    assert not pwned.exists()
    inside = {p.relative_to(project.path).parts[0] for p in project.path.rglob("*escaped*")}
    assert inside == set() and not (project.path.parent / "escaped.json").exists()


def test_recovered_entries_come_back_from_both_sides_of_a_conflict(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.put(entry("x=1", tuned_at="2026-01-01T00:00:00Z"))
    store.put(entry("x=2", tuned_at="2026-01-01T00:00:00Z"))
    path = store.path_for("m.k")
    ours = path.read_text()
    theirs = ours.replace('"block_sizes": [32]', '"block_sizes": [64]', 1).replace(
        "2026-01-01", "2026-02-01", 1
    )
    path.write_text(f"<<<<<<< HEAD\n{ours}=======\n{theirs}>>>>>>> branch\n")
    fresh = ConfigStore(tmp_path)
    assert fresh.lookup(entry("x=1").key).exact.config == {"block_sizes": [64]}  # tuned last
    assert fresh.lookup(entry("x=2").key).exact is not None
    assert "contains merge-conflict markers" in fresh.notes[0]
    assert "3 entries recovered and written back" in fresh.notes[0]
    fresh.put(entry("x=3"))
    specs = [e["specialization"] for e in json.loads(path.read_text())["entries"]]
    assert sorted(set(specs)) == ["x=1", "x=2", "x=3"]


def test_after_a_conflict_production_reads_the_entry_pytest_uses(tmp_path: Path) -> None:
    """The HEAD side (first in the recovered file) holds the newer entry: ``use_configs``'s
    reader takes the one tuned last, as pytest's lookup does, not the last in the file."""
    from pytest_helion_tune.runtime import CommittedConfigs

    store = ConfigStore(tmp_path)
    store.put(entry("x=1", {"block_sizes": [8]}, tuned_at="2026-11-25T00:00:00Z"))
    path = store.path_for("m.k")
    ours = path.read_text()
    theirs = ours.replace('"block_sizes": [8]', '"block_sizes": [4]').replace(
        "2026-11-25", "2026-11-01"
    )
    path.write_text(f"<<<<<<< HEAD\n{ours}=======\n{theirs}>>>>>>> branch\n")
    key = entry("x=1").key
    assert ConfigStore(tmp_path).lookup(key).exact.config == {"block_sizes": [8]}
    assert len(json.loads(path.read_text())["entries"]) == 2  # both sides written back
    assert CommittedConfigs(tmp_path)._file("m.k").entries[key].config == {"block_sizes": [8]}


def test_a_newer_schema_is_never_written(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    path = store.path_for("m.k")
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 2, "entries": [], "future": true}')
    with pytest.raises(StoreError, match=r"m\.k\.json: schema 2 is newer.*left untouched"):
        store.put(entry("x=1"))
    assert path.read_text() == '{"schema": 2, "entries": [], "future": true}'


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_a_damaged_baseline_file_is_noted_with_and_without_xdist(
    project: Project, workers: list[str]
) -> None:
    """A worker's baseline notes reach the controller's summary, as its config notes do."""
    baselines = project.cache / "baselines"
    baselines.mkdir(parents=True)
    (baselines / "kernels.add.json").write_text('{"schema": 1, "entries": [')
    result = run(project, *workers, "-k", "add")
    assert result.parseoutcomes()["passed"] == 2  # xdist's controller counts no deselected
    result.stdout.fnmatch_lines(["note: */baselines/kernels.add.json: not valid JSON (*)*"])


@pytest.mark.parametrize("damage", ["conflict", "truncated"])
def test_a_damaged_file_of_a_newer_schema_is_never_salvaged(tmp_path: Path, damage: str) -> None:
    """Salvaging would write its entries back under this schema: it is left as it is."""
    store = ConfigStore(tmp_path)
    path = store.path_for("m.k")
    path.parent.mkdir(parents=True)
    text = '{"schema": 2, "entries": [{"future": 1}], "future": true}'
    text = (
        f"<<<<<<< HEAD\n{text}\n=======\n{text}\n>>>>>>> b\n" if damage == "conflict" else text[:-9]
    )
    path.write_text(text)
    with pytest.raises(StoreError, match=r"m\.k\.json: damaged, and it declares schema 2"):
        store.put(entry("x=1"))
    assert path.read_text() == text
    assert not list(path.parent.glob("*.damaged-*"))  # not moved aside either


def test_a_damaged_file_that_cannot_be_moved_is_left_and_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ConfigStore(tmp_path)
    store.put(entry("x=1"))
    path = store.path_for("m.k")
    path.write_text(path.read_text()[:-3])

    def refuse(_path: Path) -> Path:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(jsonstore, "move_aside", refuse)
    fresh = ConfigStore(tmp_path)
    assert fresh.lookup(entry("x=1").key).exact is not None
    assert fresh.notes[0].endswith(
        "could not be moved aside (Permission denied), left as it is; 1 entry recovered and used"
    )


def test_kernel_names_that_differ_only_in_non_ascii_characters_keep_their_own_files(
    tmp_path: Path,
) -> None:
    """``ops.softmax_`` with a Greek alpha and with a beta clean to the same ASCII, as two names
    over 200 characters cut to the same; each keeps its own store file and its entry. A plain
    ASCII name keeps its readable file name."""
    store = ConfigStore(tmp_path)
    names = ["ops.softmax_\u03b1", "ops.softmax_\u03b2", "m" * 250 + "a", "m" * 250 + "b"]
    for i, name in enumerate(names):
        key = CaseKey(name, "abc", "x=1", "interpreter", (("torch", "2"),))
        store.put(ConfigEntry(key=key, config={"block_sizes": [2**i]}))
    assert len({store.path_for(n) for n in names}) == 4
    fresh = ConfigStore(tmp_path)
    for i, name in enumerate(names):
        key = CaseKey(name, "abc", "x=1", "interpreter", (("torch", "2"),))
        assert fresh.lookup(key).exact.config == {"block_sizes": [2**i]}
    assert store.path_for("example_kernels.softmax.softmax").name == (
        "example_kernels.softmax.softmax.json"
    )
    assert not fresh.notes


def test_no_crafted_kernel_name_writes_outside_the_cache_dir(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    store = ConfigStore(root)
    for name in ("../../escaped", "/etc/passwd", "..", ".", "a/../../b", "\x00", "é" * 300):
        key = CaseKey(name, "abc", "x=1", "interpreter", (("torch", "2"),))
        store.put(ConfigEntry(key=key, config={"block_sizes": [1]}))
    outside = [p for p in tmp_path.rglob("*") if root not in p.parents and p != root]
    assert outside == []
    assert all(p.parent == root / "configs" for p in (root / "configs").iterdir())


# -- secrets ---------------------------------------------------------------------------------

CANARY = "sk-test-LEAK-CANARY-0123456789"
LLM_REPLY = '{"configs": [{"block_sizes": [16]}, {"block_sizes": [8], "num_warps": 2}]}'


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.slow
def test_the_api_key_appears_in_no_output(
    project: Project, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each case asks once: the first reply echoes the key inside a good answer, the second is
    # a 401 whose body quotes the key, as some providers do.
    server.script(
        server.ok("openai-chat", f"Using key {CANARY}. {LLM_REPLY}"),
        Reply(status=401, body={"error": {"message": f"Incorrect API key: {CANARY}"}}),
    )
    tmp = project.path / "tmp"
    tmp.mkdir()
    for name, value in {
        "HELION_LLM_PROVIDER": "openai-chat",
        "HELION_LLM_MODEL": "leak-test-model",
        "HELION_LLM_API_BASE": server.url,
        "HELION_LLM_API_KEY": CANARY,
        "TMPDIR": str(tmp),  # temporary files too end up where they are searched
    }.items():
        monkeypatch.setenv(name, value)
    result = run(
        project,
        "-k",
        "add",
        "--helion-tune=llm-seeded",
        f"--helion-report-html={project.path / 'report.html'}",
        f"--helion-llm-record={project.path / 'cassettes'}",
        "--log-level=DEBUG",
        "-o",
        "log_cli=true",
        f"--log-file={project.path / 'pytest.log'}",
        "--log-file-level=DEBUG",
    )
    result.assert_outcomes(passed=2, deselected=1)
    assert [r.headers["authorization"] for r in server.received] == [f"Bearer {CANARY}"] * 2
    notes = [" ".join(c["notes"]) for c in project.cases().values()]
    assert any("llm: 1 round" in n for n in notes)  # the good reply seeded one case
    assert any("HTTP 401" in n and "Incorrect API key: ***" in n for n in notes)
    assert len(list((project.path / "cassettes").glob("*.json"))) == 1
    assert (project.path / "pytest.log").stat().st_size > 0
    assert (project.path / "report.html").exists()

    outputs = {"stdout": result.stdout.str(), "stderr": result.stderr.str()}
    for path in project.path.rglob("*"):  # reports, cassettes, cache, logs, temporary files
        if path.is_file():
            outputs[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    leaks = [where for where, text in outputs.items() if "LEAK-CANARY" in text]
    assert leaks == []


# -- read-only cache, full disk, stuck locks --------------------------------------------------


def _namespace_mounts_work(directory: Path) -> bool:
    """Whether this machine lets us make a read-only bind mount in a private mount namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = f"mount --bind {directory} {directory} && mount -o remount,ro,bind {directory}"
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", probe], capture_output=True, timeout=30, check=False
    )
    return done.returncode == 0


NO_MOUNTS = (
    "needs a private mount namespace (unshare -m, root or CAP_SYS_ADMIN) to mount the cache "
    "dir read-only or a tiny tmpfs; plain mode bits do not stop root"
)


@pytest.mark.slow
def test_a_read_only_cache_dir_is_a_clear_error_and_loses_nothing(project: Project) -> None:
    if not _namespace_mounts_work(project.path):
        pytest.skip(NO_MOUNTS)
    store = ConfigStore(project.cache)
    store.put(entry("x=other"))
    before = {p: p.read_bytes() for p in project.cache.rglob("*") if p.is_file()}
    cache = project.cache

    def in_read_only_cache(*args: str) -> subprocess.CompletedProcess[str]:
        pytest_command = " ".join(
            [sys.executable, "-m", "pytest", f"--helion-report={project.report_path}", *args]
        )
        script = f"mount --bind {cache} {cache} && mount -o remount,ro,bind {cache} && exec {pytest_command}"
        return subprocess.run(
            ["unshare", "-m", "sh", "-c", script],
            cwd=project.path,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    start = time.monotonic()
    tuning = in_read_only_cache("--helion-tune=random", "-k", "'add and 64'")
    assert time.monotonic() - start < 120
    assert tuning.returncode == pytest.ExitCode.TESTS_FAILED, tuning.stdout
    message = project.cases()["test_add[64]"]["message"]
    assert re.fullmatch(
        r".*/\.helion-tune/configs/kernels\.add\.\w+\.claim: cannot take kernels\.add\.\w+\.claim\.lock "
        r"\(Read-only file system\); nothing was written",
        message,
    ), message
    assert {p: p.read_bytes() for p in cache.rglob("*") if p.is_file()} == before


FULL_DISK = r"""
import json, os, sys
from pathlib import Path
from pytest_helion_tune.cache import ConfigEntry, ConfigStore
from pytest_helion_tune.errors import StoreError
from pytest_helion_tune.key import CaseKey

root = Path(sys.argv[1])
limit = sys.argv[2]

def entry(spec, config):
    return ConfigEntry(key=CaseKey("m.k", "h", spec, "interpreter", (("torch", "2"),)), config=config)

store = ConfigStore(root)
store.put(entry("x=1", {"block_sizes": [1]}))
path = store.path_for("m.k")
before = path.read_bytes()
if limit == "tmpfs":  # fill the file system
    fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
else:  # or cap the size of any file this process writes (EFBIG, not ENOSPC)
    import resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 100, len(before) + 100))
try:
    store.put(entry("x=2", {"block_sizes": [2], "padding": "x" * 100_000}))
    error = None
except StoreError as exc:
    error = str(exc)
leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
print(json.dumps({"error": error, "intact": path.read_bytes() == before, "leftovers": leftovers}))
"""


def _full_disk(directory: Path, how: str) -> dict[str, Any]:
    script = directory.parent / "full_disk.py"
    script.write_text(FULL_DISK)
    command = [sys.executable, str(script), str(directory), how]
    if how == "tmpfs":
        mount = f"mount -t tmpfs -o size=64k tmpfs {directory} && exec {' '.join(command)}"
        command = ["unshare", "-m", "sh", "-c", mount]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_full_disk_is_a_clear_error_and_the_old_file_survives(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    if not _namespace_mounts_work(directory):
        pytest.skip(NO_MOUNTS + "; the file size limit test covers the same write path")
    result = _full_disk(directory, "tmpfs")
    assert re.fullmatch(
        r".*/configs/m\.k\.json: cannot be written \(No space left on device\); "
        r"the previous file is intact",
        result["error"],
    )
    assert result["intact"] and result["leftovers"] == []


def test_a_file_size_limit_is_a_clear_error_and_the_old_file_survives(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    result = _full_disk(directory, "rlimit")  # EFBIG ("File too large"), on any machine
    assert re.fullmatch(
        r".*/configs/m\.k\.json: cannot be written \(File too large\); the previous file is intact",
        result["error"],
    )
    assert result["intact"] and result["leftovers"] == []


HOLDER = """
import sys, time
from pathlib import Path
from pytest_helion_tune import jsonstore

with jsonstore.locked(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding the lock of ``m.k``'s config file."""
    store = ConfigStore(tmp_path)
    store.put(entry("x=1"))
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store.path_for("m.k"))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_held_by_a_killed_process_does_not_block(
    tmp_path: Path, holder: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    monkeypatch.setenv(jsonstore.LOCK_TIMEOUT_ENV, "20")
    start = time.monotonic()
    ConfigStore(tmp_path).put(entry("x=2"))
    assert time.monotonic() - start < 5
    assert ConfigStore(tmp_path).lookup(entry("x=1").key).exact is not None


def test_a_lock_held_by_a_live_process_times_out_with_a_clear_message(
    tmp_path: Path, holder: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ConfigStore(tmp_path).path_for("m.k")
    before = path.read_bytes()
    monkeypatch.setenv(jsonstore.LOCK_TIMEOUT_ENV, "0.5")
    start = time.monotonic()
    with pytest.raises(StoreError) as caught:
        ConfigStore(tmp_path).put(entry("x=2"))
    assert time.monotonic() - start < 5
    assert str(caught.value) == (
        f"{path}: waited 0.5 s for m.k.json.lock; another process holds it "
        f"(set {jsonstore.LOCK_TIMEOUT_ENV} to wait longer)"
    )
    assert path.read_bytes() == before
