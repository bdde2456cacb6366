"""Tests of the performance gate's protocol and verdicts, with a deterministic injected timer.

Also the smoke test of benchmarks/gate_experiment.py under the Triton interpreter.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_helion_tune import gate
from pytest_helion_tune.baselines import BaselineEntry
from pytest_helion_tune.gate import Measurement, judge, measure, naive_verdict, what_changed
from pytest_helion_tune.timing import Fn, Timer

ROOT = Path(__file__).resolve().parent.parent
KERNEL_MS, EAGER_MS = 0.030, 0.120
TOOLCHAIN = {"helion": "1.5.1", "torch": "2.13.0", "triton": "3.9.0"}


def _noop() -> None:
    return None


class SharedGpuTimer(Timer):
    """A simulated shared GPU: ``sample`` returns a time by label, never running ``fn``.

    The noise, all seeded:
    - per sample: independent lognormal jitter of ``jitter`` (sigma, relative);
    - within a run: a common clock drift of +-8% (a sine over ~40 samples), as boost
      clocks and throttling move;
    - between runs: a clock offset uniform in +-10% (another boost state, another card);
    - neighbours: each sample starts a burst with probability 3%; a burst lasts ~3 samples
      and slows whatever runs by a factor uniform in 1.2-2.0.
    """

    def __init__(self, seed: int, kernel_factor: float = 1.0, jitter: float = 0.02) -> None:
        self.rng = random.Random(seed)
        self.kernel_factor = kernel_factor
        self.jitter = jitter
        self.offset = self.rng.uniform(0.9, 1.1)
        self.phase = self.rng.uniform(0, 2 * math.pi)
        self.t = 0
        self.burst_left = 0
        self.burst = 1.0
        self.labels: list[str] = []

    def clock(self) -> float:
        self.t += 1
        if self.burst_left == 0 and self.rng.random() < 0.03:
            self.burst_left = 1 + int(self.rng.expovariate(1 / 2.0))
            self.burst = self.rng.uniform(1.2, 2.0)
        factor = self.offset * (1 + 0.08 * math.sin(self.phase + self.t / 6.4))
        if self.burst_left:
            self.burst_left -= 1
            factor *= self.burst
        return factor * math.exp(self.rng.gauss(0, self.jitter))

    def sample(self, fn: Fn, label: str) -> float:
        self.labels.append(label)
        base = KERNEL_MS * self.kernel_factor if label == "kernel" else EAGER_MS
        return base * self.clock()


def make_baseline(seed: int = 10_000, jitter: float = 0.02, **overrides: object) -> BaselineEntry:
    m = measure(SharedGpuTimer(seed, jitter=jitter), _noop, _noop, gate.BASELINE_ROUNDS)
    entry = gate.record(
        m,
        nodeid="tests/test_softmax.py::test_softmax[4096-8192]",
        specialization="x=float16[4096,8192]",
        device="NVIDIA H100 80GB HBM3 (sm_90)",
        source_hash="aaaa",
        config={"block_sizes": [1], "num_warps": 8},
        toolchain=TOOLCHAIN,
        recorded_at="2026-01-01T00:00:00Z",
    )
    return dataclasses.replace(entry, **overrides)  # type: ignore[arg-type]


def gate_run(
    baseline: BaselineEntry, seed: int, factor: float, jitter: float = 0.02
) -> gate.GateResult:
    timer = SharedGpuTimer(seed, kernel_factor=factor, jitter=jitter)
    return judge(baseline, lambda: measure(timer, _noop, _noop), 0.05, what_changed="")


def runs(factor: float, n: int, jitter: float = 0.02) -> list[gate.GateResult]:
    baseline = make_baseline(jitter=jitter)
    return [gate_run(baseline, seed, factor, jitter) for seed in range(n)]


# -- measure ---------------------------------------------------------------------------


def test_measure_pairs_kernel_and_eager_per_round() -> None:
    timer = SharedGpuTimer(1)
    m = measure(timer, _noop, _noop, rounds=6)
    assert m.rounds == 6 and len(m.eager_ms) == 6
    # The timer rotates who starts: kernel first, then eager first, and so on.
    assert timer.labels[:4] == ["kernel", "eager", "eager", "kernel"]
    assert all(abs(r - KERNEL_MS / EAGER_MS) / (KERNEL_MS / EAGER_MS) < 0.6 for r in m.ratios)


class ConstantTimer(Timer):
    def __init__(self, times: dict[str, float]) -> None:
        self.times = times

    def sample(self, fn: Fn, label: str) -> float:
        return self.times[label]


def test_measurement_statistics() -> None:
    m = measure(ConstantTimer({"kernel": 2.0, "eager": 4.0}), _noop, _noop, rounds=5)
    assert m.ratio == 0.5 and m.noise == 0.0
    assert m.kernel_median == 2.0 and m.eager_median == 4.0
    # a noise of zero is floored: the standard error never claims infinite precision
    assert m.stderr == pytest.approx(1.2533 * gate.NOISE_FLOOR / math.sqrt(5))
    spread = Measurement((1.0, 1.1, 0.9, 1.0, 1.3), (1.0,) * 5)
    assert spread.ratio == 1.0
    assert spread.noise == pytest.approx(1.4826 * 0.1)
    assert spread.pooled(spread).rounds == 10


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_measurement_rejects_impossible_samples(bad: float) -> None:
    with pytest.raises(ValueError, match="finite positive"):
        Measurement((1.0, bad), (1.0, 1.0))
    with pytest.raises(ValueError, match="one kernel and one eager"):
        Measurement((1.0,), (1.0, 1.0))
    with pytest.raises(ValueError, match="rounds"):
        measure(ConstantTimer({"kernel": 1.0, "eager": 1.0}), _noop, _noop, rounds=0)


# -- false alarms and detection over simulated runs -------------------------------------


def test_no_false_alarm_over_200_runs_on_a_noisy_shared_gpu() -> None:
    results = runs(1.0, 200)
    assert sum(r.failed for r in results) == 0
    # the same data judged the pytest-benchmark way flaps: run-to-run clock offsets alone
    # move raw medians by up to 10%
    baseline = make_baseline()
    naive = [naive_verdict(baseline.latency_ms, r.first.kernel_median, 0.05) for r in results]
    assert naive.count("regression") >= 20


def test_no_false_alarm_at_twice_the_noise() -> None:
    # 5% jitter per sample (7% per round on the ratio): the significance rule keeps quiet
    assert sum(r.failed for r in runs(1.0, 200, jitter=0.05)) == 0


@pytest.mark.parametrize(("factor", "rate"), [(1.10, 0.95), (1.20, 1.0)])
def test_detects_real_slowdowns(factor: float, rate: float) -> None:
    results = runs(factor, 100)
    detected = sum(r.failed for r in results) / len(results)
    assert detected >= rate
    assert all(r.confirm is not None for r in results if r.failed)


def test_a_slowdown_below_the_tolerance_passes() -> None:
    assert sum(r.failed for r in runs(1.02, 100)) == 0


def test_tolerance_is_per_call() -> None:
    baseline = make_baseline()
    timer = SharedGpuTimer(3, kernel_factor=1.20)
    lenient = judge(baseline, lambda: measure(timer, _noop, _noop), 0.30, what_changed="")
    assert lenient.verdict == "pass" and "tolerance 30%" in lenient.message


# -- the confirming re-measure ------------------------------------------------------------


class SpikeTimer(SharedGpuTimer):
    """A neighbour's burst slows every kernel sample of the first measurement by 50%."""

    def __init__(self, seed: int, spiked_samples: int) -> None:
        super().__init__(seed, jitter=0.01)
        self.offset = 1.0
        self.spiked_left = spiked_samples

    def sample(self, fn: Fn, label: str) -> float:
        value = super().sample(fn, label)
        if label == "kernel" and self.spiked_left > 0:
            self.spiked_left -= 1
            value *= 1.5
        return value


