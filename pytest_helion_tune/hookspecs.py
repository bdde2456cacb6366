"""Hook specifications of pytest-helion-tune, for conftest files and other plugins.

Registered in ``pytest_addhooks``; implement them like any pytest hook.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookspec(firstresult=True)
def pytest_helion_tune_timer(config: pytest.Config, device: Any) -> Any:
    """Return a ``pytest_helion_tune.timing.Timer`` to time every kernel and reference.

    ``device`` is the ``DeviceInfo`` of the case. Return None to keep the default
    (CUDA events on a GPU, wall clock under the Triton interpreter). The timer then also
    times candidates inside searches, so a deterministic timer gives a deterministic search.
    """


@pytest.hookspec()
def pytest_helion_tune_case_done(config: pytest.Config, result: Any) -> None:
    """Called with each ``CaseResult`` as soon as its case is settled (in the process that ran it)."""
