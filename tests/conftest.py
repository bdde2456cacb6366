"""Shared fixtures: small real projects of Helion kernels for pytester-driven runs.

The kernels are real and run under the Triton interpreter on the CPU; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m gpu`` only the modules holding GPU tests are imported. Several CPU test modules
    set ``TRITON_INTERPRET=1`` when imported (their kernels run under the interpreter); imported
    before the GPU modules, they made ``pytest -m gpu`` skip every GPU test on a GPU machine."""
    if config.getoption("markexpr", "") != "gpu":
        return None
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if "gpu_marks.marks()" in collection_path.read_text(encoding="utf-8"):
        return None  # pytest's own rules (--ignore, ...) still decide
    return True


KERNELS = """
import helion
import helion.language as hl
import torch


@helion.kernel(static_shapes=True)
def add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size()):
        out[tile] = x[tile] + y[tile]
    return out


@helion.kernel(static_shapes=True)
def softmax(x: torch.Tensor) -> torch.Tensor:
    n, _m = x.size()
    out = torch.empty_like(x)
    for tile_n in hl.tile(n):
        out[tile_n, :] = torch.softmax(x[tile_n, :], dim=1)
    return out
"""

TESTS = """
import pytest
import torch
from kernels import add, softmax

from pytest_helion_tune import tune_case


@pytest.mark.parametrize("n", [64, 128])
@tune_case(
    kernel=add,
    inputs=lambda n: (torch.randn(n), torch.randn(n)),
    reference=lambda x, y: x + y,
)
def test_add(tuned, n):
    x, y = torch.randn(n), torch.randn(n)
    torch.testing.assert_close(tuned(x, y), x + y)


@tune_case(
    kernel=softmax,
    inputs=lambda: (torch.randn(4, 32),),
    reference=lambda x: torch.softmax(x, dim=-1),
)
def test_softmax(tuned):
    x = torch.randn(4, 32)
    torch.testing.assert_close(tuned(x), torch.softmax(x, dim=-1))
"""

# Records every Helion search constructed in this process, so a test can assert "zero".
COUNTING_CONFTEST = """
import os

import helion.autotuner.base_search as base_search

_init = base_search.BaseSearch.__init__


def _counting_init(self, *args, **kwargs):
    with open(os.environ["SEARCH_LOG"], "a") as handle:
        handle.write(type(self).__name__ + "\\n")
    _init(self, *args, **kwargs)


base_search.BaseSearch.__init__ = _counting_init
"""


class Project:
    """A pytester project with kernels.py and test_kernels.py, run in subprocesses."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.search_log = self.path / "searches.log"
        self.cache = self.path / ".helion-tune"
        pytester.makepyfile(kernels=KERNELS, test_kernels=TESTS)
        pytester.makeconftest(COUNTING_CONFTEST)
        pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")

    def run(self, *args: str, report: bool = True) -> pytest.RunResult:
        if self.search_log.exists():
            self.search_log.unlink()
        extra = [f"--helion-report={self.report_path}"] if report else []
        os.environ["SEARCH_LOG"] = str(self.search_log)
        return self.pytester.runpytest_subprocess(*extra, *args)

    @property
    def report_path(self) -> Path:
        return self.path / "report.json"

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.report_path.read_text())
        return data

    def cases(self) -> dict[str, dict[str, Any]]:
        return {c["nodeid"].split("::")[-1]: c for c in self.report()["cases"]}

    def searches(self) -> list[str]:
        if not self.search_log.exists():
            return []
        return self.search_log.read_text().split()

    def store(self, kernel: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.cache / "configs" / f"kernels.{kernel}.json").read_text()
        )
        return data

    def edit_kernel(self, old: str, new: str) -> None:
        path = self.path / "kernels.py"
        path.write_text(path.read_text().replace(old, new))

    def write_test(self, name: str, body: str) -> None:
        (self.path / f"{name}.py").write_text(textwrap.dedent(body))


# The pytest processes a test starts (pytester's subprocess runs, the harness's and the scripts'
# runs) leave out Hypothesis's pytest plugin: importing it costs about 2 s of a child's 15 s start
# here, and no child runs a Hypothesis test. pytester clears PYTEST_ADDOPTS when it starts, so
# ``project`` sets it again.
CHILD_ADDOPTS = "-p no:hypothesispytest"


@pytest.fixture(autouse=True)
def _children_skip_hypothesis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", CHILD_ADDOPTS)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.setenv("PYTEST_ADDOPTS", CHILD_ADDOPTS)
    return Project(pytester)