def test_the_confirming_measurement_stops_a_one_off_spike() -> None:
    baseline = make_baseline()
    timer = SpikeTimer(5, spiked_samples=gate.DEFAULT_ROUNDS)
    calls: list[Measurement] = []

    def once() -> Measurement:
        calls.append(measure(timer, _noop, _noop))
        return calls[-1]

    result = judge(baseline, once, 0.05, what_changed="")
    assert len(calls) == 2
    assert gate.change_vs(baseline, result.first) > 0.4  # a single reading would have failed
    assert result.verdict == "pass"
    assert "not confirmed" in result.message


def test_within_tolerance_measures_only_once() -> None:
    calls: list[int] = []
    timer = SharedGpuTimer(7)

    def once() -> Measurement:
        calls.append(1)
        return measure(timer, _noop, _noop)

    assert judge(make_baseline(), once, 0.05).verdict == "pass"
    assert len(calls) == 1


def test_noise_beyond_significance_is_inconclusive_not_a_regression() -> None:
    # Both readings sit 8% above a 5% tolerance, but rounds scatter by +-40%: not evidence.
    scatter = (0.6, 1.4, 0.7, 1.3, 1.08, 0.8, 1.2, 1.08, 1.5)
    noisy = Measurement(tuple(0.25 * 1.08 * s for s in scatter), (1.0,) * len(scatter))
    baseline = make_baseline(ratio=0.25, noise=0.4, samples=9, eager_ms=1.0)
    result = judge(baseline, lambda: noisy, 0.05)
    assert result.change > 0.05 and result.z is not None and result.z < gate.CONFIDENCE_Z
    assert result.verdict == "pass"
    assert "inconclusive" in result.message and "quieter GPU" in result.message


