"""``CaseResult``: everything the summary, the JSON report and the controller learn about a case.

Plain data that crosses process boundaries (xdist ``workeroutput``) as JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any

VERDICTS = ("pass", "improved", "regression", "inaccurate", "missing-baseline", "error", "skipped")
FAILING = frozenset({"regression", "inaccurate", "error"})
ORIGINS = ("cache", "tuned", "default")


@dataclasses.dataclass
class CaseResult:
    nodeid: str
    kernel: str = ""
    key: dict[str, Any] = dataclasses.field(default_factory=dict)
    key_id: str = ""
    origin: str = ""  # "cache", "tuned", "default"
    strategy: str = ""
    configs_tested: int = 0
    tune_seconds: float = 0.0
    latency_ms: float | None = None
    eager_ms: float | None = None
    baseline_ms: float | None = None
    verdict: str = "pass"
    message: str = ""  # the one line a failing verdict shows
    stale: bool = False
    stale_reason: str = ""
    partial: bool = False  # the config comes from an interrupted search (best accurate so far)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed_source: str = ""
    # failed candidates by kind: compile (raised while compiling or running), accuracy (wrong
    # or NaN output), timeout (past the per-candidate limit), worker (Helion's worker died)
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    trace: list[dict[str, float]] = dataclasses.field(default_factory=list)
    candidates: list[str] = dataclasses.field(
        default_factory=list
    )  # config ids, in the order tried
    notes: list[str] = dataclasses.field(default_factory=list)
    device: str = ""
    timer: str = ""
    overhead_ms: float = 0.0  # the plugin's own work for this case: key, lookup, file I/O
    worker: str = ""
    lock_wait_s: float = 0.0  # time spent waiting for the GPU another worker was timing on
    stored_entry: dict[str, Any] | None = None  # the config entry written, for the controller
    gate: dict[str, Any] | None = None  # the regression gate's readings and decision
    must_fail: bool = False  # a verdict that fails only under --helion-strict (missing baseline)

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING or self.must_fail

    @property
    def speedup_vs_eager(self) -> float | None:
        if self.latency_ms and self.eager_ms:
            return self.eager_ms / self.latency_ms
        return None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CaseResult:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})
