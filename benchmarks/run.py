"""The benchmark harness: runs tuning strategies case by case, one result file per (case, strategy),
then re-times every finished contender of a case, interleaved, on one common timer.

One command on a GPU (``python benchmarks/run.py``) runs the whole suite; ``--cases``,
``--strategies`` and ``--deadline-s`` cut it into runs that fit a capped session, and a later
run resumes from the files already written. ``--interpreter`` runs tiny shapes on a CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tarfile
import time
import traceback
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def claim_package() -> None:
    """Makes ``benchmarks`` this folder even where an installed package has that name.

    ``benchmarks/`` is a namespace package (no __init__.py), and a regular package of the
    same name anywhere on sys.path would win over it.
    """
    here = str(ROOT / "benchmarks")
    current = sys.modules.get("benchmarks")
    if current is None or here not in list(getattr(current, "__path__", [])):
        package = types.ModuleType("benchmarks")
        package.__path__ = [here]
        sys.modules["benchmarks"] = package


claim_package()

SCHEMA = 1
RETIME_ROUNDS = 5  # interleaved rounds; more are added until every contender has MIN_SAMPLES
MIN_SAMPLES = 100
MAX_ROUNDS = 40
RETIME_WARMUP_MS = 25
RETIME_REP_MS = 100
RETIME_RESERVE_S = 20.0  # a case's re-timing (compile + 5 rounds), kept free under --deadline-s
RETIME_HISTORY = 10  # earlier re-timings of a case kept in its file, newest last
# Datasheet peaks, recorded beside the measured ones (H100 SXM5: HBM3, dense fp16/bf16 tensor cores).
DATASHEET = {"H100": {"bandwidth_gbs": 3350.0, "tflops_fp16": 989.0}}

_T0 = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", flush=True)


@dataclasses.dataclass(frozen=True)
class StrategySpec:
    """A harness strategy: which registered strategy runs, at which effort, with which seeds."""

    name: str
    registry: str | None  # ``pytest_helion_tune.strategies`` name; None: no search at all
    effort: str
    expected_s: float  # H100 guess for the deadline guard until this strategy has been measured
    description: str
    warm: bool = False
    # A variant of ``seeded`` measured beside it here, not offered to plugin users: the
    # ``SeededSearch`` keyword arguments it is registered with.
    seeded_kwargs: tuple[tuple[str, Any], ...] | None = None


def seeded_variant(name: str, expected_s: float, description: str, **kwargs: Any) -> StrategySpec:
    """A ``seeded`` variant (an A/B arm): registered under ``name`` as ``SeededSearch(name,
    **kwargs)``."""
    return StrategySpec(
        name, name, "quick", expected_s, description, seeded_kwargs=tuple(kwargs.items())
    )


STRATEGIES: dict[str, StrategySpec] = {
    s.name: s
    for s in (
        # First in every plan: it also absorbs the process's one-time CUDA and compiler warm-up.
        StrategySpec("default", None, "none", 15, "Helion's default config, no search"),
        StrategySpec("seeded", "seeded", "quick", 90, "the project's own search, cold, no seeds"),
        seeded_variant(
            "seeded-climb",
            60,
            "seeded, cold, its refinement forced to the climb (A/B of rule 3)",
            refine="climb",
        ),
        seeded_variant(
            "seeded-lfbo",
            90,
            "seeded, cold, its refinement forced to LFBO (A/B of rule 3; seeded until b535a6c)",
            refine="lfbo",
        ),
        seeded_variant(
            "seeded-pairs",
            90,
            "seeded, warp pairs in its probe: the A/B run at 745c314 before seeded took them",
            warp_pairs=True,
        ),
        seeded_variant(
            "seeded-paths3",
            90,
            "seeded, 3 LFBO search paths where the probe gained 30%+ (A/B at 2f7872d; not taken)",
            very_steep_paths=3,
        ),
        seeded_variant(
            "seeded-recheck",
            90,
            "seeded, its LFBO re-checking every claimed new best: the A/B at 6d23325 before seeded took it",
            recheck=1.0,
        ),
        seeded_variant(
            "seeded-extend",
            90,
            "seeded, its combine batch also taking the probe's improving changes one step "
            "further: the A/B run at 517324d before seeded took it",
            extend=True,
        ),
        seeded_variant(
            "seeded-marginal",
            40,
            "seeded, a lead of 0.5-1.5% after the probe going on with the climb (rule 2b): "
            "the A/B run at 517324d before seeded took it",
            marginal=True,
        ),
        seeded_variant(
            "seeded-rep15",
            35,
            "seeded, each candidate timed for 15 ms in the benchmark worker instead of "
            "Helion's 50 ms: the A/B run at 2abab15 before seeded took it",
            rep_ms=15,
        ),
        seeded_variant(
            "seeded-rep50",
            45,
            "seeded, each candidate timed for Helion's 50 ms in the benchmark worker (before "
            "rule 5)",
            rep_ms=None,
        ),
        seeded_variant(
            "seeded-polish",
            60,
            "seeded, up to 2 climb steps from its LFBO refinement's best (rule 3b): the A/B "
            "run at 555ca38 before seeded took it",
            polish_steps=2,
        ),
        seeded_variant(
            "seeded-nopolish",
            50,
            "seeded without rule 3b's climb steps after its LFBO refinement (seeded until 555ca38)",
            polish_steps=0,
        ),
        seeded_variant(
            "seeded-witness",
            60,
            "seeded, refining with LFBO where rule 2's second witness (a 10%+ probe lead on "
            "Helion's timer) sent it on, instead of the climb: not yet measured",
            witness_refine="lfbo",
        ),
        seeded_variant(
            "seeded-contested",
            40,
            "seeded, its combine batch also swapping one joined change for a runner-up to the "
            "same entries (rule 1c, 2 configs): not yet measured",
            contested=2,
        ),
        StrategySpec("lfbo", "lfbo", "quick", 230, "Helion's LFBOTreeSearch, effort quick"),
        StrategySpec("pattern", "pattern", "quick", 190, "Helion's PatternSearch, effort quick"),
        StrategySpec("random", "random", "quick", 150, "Helion's RandomSearch, effort quick"),
        StrategySpec("de", "de", "quick", 250, "Helion's DifferentialEvolutionSearch, quick"),
        StrategySpec(
            "lfbo-full", "lfbo", "full", 450, "Helion's LFBOTreeSearch at its default effort (full)"
        ),
        # Last: its seeds are the other shapes' results, written earlier in the same plan.
        StrategySpec(
            "seeded-warm",
            "seeded",
            "quick",
            45,
            "seeded, seeded with this family's configs tuned at its other shapes",
            warm=True,
        ),
    )
}
PHASE = {name: i for i, name in enumerate(STRATEGIES)}


# -- arguments -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Run the tuning benchmark suite case by case (resumable).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "strategies: "
            + "; ".join(f"{s.name}: {s.description}" for s in STRATEGIES.values())
            + "\ncases: 'all' (default), 'quick', or comma-separated names (see --list)"
        ),
    )
    p.add_argument("--cases", default="all", help="comma-separated case names, 'quick' or 'all'")
    p.add_argument(
        "--strategies",
        default="suite",
        help="comma-separated strategies, or 'suite': each case's own list "
        "(default, seeded, lfbo, seeded-warm; lfbo-full where the case asks for it)",
    )
    p.add_argument(
        "--results-dir", type=Path, default=None, help="default: benchmarks/results/<device>"
    )
    p.add_argument(
        "--deadline-s",
        type=float,
        default=None,
        help="wall-clock seconds for this whole run: a (case, strategy) run that would likely "
        "overrun is skipped and recorded, and the search in flight gets the rest as its budget",
    )
    p.add_argument(
        "--order",
        choices=("case", "strategy"),
        default="case",
        help="case: all strategies of a case, then the next case; strategy: one strategy over "
        "every case, then the next (cheap strategies first everywhere). Warm runs are always last",
    )
    p.add_argument(
        "--force", action="store_true", help="re-run (case, strategy) pairs that have a result"
    )
    p.add_argument("--retime-only", action="store_true", help="only re-time the selected cases")
    p.add_argument("--no-retime", action="store_true", help="searches only, no re-timing")
    p.add_argument(
        "--interpreter", action="store_true", help="CPU: tiny shapes under TRITON_INTERPRET=1"
    )
    p.add_argument("--seed", type=int, default=0, help="search seed (inputs always use seed 0)")
    p.add_argument(
        "--git-commit",
        default=None,
        help="the commit to record (default: git rev-parse HEAD; a copied tree's .git can be stale)",
    )
    p.add_argument(
        "--archive",
        type=Path,
        default=None,
        help="tar.gz of the results dir, refreshed after every file",
    )
    p.add_argument(
        "--archive-logs",
        action="store_true",
        help="put Helion's per-candidate logs in the archive too",
    )
    p.add_argument("--list", action="store_true", help="print cases and strategies, then exit")
    args = p.parse_args(argv)
    if args.strategies != "suite":
        names = [s.strip() for s in args.strategies.split(",") if s.strip()]
        unknown = [s for s in names if s not in STRATEGIES]
        if unknown:
            p.error(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
        args.strategy_list = names
    else:
        args.strategy_list = None
    return args


# -- environment ---------------------------------------------------------------------------


def _git(*cmd: str) -> str:
    with contextlib.suppress(Exception):
        done = subprocess.run(
            ["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return ""


def source_digest() -> str:
    """sha256 over the harness and the package sources: identifies the code where git cannot."""
    h = hashlib.sha256()
    files = sorted((ROOT / "benchmarks").glob("*.py")) + sorted(
        (ROOT / "pytest_helion_tune").rglob("*.py")
    )
    files += sorted((ROOT / "example_project" / "example_kernels").glob("*.py"))
    for path in files:
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def environment(interpreter: bool, git_commit: str | None = None) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "triton": _version("triton"),
        "helion": _version("helion"),
        "cuda": str(torch.version.cuda or ""),
        "git_commit": git_commit or _git("rev-parse", "HEAD") or "unknown",
        "git_commit_source": "--git-commit" if git_commit else "git rev-parse (or unknown)",
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "source_digest": source_digest(),
        "interpreter": interpreter,
    }
    if interpreter or not torch.cuda.is_available():
        env["device"] = "interpreter"
        env["capability"] = ""
        env["sm_count"] = 0
    else:
        props = torch.cuda.get_device_properties(0)
        major, minor = torch.cuda.get_device_capability(0)
        env["device"] = torch.cuda.get_device_name(0)
        env["capability"] = f"sm_{major}{minor}"
        env["sm_count"] = int(props.multi_processor_count)
    return env


def device_slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-") or "device"


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- files ---------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """Atomic: a run killed mid-write leaves the old file or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def result_path(results: Path, case: str, strategy: str) -> Path:
    return results / f"{case}__{strategy}.json"


