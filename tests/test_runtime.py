"""``use_configs``: committed configs served to Helion outside pytest, strict misses, lazy reads.

The end-to-end test runs a real program on a store that pytest wrote; the rest are unit tests.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_helion_tune import jsonstore, runtime
from pytest_helion_tune import key as keys
from pytest_helion_tune.cache import ConfigEntry, ConfigStore
from pytest_helion_tune.errors import StoreError
from pytest_helion_tune.runtime import CommittedConfigs

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example_project"
SCRIPTS = Path(__file__).resolve().parent / "scripts"
OTHER_TOOLCHAIN = (("helion", "1.5.0"), ("torch", "2.9.0+cu128"), ("triton", "3.5.0"))


def scale(x: torch.Tensor, factor: float = 2.0) -> torch.Tensor:
    """Stands in for a kernel: the key needs only a function and its arguments."""
    return x * factor


def _put(root: Path, fn: Any, args: tuple[Any, ...], config: dict[str, Any], **key: Any) -> None:
    entry_key = dataclasses.replace(keys.make_key(fn, args), **key)
    ConfigStore(root).put(ConfigEntry(key=entry_key, config=config, tuned_at="t"))


# -- matching and messages (no Helion kernel runs) ---------------------------------------


def test_match_uses_the_plugin_key_and_reads_each_file_once(tmp_path: Path) -> None:
    store = CommittedConfigs(tmp_path)  # constructing reads nothing: the file comes later
    x = torch.ones(4, 8)
    _put(tmp_path, scale, (x,), {"block_sizes": [4]})
    key, entry = store.match(scale, (x,))
    assert key == keys.make_key(scale, (x,))
    assert entry is not None and entry.config == {"block_sizes": [4]}
    store.path_for(key.kernel).unlink()
    assert store.match(scale, (x,))[1] is not None  # cached: the file is not read again
    assert store.match(scale, (torch.ones(2, 8),))[1] is None


def test_trailing_default_arguments_match_an_entry_keyed_without_them(tmp_path: Path) -> None:
    x = torch.ones(4, 8)
    _put(tmp_path, scale, (x,), {"block_sizes": [4]})  # @tune_case inputs gave only x
    # Helion hands the autotuner its arguments with defaults applied.
    assert CommittedConfigs(tmp_path).match(scale, (x, 2.0))[1] is not None
    # Helion keys a number by its type: another value of it is the same specialization.
    assert CommittedConfigs(tmp_path).match(scale, (x, 3.0))[1] is not None
    assert CommittedConfigs(tmp_path).match(scale, (x, 3))[1] is None  # an int: another one


@dataclasses.dataclass
class _Params:
    x: torch.Tensor
    n: int


def test_a_dict_or_dataclass_argument_keys_by_the_tensors_inside_it(tmp_path: Path) -> None:
    """Helion specializes on the items of a dict, a namedtuple or a dataclass (its
    ``_mapping_key``): a config tuned for one shape inside them is not another shape's."""

    def describe(*args: Any) -> str:
        return keys.specialization(scale, args)

    assert describe({"x": torch.ones(4096, 8)}) != describe({"x": torch.ones(16, 8)})
    assert describe({"b": 1, "a": torch.ones(2)}) == "x={a=float32[2],b=int}"
    assert describe(_Params(torch.ones(3, 2), 4)) == "x=_Params{n=int,x=float32[3,2]}"
    _put(tmp_path, scale, ({"x": torch.ones(4096, 8)},), {"block_sizes": [1024]})
    store = CommittedConfigs(tmp_path)
    assert store.match(scale, ({"x": torch.ones(16, 8)},))[1] is None
    assert store.match(scale, ({"x": torch.ones(4096, 8)},))[1] is not None


def test_strict_message_names_kernel_key_and_closest_entries(tmp_path: Path) -> None:
    x = torch.ones(4, 8)
    _put(tmp_path, scale, (torch.ones(16, 8),), {"block_sizes": [16]})
    _put(tmp_path, scale, (torch.ones(2, 3, 5),), {"block_sizes": [2, 2]})
    _put(tmp_path, scale, (x,), {"block_sizes": [4]}, toolchain=OTHER_TOOLCHAIN)
    store = CommittedConfigs(tmp_path, strict=True)
    key, entry = store.match(scale, (x,))
    assert entry is None
    message = store.missing_message(key)
    lines = message.splitlines()
    assert (
        lines[0]
        == f"{keys.kernel_name(scale)}: no committed config for [x=float32[4,8]] on interpreter"
    )
    assert key.source_hash in message and "toolchain helion" in message
    assert str(store.path_for(key.kernel)) in message and "(3 entries)" in message
    # Closest first: same shape under another toolchain, then the more similar shape.
    closest = [line for line in lines if "] on interpreter:" in line]
    assert "[x=float32[4,8]]" in closest[0] and "other toolchain: helion 1.5.0 (here " in closest[0]
    assert "[x=float32[16,8]]" in closest[1] and closest[1].endswith("other shape")
    assert "[x=float32[2,3,5]]" in closest[2]


