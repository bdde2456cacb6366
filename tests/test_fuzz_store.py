"""Property-based fuzzing of the store loaders: whatever a file holds, only the documented
errors escape (``DamagedFileError``/``StoreError`` for files, ``ValueError`` for entries).
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pytest_helion_tune import jsonstore
from pytest_helion_tune.baselines import BaselineEntry, BaselineStore
from pytest_helion_tune.cache import ConfigEntry, ConfigStore
from pytest_helion_tune.errors import DamagedFileError, StoreError
from pytest_helion_tune.key import CaseKey

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["\ud800", "a\udfffb", "\x00", "<<<<<<< x"])  # lone surrogates: not UTF-8
)
# What Python's json module also reads (1e999, NaN) or what no float holds: a loader may be
# handed any of them by a reader other than jsonstore.parse.
odd_numbers = st.sampled_from([float("inf"), float("-inf"), float("nan"), 10**400, -(10**400)])
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

CONFIG_ENTRY = ConfigEntry(
    key=CaseKey("m.k", "abc", "x=float32[64]", "interpreter", (("torch", "2.13"),)),
    config={"block_sizes": [32], "num_warps": 4},
    latency_ms=1.5,
    strategy="random",
    configs_tested=4,
    tune_seconds=1.0,
    nodeid="t.py::t",
    tuned_at="2026-01-01T00:00:00Z",
).to_json()
BASELINE_ENTRY = {
    "config": {"block_sizes": [32]},
    "device": "interpreter",
    "eager_ms": 2.0,
    "latency_ms": 1.0,
    "noise": 0.01,
    "nodeid": "t.py::t",
    "ratio": 0.5,
    "recorded_at": "2026-01-01T00:00:00Z",
    "samples": 30,
    "source_hash": "abc",
    "specialization": "x=float32[64]",
    "toolchain": {"torch": "2.13"},
}


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Entries close to a valid one: some fields replaced by any JSON value, some removed,
    unknown ones added. Those find more than random objects, which fail at the first field."""
    names = sorted(base)
    return st.builds(
        lambda changes, removed, extra: {
            **{k: v for k, v in base.items() if k not in removed},
            **changes,
            **extra,
        },
        st.dictionaries(st.sampled_from(names), json_values, max_size=3),
        st.sets(st.sampled_from(names), max_size=2),
        st.dictionaries(st.text(string.ascii_lowercase, max_size=6), json_values, max_size=2),
    )


def document(entries: list[Any], schema: Any = jsonstore.SCHEMA) -> str:
    return json.dumps({"schema": schema, "kernel": "m.k", "entries": entries})


def damaged(text: str, cut: int, junk: str) -> str:
    """A store text truncated, spliced with junk, or wrapped in conflict markers."""
    at = cut % (len(text) + 1)
    return text[:at] + junk + text[at:]


store_texts = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    json_values.map(json.dumps),
    st.lists(mutated(CONFIG_ENTRY), max_size=3).map(document),
    st.builds(
        damaged,
        st.lists(mutated(CONFIG_ENTRY), min_size=1, max_size=3).map(document),
        st.integers(min_value=0),
        st.sampled_from(
            ["", "<<<<<<< HEAD\n", "\n=======\n", ">>>>>>> b\n", "NaN", "1e999", "{", "]", "\x00"]
        ),
    ),
    st.builds(document, st.just([CONFIG_ENTRY]), json_values),
    st.just("[" * 5000),
    st.just('{"a":' * 5000),
)


@FUZZ
@given(store_texts)
def test_parse_raises_only_store_errors(text: str) -> None:
    try:
        doc = jsonstore.parse(text, Path("f.json"))
    except StoreError:  # DamagedFileError is one
        return
    assert isinstance(doc, dict) and isinstance(doc["entries"], list)
    assert doc["schema"] == jsonstore.SCHEMA  # older schemas come back migrated
    jsonstore.dumps(doc)  # whatever parses can be written back


@FUZZ
@given(store_texts)
def test_salvage_never_raises_and_finds_only_entries(text: str) -> None:
    found = jsonstore.salvage(text)
    assert all(isinstance(e, dict) and isinstance(e.get("config"), dict) for e in found)
    jsonstore.dumps({"schema": 1, "entries": found})


def loose(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda entry, name, number: {**entry, name: number},
        mutated(base),
        st.sampled_from(sorted(base)),
        odd_numbers,
    )


@FUZZ
@given(st.one_of(json_values, mutated(CONFIG_ENTRY), loose(CONFIG_ENTRY)))
def test_config_entry_from_json_raises_only_value_error(raw: Any) -> None:
    try:
        entry = ConfigEntry.from_json("m.k", raw)
    except ValueError:
        return
    jsonstore.dumps(entry.to_json())  # an entry that loads can always be stored again


@FUZZ
@given(st.one_of(json_values, mutated(BASELINE_ENTRY), loose(BASELINE_ENTRY)))
def test_baseline_entry_from_json_raises_only_value_error(raw: Any) -> None:
    try:
        entry = BaselineEntry.from_json(raw)
    except ValueError:
        return
    jsonstore.dumps(entry.to_json())


@FUZZ
@given(st.one_of(store_texts.map(str.encode), st.binary(max_size=100)))
def test_store_read_path_raises_only_store_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path in (ConfigStore(root).path_for("m.k"), BaselineStore(root).path_for("m.k")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        configs, baselines = ConfigStore(root), BaselineStore(root)
        key = CaseKey("m.k", "abc", "x=float32[64]", "interpreter", (("torch", "2.13"),))
        try:
            configs.lookup(key)
            baselines.get("m.k", "t.py::t", "x=float32[64]", "interpreter")
        except StoreError as exc:
            assert "newer" in str(exc)  # the only error a readable file can raise
            return
        # the store goes on writing: recovered entries and the new one, nothing else lost
        configs.put(ConfigEntry(key=key, config={"block_sizes": [16]}))
        after = jsonstore.parse(configs.path_for("m.k").read_text(), Path("f"))
        assert {"block_sizes": [16]} in [e.get("config") for e in after["entries"]]


def test_deep_nesting_is_damage_not_a_crash() -> None:
    for text in ("[" * 20_000, '{"a":' * 20_000 + "1" + "}" * 20_000):
        try:
            jsonstore.parse(text, Path("f.json"))
        except DamagedFileError as exc:
            assert "f.json" in str(exc)
        jsonstore.salvage(text)


@FUZZ
@given(st.text(min_size=0, max_size=60))
def test_no_kernel_name_leaves_the_cache_dir(name: str) -> None:
    assume(name)
    root = Path("/cache")
    for path in (ConfigStore(root).path_for(name), BaselineStore(root).path_for(name)):
        assert path.parent.parent == root
        assert path.name not in (".json", "..json") and "/" not in path.name
        assert ".." not in Path(path.name).parts