def retime_path(results: Path, case: str) -> Path:
    return results / f"{case}__retime.json"


def case_results(results: Path, case: str) -> dict[str, dict[str, Any]]:
    """Finished strategy results of a case, by strategy (re-timing files excluded)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(results.glob(f"{case}__*.json")):
        strategy = path.stem.split("__", 1)[1]
        if strategy == "retime":
            continue
        data = read_json(path)
        if data and data.get("status") == "ok" and data.get("case") == case:
            out[strategy] = data
    return out


def is_done(path: Path) -> bool:
    data = read_json(path)
    # A search the deadline cut short is no reference: the next run redoes it.
    return bool(data and data.get("status") == "ok" and not data.get("budget_capped"))


class RunLog:
    """``runlog.jsonl``: every start, finish, skip and failure, so a capped run says what it left."""

    def __init__(self, results: Path, command: str) -> None:
        self.path = results / "runlog.jsonl"
        self.command = command

    def add(self, event: str, **fields: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"time": now_iso(), "event": event, "command": self.command, **fields}
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


def archive(results: Path, target: Path | None, logs: bool = False) -> None:
    """Refreshes a tar.gz of the results dir: a GPU session killed at its limit still returns it.

    Helion's per-candidate logs stay out unless asked for: the result files already hold
    each search's trace, and the logs of a full suite run to tens of MB.
    """
    if target is None:
        return

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return info if logs or "/logs" not in info.name else None

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(results, arcname=results.name, filter=keep)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, target)


# -- timing --------------------------------------------------------------------------------


def _sync(interpreter: bool) -> None:
    if not interpreter:
        import torch

        torch.cuda.synchronize()


def sample_once(fn: Callable[[], object], interpreter: bool) -> list[float]:
    """One window of measurements (ms): do_bench's every timed call on a GPU, L2 flushed before each."""
    if interpreter:
        fn()  # the first call may compile
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return times
    from triton.testing import do_bench

    got = do_bench(fn, warmup=RETIME_WARMUP_MS, rep=RETIME_REP_MS, return_mode="all")
    return [float(t) for t in (got if isinstance(got, list | tuple) else [got])]