# -- a busy GPU: readings whose reference moved are set aside -----------------------------


class CoRunnerTimer(SharedGpuTimer):
    """A co-running job in bursts: measured on an H100 under concurrent device copies, a
    0.03 ms kernel ran 7x slower and its eager reference 2x (not alike, so the ratio moves).

    Bursts start with probability ``rate`` per sample and last ~30 samples (one reading).
    ``busy_readings`` forces the first N readings (2 * rounds samples each) into a burst.
    """

    def __init__(
        self, seed: int, kernel_factor: float = 1.0, rate: float = 0.03, busy_samples: int = 0
    ) -> None:
        super().__init__(seed, kernel_factor)
        self.offset = 1.0
        self.rate = rate
        self.busy_left = busy_samples
        self.co_left = 0

    def sample(self, fn: Fn, label: str) -> float:
        value = super().sample(fn, label)
        if self.busy_left > 0:
            self.busy_left -= 1
            busy = True
        else:
            if self.co_left == 0 and self.rng.random() < self.rate:
                self.co_left = int(self.rng.uniform(10, 50))
            busy = self.co_left > 0
            self.co_left = max(0, self.co_left - 1)
        if busy:
            value *= 7.0 if label == "kernel" else 2.0
        return value


def co_runner_runs(factor: float, n: int) -> list[gate.GateResult]:
    baseline = make_baseline()
    out = []
    for seed in range(n):
        timer = CoRunnerTimer(seed, kernel_factor=factor)
        out.append(judge(baseline, lambda t=timer: measure(t, _noop, _noop), 0.05))
    return out


def test_no_false_alarm_under_a_bursty_co_runner() -> None:
    results = co_runner_runs(1.0, 200)
    assert sum(r.failed for r in results) == 0
    assert sum(r.disturbed > 0 for r in results) >= 10  # bursts did hit readings
    baseline = make_baseline()
    naive = [naive_verdict(baseline.latency_ms, r.first.kernel_median, 0.05) for r in results]
    assert naive.count("regression") >= 30


def test_a_busy_reading_is_retaken_and_a_real_regression_still_fails() -> None:
    baseline = make_baseline()
    rounds = gate.DEFAULT_ROUNDS
    timer = CoRunnerTimer(3, kernel_factor=1.2, rate=0.0, busy_samples=2 * 2 * rounds)
    result = judge(baseline, lambda: measure(timer, _noop, _noop), 0.05)
    assert result.verdict == "regression"
    assert len(result.readings) == 4 and result.disturbed == 2
    assert 0.15 < result.change < 0.25  # judged on the two clean readings only


def test_a_gpu_busy_throughout_is_inconclusive() -> None:
    baseline = make_baseline()
    timer = CoRunnerTimer(4, rate=0.0, busy_samples=10**6)
    result = judge(baseline, lambda: measure(timer, _noop, _noop), 0.05)
    assert result.verdict == "pass" and len(result.readings) == gate.MAX_READINGS
    assert "inconclusive" in result.message and "GPU looks busy" in result.message
    # without the guard the same readings would fail the test
    timer = CoRunnerTimer(4, rate=0.0, busy_samples=10**6)
    unguarded = judge(baseline, lambda: measure(timer, _noop, _noop), 0.05, max_eager_shift=None)
    assert unguarded.verdict == "regression"


# -- improvements ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(factor=st.floats(min_value=0.05, max_value=1.0), seed=st.integers(0, 2**31))
def test_an_improvement_never_fails(factor: float, seed: int) -> None:
    baseline = make_baseline()
    result = gate_run(baseline, seed, factor)
    assert result.verdict != "regression"
    if factor < 0.85:
        assert result.verdict == "improved"
        assert result.confirm is None
        assert "--helion-update-baselines" in result.message


# -- messages -----------------------------------------------------------------------------


