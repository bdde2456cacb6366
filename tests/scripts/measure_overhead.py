"""Measures what ``use_configs`` costs per kernel call: a hooked kernel against one with ``config=``.

Usage: ``python measure_overhead.py [CALLS] [ROUNDS]``; runs under the interpreter without a GPU.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before helion/triton are imported

import helion
import helion.language as hl


def _add_hooked(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size()):
        out[tile] = x[tile] + y[tile]
    return out


def _add_fixed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(x)
    for tile in hl.tile(out.size()):
        out[tile] = x[tile] + y[tile]
    return out


def _per_call_us(fn: Any, args: tuple[Any, ...], calls: int, sync: Any) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    sync()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    from pytest_helion_tune import key as keys
    from pytest_helion_tune.cache import ConfigEntry, ConfigStore
    from pytest_helion_tune.configs import as_dict
    from pytest_helion_tune.runtime import use_configs

    n = int(os.environ.get("OVERHEAD_N", "64" if device == "cpu" else "4096"))
    args = (torch.randn(n, device=device), torch.randn(n, device=device))
    probe = helion.kernel(static_shapes=True)(_add_hooked)
    config = probe.bind(args).config_spec.default_config()
    hooked = helion.kernel(static_shapes=True)(_add_hooked)
    fixed = helion.kernel(static_shapes=True, config=config)(_add_fixed)

    root = Path(tempfile.mkdtemp(prefix="overhead-"))
    store = ConfigStore(root)
    store.put(ConfigEntry(key=keys.make_key(hooked, args), config=as_dict(config)))
    start = time.perf_counter()
    committed = use_configs(root)  # scans every loaded module for kernels; reads no file
    use_configs_ms = (time.perf_counter() - start) * 1e3
    committed.attach(hooked)  # a kernel built in a function is no module global

    # One launch first, so that neither first call pays the process's one-time warm-ups.
    helion.kernel(static_shapes=True, config=config)(_add_fixed)(*args)
    first = {}
    for name, kernel in (("use_configs", hooked), ("config=", fixed)):
        start = time.perf_counter()
        kernel(*args)
        first[name] = (time.perf_counter() - start) * 1e3
    assert [e.kind for e in committed.events] == ["hit"], committed.events

    samples: dict[str, list[float]] = {"use_configs": [], "config=": []}
    for _ in range(rounds):  # interleaved, so drift hits both alike
        samples["use_configs"].append(_per_call_us(hooked, args, calls, sync))
        samples["config="].append(_per_call_us(fixed, args, calls, sync))

    runtime_entries = len(committed.events)  # 1: only the first call reached use_configs

    bound = hooked.bind(args)
    lookups = 2000
    start = time.perf_counter()
    for _ in range(lookups):
        committed.match(hooked, args)
    match_us = (time.perf_counter() - start) / lookups * 1e6
    start = time.perf_counter()
    for _ in range(lookups):
        committed.resolve(bound, args)
    resolve_us = (time.perf_counter() - start) / lookups * 1e6

    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)",
        "calls_per_round": calls,
        "rounds": rounds,
        "per_call_us_median": {k: statistics.median(v) for k, v in samples.items()},
        "per_call_us_all": samples,
        "first_call_ms": first,
        "use_configs_ms": use_configs_ms,
        "modules_scanned": len(sys.modules),
        "match_us_per_lookup_warm_file": match_us,
        "resolve_us_incl_validate": resolve_us,
        "calls_that_reached_use_configs": runtime_entries,
        "kernel_calls_timed_per_variant": calls * rounds,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
