"""``use_configs()``: production code runs the configs the test suite committed, and never tunes them.

Owns the read-only loader, the key match and the hook into Helion's ``autotuner_fn``; imports no pytest.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import sys
import threading
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import jsonstore
from . import key as keys
from .cache import CONFIGS_DIR, ConfigEntry
from .errors import DamagedFileError, HelionTuneError, StoreError

__all__ = ["CommittedAutotunerFn", "CommittedConfigs", "NoCommittedConfig", "use_configs"]

log = logging.getLogger("pytest_helion_tune.runtime")

DEFAULT_PATH = ".helion-tune"

# The store use_configs() made current. Hooks read it at each first call of a specialization,
# so a second use_configs() (another path, strict on) takes effect for every hooked kernel.
_active: CommittedConfigs | None = None


class NoCommittedConfig(HelionTuneError):
    """``use_configs(strict=True)``: a kernel was called with no matching committed config."""

    def __init__(self, message: str, key: keys.CaseKey | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclasses.dataclass(frozen=True)
class Event:
    """What happened at one kernel's first call for one key: ``hit``, ``miss`` or ``invalid``."""

    kind: str
    kernel: str
    specialization: str
    device: str
    config: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class _KernelFile:
    path: Path
    present: bool
    entries: dict[keys.CaseKey, ConfigEntry]
    problem: str = ""  # a damaged file: read as absent, reported once


def use_configs(path: str | Path = DEFAULT_PATH, *, strict: bool = False) -> CommittedConfigs:
    """Makes every loaded Helion kernel run its committed config instead of autotuning.

    Call it once at program start, after importing the modules that define your kernels
    (kernels are found among module globals; call it again after importing more, or pass
    others to ``attach``). A kernel called with arguments whose key (source hash,
    specialization, device, toolchain) has an entry in ``<path>/configs/<kernel>.json`` runs
    that config and never autotunes. Without a match Helion behaves as usual, or, with
    ``strict=True``, the call raises ``NoCommittedConfig`` naming the key and the closest
    entries. Files are read at a kernel's first call, once.
    """
    global _active
    root = Path(path).expanduser().resolve()  # a later chdir must not change the store
    if not root.is_dir():
        message = f"{root}: no such directory of committed configs"
        if strict:
            raise StoreError(message + " (use_configs strict=True)")
        log.warning("%s; Helion kernels will autotune as usual", message)
    store = CommittedConfigs(root, strict=strict)
    _active = store
    store.scan()
    if store.attached_names():
        log.info("use_configs(%s): %d kernels hooked", root, len(store.attached_names()))
    else:
        log.warning(
            "use_configs(%s): no Helion kernel is loaded yet; call it after importing the "
            "modules that define your kernels (or call it again, or use .attach(kernel))",
            root,
        )
    return store


def active() -> CommittedConfigs | None:
    """The store the last ``use_configs()`` made current, if any."""
    return _active


