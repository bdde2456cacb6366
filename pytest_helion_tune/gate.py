"""The performance gate: re-measuring a case against its eager reference, and the verdict.

Pure logic over a ``Timer`` and a ``BaselineEntry``; no torch, no Helion, no files.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .baselines import BaselineEntry
from .timing import CudaTimer, Fn, Timer

DEFAULT_TOLERANCE = 0.05
DEFAULT_ROUNDS = 15  # one measurement: 15 rounds x 2 samples of ~14 ms = ~0.45 s on an H100
BASELINE_ROUNDS = 30  # a baseline is recorded rarely; more rounds shrink its share of the error
CONFIDENCE_Z = 2.326  # one-sided 99% normal quantile
NOISE_FLOOR = 0.005  # CUDA events resolve ~0.5 us: a MAD of 0 must not claim infinite precision
GATE_WARMUP_MS = 2.0
GATE_REP_MS = 10.0
ACCEPT_HINT = "accept with --helion-update-baselines"

_MAD_TO_SIGMA = 1.4826  # MAD of a normal sample times this estimates its sigma
_MEDIAN_SE = 1.2533  # sqrt(pi/2): the standard error of a median over that of a mean


def default_timer() -> Timer:
    """The timer the gate's defaults are calibrated for: CUDA events, short windows.

    Many short paired rounds beat a few long ones: each kernel sample sits next to its
    reference sample in time, so shared slowdowns cancel in the ratio.
    """
    return CudaTimer(warmup_ms=GATE_WARMUP_MS, rep_ms=GATE_REP_MS)


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Paired samples of a kernel and its eager reference, one pair per round (ms)."""

    kernel_ms: tuple[float, ...]
    eager_ms: tuple[float, ...]
    seconds: float = 0.0  # wall time spent measuring

    def __post_init__(self) -> None:
        if not self.kernel_ms or len(self.kernel_ms) != len(self.eager_ms):
            raise ValueError("a measurement needs one kernel and one eager sample per round")
        for value in self.kernel_ms + self.eager_ms:
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"a timing sample must be a finite positive ms value, got {value!r}"
                )

    @property
    def rounds(self) -> int:
        return len(self.kernel_ms)

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(k / e for k, e in zip(self.kernel_ms, self.eager_ms, strict=True))

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def noise(self) -> float:
        """Robust relative spread of the per-round ratios: 1.4826 * MAD / median."""
        ratios = self.ratios
        mid = statistics.median(ratios)
        mad = statistics.median(abs(r - mid) for r in ratios)
        return _MAD_TO_SIGMA * mad / mid

    @property
    def kernel_median(self) -> float:
        return statistics.median(self.kernel_ms)

    @property
    def eager_median(self) -> float:
        return statistics.median(self.eager_ms)

    @property
    def stderr(self) -> float:
        """Relative standard error of ``ratio`` (about that of its logarithm)."""
        return _stderr(self.noise, self.rounds)

    def pooled(self, other: Measurement) -> Measurement:
        return Measurement(
            self.kernel_ms + other.kernel_ms,
            self.eager_ms + other.eager_ms,
            self.seconds + other.seconds,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "ratio": self.ratio,
            "noise": self.noise,
            "kernel_ms": self.kernel_median,
            "eager_ms": self.eager_median,
            "seconds": self.seconds,
            "kernel_samples": list(self.kernel_ms),
            "eager_samples": list(self.eager_ms),
        }


def _stderr(noise: float, rounds: int) -> float:
    return _MEDIAN_SE * max(noise, NOISE_FLOOR) / math.sqrt(max(rounds, 1))