def test_strict_message_points_at_the_same_function_under_another_module(tmp_path: Path) -> None:
    x = torch.ones(4, 8)
    _put(tmp_path, scale, (x,), {"block_sizes": [4]}, kernel="src.mypkg.ops.scale")
    store = CommittedConfigs(tmp_path, strict=True)
    message = store.missing_message(store.match(scale, (x,))[0])
    assert "no file" in message
    assert "src.mypkg.ops.scale has entries: same function, other module name?" in message


def test_damaged_file_is_read_as_absent_and_never_moved(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    x = torch.ones(4, 8)
    name = keys.kernel_name(scale)
    path = tmp_path / "configs" / f"{jsonstore.safe_filename(name)}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    with caplog.at_level(logging.WARNING, logger="pytest_helion_tune.runtime"):
        assert CommittedConfigs(tmp_path).match(scale, (x,))[1] is None
    assert "not valid JSON" in caplog.text
    strict = CommittedConfigs(tmp_path, strict=True)
    with pytest.raises(StoreError, match="not valid JSON"):
        strict.check(strict.match(scale, (x,))[0])
    assert path.read_text() == "{ not json"  # a production process never touches the tree
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_strict_use_configs_on_a_missing_directory_raises(tmp_path: Path) -> None:
    before = runtime.active()
    with pytest.raises(StoreError, match="no such directory"):
        runtime.use_configs(tmp_path / "absent", strict=True)
    assert runtime.active() is before  # nothing was activated


def test_runtime_module_imports_no_pytest_or_session_code() -> None:
    """Statically: runtime.py and the package modules it imports reach no pytest."""
    package = ROOT / "pytest_helion_tune"
    seen: set[str] = set()
    todo = ["runtime"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((package / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                targets = [node.module] if node.module else [a.name for a in node.names]
                todo.extend(t.split(".")[0] for t in targets if t)
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                assert not [n for n in names if n and n.split(".")[0] in ("pytest", "_pytest")], (
                    name
                )
    assert not seen & {"plugin", "session", "options", "case"}, seen


# -- in a real program ---------------------------------------------------------------------


def _python(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONHASHSEED": "0"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_use_configs_imports_no_pytest(tmp_path: Path) -> None:
    """What production sees: ``pytest_helion_tune.use_configs`` brings no pytest along.

    Needs ``pytest_helion_tune/__init__.py`` to import its pytest-facing names lazily.
    """
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(EXAMPLE)!r})
        from example_kernels.softmax import softmax
        import pytest_helion_tune
        store = pytest_helion_tune.use_configs({str(tmp_path)!r})
        leaked = sorted(m for m in sys.modules if m == "pytest" or m.startswith("_pytest")
                        or m in ("pytest_helion_tune.session", "pytest_helion_tune.plugin",
                                 "pytest_helion_tune.options", "pytest_helion_tune.case"))
        print("LEAKED", leaked, store.attached_names())
        """
    )
    done = _python(["-c", script], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "LEAKED [] ['example_kernels.softmax.softmax']" in done.stdout, done.stdout


def test_every_module_imports_first_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """No import cycle bites whichever module a program imports first (``monitor`` once failed:
    it imports ``strategies.base``, whose package imports ``seeded``, which read a constant of
    the half-imported ``monitor``)."""
    import pytest_helion_tune

    package = Path(pytest_helion_tune.__file__).parent
    names = sorted(
        ".".join(
            ("pytest_helion_tune", *p.relative_to(package).with_suffix("").parts)
        ).removesuffix(".__init__")
        for p in package.rglob("*.py")
    )
    script = "import subprocess, sys\n" + "".join(
        f"r = subprocess.run([sys.executable, '-c', 'import {name}'], capture_output=True)\n"
        f"print('FAILED {name}', r.stderr.decode()[-300:]) if r.returncode else None\n"
        for name in names
    )
    done = _python(["-c", script], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "FAILED" not in done.stdout, done.stdout
    assert len(names) > 30


@pytest.fixture(scope="module")
def pytest_written_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example project tuned by the plugin itself, into a fresh cache dir."""
    root = tmp_path_factory.mktemp("store") / ".helion-tune"
    done = _python(
        [
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--helion-tune=random",
            f"--helion-cache-dir={root}",
        ],
        EXAMPLE,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    yield root


@pytest.mark.slow
def test_production_program_runs_committed_configs_and_never_autotunes(
    pytest_written_store: Path, tmp_path: Path
) -> None:
    store = ConfigStore(pytest_written_store)
    written = {k: {e.key.specialization: e for e in store.entries(k)} for k in store.kernels()}
    assert sorted(written) == [
        "example_kernels.matmul.matmul",
        "example_kernels.rms_norm.rms_norm",
        "example_kernels.softmax.softmax",
    ]
    # One entry gets a config no search would pick, so "the committed config ran" is visible.
    softmax = written["example_kernels.softmax.softmax"]["x=float32[8,32]"]
    marked = {**softmax.config, "block_sizes": [2], "num_warps": 1}
    store.put(ConfigEntry(key=softmax.key, config=marked, tuned_at=softmax.tuned_at))
    # And a kernel the program imports late gets an entry Helion will reject.
    sys.path.insert(0, str(SCRIPTS))
    try:
        import decorated_kernel
        import late_kernel
    finally:
        sys.path.remove(str(SCRIPTS))
    eight = (torch.ones(8), torch.ones(8))
    late_key = keys.make_key(late_kernel.late_add, eight)
    store.put(ConfigEntry(key=late_key, config={"block_sizes": [8], "bogus_key": 1}))
    # And one whose decorator names committed_autotuner_fn gets a plain valid entry.
    decorated_key = keys.make_key(decorated_kernel.decorated_add, eight)
    store.put(ConfigEntry(key=decorated_key, config={"block_sizes": [4]}))

    done = _python(
        [str(SCRIPTS / "use_configs_demo.py"), str(pytest_written_store), str(EXAMPLE)], tmp_path
    )
    assert done.returncode == 0, done.stderr[-5000:]
    report = json.loads(done.stdout.split("REPORT ", 1)[1])

    assert report["attached"] == sorted(written)
    assert [t["correct"] for t in report["tuned"]] == [True] * 6
    assert report["events"] == ["hit"] * 6
    assert report["searches_at_tuned_shapes"] == []  # no search class was even constructed
    for case, served in zip(report["tuned"], report["event_configs"], strict=True):
        # What runs is the committed config (Helion may add fields it normalizes).
        assert {k: case["config"][k] for k in served} == served
    assert report["tuned"][2]["config"]["block_sizes"] == [2]
    assert report["tuned"][2]["config"]["num_warps"] == 1

    # Untuned shape: Helion's own autotuner takes over (on CPU its cache then fails alone).
    assert report["searches_after_fallback"] == ["LFBOTreeSearch"]
    assert "no committed config for [x=float32[3,16]]" in done.stderr  # a warning, not an error

    strict = report["strict_error"]
    assert strict.startswith(
        "example_kernels.rms_norm.rms_norm: no committed config for "
        "[x=float32[3,16] weight=float32[16]] on interpreter"
    )
    assert "closest: [x=float32[4,64] weight=float32[64]] on interpreter: other shape" in strict
    assert "[x=float32[8,32] weight=float32[32]] on interpreter: other shape" in strict
    assert report["strict_new_searches"] == 0
    assert report["strict_events"] == ["miss"]

    assert report["late_attached_before_scan"] is False
    assert report["late_attached_after_scan"] is True
    assert report["late_hook"] == "CommittedAutotunerFn"
    assert report["invalid_error"] == (
        "late_kernel.late_add: committed config for [x=float32[8] y=float32[8]] on interpreter "
        "is not valid here (Invalid config keys ['bogus_key'])"
    )
    assert report["invalid_events"] == ["miss", "invalid"]
    assert report["decorated_correct"] is True
    assert report["decorated_events"] == ["miss", "invalid", "hit"]

    # The CLI reads the same pytest-written store.
    listed = _python(
        ["-m", "pytest_helion_tune", "list", "--json", "--cache-dir", str(pytest_written_store)],
        tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 8