class CommittedConfigs:
    """One committed store, read lazily per kernel, answering Helion's first call of each key."""

    def __init__(self, root: Path, *, strict: bool = False) -> None:
        self.root = root
        self.strict = strict
        self.events: list[Event] = []
        self._files: dict[str, _KernelFile] = {}
        self._lock = threading.Lock()
        self._attached: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"<CommittedConfigs {self.root} strict={self.strict}>"

    # -- reaching kernels -----------------------------------------------------------

    def attach(self, *kernels: Any) -> int:
        """Hooks ``kernels`` (``helion.Kernel`` objects); returns how many were newly hooked."""
        count = 0
        for kernel in kernels:
            settings = getattr(kernel, "settings", None)
            if settings is None or not hasattr(settings, "autotuner_fn"):
                raise TypeError(f"{kernel!r} is not a Helion kernel")
            self._attached[id(kernel)] = keys.kernel_name(kernel)
            current = settings.autotuner_fn
            if isinstance(current, CommittedAutotunerFn) or current is committed_autotuner_fn:
                continue  # hooked already (kernels may share one Settings): never wrap twice
            # Keeping the previous function, not Helion's default, keeps a user's own
            # autotuner_fn as "Helion's normal behaviour" on a miss.
            settings.autotuner_fn = CommittedAutotunerFn(current)
            count += 1
        return count

    def scan(self) -> int:
        """Hooks every ``helion.Kernel`` that is a global of a loaded module; returns how many."""
        kernel_module = sys.modules.get("helion.runtime.kernel")
        if kernel_module is None:
            return 0  # helion not imported yet: no kernel exists
        kernel_type: type = kernel_module.Kernel
        found: list[Any] = []
        for module in list(sys.modules.values()):
            # Plain modules only: reading a lazy module's namespace would import it.
            if type(module) is not types.ModuleType:
                continue
            try:
                values = list(module.__dict__.values())
            except RuntimeError:  # another thread is importing into it
                continue
            found.extend(v for v in values if issubclass(type(v), kernel_type))
        return self.attach(*{id(k): k for k in found}.values())

    def attached_names(self) -> list[str]:
        return sorted(set(self._attached.values()))

    # -- the store ------------------------------------------------------------------

    def path_for(self, kernel: str) -> Path:
        return self.root / CONFIGS_DIR / f"{jsonstore.safe_filename(kernel)}.json"

    def entries(self, kernel: str) -> list[ConfigEntry]:
        """The committed entries of ``kernel`` (its ``module.qualname``), read once."""
        return list(self._file(kernel).entries.values())

    def _file(self, kernel: str) -> _KernelFile:
        cached = self._files.get(kernel)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._files.get(kernel)
            if cached is None:
                cached = self._files[kernel] = self._read(kernel)
                if cached.problem and not self.strict:
                    log.warning("%s; %s is served as if it had no entries", cached.problem, kernel)
        return cached

    def _read(self, kernel: str) -> _KernelFile:
        # Read-only on purpose: jsonstore.read moves a damaged file aside, which a
        # production process must never do to a committed tree.
        path = self.path_for(kernel)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _KernelFile(path, False, {})
        except UnicodeDecodeError:
            return _KernelFile(path, True, {}, f"{path}: not UTF-8 text")
        except OSError as exc:
            return _KernelFile(path, True, {}, f"{path}: cannot be read ({exc.strerror})")
        try:
            doc = jsonstore.parse(text, path)
        except (DamagedFileError, StoreError) as exc:
            return _KernelFile(path, True, {}, str(exc))
        if doc.get("kernel", kernel) != kernel:
            return _KernelFile(path, True, {}, f"{path}: holds kernel {doc.get('kernel')!r}")
        entries: dict[keys.CaseKey, ConfigEntry] = {}
        for index, raw in enumerate(doc["entries"]):
            try:
                entry = ConfigEntry.from_json(kernel, raw)
            except ValueError as exc:
                log.warning("%s: entry %d skipped (%s)", path, index, exc)
                continue
            # Two entries for one key come from both sides of a resolved merge conflict: the
            # one tuned last wins, as in pytest (``ConfigStore.lookup``).
            if entry.key not in entries or entry.tuned_at >= entries[entry.key].tuned_at:
                entries[entry.key] = entry
        return _KernelFile(path, True, entries)

    def match(self, kernel: Any, args: Sequence[object]) -> tuple[keys.CaseKey, ConfigEntry | None]:
        """The key of ``kernel(*args)``, computed as the plugin computes it, and its entry."""
        device = keys.device_for(args)
        first: keys.CaseKey | None = None
        for variant in _arg_variants(kernel, args):
            key = keys.make_key(kernel, variant, device)
            first = first or key
            hit = self._file(key.kernel).entries.get(key)
            if hit is not None:
                return key, hit
        assert first is not None
        return first, None

    def check(self, key: keys.CaseKey) -> None:
        """Raises ``StoreError`` for a damaged file under ``strict``."""
        kernel_file = self._file(key.kernel)
        if self.strict and kernel_file.problem:
            raise StoreError(f"{kernel_file.problem} (use_configs strict=True)")

    def missing_message(self, key: keys.CaseKey, *, limit: int = 3) -> str:
        """Names the kernel, its key and the closest committed entries, for a strict miss."""
        kernel_file = self._file(key.kernel)
        lines = [
            f"{key.kernel}: no committed config for [{key.specialization}] on {key.device}",
            f"  key:     source {key.source_hash}; toolchain {_toolchain_text(key.toolchain_dict)}",
        ]
        if kernel_file.present:
            lines.append(f"  store:   {kernel_file.path} ({len(kernel_file.entries)} entries)")
        else:
            lines.append(f"  store:   no file {kernel_file.path}")
        closest = sorted(kernel_file.entries.values(), key=lambda e: _distance(e.key, key))
        for i, entry in enumerate(closest[:limit]):
            label = "closest:" if i == 0 else "        "
            lines.append(
                f"  {label} [{entry.key.specialization}] on {entry.key.device}: "
                f"{_difference(entry.key, key)}"
            )
        if not kernel_file.entries:
            for other in self._same_function_elsewhere(key.kernel):
                lines.append(f"  note:    {other} has entries: same function, other module name?")
        lines.append(
            "  fix:     add a @tune_case for this call, run `pytest --helion-tune`, commit the store"
        )
        return "\n".join(lines)

    def _same_function_elsewhere(self, kernel: str) -> list[str]:
        # A program importing the module under another name (src.pkg.mod vs pkg.mod)
        # looks up another file; point at it rather than leaving the user guessing.
        qualname = kernel.rsplit(".", 1)[-1]
        directory = self.root / CONFIGS_DIR
        if not directory.is_dir():
            return []
        suffix = f".{jsonstore.safe_filename(qualname)}"
        return sorted(
            p.stem
            for p in directory.glob("*.json")
            if p.stem.endswith(suffix) and p.stem != jsonstore.safe_filename(kernel)
        )

    # -- answering Helion -----------------------------------------------------------

    def resolve(self, bound: Any, args: Sequence[object]) -> Any | None:
        """The committed ``helion.Config`` for this first call, or None for Helion's usual path.

        Raises ``NoCommittedConfig`` (or ``StoreError``) under ``strict``.
        """
        from .configs import validate

        kernel = bound.kernel
        key, entry = self.match(kernel, args)
        self.check(key)
        if entry is not None:
            try:
                config = validate(bound, entry.config)
            except ValueError as exc:
                self._record("invalid", key, entry.config)
                problem = (
                    f"{key.kernel}: committed config for [{key.specialization}] on {key.device} "
                    f"is not valid here ({exc})"
                )
                if self.strict:
                    raise NoCommittedConfig(problem, key) from None
                log.warning("%s; Helion autotunes instead", problem)
                return None
            self._record("hit", key, entry.config)
            log.debug("%s [%s]: committed config", key.kernel, key.specialization)
            return config
        self._record("miss", key, None)
        if self.strict:
            raise NoCommittedConfig(self.missing_message(key), key)
        if self._file(key.kernel).entries:
            # The kernel was tuned, just not for this call: worth a line, since the
            # autotuning that follows takes seconds to minutes.
            log.warning("%s\n  Helion autotunes this call as usual", self.missing_message(key))
        return None

    def _record(self, kind: str, key: keys.CaseKey, config: dict[str, Any] | None) -> None:
        self.events.append(Event(kind, key.kernel, key.specialization, key.device, config))