def measure(timer: Timer, kernel_fn: Fn, eager_fn: Fn, rounds: int = DEFAULT_ROUNDS) -> Measurement:
    """``rounds`` paired samples of the kernel and its eager reference, interleaved.

    The timer alternates which of the two runs first, so neither always sees a cold start.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    start = time.perf_counter()
    kernel, eager = timer.interleaved([kernel_fn, eager_fn], ["kernel", "eager"], rounds)
    return Measurement(tuple(kernel), tuple(eager), time.perf_counter() - start)


def change_vs(baseline: BaselineEntry, measurement: Measurement) -> float:
    """Relative change of the kernel/eager ratio; +0.10 is 10% slower than the baseline."""
    return measurement.ratio / baseline.ratio - 1.0


def significance(baseline: BaselineEntry, measurement: Measurement) -> float:
    """How many standard errors ``measurement`` lies above the baseline (log ratio scale)."""
    se = math.hypot(measurement.stderr, _stderr(baseline.noise, baseline.samples))
    return math.log(measurement.ratio / baseline.ratio) / se


@dataclasses.dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one case, with everything measured to reach it."""

    verdict: str  # "pass", "improved" or "regression"
    change: float  # the deciding estimate: first pass, or pooled when confirmed
    tolerance: float
    baseline: BaselineEntry
    first: Measurement
    confirm: Measurement | None
    z: float | None  # significance of the pooled change; None when not re-measured
    what_changed: str
    message: str

    @property
    def failed(self) -> bool:
        return self.verdict == "regression"

    @property
    def now(self) -> Measurement:
        """Every round measured for this verdict."""
        return self.first if self.confirm is None else self.first.pooled(self.confirm)

    @property
    def seconds(self) -> float:
        return self.now.seconds

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "change": self.change,
            "tolerance": self.tolerance,
            "first_change": change_vs(self.baseline, self.first),
            "confirm_change": None
            if self.confirm is None
            else change_vs(self.baseline, self.confirm),
            "z": self.z,
            "seconds": self.seconds,
            "baseline_ratio": self.baseline.ratio,
            "baseline_ms": self.baseline.latency_ms,
            "now_ratio": self.now.ratio,
            "now_ms": self.now.kernel_median,
            "now_eager_ms": self.now.eager_median,
            "noise": self.now.noise,
            "what_changed": self.what_changed,
            "message": self.message,
        }


def _pct(fraction: float, signed: bool = False) -> str:
    text = f"{fraction * 100:+.1f}" if signed else f"{fraction * 100:.1f}"
    return text.removesuffix(".0") + "%"


