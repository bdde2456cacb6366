"""GPU discovery and pinning for xdist workers, and the per-GPU lock held while timing.

Pinning runs before CUDA initializes (``pytest_load_initial_conftests``): after that it would be ignored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, MutableMapping

from .jsonstore import safe_filename

_WORKER = re.compile(r"gw(\d+)$")


@dataclasses.dataclass(frozen=True)
class Assignment:
    """Which GPU an xdist worker was given, for the header and the report."""

    worker: str
    visible: str  # the CUDA_VISIBLE_DEVICES value the worker now runs with
    of: int  # how many GPUs were visible before pinning

    def describe(self) -> str:
        return f"{self.worker} -> CUDA_VISIBLE_DEVICES={self.visible} (of {self.of})"


def _visible(env: Mapping[str, str]) -> list[str]:
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    try:
        import torch

        # NVML-based: counts GPUs without initializing CUDA, so pinning still takes effect.
        count = torch.cuda.device_count()
    except Exception:
        return []
    return [str(i) for i in range(count)]


def pin_xdist_worker(env: MutableMapping[str, str] | None = None) -> Assignment | None:
    """Gives xdist worker ``gwN`` GPU ``N mod visible``, within an existing CUDA_VISIBLE_DEVICES.

    Does nothing outside xdist workers, or where no GPU is visible.
    """
    env = os.environ if env is None else env
    worker = env.get("PYTEST_XDIST_WORKER", "")
    match = _WORKER.match(worker)
    if not match:
        return None
    if env.get("TRITON_INTERPRET", "") not in ("", "0"):
        return None
    visible = _visible(env)
    if not visible:
        return None
    chosen = visible[int(match.group(1)) % len(visible)]
    env["CUDA_VISIBLE_DEVICES"] = chosen
    return Assignment(worker, chosen, len(visible))


@dataclasses.dataclass(frozen=True)
class GpuIdentity:
    """What names one physical GPU on a host, whatever CUDA_VISIBLE_DEVICES says."""

    name: str
    uuid: str
    pci_bus_id: str

    @property
    def lock_name(self) -> str:
        return safe_filename(self.uuid or self.pci_bus_id or self.name)


def identify(index: int = 0) -> GpuIdentity | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(index)
    except Exception:
        return None
    pci = getattr(props, "pci_bus_id", None)
    pci_text = (
        f"{getattr(props, 'pci_domain_id', 0):04x}:{pci:02x}:{getattr(props, 'pci_device_id', 0):02x}"
        if isinstance(pci, int)
        else ""
    )
    return GpuIdentity(props.name, str(getattr(props, "uuid", "") or ""), pci_text)


def lock_path(identity: str) -> str:
    # The system temp dir is shared by every worker on the host, which is the scope that matters.
    return os.path.join(tempfile.gettempdir(), f"pytest-helion-tune-{safe_filename(identity)}.lock")


class DeviceLock:
    """The lock one GPU's timers hold; counts how long this process waited for it."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.path = lock_path(identity)
        self.waited_s = 0.0
        self.held_s = 0.0

    @contextlib.contextmanager
    def held(self) -> Iterator[float]:
        """Holds the lock; yields the seconds spent waiting for it."""
        import filelock

        lock = filelock.FileLock(self.path)
        start = time.perf_counter()
        with lock:
            waited = time.perf_counter() - start
            self.waited_s += waited
            got = time.perf_counter()
            try:
                yield waited
            finally:
                self.held_s += time.perf_counter() - got


def describe_host(interpreted: bool, *, controller: bool = False) -> str:
    """The device line of the header: GPU name and capability, or the interpreter."""
    if interpreted:
        return "Triton interpreter on the CPU (timings rank nothing)"
    try:
        import torch

        count = torch.cuda.device_count()  # NVML: no CUDA context in the xdist controller
        if count == 0:
            return "no GPU visible"
        if controller:
            return f"{count} GPU(s) visible; xdist workers pinned round-robin"
        major, minor = torch.cuda.get_device_capability(0)
        return f"{torch.cuda.get_device_name(0)} (sm_{major}{minor})" + (
            f" x{count}" if count > 1 else ""
        )
    except Exception as exc:  # the header must never break a run
        return f"unknown ({type(exc).__name__})"
