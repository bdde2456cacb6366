"""The config store: ``configs/<kernel>.json`` under the cache dir, one entry per key.

Entries that match a key answer it; entries that no longer match are stale and kept as seeds.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Iterable
from typing import Any

from . import jsonstore
from .key import CaseKey, toolchain_changes

CONFIGS_DIR = "configs"
_IDENTITY = ("specialization", "device", "toolchain", "source_hash")  # also the file order
# Every field ``ConfigEntry.to_json`` may write; any other field of an entry is kept as found.
_KNOWN = frozenset(
    {
        "config",
        "configs_tested",
        "device",
        "eager_ms",
        "latency_ms",
        "nodeid",
        "partial",
        "source_hash",
        "specialization",
        "strategy",
        "toolchain",
        "tune_seconds",
        "tuned_at",
    }
)


@dataclasses.dataclass(frozen=True)
class ConfigEntry:
    """One stored config and how it was found."""

    key: CaseKey
    config: dict[str, Any]
    latency_ms: float | None = None
    eager_ms: float | None = None
    strategy: str = ""
    configs_tested: int = 0
    tune_seconds: float = 0.0
    nodeid: str = ""
    tuned_at: str = ""
    partial: bool = False  # the search was interrupted; the config is the best accurate one so far

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "config": self.config,
            "configs_tested": self.configs_tested,
            "device": self.key.device,
            "eager_ms": _round(self.eager_ms),
            "latency_ms": _round(self.latency_ms),
            "nodeid": self.nodeid,
            "source_hash": self.key.source_hash,
            "specialization": self.key.specialization,
            "strategy": self.strategy,
            "toolchain": self.key.toolchain_dict,
            "tune_seconds": round(self.tune_seconds, 2),
            "tuned_at": self.tuned_at,
        }
        if self.partial:
            doc["partial"] = True
        return doc

    @classmethod
    def from_json(cls, kernel: str, raw: Any) -> ConfigEntry:
        """Builds an entry from untrusted JSON; ``ValueError`` says which field is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("entry is not an object")
        for name, kind in (
            ("config", dict),
            ("source_hash", str),
            ("specialization", str),
            ("device", str),
            ("toolchain", dict),
        ):
            if not isinstance(raw.get(name), kind):
                raise ValueError(f"field '{name}' missing or not a {kind.__name__}")
        toolchain = raw["toolchain"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in toolchain.items()):
            raise ValueError("field 'toolchain' must map names to version strings")
        key = CaseKey(
            kernel=kernel,
            source_hash=raw["source_hash"],
            specialization=raw["specialization"],
            device=raw["device"],
            toolchain=tuple(sorted(toolchain.items())),
        )
        return cls(
            key=key,
            config=raw["config"],
            latency_ms=_number(raw.get("latency_ms")),
            eager_ms=_number(raw.get("eager_ms")),
            strategy=str(raw.get("strategy", "")),
            configs_tested=int(_number(raw.get("configs_tested")) or 0),
            tune_seconds=float(_number(raw.get("tune_seconds")) or 0.0),
            nodeid=str(raw.get("nodeid", "")),
            tuned_at=str(raw.get("tuned_at", "")),
            partial=bool(raw.get("partial", False)),
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _number(value: Any) -> float | None:
    # JSON reads 1e999 as infinity: a number that cannot be stored again is no number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


def _identity(doc: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        repr(sorted(doc[f].items())) if isinstance(doc.get(f), dict) else str(doc.get(f))
        for f in _IDENTITY
    )


def now_iso() -> str:
    return (
        datetime.datetime.now(datetime.UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )


@dataclasses.dataclass(frozen=True)
class Lookup:
    """What the store knows about one key."""

    exact: ConfigEntry | None
    stale: tuple[ConfigEntry, ...]  # same shape and device, but older source or toolchain
    related: tuple[ConfigEntry, ...]  # the kernel at other shapes or on other devices

    @property
    def seeds(self) -> tuple[ConfigEntry, ...]:
        return self.stale + self.related

    def stale_reason(self, key: CaseKey) -> str:
        """Says what changed since the stale entries were written, for the summary."""
        if not self.stale:
            return ""
        entry = self.stale[0]
        changes = []
        if entry.key.source_hash != key.source_hash:
            changes.append("kernel source edited")
        moved = toolchain_changes(entry.key.toolchain_dict, key.toolchain_dict)
        if moved:
            changes.append(moved)
        return ", ".join(changes)


class ConfigStore(jsonstore.KernelFiles[ConfigEntry]):
    """Reads and writes ``<root>/configs/<kernel>.json``; safe across processes."""

    subdir = CONFIGS_DIR

    def parse_entry(self, kernel: str, raw: Any) -> ConfigEntry:
        return ConfigEntry.from_json(kernel, raw)

    def identity(self, raw: Any) -> tuple[str, ...]:
        return _identity(raw) if isinstance(raw, dict) else ("~", repr(raw))

    def lookup(self, key: CaseKey, *, fresh: bool = False) -> Lookup:
        exact = None
        stale: list[ConfigEntry] = []
        related: list[ConfigEntry] = []
        for entry in self.entries(key.kernel, fresh=fresh):
            if entry.key == key:
                # Two entries for one key come from both sides of a resolved merge conflict:
                # the one tuned last wins.
                if exact is None or entry.tuned_at >= exact.tuned_at:
                    exact = entry
            elif entry.key.specialization == key.specialization and entry.key.device == key.device:
                stale.append(entry)
            else:
                related.append(entry)
        return Lookup(exact, tuple(stale), tuple(related))

    def put(self, entry: ConfigEntry) -> None:
        """Adds or replaces the entry with the same key, keeping every other entry as it was.

        Fields this version does not know (a note added by hand, a newer plugin's) stay.
        """
        self.put_raw(entry.key.kernel, entry.to_json(), _KNOWN)


def sort_entries(entries: Iterable[Any]) -> list[Any]:
    """A stable order, so that a file's diff shows only what changed."""

    def order(e: Any) -> tuple[str, ...]:
        return _identity(e) if isinstance(e, dict) else ("~", repr(e))

    return sorted(entries, key=order)
