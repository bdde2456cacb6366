"""What people read: progress lines, the summary table, the JSON report and JUnit properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import Project

from pytest_helion_tune.progress import Announcer
from pytest_helion_tune.strategies import Progress

REQUIRED = {
    "nodeid",
    "kernel",
    "key",
    "origin",
    "strategy",
    "configs_tested",
    "tune_seconds",
    "latency_ms",
    "eager_ms",
    "baseline_ms",
    "verdict",
}


def test_announcer_prints_on_improvement_and_heartbeat_only() -> None:
    lines: list[str] = []
    now = [0.0]
    a = Announcer(lines.append, budget_s=300, clock=lambda: now[0])
    a.progress("t::case", Progress(1, 0, 2.0, 1.0))
    a.progress("t::case", Progress(2, 0, 2.5, 2.0))  # no improvement, no heartbeat yet
    now[0] = 5.0
    a.progress("t::case", Progress(3, 1, 1.5, 5.0))  # improved
    now[0] = 30.0
    a.progress("t::case", Progress(9, 1, 1.5, 30.0))  # heartbeat
    assert lines == [
        "[helion-tune] case: 1 configs, best 2 ms, 1 s / 300 s",
        "[helion-tune] case: 3 configs, 1 failed, best 1.5 ms, 5 s / 300 s",
        "[helion-tune] case: 9 configs, 1 failed, best 1.5 ms, 30 s / 300 s",
    ]
    quiet = Announcer(lines.append, quiet=True)
    quiet.say("x")
    quiet.progress("t::case", Progress(1, 0, 1.0, 1.0))
    assert len(lines) == 3


@pytest.mark.slow
def test_progress_summary_json_and_junit(project: Project) -> None:
    junit = project.path / "junit.xml"
    result = project.run("--helion-tune=seeded", f"--junitxml={junit}", "-k", "softmax")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.re_match_lines(
        [
            r"helion-tune: tuning with seeded \(effort quick, budget 300 s/case, seed 0\)",
            r"helion-tune: device Triton interpreter on the CPU",
            r"\[helion-tune\] tuning test_kernels.py::test_softmax with seeded \(x=float32\[4,32\]; interpreter\)",
            r"\[helion-tune\] test_softmax: \d+ configs, best [\d.]+ ms, \d+ s / 300 s",
            r"\[helion-tune\] tuned test_kernels.py::test_softmax: \d+ configs in [\d.]+ s, best block_sizes=",
            r".*= helion-tune =",
            r"case +origin +strategy +configs +tune s +ms +eager ms +vs eager +baseline +change +verdict",
            r"test_kernels.py::test_softmax +tuned +seeded .*missing-baseline",
        ]
    )
    report = project.report()
    assert report["schema"] == 1
    assert report["session"]["strategy"] == "seeded"
    (case,) = report["cases"]
    assert set(case) >= REQUIRED
    assert case["origin"] == "tuned" and case["verdict"] == "missing-baseline" and case["trace"]
    assert all({"seconds", "configs", "best_ms"} == set(p) for p in case["trace"])

    props = {p.get("name"): p.get("value") for p in ET.parse(junit).iter("property")}
    assert props["helion_origin"] == "tuned" and props["helion_verdict"] == "missing-baseline"
    assert float(props["helion_latency_ms"]) > 0

    quiet = project.run("-q", "-k", "softmax")
    quiet.assert_outcomes(passed=1, deselected=2)
    assert "[helion-tune]" not in quiet.stdout.str()
    quiet.stdout.re_match_lines([r".*= helion-tune =", r".*test_softmax +cache .*missing-baseline"])


@pytest.mark.slow
def test_xdist_progress_is_one_line_per_event_per_worker(project: Project) -> None:
    result = project.run("--helion-tune=random", "-n", "2")
    result.assert_outcomes(passed=3)
    text = result.stderr.str() + result.stdout.str()
    lines = [line for line in text.splitlines() if "[helion-tune]" in line]
    assert lines, text
    assert all(line.startswith(("[gw0] [helion-tune]", "[gw1] [helion-tune]")) for line in lines), (
        lines
    )
    assert all("\r" not in line for line in lines)


def test_summary_names_a_case_by_its_file_and_test_a_slash_in_its_parameter_kept() -> None:
    from pytest_helion_tune.report import summary_lines
    from pytest_helion_tune.results import CaseResult

    lines = summary_lines(
        [
            CaseResult(nodeid="tests/ops/test_mm.py::test_mm[a/b]", origin="cache"),
            CaseResult(nodeid="tests/test_add.py::test_add[x/b]", origin="cache"),
        ]
    )
    assert any(line.startswith("test_mm.py::test_mm[a/b] ") for line in lines), lines
    assert any(line.startswith("test_add.py::test_add[x/b] ") for line in lines), lines