def interleaved(
    fns: Sequence[Callable[[], object]], interpreter: bool, rounds: int = RETIME_ROUNDS
) -> tuple[list[list[float]], list[list[float]]]:
    """All samples and per-round medians of each fn, rounds interleaved and rotated.

    Every contender gets a window in every round, and the first slot rotates, so clock
    and thermal drift land on all of them alike. Rounds are added until each has
    ``MIN_SAMPLES`` timed calls (a slow kernel yields few per window).
    """
    samples: list[list[float]] = [[] for _ in fns]
    medians: list[list[float]] = [[] for _ in fns]
    n = len(fns)
    minimum = 0 if interpreter else MIN_SAMPLES
    r = 0
    while r < rounds or (min(len(s) for s in samples) < minimum and r < MAX_ROUNDS):
        for j in range(n):
            i = (r + j) % n
            got = sample_once(fns[i], interpreter)
            samples[i].extend(got)
            medians[i].append(statistics.median(got))
        r += 1
    return samples, medians


def measure_peaks(interpreter: bool) -> dict[str, Any]:
    """Measured bandwidth (device-to-device copy) and fp16 matmul throughput, for the rooflines."""
    if interpreter:
        return {"source": "interpreter: no roofline"}
    import torch
    from triton.testing import do_bench

    name = torch.cuda.get_device_name(0)
    nbytes = 1 << 30
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = float(do_bench(lambda: dst.copy_(src), warmup=25, rep=200, return_mode="median"))
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    mm_ms = float(do_bench(lambda: a @ b, warmup=25, rep=200, return_mode="median"))
    peaks: dict[str, Any] = {
        "device": name,
        "source": "measured: 1 GiB device-to-device copy (read + write) and an 8192^3 fp16 matmul",
        "bandwidth_gbs": 2 * nbytes / (copy_ms * 1e-3) / 1e9,
        "tflops_fp16": 2 * 8192**3 / (mm_ms * 1e-3) / 1e12,
        "copy_ms": copy_ms,
        "matmul_ms": mm_ms,
    }
    for key, sheet in DATASHEET.items():
        if key in name:
            peaks["datasheet"] = sheet
    return peaks


