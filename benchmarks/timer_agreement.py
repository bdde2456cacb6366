"""Times one case's configs on the timers that judge them, side by side: Helion's search timer
(its benchmark worker, as every search's batch runs it), the common timer of the re-timings
(``triton.testing.do_bench``, L2 flushed, 5 ms warm-up, 25 ms window, in this process), Helion's
``do_bench`` in this process (1 ms warm-up, 50 ms window, as its worker calls it) and the same
through CUDA graphs (``HELION_BENCHMARK_CUDAGRAPH``'s path). Where a search climbs on one timer
and is judged on another, a config that one of them flatters shows here. Usage::

    python benchmarks/timer_agreement.py CASE [--results-dir DIR] [--csv LOG.csv ...]
        [--top 4] [--rounds 5] [--out FILE.json]

The configs: every strategy's result config for CASE in the results dir (default, lfbo,
seeded, ...) and the ``--top`` fastest of each Helion CSV log given. Writes JSON and prints a
markdown table. ``--interpreter`` runs the plumbing on a CPU (tiny shapes, wall clock only).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.run import claim_package

claim_package()

Fn = Callable[[], object]
TIMERS = ("helion-worker", "common", "helion-inproc", "helion-graph")


def result_configs(results: Path, case: str) -> list[tuple[str, dict[str, Any]]]:
    """(strategy, config) of every result file of ``case`` that holds a config."""
    out = []
    for path in sorted(results.glob(f"{case}__*.json")):
        data = json.loads(path.read_text())
        if isinstance(data.get("config"), dict) and data.get("strategy"):
            out.append((str(data["strategy"]), data["config"]))
    return out


def csv_configs(path: Path, top: int) -> list[tuple[str, dict[str, Any]]]:
    """The ``top`` fastest distinct configs that finished in a Helion CSV log, labelled
    ``<log stem>#<rank>``."""
    from pytest_helion_tune import monitor

    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for _ms, text in monitor.finished([path]):  # fastest first
        if text in seen:
            continue
        seen.add(text)
        out.append((f"{path.stem}#{len(out) + 1}", monitor.config_from_repr(text)))
        if len(out) >= top:
            break
    return out


def distinct(labelled: Sequence[tuple[str, Any]]) -> list[tuple[list[str], Any]]:
    """Configs by canonical id, first-seen order, each with every label it came with."""
    from pytest_helion_tune.strategies.seeded import _canonical_id

    by_id: dict[str, tuple[list[str], Any]] = {}
    for label, config in labelled:
        by_id.setdefault(_canonical_id(config), ([], config))[0].append(label)
    return list(by_id.values())


def in_process_timers(interpreter: bool) -> dict[str, Callable[[Fn], float]]:
    """The in-process timers by name (the wall clock for all three under the interpreter)."""
    if interpreter:
        import time

        def wall(fn: Fn) -> float:
            fn()
            start = time.perf_counter()
            fn()
            return (time.perf_counter() - start) * 1e3

        return {name: wall for name in TIMERS[1:]}
    from helion.autotuner import benchmarking
    from triton.testing import do_bench

    def common(fn: Fn) -> float:
        return float(do_bench(fn, warmup=5, rep=25, return_mode="median"))

    def inproc(fn: Fn) -> float:
        return float(benchmarking.do_bench(fn, warmup=1, rep=50, return_mode="median"))

    def graph(fn: Fn) -> float:
        return float(
            benchmarking.do_bench(
                fn, warmup=1, rep=50, return_mode="median", default_cudagraph=True
            )
        )

    return {"common": common, "helion-inproc": inproc, "helion-graph": graph}


def worker_times(prep: Any, configs: list[Any], log: Path, interpreter: bool) -> list[float]:
    """Each config's time on Helion's search timer: one FiniteSearch batch of them all, as
    ``seeded`` runs its batches (nan where one did not finish)."""
    import helion

    from pytest_helion_tune import monitor
    from pytest_helion_tune.strategies import SearchOutcome
    from pytest_helion_tune.strategies.seeded import SeededSearch, _canonical_id

    problem = prep.problem(interpreter, log)
    SeededSearch()._finite(problem, configs, log, SearchOutcome(config={}), 0.0)

    def ids(config: Any) -> set[str]:
        """A config's canonical id as given and once more normalized: Helion adds fields when it
        normalizes (``num_sm_multiplier`` for a persistent ``pid_type``), and its CSV logs the
        config it ran, so on H100 run 50 three persistent configs went unmatched."""
        again = helion.Config(**copy.deepcopy(dict(config)))
        with contextlib.suppress(Exception):
            prep.bound.config_spec.normalize(again)
        return {_canonical_id(config), _canonical_id(again)}

    rows = [
        (ms, ids(helion.Config(**monitor.config_from_repr(text))))
        for ms, text in monitor.finished([log.with_suffix(".csv")])
    ]  # fastest first: a config's fastest row wins
    wanted = [ids(c) for c in configs]
    return [next((ms for ms, got in rows if got & want), float("nan")) for want in wanted]


