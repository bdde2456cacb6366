"""A production-style program: the example project's kernels under ``use_configs``, outside pytest.

Usage: ``python use_configs_demo.py STORE_DIR EXAMPLE_PROJECT_DIR``; prints one JSON report.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

# Before triton or helion is imported: on CPU only the interpreter can run the kernels.
os.environ.setdefault("TRITON_INTERPRET", "1")

import helion.autotuner.base_search as base_search
import torch

# Test-only spy: every Helion search constructed in this process, so "zero" can be asserted.
SEARCHES: list[str] = []
_init = base_search.BaseSearch.__init__


def _counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
    SEARCHES.append(type(self).__name__)
    _init(self, *args, **kwargs)


base_search.BaseSearch.__init__ = _counting_init


def main() -> None:
    store_dir, project = sys.argv[1], sys.argv[2]
    sys.path.insert(0, project)

    from pytest_helion_tune import interpreter

    interpreter.patch_libdevice()  # the plugin does this in pytest; softmax/rms_norm need it

    from example_kernels.matmul import matmul
    from example_kernels.rms_norm import rms_norm, rms_norm_reference
    from example_kernels.softmax import softmax

    from pytest_helion_tune.runtime import NoCommittedConfig, use_configs

    report: dict[str, Any] = {"tuned": []}
    store = use_configs(store_dir)
    report["attached"] = store.attached_names()

    torch.manual_seed(0)
    cases = [
        ("matmul", matmul, (torch.randn(16, 16), torch.randn(16, 16)), lambda x, y: x @ y),
        ("matmul", matmul, (torch.randn(8, 32), torch.randn(32, 16)), lambda x, y: x @ y),
        ("softmax", softmax, (torch.randn(8, 32),), lambda x: torch.softmax(x, dim=-1)),
        ("softmax", softmax, (torch.randn(4, 64),), lambda x: torch.softmax(x, dim=-1)),
        ("rms_norm", rms_norm, (torch.randn(8, 32), torch.randn(32)), rms_norm_reference),
        ("rms_norm", rms_norm, (torch.randn(4, 64), torch.randn(64)), rms_norm_reference),
    ]
    for name, kernel, args, reference in cases:
        out = kernel(*args)
        again = kernel(*args)  # the second call is Helion's own dispatch, never ours
        ok = bool(torch.allclose(out, reference(*args), atol=5e-2, rtol=2e-2))
        report["tuned"].append(
            {
                "kernel": name,
                "shapes": [list(a.shape) for a in args],
                "correct": ok and bool(torch.equal(out, again)),
                "config": dict(kernel.bind(args)._config.config),
            }
        )
    report["events"] = [e.kind for e in store.events]
    report["event_configs"] = [e.config for e in store.events]
    report["searches_at_tuned_shapes"] = list(SEARCHES)

    # An untuned shape: Helion's normal behaviour, i.e. its autotuner starts (on CPU its
    # local cache then fails for want of a device name; that failure is Helion's own).
    try:
        softmax(torch.randn(3, 16))
        report["fallback_error"] = None
    except Exception as exc:
        report["fallback_error"] = f"{type(exc).__name__}: {exc}"
    report["searches_after_fallback"] = list(SEARCHES)

    # strict=True: the same kind of miss is an error naming kernel, key and closest entries.
    strict_store = use_configs(store_dir, strict=True)
    before = len(SEARCHES)
    try:
        rms_norm(torch.randn(3, 16), torch.randn(16))
        report["strict_error"] = None
    except NoCommittedConfig as exc:
        report["strict_error"] = str(exc)
    except Exception:
        report["strict_error"] = "unexpected: " + traceback.format_exc()
    report["strict_new_searches"] = len(SEARCHES) - before
    report["strict_events"] = [e.kind for e in strict_store.events]

    # A kernel module imported after use_configs is not hooked until a rescan.
    import late_kernel

    report["late_attached_before_scan"] = "late_kernel.late_add" in strict_store.attached_names()
    strict_store.scan()
    report["late_attached_after_scan"] = "late_kernel.late_add" in strict_store.attached_names()
    report["late_hook"] = type(late_kernel.late_add.settings.autotuner_fn).__name__

    # Its committed entry carries a key Helion rejects (as 1.5.0 rejects 1.5.1's reduction_fusion).
    try:
        late_kernel.late_add(torch.ones(8), torch.ones(8))
        report["invalid_error"] = None
    except NoCommittedConfig as exc:
        report["invalid_error"] = str(exc)
    report["invalid_events"] = [e.kind for e in strict_store.events]

    # A kernel whose decorator names committed_autotuner_fn needs no scan at all.
    import decorated_kernel

    x = torch.ones(8)
    report["decorated_correct"] = bool(torch.equal(decorated_kernel.decorated_add(x, x), x + x))
    report["decorated_events"] = [e.kind for e in strict_store.events]

    report["pytest_imported"] = "pytest" in sys.modules
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    main()
