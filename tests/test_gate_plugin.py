"""The regression gate in real pytest sessions, with an injected timer (the only fake: a GPU clock)."""

from __future__ import annotations

import json
import os

import pytest
from conftest import Project

pytestmark = pytest.mark.slow

# Kernel and reference get fixed "latencies"; KERNEL_SLOWDOWN scales the kernel's. A little
# deterministic jitter keeps the gate's noise estimate honest.
SCALED_TIMER = """
import itertools
import os

from pytest_helion_tune.timing import Timer

_jitter = itertools.cycle([0.0, 0.004, -0.003, 0.002, -0.001])


class ScaledTimer(Timer):
    name = "scaled"

    def sample(self, fn, label):
        base = {"eager": 2.0, "kernel": 1.0}.get(label, 1.0)
        if label != "eager":
            base *= float(os.environ.get("KERNEL_SLOWDOWN", "1.0"))
        return base * (1 + next(_jitter))


def pytest_helion_tune_timer(config, device):
    return ScaledTimer()
"""


def run(project: Project, slowdown: float, *args: str):  # type: ignore[no-untyped-def]
    os.environ["KERNEL_SLOWDOWN"] = str(slowdown)
    return project.run("-k", "softmax", *args)


def test_gate_catches_a_slowdown_after_a_kernel_edit_and_names_it(project: Project) -> None:
    project.pytester.makeconftest(SCALED_TIMER)
    run(project, 1.0, "--helion-tune=random").assert_outcomes(passed=1, deselected=2)
    assert project.cases()["test_softmax"]["verdict"] == "missing-baseline"
    run(project, 1.0, "--helion-strict").assert_outcomes(failed=1, deselected=2)

    run(project, 1.0, "--helion-update-baselines").assert_outcomes(passed=1, deselected=2)
    baseline = json.loads((project.cache / "baselines" / "kernels.softmax.json").read_text())
    (entry,) = baseline["entries"]
    assert entry["ratio"] == pytest.approx(0.5, rel=0.02) and entry["samples"] == 30

    run(project, 1.0).assert_outcomes(passed=1, deselected=2)
    assert project.cases()["test_softmax"]["verdict"] == "pass"

    project.edit_kernel("torch.softmax(x[tile_n, :], dim=1)", "torch.softmax(x[tile_n, :], dim=-1)")
    slow = run(project, 1.2)
    slow.assert_outcomes(failed=1, deselected=2)
    case = project.cases()["test_softmax"]
    assert case["verdict"] == "regression"
    assert case["gate"]["change"] == pytest.approx(0.2, abs=0.02)
    slow.stdout.re_match_lines(
        [
            r".*test_softmax: performance regression: kernel/eager 0\.500 .* -> 0\.[56]\d\d .*\+(19|2\d)\.\d% "
            r"\(tolerance 5%.*since recorded: kernel source edited(; config changed)?; accept with --helion-update-baselines",
        ]
    )
    run(project, 1.0).assert_outcomes(passed=1, deselected=2)  # the same edit without a slowdown


def test_gate_names_a_toolchain_change_and_never_fails_an_improvement(project: Project) -> None:
    project.pytester.makeconftest(SCALED_TIMER)
    run(project, 1.0, "--helion-tune=random", "--helion-update-baselines").assert_outcomes(
        passed=1, deselected=2
    )
    path = project.cache / "baselines" / "kernels.softmax.json"
    doc = json.loads(path.read_text())
    doc["entries"][0]["toolchain"]["triton"] = "0.0.1"  # as if recorded before an upgrade
    path.write_text(json.dumps(doc))

    slow = run(project, 1.25)
    slow.assert_outcomes(failed=1, deselected=2)
    slow.stdout.re_match_lines(
        [r".*since recorded: triton 0\.0\.1 -> .*accept with --helion-update-baselines"]
    )

    fast = run(project, 0.7)
    fast.assert_outcomes(passed=1, deselected=2)
    assert project.cases()["test_softmax"]["verdict"] == "improved"

    tolerant = run(project, 1.25, "--helion-perf-tolerance=0.3")
    tolerant.assert_outcomes(passed=1, deselected=2)

    accepted = run(project, 1.25, "--helion-update-baselines")
    accepted.assert_outcomes(passed=1, deselected=2)
    run(project, 1.25).assert_outcomes(passed=1, deselected=2)


def test_baselines_for_another_device_are_never_compared(project: Project) -> None:
    project.pytester.makeconftest(SCALED_TIMER)
    run(project, 1.0, "--helion-tune=random", "--helion-update-baselines").assert_outcomes(
        passed=1, deselected=2
    )
    path = project.cache / "baselines" / "kernels.softmax.json"
    doc = json.loads(path.read_text())
    doc["entries"][0]["device"] = "NVIDIA H100 80GB HBM3 (sm_90)"
    path.write_text(json.dumps(doc))
    run(project, 3.0).assert_outcomes(passed=1, deselected=2)
    assert project.cases()["test_softmax"]["verdict"] == "missing-baseline"