def roofline(
    family: Any, shape: tuple[int, ...], itemsize: int, peaks: dict[str, Any]
) -> dict[str, Any]:
    nbytes = int(family.bytes_moved(shape, itemsize))
    flops = int(family.flops(shape))
    out: dict[str, Any] = {"bytes": nbytes, "flops": flops}
    bw = peaks.get("bandwidth_gbs")
    if bw:
        memory_ms = nbytes / (bw * 1e9) * 1e3
        compute_ms = flops / (peaks["tflops_fp16"] * 1e12) * 1e3 if flops else 0.0
        out.update(
            memory_ms=memory_ms,
            compute_ms=compute_ms,
            roofline_ms=max(memory_ms, compute_ms),
            bound="compute" if compute_ms > memory_ms else "memory",
        )
    return out


# -- one case ------------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
    """A case's kernel bound to its inputs; inputs are rebuilt from seed 0 for every process."""

    case: Any
    family: Any
    args: tuple[Any, ...]
    bound: Any
    tolerance: Any
    shape: tuple[int, ...]
    dtype: Any

    def problem(self, interpreter: bool, log_path: Path, **more: Any) -> Any:
        """A ``SearchProblem`` for this case (``more``: effort, budget, seeds, progress, ...)."""
        from pytest_helion_tune.strategies import SearchProblem
        from pytest_helion_tune.timing import WallClockTimer

        return SearchProblem(
            kernel=self.family.kernel,
            bound=self.bound,
            args=self.args,
            reference=self.family.reference,
            tolerance=self.tolerance,
            # Helion benchmarks by itself on a GPU; the interpreter has no driver to time with.
            timer=WallClockTimer(calls=1) if interpreter else None,
            interpreter=interpreter,
            log_path=str(log_path),
            **more,
        )


def prepare(case: Any, interpreter: bool) -> Prepared:
    from benchmarks.kernels import FAMILIES
    from pytest_helion_tune.accuracy import default_tolerance

    family = FAMILIES[case.family]
    shape = case.run_shape(interpreter)
    dtype = case.torch_dtype(interpreter)
    args = family.inputs(shape, dtype, "cpu" if interpreter else "cuda", seed=0)
    bound = family.kernel.bind(args)
    return Prepared(case, family, args, bound, default_tolerance(args), shape, dtype)


def run_default_config(prep: Prepared, interpreter: bool) -> Any:
    """Compiles Helion's default config for the case, runs it once and waits for it; returns it."""
    config = prep.bound.config_spec.default_config()
    prep.bound.compile_config(config, allow_print=False)(*prep.args)
    _sync(interpreter)
    return config


def warm_seeds(results: Path, case: Any) -> list[Any]:
    """Configs tuned by ``seeded`` or ``lfbo`` at the other shapes of this case's family."""
    from benchmarks.cases import family_cases
    from pytest_helion_tune.strategies import Seed

    seeds = []
    for other in family_cases(case.family):
        if other.name == case.name:
            continue
        for strategy in ("lfbo", "seeded"):
            data = read_json(result_path(results, other.name, strategy))
            if data and data.get("status") == "ok" and data.get("config"):
                seeds.append(Seed(data["config"], f"results: {other.name} / {strategy}"))
    return seeds


class ProgressPrinter:
    """A search's live counts, one line every ``every_s`` seconds."""

    def __init__(self, label: str, every_s: float = 15.0) -> None:
        self.label = label
        self.every_s = every_s
        self.last = 0.0

    def __call__(self, progress: Any) -> None:
        now = time.perf_counter()
        if now - self.last < self.every_s:
            return
        self.last = now
        best = f"{progress.best_ms:.4f} ms" if progress.best_ms is not None else "-"
        say(
            f"  {self.label}: {progress.configs_tested} configs, {progress.failures} failed, "
            f"best {best}, {progress.elapsed_s:.0f} s"
        )