def test_regression_message_says_everything_needed_to_act() -> None:
    baseline = make_baseline()
    changed = what_changed(baseline, "bbbb", {**TOOLCHAIN, "triton": "3.10.0"})
    timer = SharedGpuTimer(11, kernel_factor=1.25)
    result = judge(baseline, lambda: measure(timer, _noop, _noop), 0.05, what_changed=changed)
    assert result.verdict == "regression"
    msg = result.message
    assert "\n" not in msg
    assert msg.startswith(baseline.nodeid + ": performance regression")
    assert f"{baseline.ratio:.3f} ({baseline.latency_ms:.4g} ms) at baseline" in msg
    assert f"{result.now.ratio:.3f} ({result.now.kernel_median:.4g} ms) now" in msg
    assert f"{result.change * 100:+.1f}%" in msg
    assert "tolerance 5%" in msg
    assert "since recorded: kernel source edited; triton 3.9.0 -> 3.10.0" in msg
    assert msg.endswith("accept with --helion-update-baselines")


def test_regression_with_nothing_changed_says_so() -> None:
    timer = SharedGpuTimer(12, kernel_factor=1.3)
    result = judge(make_baseline(), lambda: measure(timer, _noop, _noop), 0.05)
    assert result.verdict == "regression"
    assert "nothing recorded changed" in result.message


def test_what_changed() -> None:
    baseline = make_baseline()
    assert what_changed(baseline, "aaaa", TOOLCHAIN) == ""
    assert what_changed(baseline, "aaaa", tuple(sorted(TOOLCHAIN.items()))) == ""
    assert what_changed(baseline, "ffff", TOOLCHAIN) == "kernel source edited"
    moved = {**TOOLCHAIN, "torch": "2.14.0", "cuda": "13.0"}
    del moved["helion"]
    assert (
        what_changed(baseline, "aaaa", moved)
        == "cuda - -> 13.0, helion 1.5.1 -> -, torch 2.13.0 -> 2.14.0"
    )
    assert what_changed(baseline, "aaaa", TOOLCHAIN, {"num_warps": 4}) == "config changed"
    assert what_changed(baseline, "aaaa", TOOLCHAIN, dict(baseline.config)) == ""


def test_bad_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        judge(make_baseline(), lambda: measure(SharedGpuTimer(1), _noop, _noop), -0.1)


def test_naive_verdict() -> None:
    assert naive_verdict(1.0, 1.06, 0.05) == "regression"
    assert naive_verdict(1.0, 1.04, 0.05) == "pass"
    assert naive_verdict(1.0, 0.90, 0.05) == "improved"


def test_result_json_round_trips_through_json() -> None:
    timer = SharedGpuTimer(12, kernel_factor=1.3)
    result = judge(make_baseline(), lambda: measure(timer, _noop, _noop), 0.05)
    doc = json.loads(json.dumps(result.to_json()))
    assert doc["verdict"] == "regression" and doc["confirm_change"] > 0.05


def test_a_noisy_measurement_is_no_baseline() -> None:
    quiet = measure(SharedGpuTimer(1), _noop, _noop, gate.BASELINE_ROUNDS)
    assert gate.baseline_problem(quiet) == ""
    busy = Measurement((1.0, 1.5, 2.0, 1.0, 2.5, 1.2), (1.0,) * 6)
    assert "GPU looks busy" in gate.baseline_problem(busy)


def test_record_builds_a_baseline_from_a_measurement() -> None:
    m = Measurement((1.0, 1.2, 1.1), (2.0, 2.0, 2.0), seconds=0.5)
    entry = gate.record(
        m,
        nodeid="n",
        specialization="s",
        device="d",
        source_hash="h",
        config={},
        toolchain=TOOLCHAIN,
    )
    assert (entry.latency_ms, entry.eager_ms, entry.ratio, entry.samples) == (1.1, 2.0, 0.55, 3)
    assert entry.noise == pytest.approx(m.noise) and entry.recorded_at.endswith("Z")


# -- the GPU experiment's script, under the interpreter ------------------------------------


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_gate_experiment_runs_under_the_interpreter(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELION_", "TRITON_"))}
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "gate_experiment.py"),
        "--interpreter",
        "--trials",
        "2",
        "--kernels",
        "softmax",
        "--max-shapes",
        "1",
        "--out",
        str(tmp_path),
    ]
    proc = _run(cmd, env, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((tmp_path / "gate_experiment.json").read_text())
    assert doc["meta"]["interpreter"] is True
    assert doc["meta"]["command"].endswith("--out " + str(tmp_path))
    (case,) = doc["cases"]
    assert {v["name"] for v in case["variants"]} == {"none", "+5%", "+10%", "+20%"}
    assert len(case["trials"]) == 2 * 4
    for trial in case["trials"]:
        assert trial["gate"]["verdict"] in ("pass", "improved", "regression")
        assert trial["naive"] in ("pass", "improved", "regression")
    table = (tmp_path / "gate_experiment.md").read_text()
    assert "| false alarms" in table and "naive" in table
