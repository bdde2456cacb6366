"""What makes a tuned config reusable: kernel identity, source hash, specialization, device, toolchain.

Pure functions over a kernel and its arguments; no pytest, no files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import inspect
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

INTERPRETER_DEVICE = "interpreter"


@dataclasses.dataclass(frozen=True, order=True)
class DeviceInfo:
    """The device part of a key: ``name`` is what users read, ``capability`` what configs need."""

    name: str
    capability: str  # "sm_90"; "" for the interpreter

    @property
    def label(self) -> str:
        return f"{self.name} ({self.capability})" if self.capability else self.name

    @property
    def is_interpreter(self) -> bool:
        return self.name == INTERPRETER_DEVICE


@dataclasses.dataclass(frozen=True)
class CaseKey:
    """The identity of one tuned config. Two equal keys may share a config."""

    kernel: str  # module.qualname
    source_hash: str
    specialization: str
    device: str  # DeviceInfo.label
    toolchain: tuple[tuple[str, str], ...]

    @property
    def toolchain_dict(self) -> dict[str, str]:
        return dict(self.toolchain)

    @property
    def short(self) -> str:
        """A short stable id, for reports and log lines."""
        text = "|".join(
            [self.kernel, self.source_hash, self.specialization, self.device, repr(self.toolchain)]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "source_hash": self.source_hash,
            "specialization": self.specialization,
            "device": self.device,
            "toolchain": self.toolchain_dict,
        }


def kernel_name(kernel: Any) -> str:
    """The qualified name (``module.function``) that names the kernel's store files."""
    fn = getattr(kernel, "fn", kernel)
    module = getattr(fn, "__module__", None) or "unknown"
    return f"{module}.{getattr(fn, '__qualname__', getattr(fn, '__name__', 'kernel'))}"


def source_hash(kernel: Any) -> str:
    """sha256 of the decorated function's dedented source, decorator line included.

    The decorator carries settings that change the generated code (static_shapes,
    index_dtype), so it belongs in the hash. Helpers the kernel calls do not.
    """
    fn = getattr(kernel, "fn", kernel)
    try:
        text = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        text = repr(getattr(fn, "__code__", fn))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dims(sizes: Sequence[int], static: bool) -> str:
    if static:
        return ",".join(str(s) for s in sizes)
    # Helion buckets dynamic dims to 0, 1 or "many": one config serves the bucket.
    return ",".join(str(s) if s < 2 else "n" for s in sizes)


def _describe(value: Any, static: bool) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        text = f"{dtype}[{_dims(value.shape, static)}]"
        if static and not value.is_contiguous():
            text += "@(" + ",".join(str(s) for s in value.stride()) + ")"
        return text
    if isinstance(value, bool | int | float):
        # Helion keys numbers by type only (its ``_number_key``): one config serves every value.
        return type(value).__name__
    if isinstance(value, str) or value is None:
        return repr(value)
    if type(value).__name__ == "ConstExpr":  # hl.constexpr (a NamedTuple): keyed by its value
        return f"constexpr({getattr(value, 'value', None)!r})"
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple: by its fields
        return _mapping(type(value).__name__, dict(zip(value._fields, value, strict=True)), static)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _mapping(type(value).__name__, fields, static)
    if isinstance(value, dict):
        return _mapping("", value, static)
    if isinstance(value, list | tuple):
        inner = ",".join(_describe(v, static) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, torch.device):
        return str(value)
    return type(value).__name__


def _mapping(name: str, items: Mapping[Any, Any], static: bool) -> str:
    """``name{k=..,..}``, keys sorted, each value described as an argument is (Helion keys a
    dict, a namedtuple and a dataclass by their items)."""
    inner = ",".join(
        f"{k}={_describe(items[k], static)}" for k in sorted(items, key=lambda k: str(k))
    )
    return f"{name}{{{inner}}}"


def specialization(kernel: Any, args: Sequence[Any]) -> str:
    """A readable form of how Helion specializes ``args``: dtypes, shapes, strides if unusual."""
    static = bool(getattr(getattr(kernel, "settings", None), "static_shapes", True))
    try:
        names = list(inspect.signature(getattr(kernel, "fn", kernel)).parameters)
    except (TypeError, ValueError):
        names = []
    parts = []
    for i, value in enumerate(args):
        name = names[i] if i < len(names) else f"arg{i}"
        parts.append(f"{name}={_describe(value, static)}")
    return " ".join(parts)


def toolchain_changes(old: Mapping[str, str], new: Mapping[str, str]) -> str:
    """Which package versions moved, e.g. ``"triton 3.5.0 -> 3.6.0, torch 2.9.0 -> 2.11.0"``."""
    return ", ".join(
        f"{n} {old.get(n, '-')} -> {new.get(n, '-')}"
        for n in sorted(set(old) | set(new))
        if old.get(n) != new.get(n)
    )


@functools.cache
def toolchain() -> tuple[tuple[str, str], ...]:
    """The versions that change generated code: helion, triton, torch and CUDA."""
    import torch

    versions = {"torch": str(torch.__version__)}
    for dist in ("helion", "triton"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "absent"
    cuda = getattr(torch.version, "cuda", None)
    if cuda:
        versions["cuda"] = str(cuda)
    return tuple(sorted(versions.items()))


def device_for(args: Sequence[Any]) -> DeviceInfo:
    """The device the arguments live on; CPU tensors run under the Triton interpreter."""
    import torch

    for value in args:
        if isinstance(value, torch.Tensor) and value.device.type == "cuda":
            index = (
                value.device.index
                if value.device.index is not None
                else torch.cuda.current_device()
            )
            major, minor = torch.cuda.get_device_capability(index)
            return DeviceInfo(torch.cuda.get_device_name(index), f"sm_{major}{minor}")
    return DeviceInfo(INTERPRETER_DEVICE, "")


def make_key(kernel: Any, args: Sequence[Any], device: DeviceInfo | None = None) -> CaseKey:
    return CaseKey(
        kernel=kernel_name(kernel),
        source_hash=source_hash(kernel),
        specialization=specialization(kernel, args),
        device=(device or device_for(args)).label,
        toolchain=toolchain(),
    )
