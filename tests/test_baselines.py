"""Tests of the baseline store: round trip, stable bytes, locked merges, damaged files, keying.

No GPU and no Helion: entries are plain data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_helion_tune import jsonstore
from pytest_helion_tune.baselines import BaselineEntry, BaselineStore
from pytest_helion_tune.errors import StoreError

KERNEL = "example_kernels.softmax.softmax"
H100 = "NVIDIA H100 80GB HBM3 (sm_90)"
ROOT = Path(__file__).resolve().parent.parent


def entry(**overrides: Any) -> BaselineEntry:
    base = BaselineEntry(
        nodeid="tests/test_softmax.py::test_softmax[4096-8192]",
        specialization="x=float16[4096,8192]",
        device=H100,
        latency_ms=0.0503,
        eager_ms=0.3218,
        ratio=0.156311,
        samples=30,
        noise=0.0141,
        source_hash="0123456789abcdef",
        config={"block_sizes": [1], "num_warps": 8, "reduction_loops": [None]},
        toolchain={"helion": "1.5.0", "torch": "2.11.0", "triton": "3.6.0"},
        recorded_at="2026-11-25T21:40:22Z",
    )
    return dataclasses.replace(base, **overrides)


def test_round_trip(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    e = entry()
    store.put(KERNEL, e)
    assert store.path_for(KERNEL) == tmp_path / "baselines" / f"{KERNEL}.json"
    fresh = BaselineStore(tmp_path)
    assert fresh.get(KERNEL, e.nodeid, e.specialization, e.device) == e
    assert fresh.entries(KERNEL) == [e]
    assert fresh.kernels() == [KERNEL]
    doc = json.loads(store.path_for(KERNEL).read_text())
    assert doc["schema"] == jsonstore.SCHEMA and doc["kernel"] == KERNEL
    assert set(doc["entries"][0]) == {
        "config",
        "device",
        "eager_ms",
        "latency_ms",
        "noise",
        "nodeid",
        "ratio",
        "recorded_at",
        "samples",
        "source_hash",
        "specialization",
        "toolchain",
    }


def test_numbers_are_rounded_once_and_then_stable(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.put(KERNEL, entry(ratio=0.1563112345678, latency_ms=0.050312345678))
    got = BaselineStore(tmp_path).entries(KERNEL)[0]
    assert got.ratio == 0.1563112 and got.latency_ms == 0.05031235
    assert BaselineEntry.from_json(got.to_json()) == got


def test_a_put_that_changes_nothing_changes_no_byte(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.put(KERNEL, entry())
    store.put(KERNEL, entry(nodeid="tests/test_softmax.py::test_softmax[1024-65536]"))
    path = store.path_for(KERNEL)
    before, stat = path.read_bytes(), path.stat()
    BaselineStore(tmp_path).put(KERNEL, entry())
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == stat.st_mtime_ns and path.stat().st_ino == stat.st_ino
    assert before.endswith(b"\n") and jsonstore.dumps(json.loads(before)) == before.decode()


def test_entries_are_sorted_whatever_the_write_order(tmp_path: Path) -> None:
    a, b = BaselineStore(tmp_path / "a"), BaselineStore(tmp_path / "b")
    entries = [
        entry(nodeid="t::z"),
        entry(nodeid="t::a", device="NVIDIA H200 (sm_90)"),
        entry(nodeid="t::a"),
        entry(nodeid="t::a", specialization="x=float16[8,8]"),
    ]
    for e in entries:
        a.put(KERNEL, e)
    for e in reversed(entries):
        b.put(KERNEL, e)
    assert a.path_for(KERNEL).read_bytes() == b.path_for(KERNEL).read_bytes()
    ids = [(e.nodeid, e.specialization, e.device) for e in a.entries(KERNEL, fresh=True)]
    assert ids == sorted(ids)


def test_put_replaces_only_the_same_case_shape_and_device(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.put(KERNEL, entry())
    store.put(KERNEL, entry(device="NVIDIA H200 (sm_90)"))
    newer = entry(ratio=0.2, source_hash="ffff", toolchain={"triton": "3.7.0"})
    store.put(KERNEL, newer)  # another source hash and toolchain: the same baseline slot
    got = BaselineStore(tmp_path).entries(KERNEL)
    assert len(got) == 2 and newer in got


def test_other_device_or_shape_is_never_returned(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    e = entry()
    store.put(KERNEL, e)
    assert store.get(KERNEL, e.nodeid, e.specialization, "NVIDIA H200 (sm_90)") is None
    assert store.get(KERNEL, e.nodeid, e.specialization, "NVIDIA H100 80GB HBM3 (sm_80)") is None
    assert store.get(KERNEL, e.nodeid, e.specialization, "interpreter") is None
    assert store.get(KERNEL, e.nodeid, "x=float16[1024,65536]", e.device) is None
    assert store.get(KERNEL, "tests/test_softmax.py::other", e.specialization, e.device) is None
    assert store.get("other.kernel", e.nodeid, e.specialization, e.device) is None
    # ...while a new source hash or toolchain still finds it: that is what it is for
    assert store.get(KERNEL, e.nodeid, e.specialization, e.device) == e


def test_damaged_file_is_moved_aside_and_noted(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for(KERNEL)
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 1, "entries": [ oops')
    assert store.get(KERNEL, "n", "s", H100) is None
    assert not path.exists()
    moved = list(path.parent.glob(f"{path.name}.damaged-*"))
    assert len(moved) == 1 and moved[0].read_text().endswith("oops")
    assert any("not valid JSON" in n and "moved aside" in n for n in store.notes)
    store.put(KERNEL, entry())  # the store carries on with a fresh file
    assert BaselineStore(tmp_path).entries(KERNEL) == [entry()]


def test_merge_conflict_markers_count_as_damage(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.put(KERNEL, entry())
    path = store.path_for(KERNEL)
    path.write_text("<<<<<<< ours\n" + path.read_text() + ">>>>>>> theirs\n")
    # The damaged file is moved aside; the entries still readable in it are recovered.
    assert BaselineStore(tmp_path).entries(KERNEL) == [entry()]
    assert list(path.parent.glob("*.damaged-*"))


def test_after_a_conflict_the_newer_of_two_baselines_for_one_case_is_read(tmp_path: Path) -> None:
    """Both sides of a conflict are recovered; the gate judges against the newer, wherever it
    stands in the file (here the branch's side, second)."""
    store = BaselineStore(tmp_path)
    store.put(KERNEL, entry(ratio=0.5, recorded_at="2026-11-01T00:00:00Z"))
    path = store.path_for(KERNEL)
    ours = path.read_text()
    theirs = jsonstore.dumps(
        {
            "schema": jsonstore.SCHEMA,
            "kernel": KERNEL,
            "entries": [entry(ratio=0.8, recorded_at="2026-11-25T00:00:00Z").to_json()],
        }
    )
    path.write_text(f"<<<<<<< HEAD\n{ours}=======\n{theirs}>>>>>>> branch\n")
    fresh = BaselineStore(tmp_path)
    assert len(fresh.entries(KERNEL)) == 2
    found = fresh.get(KERNEL, entry().nodeid, entry().specialization, H100)
    assert found is not None and found.ratio == 0.8


def test_a_newer_schema_is_left_alone(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for(KERNEL)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": jsonstore.SCHEMA + 1, "entries": []}))
    with pytest.raises(StoreError, match="newer"):
        store.entries(KERNEL)
    assert path.exists()


def test_an_invalid_entry_is_skipped_noted_and_kept(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.put(KERNEL, entry())
    path = store.path_for(KERNEL)
    doc = json.loads(path.read_text())
    doc["entries"].append({**entry(nodeid="t::b").to_json(), "ratio": "fast"})
    path.write_text(jsonstore.dumps(doc))
    fresh = BaselineStore(tmp_path)
    assert fresh.entries(KERNEL) == [entry()]
    assert any("entry 1 skipped" in n and "'ratio'" in n for n in fresh.notes)
    fresh.put(KERNEL, entry(nodeid="t::c"))
    assert len(json.loads(path.read_text())["entries"]) == 3  # the bad one is still there


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nodeid": 3}, "nodeid"),
        ({"device": None}, "device"),
        ({"specialization": []}, "specialization"),
        ({"source_hash": 1}, "source_hash"),
        ({"recorded_at": 0}, "recorded_at"),
        ({"config": []}, "config"),
        ({"toolchain": "3.6"}, "toolchain"),
        ({"toolchain": {"triton": 3.6}}, "toolchain"),
        ({"ratio": "x"}, "ratio"),
        ({"ratio": True}, "ratio"),
        ({"ratio": 0}, "ratio"),
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": float("nan")}, "ratio"),
        ({"latency_ms": float("inf")}, "latency_ms"),
        ({"eager_ms": None}, "eager_ms"),
        ({"noise": -1}, "noise"),
        ({"samples": 2.5}, "samples"),
        ({"samples": 0}, "samples"),
        ({"samples": True}, "samples"),
    ],
)
def test_from_json_names_the_bad_field(change: dict[str, Any], field: str) -> None:
    raw = {**entry().to_json(), **change}
    with pytest.raises(ValueError, match=f"'{field}'"):
        BaselineEntry.from_json(raw)


def test_from_json_rejects_non_objects_and_missing_fields() -> None:
    with pytest.raises(ValueError, match="not an object"):
        BaselineEntry.from_json([1, 2])
    raw = entry().to_json()
    del raw["samples"]
    with pytest.raises(ValueError, match="'samples'"):
        BaselineEntry.from_json(raw)


def test_a_kernel_name_cannot_leave_the_directory(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    path = store.path_for("../../etc/passwd")
    assert path.parent == tmp_path / "baselines"
    store.put("../../etc/passwd", entry())
    assert path.exists()


_WRITER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_baselines import KERNEL, entry
from pytest_helion_tune.baselines import BaselineStore

store = BaselineStore(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    store.put(KERNEL, entry(nodeid=f"{{sys.argv[2]}}::case{{i:03d}}"))
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_WRITER.format(tests=str(Path(__file__).parent)))
    root = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(root), name, "25"], env=env)
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    got = BaselineStore(root).entries(KERNEL)
    assert len(got) == 50
    assert {e.nodeid.split("::")[0] for e in got} == {"a", "b"}
    assert not list((root / "baselines").glob("*.tmp"))
