"""What a strategy is handed (``SearchProblem``) and what it returns (``SearchOutcome``).

A strategy knows neither pytest nor files: seeds, timer and budget arrive in the problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..accuracy import Tolerance
from ..timing import Timer


@dataclasses.dataclass(frozen=True)
class Seed:
    """A config worth trying first, and where it came from ("cache: other shape", "llm", ...)."""

    config: dict[str, Any]
    source: str


@dataclasses.dataclass(frozen=True)
class TracePoint:
    """The search's best-so-far after ``configs`` candidates and ``seconds`` of wall time."""

    seconds: float
    configs: int
    best_ms: float


@dataclasses.dataclass(frozen=True)
class Retiming:
    """One interleaved re-timing inside a search, kept so that its choice can be reviewed:
    ``labels[i]`` (a role and Helion's config id, e.g. ``default:2c01af42dd68e691``) was timed
    ``samples_ms[i]``, one sample per round."""

    stage: str
    labels: list[str]
    samples_ms: list[list[float]]


@dataclasses.dataclass
class Progress:
    """Live counts of a running search, passed to the progress callback."""

    configs_tested: int = 0
    failures: int = 0
    best_ms: float | None = None
    elapsed_s: float = 0.0
    phase: str = ""


@dataclasses.dataclass(frozen=True)
class SearchProblem:
    kernel: Any  # helion Kernel
    bound: Any  # its BoundKernel for ``args``
    args: tuple[Any, ...]
    reference: Callable[..., Any]
    tolerance: Tolerance
    effort: str = "quick"
    budget_s: float | None = None
    seed: int = 0
    seeds: Sequence[Seed] = ()
    timer: Timer | None = None  # None: Helion's own benchmarking (a GPU with its driver)
    interpreter: bool = False  # under TRITON_INTERPRET=1: timings rank nothing, keep it small
    progress: Callable[[Progress], None] | None = None
    log_path: str | None = None  # where Helion writes its per-candidate CSV and log
    llm: Any = None  # an ``llm.LLMClient`` when one is configured (and reachable), else None
    llm_budget_s: float | None = None  # total time the LLM exchanges of this case may take


# A search that benchmarked fewer configs than this before its budget ran out is reported:
# Helion compiles a whole generation before it times any of it, so a short budget can end a
# search before it has measured more than its starting points.
FEW_CONFIGS = 10
BUDGET_SPENT = "budget spent after"
# The least compile timeout ``seeded`` sets; a Helion "timeout" row at least this long is a compile
# cut off, a shorter one a benchmark that timed out (monitor reads logs by it, seeded cuts by it).
COMPILE_TIMEOUT_MIN_S = 5.0


def budget_note(tested: int, elapsed_s: float, budget_s: float | None) -> str | None:
    """The note for a search that ran out of budget before measuring ``FEW_CONFIGS``, or None."""
    if budget_s is None or budget_s <= 0 or elapsed_s < budget_s or tested >= FEW_CONFIGS:
        return None
    return (
        f"{BUDGET_SPENT} {tested} configs benchmarked ({elapsed_s:.0f} s of a {budget_s:g} s "
        "budget): Helion compiles a whole generation before it times it, so the result is "
        "close to where the search started; give it more with --helion-budget"
    )


@dataclasses.dataclass
class SearchOutcome:
    config: dict[str, Any]
    configs_tested: int = 0
    configs_compiled: int = 0
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    best_ms: float | None = None
    trace: list[TracePoint] = dataclasses.field(default_factory=list)
    seed_source: str = ""  # what seeded the search, said once in the summary
    notes: list[str] = dataclasses.field(default_factory=list)
    candidates: list[str] = dataclasses.field(default_factory=list)  # config ids in the order tried
    retimings: list[Retiming] = dataclasses.field(default_factory=list)


class Strategy(Protocol):
    name: str
    description: str

    def search(self, problem: SearchProblem) -> SearchOutcome: ...