def run_strategy(
    bench: Bench, case: Any, spec: StrategySpec, budget_s: float | None
) -> dict[str, Any] | None:
    """Runs one (case, strategy) and returns its result record (None: nothing to run)."""
    import helion

    from pytest_helion_tune import strategies
    from pytest_helion_tune.accuracy import compare
    from pytest_helion_tune.configs import as_dict
    from pytest_helion_tune.strategies import SearchOutcome
    from pytest_helion_tune.strategies.seeded import SeededSearch

    for variant in STRATEGIES.values():
        if variant.seeded_kwargs is not None:
            kwargs = dict(variant.seeded_kwargs)
            strategies.register(
                variant.name, functools.partial(SeededSearch, variant.name, **kwargs)
            )

    seeds = warm_seeds(bench.results, case) if spec.warm else []
    if spec.warm and not seeds:
        return None
    prep = prepare(case, bench.interpreter)
    label = f"{case.name}/{spec.name}"
    started_at = now_iso()
    start = time.perf_counter()
    if spec.registry is None:
        config = run_default_config(prep, bench.interpreter)
        outcome = SearchOutcome(config=as_dict(config), configs_compiled=1)
        outcome.seed_source = "none"
    else:
        problem = prep.problem(
            bench.interpreter,
            # "seeded_warm", not "seeded-warm": a search clears "<base>-*", its stages' logs,
            # which for "x__seeded" would take "x__seeded-warm-probe.csv" with them.
            bench.results / "logs" / f"{case.name}__{spec.name.replace('-', '_')}",
            effort=spec.effort,
            budget_s=budget_s,
            seed=bench.seed,
            seeds=seeds,
            progress=ProgressPrinter(label),
        )
        outcome = strategies.get(spec.registry).search(problem)
    wall_s = time.perf_counter() - start
    compiled = prep.bound.compile_config(helion.Config(**outcome.config), allow_print=False)
    accuracy = compare(compiled(*prep.args), prep.family.reference(*prep.args), prep.tolerance)
    capped = budget_s is not None and spec.registry is not None and wall_s >= 0.9 * budget_s
    return {
        "schema": SCHEMA,
        "status": "ok",
        "case": case.name,
        "family": case.family,
        "shape": list(prep.shape),
        "dtype": str(prep.dtype).removeprefix("torch."),
        "strategy": spec.name,
        "registry_strategy": spec.registry,
        "effort": spec.effort,
        "description": spec.description,
        "seeds": [{"source": s.source, "config": s.config} for s in seeds],
        "seed_source": outcome.seed_source,
        "config": outcome.config,
        "wall_s": wall_s,
        "configs_tested": outcome.configs_tested,
        "configs_compiled": outcome.configs_compiled,
        "failures": outcome.failures,
        "search_best_ms": outcome.best_ms,
        "trace": [dataclasses.asdict(p) for p in outcome.trace],
        "notes": list(outcome.notes),
        "retimings": [dataclasses.asdict(r) for r in outcome.retimings],
        "accurate": accuracy.ok,
        "accuracy_message": accuracy.message,
        "max_abs_error": accuracy.max_abs_error,
        "budget_s": budget_s,
        "budget_capped": capped,
        "started_at": started_at,
        "finished_at": now_iso(),
        "environment": bench.env,
        "command": bench.command,
    }