def judge(
    baseline: BaselineEntry,
    measure_once: Callable[[], Measurement],
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    what_changed: str = "",
    confidence_z: float = CONFIDENCE_Z,
) -> GateResult:
    """Compares fresh measurements with ``baseline`` and returns the verdict.

    ``r`` is the median over rounds of kernel_ms / eager_ms, each round timing the kernel
    and its eager reference back to back; ``change = r_now / r_baseline - 1``.

    1. Measure once. ``change <= tolerance``: "pass" ("improved" when
       ``change < -tolerance``). An improvement is reported, never failed.
    2. Otherwise measure again (the confirming re-measure) and declare a "regression" only
       if (a) the confirming reading on its own exceeds the tolerance, (b) the pooled
       reading (both passes' rounds) exceeds it, and (c) the pooled slowdown is significant
       at one-sided 99%: ``ln(r_now / r_base) >= 2.326 * se``, ``se`` combining the standard
       errors of both medians, each ``1.2533 * noise / sqrt(rounds)`` with
       ``noise = 1.4826 * MAD / median`` of the per-round ratios (at least ``NOISE_FLOOR``).
       Otherwise "pass", and the message says the first reading was not confirmed, or
       that the difference is within the noise.

    Why the ratio: clock boosts, throttling and a neighbour on a shared GPU slow the kernel
    and its reference alike within a round; raw times compared across runs
    (``naive_verdict``) see all of it. Why the confirmation: a burst that hits one reading
    rarely hits the next. Why (c): on a very noisy machine a point estimate can exceed the
    tolerance twice by chance; the gate then passes and says the result is inconclusive.

    Stated confidence: no regression is declared unless the slowdown is at least 2.326
    standard errors (one-sided 99%) above the baseline and two independent readings exceed
    the tolerance. ``measure_once`` is called once, or twice when the first reading
    exceeds the tolerance; ``what_changed`` goes into the message as the likely cause.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"perf tolerance must be a fraction >= 0, got {tolerance!r}")
    case = baseline.nodeid
    since = f"; since recorded: {what_changed}" if what_changed else ""
    first = measure_once()
    c1 = change_vs(baseline, first)

    def result(
        verdict: str, change: float, confirm: Measurement | None, z: float | None, msg: str
    ) -> GateResult:
        return GateResult(
            verdict, change, tolerance, baseline, first, confirm, z, what_changed, msg
        )

    base = f"kernel/eager {baseline.ratio:.3f} ({baseline.latency_ms:.4g} ms) at baseline"
    if c1 <= tolerance:
        now = f"{first.ratio:.3f} ({first.kernel_median:.4g} ms) now"
        if c1 < -tolerance:
            return result(
                "improved",
                c1,
                None,
                None,
                f"{case}: faster than its baseline: {base} -> {now}, {_pct(c1, True)} "
                f"(tolerance {_pct(tolerance)}){since}; {ACCEPT_HINT}",
            )
        return result(
            "pass",
            c1,
            None,
            None,
            f"{case}: within tolerance: {base} -> {now}, {_pct(c1, True)} "
            f"(tolerance {_pct(tolerance)}){since}",
        )

    confirm = measure_once()
    c2 = change_vs(baseline, confirm)
    pooled = first.pooled(confirm)
    cp = change_vs(baseline, pooled)
    z = significance(baseline, pooled)
    now = f"{pooled.ratio:.3f} ({pooled.kernel_median:.4g} ms) now"
    readings = f"readings {_pct(c1, True)} then {_pct(c2, True)}"
    if c2 <= tolerance or cp <= tolerance:
        return result(
            "pass",
            cp,
            confirm,
            z,
            f"{case}: within tolerance: a first reading of {_pct(c1, True)} was not confirmed "
            f"({_pct(c2, True)}); {base} -> {now} (tolerance {_pct(tolerance)}){since}",
        )
    if z < confidence_z:
        return result(
            "pass",
            cp,
            confirm,
            z,
            f"{case}: inconclusive, passed: {base} -> {now}, {_pct(cp, True)} over a tolerance of "
            f"{_pct(tolerance)} but within the noise ({z:.1f} standard errors, "
            f"{confidence_z:.2f} needed; per-round noise {_pct(pooled.noise)}){since}; "
            "re-run on a quieter GPU",
        )
    cause = what_changed or "nothing recorded changed (same kernel source, toolchain and config)"
    return result(
        "regression",
        cp,
        confirm,
        z,
        f"{case}: performance regression: {base} -> {now}, {_pct(cp, True)} "
        f"(tolerance {_pct(tolerance)}; {readings}, {z:.1f} standard errors); "
        f"since recorded: {cause}; {ACCEPT_HINT}",
    )


def what_changed(
    baseline: BaselineEntry,
    source_hash: str,
    toolchain: Mapping[str, str] | Iterable[tuple[str, str]],
    config: Mapping[str, Any] | None = None,
) -> str:
    """What differs now from when ``baseline`` was recorded, e.g.
    ``"kernel source edited; triton 3.5.0 -> 3.6.0"``; ``""`` when nothing does.
    """
    parts = []
    if source_hash != baseline.source_hash:
        parts.append("kernel source edited")
    old, new = dict(baseline.toolchain), dict(toolchain)
    moved = [
        f"{name} {old.get(name, '-')} -> {new.get(name, '-')}"
        for name in sorted(set(old) | set(new))
        if old.get(name) != new.get(name)
    ]
    if moved:
        parts.append(", ".join(moved))
    if config is not None and dict(config) != baseline.config:
        parts.append("config changed")
    return "; ".join(parts)


def naive_verdict(baseline_ms: float, now_ms: float, tolerance: float) -> str:
    """pytest-benchmark's ``--benchmark-compare-fail=median:<tol>``: raw median times, one reading.

    Kept for the side-by-side experiment; the plugin never fails a test on this.
    """
    change = now_ms / baseline_ms - 1.0
    if change > tolerance:
        return "regression"
    if change < -tolerance:
        return "improved"
    return "pass"


def record(
    measurement: Measurement,
    *,
    nodeid: str,
    specialization: str,
    device: str,
    source_hash: str,
    config: Mapping[str, Any],
    toolchain: Mapping[str, str] | Iterable[tuple[str, str]],
    recorded_at: str | None = None,
) -> BaselineEntry:
    """A baseline entry from a measurement (``BASELINE_ROUNDS`` rounds recommended)."""
    from .cache import now_iso

    return BaselineEntry(
        nodeid=nodeid,
        specialization=specialization,
        device=device,
        latency_ms=measurement.kernel_median,
        eager_ms=measurement.eager_median,
        ratio=measurement.ratio,
        samples=measurement.rounds,
        noise=measurement.noise,
        source_hash=source_hash,
        config=dict(config),
        toolchain=dict(toolchain),
        recorded_at=recorded_at or now_iso(),
    )
