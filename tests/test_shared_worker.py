"""The benchmark worker the project's searches share: one spawn subprocess for the whole process,
kept across Helion searches, serialised, and replaced when a job kills it.

Real Helion BenchmarkWorker subprocesses on the CPU; the jobs are picklable builtins.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import pytest

torch = pytest.importorskip("torch")
helion = pytest.importorskip("helion")

import helion.language as hl  # noqa: E402

from pytest_helion_tune import interpreter, timing  # noqa: E402
from pytest_helion_tune.strategies import worker  # noqa: E402


@pytest.fixture
def fresh_worker() -> Iterator[None]:
    worker.shutdown()
    yield
    worker.shutdown()


def test_warm_start_and_jobs_share_one_process(fresh_worker: None) -> None:
    worker.warm()  # a start-up job on a background thread ...
    first = worker.shared().run(os.getpid, timeout=120)  # ... while this one is sent
    assert isinstance(first, int) and first != os.getpid()  # its own answer, not the start job's
    assert worker.shared().run(os.getpid, timeout=60) == first
    worker.warm()  # running already: nothing new starts
    assert worker.shared().run(os.getpid, timeout=60) == first


def test_a_job_that_kills_the_worker_costs_only_that_job(fresh_worker: None) -> None:
    from helion.autotuner.benchmark_worker import BenchmarkWorkerDied

    before = worker.shared().run(os.getpid, timeout=120)
    with pytest.raises(BenchmarkWorkerDied):
        worker.shared().run(functools.partial(os._exit, 3), timeout=60)
    after = worker.shared().run(os.getpid, timeout=120)
    assert isinstance(after, int) and after != before


def test_jobs_run_under_the_triton_variables_of_when_they_are_sent(
    fresh_worker: None, monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    """The worker is spawned before Helion sets TRITON_CACHE_DIR (at a kernel's first compile) or
    points it at a search's temporary directory; its jobs must look where the precompile step
    wrote, or every candidate compiles again in the worker."""
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    monkeypatch.setenv("TRITON_HELION_TUNE_PROBE", "at-spawn")
    read = functools.partial(os.getenv, "TRITON_CACHE_DIR")
    assert worker.shared().run(read, timeout=120) is None  # spawned with no cache dir
    for where in ("first-search", "second-search"):
        monkeypatch.setenv("TRITON_CACHE_DIR", os.path.join(tmp_path, where))
        assert worker.shared().run(read, timeout=60) == os.path.join(tmp_path, where)
    monkeypatch.delenv("TRITON_HELION_TUNE_PROBE")  # unset here: unset there too
    probe = functools.partial(os.getenv, "TRITON_HELION_TUNE_PROBE")
    assert worker.shared().run(probe, timeout=60) is None
    monkeypatch.setenv("HELION_TUNE_NOT_FORWARDED", "x")  # only TRITON_* travels
    assert (
        worker.shared().run(functools.partial(os.getenv, "HELION_TUNE_NOT_FORWARDED"), 60) is None
    )


SEARCH_IN_A_FRESH_PROCESS = """
import os
import sys

os.environ.pop("TRITON_CACHE_DIR", None)
os.environ["TRITON_INTERPRET"] = "1"
import helion
import helion.language as hl
import torch

from pytest_helion_tune import interpreter
from pytest_helion_tune.accuracy import Tolerance
from pytest_helion_tune.strategies import SearchProblem, get
from pytest_helion_tune.timing import WallClockTimer


KERNEL_SOURCE

if __name__ == "__main__":
    from helion.autotuner.local_cache import helion_triton_cache_dir

    interpreter.patch_libdevice()
    x = torch.randn(64)
    problem = SearchProblem(
        kernel=double, bound=double.bind((x,)), args=(x,), reference=lambda a: a * 2.0,
        tolerance=Tolerance(atol=1e-6, rtol=1e-6), interpreter=True,
        timer=WallClockTimer(calls=1), log_path=sys.argv[2] + "/double",
    )
    get(sys.argv[1]).search(problem)
    print("TRITON_CACHE_DIR", os.environ.get("TRITON_CACHE_DIR"), helion_triton_cache_dir(0))
"""


@pytest.mark.parametrize("strategy", ["seeded", "random"])
def test_after_a_search_compiles_go_to_helions_cache(
    strategy: str, tmp_path: os.PathLike[str]
) -> None:
    """With a baseline function, a search's first compile runs under its patch.dict(os.environ),
    which takes TRITON_CACHE_DIR away when the search ends: every later compile in the process
    (the re-timing, the summary's timing, the test's first call) then missed Helion's cache. The
    strategies set it before the search, where Helion sets it at a first compile."""
    import inspect
    import subprocess
    import sys

    script = os.path.join(tmp_path, "search.py")
    with open(script, "w", encoding="utf-8") as handle:
        handle.write(SEARCH_IN_A_FRESH_PROCESS.replace("KERNEL_SOURCE", inspect.getsource(double)))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_CACHE_DIR"}
    done = subprocess.run(
        [sys.executable, script, strategy, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [s for s in done.stdout.splitlines() if s.startswith("TRITON_CACHE_DIR")]
    _, after, helions = line.split(" ")
    assert after == helions


@helion.kernel(static_shapes=True)
def double(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size()):
        out[tile] = x[tile] * 2.0
    return out


@pytest.mark.skipif(not interpreter.active(), reason="runs the search under TRITON_INTERPRET=1")
def test_helion_searches_with_the_seam_keep_the_shared_worker(fresh_worker: None) -> None:
    """Real Helion searches (FiniteSearch, a real kernel, the interpreter) with the shared worker
    attached: each builds its provider around that worker and ends without shutting it down.
    (Under the interpreter Helion benchmarks in-process; on a GPU the jobs go to this worker:
    benchmarks/results/nvidia-h100-80gb-hbm3/overhead.md.)"""
    from helion.autotuner import search_algorithms

    interpreter.patch_libdevice()
    x = torch.randn(64)
    bound = double.bind((x,))
    interpreter.prepare_settings(bound.settings)
    configs = [bound.config_spec.default_config(), helion.Config(block_sizes=[16])]
    pid = worker.shared().run(os.getpid, timeout=120)
    with timing.installed(bound, timing.WallClockTimer(calls=1)):
        plain = search_algorithms["FiniteSearch"](bound, (x,), configs=configs)
        plain.autotune(skip_cache=True)
        assert plain.benchmark_provider._benchmark_worker is None  # Helion's own: none kept
        for _ in range(2):
            search = worker.attach(search_algorithms["FiniteSearch"](bound, (x,), configs=configs))
            best = search.autotune(skip_cache=True)
            assert best in configs
            assert type(search.benchmark_provider).__name__ == "SharedWorkerProvider"
            assert search.benchmark_provider._benchmark_worker is None  # handed back, not shut
            assert worker.shared().alive()
            assert worker.shared().run(os.getpid, timeout=60) == pid


def test_a_search_can_cap_each_candidates_timing_in_the_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``attach(search, rep_ms)``: the provider hands Helion's subprocess job a timing budget of
    at most ``rep_ms`` instead of Helion's 50 ms. Recorded at Helion's job seam, which is
    replaced here: under the interpreter Helion benchmarks in-process, and the timing itself
    runs on a GPU (``seeded-rep15`` in benchmarks/run.py)."""
    from helion.autotuner import search_algorithms
    from helion.autotuner.benchmark_provider import LocalBenchmarkProvider

    seen: list[tuple[object, ...]] = []

    def job(self: object, fn: object, *, warmup: int, rep: int, **kwargs: object) -> float:
        seen.append((fn, warmup, rep, kwargs))
        return 1.0

    monkeypatch.setattr(LocalBenchmarkProvider, "_run_subprocess_benchmark_job", job)
    for rep_ms, expected in ((15, 15), (None, 50), (80, 50)):
        cls = worker._shared_provider_class(rep_ms)
        provider = cls.__new__(cls)
        assert provider._run_subprocess_benchmark_job("fn", warmup=1, rep=50, timeout=3.0) == 1.0
        assert seen[-1] == ("fn", 1, expected, {"timeout": 3.0})

    x = torch.randn(64)
    bound = double.bind((x,))
    configs = [bound.config_spec.default_config(), helion.Config(block_sizes=[16])]
    search = worker.attach(search_algorithms["FiniteSearch"](bound, (x,), configs=configs), 15)
    assert search._benchmark_provider_cls is worker._shared_provider_class(15)
    plain = worker.attach(search_algorithms["FiniteSearch"](bound, (x,), configs=configs))
    assert plain._benchmark_provider_cls is worker._shared_provider_class(None)


@pytest.mark.parametrize("value", ["0", "off"])
def test_the_shared_worker_can_be_switched_off(
    value: str, monkeypatch: pytest.MonkeyPatch, fresh_worker: None
) -> None:
    """``HELION_TUNE_SHARED_WORKER=0``: searches keep Helion's own provider (a worker each)."""
    from helion.autotuner import search_algorithms
    from helion.autotuner.benchmark_provider import LocalBenchmarkProvider

    x = torch.randn(64)
    bound = double.bind((x,))
    configs = [bound.config_spec.default_config(), helion.Config(block_sizes=[16])]
    monkeypatch.setenv("HELION_TUNE_SHARED_WORKER", value)
    assert not worker.enabled()
    worker.warm()
    assert worker._worker is None  # no head start for a worker nobody will use
    search = worker.attach(search_algorithms["FiniteSearch"](bound, (x,), configs=configs))
    assert search._benchmark_provider_cls is LocalBenchmarkProvider
    monkeypatch.setenv("HELION_TUNE_SHARED_WORKER", "1")
    search = worker.attach(search_algorithms["FiniteSearch"](bound, (x,), configs=configs))
    assert search._benchmark_provider_cls.__name__ == "SharedWorkerProvider"


@pytest.mark.skipif(not interpreter.active(), reason="runs the kernel under TRITON_INTERPRET=1")
def test_a_config_is_checked_in_the_worker_against_the_reference(fresh_worker: None) -> None:
    """What a case whose every candidate failed uses on a GPU to try the default config without
    risking this process: Helion's own accuracy job, run in the shared worker."""
    interpreter.patch_libdevice()
    x = torch.randn(64)
    bound = double.bind((x,))
    compiled = bound.compile_config(bound.config_spec.default_config(), allow_print=False)
    assert worker.check_in_worker(compiled, (x,), x * 2.0, atol=1e-5, rtol=1e-5) == ""
    wrong = worker.check_in_worker(compiled, (x,), x * 3.0, atol=1e-5, rtol=1e-5)
    assert wrong and "mismatch" in wrong.lower()
    pid = worker.shared().run(os.getpid, timeout=60)
    assert worker.shared().run(os.getpid, timeout=60) == pid  # still the same worker


def test_jobs_that_kill_the_worker_in_a_row_stop_the_search(fresh_worker: None) -> None:
    """Three jobs in a row that leave the worker dead make the search's budget check say stop;
    one job that leaves it alive resets the count."""
    from helion.autotuner.benchmark_worker import BenchmarkWorkerDied

    shared = worker.shared()
    shared.run(os.getpid, timeout=120)
    for expected in range(1, worker.DEATHS_TO_STOP + 1):
        with pytest.raises(BenchmarkWorkerDied):
            shared.run(functools.partial(os._exit, 3), timeout=120)
        assert shared.deaths_in_a_row == expected

    provider = worker._shared_provider_class(None).__new__(worker._shared_provider_class(None))
    provider._benchmark_worker = shared
    provider.log = type("Log", (), {"warning": lambda self, message: None})()
    provider.set_budget_exceeded_fn(lambda: False)
    assert provider.budget_exceeded_fn() is True
    shared.run(os.getpid, timeout=120)  # a job that leaves it alive
    assert shared.deaths_in_a_row == 0
    assert provider.budget_exceeded_fn() is False


def test_a_helion_without_the_accuracy_job_is_named_before_anything_runs(
    fresh_worker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another Helion may lack the job the worker check uses: the caller hears so (and checks
    in-process, as before this check existed) instead of taking it for a crash."""
    import sys

    monkeypatch.setitem(sys.modules, "helion.autotuner.benchmark_job", None)  # import fails
    with pytest.raises(worker.WorkerUnavailable, match="no worker accuracy job"):
        worker.check_in_worker(lambda: None, (), None, atol=0.0, rtol=0.0)
    assert worker._worker is None or not worker.shared().alive()  # nothing was started


def test_a_config_that_cannot_be_sent_to_the_worker_is_named_before_anything_runs(
    fresh_worker: None,
) -> None:
    def nested() -> None:  # Helion serialises only module-level compiled functions
        pass

    with pytest.raises(worker.WorkerUnavailable, match="cannot be sent to the worker"):
        worker.check_in_worker(nested, (torch.ones(2),), torch.ones(2), atol=0.0, rtol=0.0)
    assert worker._worker is None  # no worker was started for it