def retime(bench: Bench, case: Any) -> dict[str, Any] | None:
    """Every finished contender of ``case``, the default config and eager PyTorch, re-timed
    interleaved in this process, each its own ``compile_config`` callable.

    Never bind + set_config: a BoundKernel is shared per shape, so every such contender would
    run the last config set and all would tie (MEASURED.md).
    """
    import helion

    from pytest_helion_tune.accuracy import compare
    from pytest_helion_tune.configs import as_dict, config_id, validate

    results = case_results(bench.results, case.name)
    prep = prepare(case, bench.interpreter)
    default = prep.bound.config_spec.default_config()
    contenders: dict[str, dict[str, Any]] = {}
    skipped: list[dict[str, str]] = []

    def add(label: str, config: dict[str, Any]) -> None:
        cid = config_id(config)
        if cid in contenders:
            contenders[cid]["labels"].append(label)
        else:
            contenders[cid] = {"labels": [label], "config": config, "config_id": cid}

    add("default", as_dict(default))
    for strategy, record in sorted(results.items(), key=lambda kv: PHASE.get(kv[0], 99)):
        if strategy == "default":
            continue  # the default config is always a contender, under that label
        try:
            validate(prep.bound, record["config"])
        except ValueError as exc:  # another Helion version's keys, say
            cid = config_id(record["config"])  # needs_retime: the same config, not again
            skipped.append({"strategy": strategy, "reason": str(exc), "config_id": cid})
            continue
        add(strategy, record["config"])

    entries = list(contenders.values())
    reference = prep.family.reference(*prep.args)
    fns: list[Callable[[], object]] = []
    for entry in entries:
        compiled = prep.bound.compile_config(helion.Config(**entry["config"]), allow_print=False)
        accuracy = compare(compiled(*prep.args), reference, prep.tolerance)
        entry["accurate"] = accuracy.ok
        entry["max_abs_error"] = accuracy.max_abs_error
        fns.append(functools.partial(compiled, *prep.args))
    eager = prep.family.eager
    fns.append(functools.partial(eager, *prep.args))
    _sync(bench.interpreter)

    start = time.perf_counter()
    samples, round_medians = interleaved(fns, bench.interpreter)
    seconds = time.perf_counter() - start

    def summary(all_samples: list[float], rounds: list[float]) -> dict[str, Any]:
        ordered = sorted(all_samples)
        med = statistics.median(ordered)
        return {
            "median_ms": med,
            "samples": len(ordered),
            "p25_ms": ordered[len(ordered) // 4],
            "p75_ms": ordered[(3 * len(ordered)) // 4],
            "round_medians_ms": rounds,
            # How far the rounds disagree: what "beyond noise" is judged against.
            "round_spread": (max(rounds) - min(rounds)) / med if med > 0 else 0.0,
        }

    for entry, s, r in zip(entries, samples, round_medians, strict=False):
        entry.update(summary(s, r))
    eager_summary = summary(samples[-1], round_medians[-1])
    by_label = {label: e["median_ms"] for e in entries for label in e["labels"]}
    itemsize = prep.args[0].element_size()
    return {
        "schema": SCHEMA,
        "case": case.name,
        "family": case.family,
        "shape": list(prep.shape),
        "dtype": str(prep.dtype).removeprefix("torch."),
        "timer": (
            "interpreter wall clock: 3 calls after one warm-up per window (ranks nothing)"
            if bench.interpreter
            else f"triton.testing.do_bench(warmup={RETIME_WARMUP_MS}, rep={RETIME_REP_MS}, "
            "return_mode='all'): CUDA events, L2 flushed before every call; rounds interleaved "
            f"and rotated, >= {RETIME_ROUNDS} rounds and >= {MIN_SAMPLES} calls per contender; "
            "median of all calls"
        ),
        "rounds": len(round_medians[0]) if round_medians else 0,
        "retime_s": seconds,
        "contenders": entries,
        "by_strategy": by_label,
        "eager": eager_summary,
        "eager_ms": eager_summary["median_ms"],
        "default_ms": by_label["default"],
        "skipped": skipped,
        "strategies_included": sorted(results, key=lambda s: PHASE.get(s, 99)),
        "roofline": roofline(prep.family, prep.shape, itemsize, bench.peaks()),
        "finished_at": now_iso(),
        "environment": bench.env,
        "command": bench.command,
    }


def retime_snapshot(data: dict[str, Any]) -> dict[str, Any]:
    """What a later re-timing keeps of this one: when, at which commit, and each config's median,
    so that the report can tell a config pair's ratio that holds from one that moved."""
    return {
        "finished_at": data.get("finished_at"),
        "git_commit": (data.get("environment") or {}).get("git_commit"),
        "ms_by_config": {
            c["config_id"]: c["median_ms"]
            for c in data.get("contenders", [])
            if "config_id" in c and "median_ms" in c
        },
    }


def with_history(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    """``new`` with the earlier re-timings of its case: ``old``'s history and ``old`` itself,
    at most ``RETIME_HISTORY``, newest last."""
    if old is None:
        return new
    history = [*old.get("history", []), retime_snapshot(old)]
    return {**new, "history": history[-RETIME_HISTORY:]}


def needs_retime(results: Path, case: str) -> bool:
    """True when the case's finished results are not exactly what its re-timing file holds."""
    finished = case_results(results, case)
    if not finished:
        return False
    data = read_json(retime_path(results, case))
    if data is None:
        return True
    timed = {s: c["config_id"] for c in data.get("contenders", []) for s in c.get("labels", [])}
    # A config this Helion rejects is left out of the re-timing; it is not owed one either.
    timed.update(
        (k["strategy"], k["config_id"]) for k in data.get("skipped", []) if "config_id" in k
    )
    from pytest_helion_tune.configs import config_id

    return any(timed.get(s) != config_id(r["config"]) for s, r in finished.items())


# -- the run -------------------------------------------------------------------------------


class Bench:
    """One harness run: options, where results go, the device's environment, the deadline."""

    def __init__(self, args: argparse.Namespace, argv: Sequence[str]) -> None:
        self.interpreter: bool = args.interpreter
        self.seed: int = args.seed
        self.deadline: float | None = args.deadline_s
        self.command = shlex.join([Path(sys.executable).name, "benchmarks/run.py", *argv])
        self.env = environment(self.interpreter, args.git_commit)
        slug = "interpreter" if self.interpreter else device_slug(self.env["device"])
        self.results: Path = args.results_dir or ROOT / "benchmarks" / "results" / slug
        self.results.mkdir(parents=True, exist_ok=True)
        self.log = RunLog(self.results, self.command)
        self.archive_path: Path | None = args.archive
        self.archive_logs: bool = args.archive_logs
        self._peaks: dict[str, Any] | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - _T0

    def peaks(self) -> dict[str, Any]:
        if self._peaks is None:
            try:
                self._peaks = measure_peaks(self.interpreter)
            except Exception as exc:  # a roofline is context, never a reason to lose a run
                sheet = next((v for k, v in DATASHEET.items() if k in self.env["device"]), {})
                self._peaks = {
                    **sheet,
                    "source": f"datasheet; measuring failed: {type(exc).__name__}: {exc}",
                }
            write_json(self.results / "_device.json", {**self._peaks, "environment": self.env})
        return self._peaks

    def estimate(self, case: Any, spec: StrategySpec) -> float:
        """Likely wall time of a run: this case's own record (for a warm run without one, this
        case's cold run of the same search), MEASURED.md, this strategy elsewhere."""
        if self.interpreter:
            return 5.0
        for name in [spec.name, *([spec.registry] if spec.warm and spec.registry else [])]:
            own = read_json(result_path(self.results, case.name, name))
            if own and own.get("status") == "ok" and not own.get("budget_capped"):
                return float(own["wall_s"]) * 1.1
        if spec.name in case.expected_s:
            return float(case.expected_s[spec.name]) * 1.1
        seen = []
        for path in self.results.glob(f"*__{spec.name}.json"):
            data = read_json(path)
            if data and data.get("status") == "ok" and not data.get("budget_capped"):
                seen.append(float(data["wall_s"]))
        if seen:
            return max(statistics.median(seen) * 1.25, min(seen))
        return spec.expected_s

    def fits(self, seconds: float) -> bool:
        return self.deadline is None or self.elapsed() + seconds <= self.deadline

    def saved(self) -> None:
        archive(self.results, self.archive_path, self.archive_logs)


def build_plan(
    cases: Sequence[Any], strategy_list: list[str] | None, order: str
) -> list[tuple[Any, str]]:
    index = {c.name: i for i, c in enumerate(cases)}
    pairs = [(c, s) for c in cases for s in (strategy_list or c.strategies())]
    cold = [p for p in pairs if not STRATEGIES[p[1]].warm]
    warm = [p for p in pairs if STRATEGIES[p[1]].warm]
    if order == "case":
        cold.sort(key=lambda p: (index[p[0].name], PHASE[p[1]]))
    else:
        cold.sort(key=lambda p: (PHASE[p[1]], index[p[0].name]))
    warm.sort(key=lambda p: index[p[0].name])
    return cold + warm


def retime_points(plan: Sequence[tuple[Any, str]]) -> set[int]:
    """Plan positions after which a case is re-timed: its last cold run, and its warm run.

    Re-timing before the warm phase means a run killed there still leaves every case's
    cold contenders re-timed; the warm run's re-timing then adds its config.
    """
    points: dict[tuple[str, bool], int] = {}
    for i, (case, name) in enumerate(plan):
        points[(case.name, STRATEGIES[name].warm)] = i
    return set(points.values())


def do_retime(bench: Bench, case: Any, force: bool = False) -> None:
    if not force and not needs_retime(bench.results, case.name):
        return
    if not case_results(bench.results, case.name):
        return
    if not bench.fits(RETIME_RESERVE_S if not bench.interpreter else 0):
        say(f"{case.name}: re-timing skipped, the deadline is near")
        bench.log.add("skipped", case=case.name, strategy="retime", reason="deadline")
        return
    say(f"{case.name}: re-timing every contender, interleaved")
    try:
        data = retime(bench, case)
    except Exception as exc:
        say(f"{case.name}: re-timing FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        bench.log.add(
            "failed", case=case.name, strategy="retime", error=f"{type(exc).__name__}: {exc}"
        )
        return
    if data is None:
        return
    data = with_history(data, read_json(retime_path(bench.results, case.name)))
    write_json(retime_path(bench.results, case.name), data)
    bench.log.add("retimed", case=case.name, seconds=data["retime_s"])
    bench.saved()
    parts = [f"default {data['default_ms']:.4f}", f"eager {data['eager_ms']:.4f}"]
    parts += [f"{s} {ms:.4f}" for s, ms in data["by_strategy"].items() if s != "default"]
    roof = data["roofline"].get("roofline_ms")
    if roof:
        parts.append(f"roofline {roof:.4f}")
    say(f"{case.name}: ms " + ", ".join(parts))


def warm_up(bench: Bench, case: Any) -> None:
    """Pays the process's one-time costs (CUDA context, Triton and Helion compiler start, the
    shared benchmark worker) before the first timed run, so that the first case's first
    strategy is not charged for them where no ``default`` run goes first to absorb them
    (until session 7 the first search of a ``--strategies seeded`` run paid them)."""
    from pytest_helion_tune.strategies import worker

    start = time.perf_counter()
    try:
        prep = prepare(case, bench.interpreter)
        run_default_config(prep, bench.interpreter)
        # The interpreter's searches benchmark in this process (interpreter.prepare_settings).
        ready = (
            not bench.interpreter and worker.uses_worker(prep.bound.settings) and worker.started()
        )
    except Exception as exc:  # the first run then pays what is left, and reports its own trouble
        say(f"warm-up on {case.name} failed: {type(exc).__name__}: {exc}")
        return
    say(
        f"warm-up on {case.name}: {time.perf_counter() - start:.1f} s"
        + (", benchmark worker started" if ready else "")
    )


def execute(bench: Bench, args: argparse.Namespace, cases: Sequence[Any]) -> int:
    plan = build_plan(cases, args.strategy_list, args.order)
    warmed = False  # whether this process has run anything yet
    retime_after = retime_points(plan)
    failures = 0
    say(
        f"{len(plan)} (case, strategy) runs planned over {len(cases)} cases; results in {bench.results}"
        + (f"; deadline {bench.deadline:.0f} s" if bench.deadline else "")
    )
    for i, (case, name) in enumerate(plan):
        spec = STRATEGIES[name]
        path = result_path(bench.results, case.name, name)
        if is_done(path) and not args.force:
            say(f"{case.name}/{name}: result exists, skipped (--force re-runs it)")
        else:
            # Cases still owed a re-timing in this run need their time kept free.
            owed = {c.name for c, _ in plan[i:]} if not args.no_retime else set()
            reserve = 0.0 if bench.interpreter else RETIME_RESERVE_S * len(owed)
            estimate = bench.estimate(case, spec)
            if not bench.fits(estimate + reserve):
                say(
                    f"{case.name}/{name}: skipped, likely {estimate:.0f} s (+{reserve:.0f} s of re-timing) "
                    f"would pass the deadline; a later run resumes it"
                )
                bench.log.add(
                    "skipped", case=case.name, strategy=name, reason="deadline", estimate_s=estimate
                )
            else:
                if not warmed and name != "default":
                    warm_up(bench, case)  # before the budget: the deadline counts it
                warmed = True
                budget = None
                if bench.deadline is not None:
                    budget = max(5.0, bench.deadline - bench.elapsed() - reserve)
                say(f"{case.name}/{name}: {spec.description} (likely {estimate:.0f} s)")
                bench.log.add("start", case=case.name, strategy=name)
                try:
                    record = run_strategy(bench, case, spec, budget)
                except Exception as exc:
                    failures += 1
                    say(f"{case.name}/{name}: FAILED: {type(exc).__name__}: {exc}")
                    traceback.print_exc()
                    bench.log.add(
                        "failed",
                        case=case.name,
                        strategy=name,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                    record = None
                else:
                    if record is None:
                        say(
                            f"{case.name}/{name}: skipped, no tuned configs of this family's other shapes yet"
                        )
                        bench.log.add(
                            "skipped", case=case.name, strategy=name, reason="no warm seeds"
                        )
                if record is not None:
                    write_json(path, record)
                    bench.log.add("done", case=case.name, strategy=name, wall_s=record["wall_s"])
                    bench.saved()
                    say(
                        f"{case.name}/{name}: {record['wall_s']:.1f} s, {record['configs_tested']} configs "
                        f"tested, {record['configs_compiled']} compiled"
                        + (
                            ""
                            if record["accurate"]
                            else " -- INACCURATE: " + record["accuracy_message"]
                        )
                        + (" -- cut short by the deadline" if record["budget_capped"] else "")
                    )
                _release()
        if not args.no_retime and i in retime_after:
            do_retime(bench, case)
            _release()
    return failures


def _release() -> None:
    import gc

    gc.collect()
    with contextlib.suppress(Exception):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def main(argv: Sequence[str] | None = None) -> int:
    global _T0
    _T0 = time.perf_counter()  # the deadline counts from here, also when called in-process
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.interpreter:
        # Before triton or helion is imported: the interpreter is chosen at import.
        os.environ["TRITON_INTERPRET"] = "1"
    # Cold means cold: Helion's on-disk cache would otherwise seed every search.
    os.environ["HELION_SKIP_CACHE"] = "1"
    from benchmarks.cases import CASES, select

    if args.list:
        for c in CASES:
            print(f"{c.name:28s} {c.dtype}  {'[control] ' if c.control else ''}{c.why}")
        print("strategies:", ", ".join(STRATEGIES))
        return 0
    cases = select(args.cases)
    if args.interpreter:
        from pytest_helion_tune import interpreter

        interpreter.patch_libdevice()
    else:
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU: run with --interpreter for the CPU smoke variant")
    bench = Bench(args, argv)
    say(
        f"helion {bench.env['helion']}, triton {bench.env['triton']}, torch {bench.env['torch']}, "
        f"device {bench.env['device']}, commit {bench.env['git_commit'][:12]}"
    )
    if args.retime_only:
        for case in cases:
            do_retime(bench, case, force=True)
        return 0
    failures = execute(bench, args, cases)
    say(
        f"done: {failures} failed runs; results in {bench.results} (report: python benchmarks/report.py {bench.results})"
    )
    return 1 if failures else 0


if __name__ == "__main__":  # Helion's benchmark worker re-imports __main__: keep this guard
    sys.exit(main())
