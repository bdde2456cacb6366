"""The baseline store: ``baselines/<kernel>.json`` under the cache dir, one entry per case.

Keyed by case, specialization and device only: baselines must survive the edits they judge.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from . import jsonstore

BASELINES_DIR = "baselines"
_IDENTITY = ("nodeid", "specialization", "device")  # also the file order
_KNOWN = frozenset(
    (
        "nodeid",
        "specialization",
        "device",
        "latency_ms",
        "eager_ms",
        "ratio",
        "samples",
        "noise",
        "source_hash",
        "config",
        "toolchain",
        "recorded_at",
    )
)


@dataclasses.dataclass(frozen=True)
class BaselineEntry:
    """One case's recorded performance: the tuned kernel against its eager reference, same run.

    ``ratio`` (kernel / eager, median of per-round ratios) is what the gate compares;
    ``latency_ms`` and ``eager_ms`` are kept for people and for the naive comparison.
    ``noise`` is the robust relative spread of the per-round ratios (1.4826 * MAD / median)
    and ``samples`` the number of rounds: together they give the baseline's own uncertainty.
    """

    nodeid: str
    specialization: str
    device: str  # DeviceInfo.label: name and capability
    latency_ms: float
    eager_ms: float
    ratio: float
    samples: int
    noise: float
    source_hash: str
    config: dict[str, Any]
    toolchain: dict[str, str]
    recorded_at: str

    def __post_init__(self) -> None:
        _check_values(
            self.latency_ms, self.eager_ms, self.ratio, self.samples, self.noise, self.toolchain
        )

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.nodeid, self.specialization, self.device)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "device": self.device,
            "eager_ms": _round(self.eager_ms),
            "latency_ms": _round(self.latency_ms),
            "noise": _round(self.noise),
            "nodeid": self.nodeid,
            "ratio": _round(self.ratio),
            "recorded_at": self.recorded_at,
            "samples": self.samples,
            "source_hash": self.source_hash,
            "specialization": self.specialization,
            "toolchain": dict(self.toolchain),
        }

    @classmethod
    def from_json(cls, raw: Any) -> BaselineEntry:
        """Builds an entry from untrusted JSON; ``ValueError`` names the field that is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("entry is not an object")
        for name in ("nodeid", "specialization", "device", "source_hash", "recorded_at"):
            if not isinstance(raw.get(name), str):
                raise ValueError(f"field '{name}' missing or not a string")
        for name in ("config", "toolchain"):
            if not isinstance(raw.get(name), dict):
                raise ValueError(f"field '{name}' missing or not an object")
        numbers = {}
        for name in ("latency_ms", "eager_ms", "ratio", "noise"):
            value = raw.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"field '{name}' missing or not a number")
            try:
                numbers[name] = float(value)
            except OverflowError:  # a JSON integer beyond any float
                raise ValueError(f"field '{name}' is out of range") from None
        samples = raw.get("samples")
        if isinstance(samples, bool) or not isinstance(samples, int):
            raise ValueError("field 'samples' missing or not an integer")
        toolchain = raw["toolchain"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in toolchain.items()):
            raise ValueError("field 'toolchain' must map names to version strings")
        return cls(
            nodeid=raw["nodeid"],
            specialization=raw["specialization"],
            device=raw["device"],
            latency_ms=numbers["latency_ms"],
            eager_ms=numbers["eager_ms"],
            ratio=numbers["ratio"],
            samples=samples,
            noise=numbers["noise"],
            source_hash=raw["source_hash"],
            config=raw["config"],
            toolchain=dict(toolchain),
            recorded_at=raw["recorded_at"],
        )


def _check_values(
    latency_ms: float,
    eager_ms: float,
    ratio: float,
    samples: int,
    noise: float,
    toolchain: dict[str, str],
) -> None:
    # A zero or NaN ratio would make every later comparison meaningless (or divide by zero),
    # and JSON cannot even hold NaN: refuse it at the door, naming the field.
    for name, value in (("latency_ms", latency_ms), ("eager_ms", eager_ms), ("ratio", ratio)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"field '{name}' must be a finite positive number, got {value!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"field 'noise' must be a finite number >= 0, got {noise!r}")
    if samples < 1:
        raise ValueError(f"field 'samples' must be at least 1, got {samples!r}")
    if not isinstance(toolchain, dict):
        raise ValueError("field 'toolchain' must be an object")


def _round(value: float) -> float:
    # Seven significant digits are far below timing noise and keep diffs readable.
    return float(f"{value:.7g}")


def _identity(doc: Any) -> tuple[str, ...]:
    if not isinstance(doc, dict):
        return ("~", repr(doc))
    return tuple(str(doc.get(f)) for f in _IDENTITY)


class BaselineStore(jsonstore.KernelFiles[BaselineEntry]):
    """Reads and writes ``<root>/baselines/<kernel>.json``; safe across processes.

    ``get`` answers only for the same case, specialization and device: a baseline recorded
    at another shape or on another GPU (or under the CPU interpreter) is never compared.
    """

    subdir = BASELINES_DIR

    def parse_entry(self, kernel: str, raw: Any) -> BaselineEntry:
        return BaselineEntry.from_json(raw)

    def identity(self, raw: Any) -> tuple[str, ...]:
        return _identity(raw)

    def get(
        self, kernel: str, case: str, specialization: str, device: str, *, fresh: bool = False
    ) -> BaselineEntry | None:
        """The baseline of ``case`` at ``specialization`` on ``device`` (a DeviceInfo label)."""
        wanted = (case, specialization, device)
        found = None
        for entry in self.entries(kernel, fresh=fresh):
            # Two for one case come from both sides of a resolved merge conflict: the newer wins.
            if entry.identity == wanted and (
                found is None or entry.recorded_at >= found.recorded_at
            ):
                found = entry
        return found

    def put(self, kernel: str, entry: BaselineEntry) -> None:
        """Adds or replaces the entry with the same case, shape and device; keeps every other entry."""
        self.put_raw(kernel, entry.to_json(), _KNOWN)