def measure(
    case_name: str, labelled: Sequence[tuple[str, Any]], rounds: int, log: Path, interpreter: bool
) -> dict[str, Any]:
    from benchmarks.cases import BY_NAME
    from benchmarks.run import environment, prepare
    from pytest_helion_tune.strategies import Seed
    from pytest_helion_tune.strategies.helion_env import usable_seeds

    prep = prepare(BY_NAME[case_name], interpreter)
    notes: list[str] = []  # a config another Helion wrote can carry keys this one rejects
    usable = [  # one at a time: usable_seeds drops repeats, and each label is kept here
        found
        for label, c in labelled
        for found in usable_seeds(prep.bound, [Seed(dict(c), label)], notes)
    ]
    for note in notes:
        print(note)
    if not usable:
        raise SystemExit(f"none of the {len(labelled)} configs is usable by this Helion")
    entries = distinct([(seed.source, config) for seed, config in usable])
    configs = [config for _labels, config in entries]
    worker = worker_times(prep, configs, log, interpreter)
    timers = in_process_timers(interpreter)
    fns: list[Fn] = []
    for config in configs:
        compiled = prep.bound.compile_config(config, allow_print=False)
        fns.append(lambda c=compiled: c(*prep.args))
    samples: dict[str, list[list[float]]] = {name: [[] for _ in fns] for name in timers}
    for r in range(rounds):  # interleaved and rotated, every timer in every round
        for j in range(len(fns)):
            i = (r + j) % len(fns)
            for name, timer in timers.items():
                samples[name][i].append(timer(fns[i]))
    rows = []
    for i, (labels, config) in enumerate(entries):
        row: dict[str, Any] = {"labels": labels, "config": dict(config), "helion-worker": worker[i]}
        for name in timers:
            row[name] = statistics.median(samples[name][i])
            row[f"{name}-rounds"] = samples[name][i]
        rows.append(row)
    return {
        "case": case_name,
        "rounds": rounds,
        "rows": rows,
        "environment": environment(interpreter),
        "command": " ".join(["python", "benchmarks/timer_agreement.py", *sys.argv[1:]]),
    }


def table(data: dict[str, Any]) -> str:
    """Markdown: each config's median on every timer, and the common timer over Helion's."""
    head = "| config | " + " | ".join(f"{t} ms" for t in TIMERS) + " | common / worker |"
    lines = [head, "|---|" + "---:|" * (len(TIMERS) + 1)]
    for row in data["rows"]:
        worker = row["helion-worker"]
        ratio = row["common"] / worker if worker == worker and worker > 0 else float("nan")
        cells = " | ".join(f"{row[t]:.4f}" for t in TIMERS)
        lines.append(f"| {', '.join(row['labels'])} | {cells} | {ratio:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case")
    parser.add_argument("--results-dir", type=Path, default=None)
    parser.add_argument("--csv", type=Path, action="append", default=[])
    parser.add_argument("--top", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--interpreter", action="store_true")
    args = parser.parse_args(argv)
    if args.interpreter:
        os.environ["TRITON_INTERPRET"] = "1"
        from pytest_helion_tune import interpreter

        interpreter.patch_libdevice()
    os.environ["HELION_SKIP_CACHE"] = "1"
    from benchmarks.cases import BY_NAME

    if args.case not in BY_NAME:
        parser.error(f"unknown case {args.case!r}; see python benchmarks/run.py --list")
    labelled: list[tuple[str, dict[str, Any]]] = []
    if args.results_dir is not None:
        labelled += result_configs(args.results_dir, args.case)
    for path in args.csv:
        if not path.is_file():
            parser.error(f"--csv {path}: no such file")
        labelled += csv_configs(path, args.top)
    if not labelled:
        parser.error("no configs: give --results-dir with result files of the case, or --csv")
    out = args.out or Path(f"timer_agreement_{args.case}.json")
    log = out.with_name(out.stem + "-worker")
    data = measure(args.case, labelled, args.rounds, log, args.interpreter)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(table(data))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