class CommittedAutotunerFn:
    """The function ``use_configs`` installs as a kernel's ``settings.autotuner_fn``.

    Why this seam: Helion calls ``settings.autotuner_fn(bound, args)`` exactly once per new
    specialization, at its first call, and only when the decorator gave no config; afterwards
    its own dispatch runs the compiled config and this code is never on the call path again.
    An ``autotune_cache`` class would be reached only after ``default_autotuner_fn`` has built
    a search, and is selected by name from the environment at decoration time, which child
    processes inherit without having the class registered; ``configs=`` is per kernel, not
    per shape, and benchmarks as soon as it holds more than one config.
    """

    def __init__(self, previous: Callable[..., Any]) -> None:
        self.previous = previous

    def __repr__(self) -> str:
        return f"CommittedAutotunerFn(previous={self.previous!r})"

    def __call__(self, bound_kernel: Any, args: Sequence[object], **kwargs: object) -> Any:
        store = _active
        settings = bound_kernel.settings
        if (
            store is None
            or kwargs  # options passed to an explicit kernel.autotune(): the caller tunes
            or not isinstance(args, list | tuple)  # autotune_multi's argument bundles
            or getattr(settings, "autotune_handoff", False)
        ):
            return self.previous(bound_kernel, args, **kwargs)
        return _committed_autotuner_class()(store, self.previous, bound_kernel, tuple(args))


def _committed_autotuner_class() -> type:
    global _COMMITTED_AUTOTUNER
    if _COMMITTED_AUTOTUNER is None:
        # Defined on first use so that importing this module imports no Helion.
        from helion.autotuner.base_search import BaseAutotuner

        class CommittedAutotuner(BaseAutotuner):  # type: ignore[misc]
            """Returns the committed config; a forced autotune still runs Helion's search."""

            def __init__(
                self,
                store: CommittedConfigs,
                previous: Callable[..., Any],
                bound: Any,
                args: tuple[object, ...],
            ) -> None:
                self.store, self.previous, self.bound, self.args = store, previous, bound, args

            def autotune(self, *, skip_cache: bool = False) -> Any:
                # Helion passes skip_cache=True for kernel.autotune(force=True) and
                # HELION_FORCE_AUTOTUNE=1: an explicit request to tune, like a cache skip.
                if not skip_cache:
                    config = self.store.resolve(self.bound, self.args)
                    if config is not None:
                        return config
                return self.previous(self.bound, self.args).autotune(skip_cache=skip_cache)

        _COMMITTED_AUTOTUNER = CommittedAutotuner
    return _COMMITTED_AUTOTUNER


_COMMITTED_AUTOTUNER: type | None = None


def committed_autotuner_fn(bound_kernel: Any, args: Sequence[object], **kwargs: object) -> Any:
    """For ``@helion.kernel(autotuner_fn=committed_autotuner_fn)``: hooked whatever the import order.

    Uses the store of the last ``use_configs()``; before one (or without), Helion's default.
    """
    from helion.runtime.settings import default_autotuner_fn

    return CommittedAutotunerFn(default_autotuner_fn)(bound_kernel, args, **kwargs)


def _arg_variants(kernel: Any, args: Sequence[object]) -> list[tuple[object, ...]]:
    """``args``, then ``args`` without trailing defaulted values.

    Helion hands the autotuner its arguments with defaults applied; a ``@tune_case`` whose
    ``inputs`` left them out was keyed without them.
    """
    variants = [tuple(args)]
    try:
        params = list(inspect.signature(getattr(kernel, "fn", kernel)).parameters.values())
    except (TypeError, ValueError):
        return variants
    trimmed = list(args)
    while trimmed and len(trimmed) <= len(params):
        default = params[len(trimmed) - 1].default
        if default is inspect.Parameter.empty or not _same_value(trimmed[-1], default):
            break
        trimmed.pop()
        variants.append(tuple(trimmed))
    return variants


def _same_value(value: object, default: object) -> bool:
    """Whether ``value`` keys as the parameter's ``default`` does: a number of the same type
    (Helion keys numbers by type), an equal string, or the default itself."""
    if value is default:
        return True
    if type(value) is not type(default):
        return False
    return isinstance(value, bool | int | float) or (isinstance(value, str) and value == default)


def _toolchain_text(toolchain: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in sorted(toolchain.items()))


def _distance(entry: keys.CaseKey, key: keys.CaseKey) -> tuple[int, float]:
    differing = sum(
        (
            entry.specialization != key.specialization,
            entry.device != key.device,
            entry.source_hash != key.source_hash,
            entry.toolchain != key.toolchain,
        )
    )
    likeness = difflib.SequenceMatcher(None, entry.specialization, key.specialization).ratio()
    return differing, -likeness


def _difference(entry: keys.CaseKey, key: keys.CaseKey) -> str:
    """What separates a committed entry from the key of this call, in words."""
    parts = []
    if entry.specialization != key.specialization:
        parts.append("other shape")
    if entry.device != key.device:
        parts.append("other device")
    if entry.source_hash != key.source_hash:
        parts.append(f"kernel source edited since (entry {entry.source_hash})")
    if entry.toolchain != key.toolchain:
        old, new = entry.toolchain_dict, key.toolchain_dict
        moved = [
            f"{n} {old.get(n, '-')} (here {new.get(n, '-')})"
            for n in sorted(set(old) | set(new))
            if old.get(n) != new.get(n)
        ]
        parts.append("other toolchain: " + ", ".join(moved))
    return "; ".join(parts) or "identical key"
