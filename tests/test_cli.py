"""``python -m pytest_helion_tune``: list, show, diff (directories and git revisions), prune, export.

Every command runs in a subprocess, as users run it, on stores built with the plugin's ConfigStore.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_helion_tune import jsonstore
from pytest_helion_tune import key as keys
from pytest_helion_tune.cache import ConfigEntry, ConfigStore

SOFTMAX = "pkg.ops.softmax"
MATMUL = "pkg.ops.matmul"
HERE = keys.toolchain()  # this machine's: entries with it are "installed here"
ELSEWHERE = (("cuda", "12.8"), ("helion", "1.5.0"), ("torch", "2.9.0+cu128"), ("triton", "3.5.0"))
H100 = "NVIDIA H100 80GB HBM3 (sm_90)"


def ago(days: float) -> str:
    when = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def entry(
    kernel: str = SOFTMAX,
    spec: str = "x=float32[8,32]",
    *,
    device: str = "interpreter",
    source: str = "5050505050505050",
    toolchain: tuple[tuple[str, str], ...] = HERE,
    config: dict[str, Any] | None = None,
    latency: float = 2.0,
    days: float = 1.0,
) -> ConfigEntry:
    return ConfigEntry(
        key=keys.CaseKey(kernel, source, spec, device, toolchain),
        config=config or {"block_sizes": [8], "num_warps": 4},
        latency_ms=latency,
        strategy="random",
        configs_tested=4,
        nodeid=f"tests/test_ops.py::test_{kernel.rsplit('.', 1)[-1]}[{spec}]",
        tuned_at=ago(days),
    )


def build(root: Path, *entries: ConfigEntry) -> Path:
    store = ConfigStore(root)
    for e in entries:
        store.put(e)
    return root


def v1(root: Path) -> Path:
    """A store with one stale entry (kernel edited since), one foreign toolchain, one GPU entry."""
    return build(
        root,
        entry(source="0d0d0d0d0d0d0d0d", days=100, latency=3.0),  # superseded by the next one
        entry(days=1),
        entry(spec="x=float32[4,64]", toolchain=ELSEWHERE, days=50, latency=1.0),
        entry(MATMUL, "x=float16[64,64] y=float16[64,64]", device=H100, toolchain=ELSEWHERE),
    )


def baselines(root: Path, latency: float) -> None:
    doc = {
        "schema": 1,
        "kernel": SOFTMAX,
        "entries": [
            {
                "nodeid": "tests/test_ops.py::test_softmax[8-32]",
                "specialization": "x=float32[8,32]",
                "device": "interpreter",
                "latency_ms": latency,
            }
        ],
    }
    (root / "baselines").mkdir(parents=True, exist_ok=True)
    (root / "baselines" / f"{SOFTMAX}.json").write_text(jsonstore.dumps(doc))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest_helion_tune", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


# -- list and show ----------------------------------------------------------------------


def test_list_shows_kernels_keys_devices_ages_and_stale_entries(tmp_path: Path) -> None:
    v1(tmp_path / ".helion-tune")
    done = cli("list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"{MATMUL}  (" in text and f"{SOFTMAX}  (" in text
    row = next(line for line in text.splitlines() if "0d0d0d0d0d0d0d0d" in line)
    assert "x=float32[8,32]" in row and "interpreter" in row and "100d" in row
    assert row.split()[0] == entry(source="0d0d0d0d0d0d0d0d").key.short
    assert "STALE (superseded: kernel source edited)" in row and "3 ms" in row
    gpu = next(line for line in text.splitlines() if H100 in line)
    assert "helion 1.5.0" in gpu and " no " in gpu and "current" in gpu
    assert "2 kernels, 4 entries, 1 stale, 2 for a toolchain other than this machine's" in text
    # `cache` is an optional first word (the other session's spelling).
    assert cli("cache", "list", cwd=tmp_path).stdout == text

    stale = cli("list", "--stale", "--json", cwd=tmp_path)
    (only,) = json.loads(stale.stdout)
    assert only["source_hash"] == "0d0d0d0d0d0d0d0d"
    assert only["stale"] == "superseded: kernel source edited" and only["age_days"] >= 99.9
    assert len(json.loads(cli("list", "--json", "--kernel", "softmax", cwd=tmp_path).stdout)) == 3


def test_list_shows_the_baseline_latency_of_an_entry_without_its_own(tmp_path: Path) -> None:
    """Entries tuned before entries recorded their latency (the example's H100 store) show the
    recorded baseline instead, marked as such; an entry's own latency always wins."""
    root = tmp_path / ".helion-tune"
    build(root, dataclasses.replace(entry(), latency_ms=None), entry(spec="x=float32[4,64]"))
    baselines(root, 0.25)
    text = cli("list", cwd=tmp_path).stdout
    row = next(line for line in text.splitlines() if "x=float32[8,32]" in line)
    assert "0.25 ms (baseline)" in row
    other = next(line for line in text.splitlines() if "x=float32[4,64]" in line)
    assert "2 ms" in other and "(baseline)" not in other
    rows = {r["specialization"]: r for r in json.loads(cli("list", "--json", cwd=tmp_path).stdout)}
    assert rows["x=float32[8,32]"]["latency_ms"] is None
    assert rows["x=float32[8,32]"]["baseline_latency_ms"] == 0.25


def test_list_check_source_imports_kernels_to_find_edited_ones(tmp_path: Path) -> None:
    v1(tmp_path / ".helion-tune")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "ops.py").write_text("def softmax(x):\n    return x\n")
    done = cli("list", "--check-source", cwd=tmp_path)  # run from the project root
    spec = importlib.util.spec_from_file_location("probe_ops", tmp_path / "pkg" / "ops.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    now = keys.source_hash(module.softmax)
    assert done.stdout.count(f"STALE (kernel source changed (now {now}))") == 3
    assert f"warning: {MATMUL}: not found in module pkg.ops; its source was not checked" in (
        done.stderr
    )


def test_show_prints_one_kernel_readably(tmp_path: Path) -> None:
    root = v1(tmp_path / "store")
    done = cli("show", "softmax", "--cache-dir", str(root), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith(f"{SOFTMAX}  ({root}/configs/{SOFTMAX}.json, 3 entries)")
    assert "[1] x=float32[4,64]  on interpreter  current" in text
    assert "STALE (superseded: kernel source edited)" in text
    assert (
        "toolchain  cuda 12.8 helion 1.5.0 torch 2.9.0+cu128 triton 3.5.0  (not installed here)"
        in text
    )
    assert "by tests/test_ops.py::test_softmax[x=float32[8,32]] with random, 4 configs" in text
    assert "      block_sizes: [8]" in text and "      num_warps: 4" in text
    assert cli("cache", "show", SOFTMAX, "--cache-dir", str(root), cwd=tmp_path).stdout == text

    missing = cli("show", "nope", "--cache-dir", str(root), cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        f"error: no kernel 'nope' in {root} (kernels: {MATMUL}, {SOFTMAX})"
    )
    ambiguous = cli("show", "pkg.ops.*", "--cache-dir", str(root), cwd=tmp_path)
    assert "names several kernels" in ambiguous.stderr


# -- diff ---------------------------------------------------------------------------------


def v2(root: Path) -> None:
    """v1, then: a retune changed a config and its latency, a shape added, one removed."""
    store = ConfigStore(root)
    store.put(entry(days=0.5, latency=1.5, config={"block_sizes": [16], "num_warps": 4}))
    store.put(entry(spec="x=float32[16,16]", days=0.5, latency=0.5))
    doc = json.loads(store.path_for(SOFTMAX).read_text())
    doc["entries"] = [e for e in doc["entries"] if e["specialization"] != "x=float32[4,64]"]
    store.path_for(SOFTMAX).write_text(jsonstore.dumps(doc))


DIFF_LINES = [
    f"{SOFTMAX}",
    "  + [x=float32[16,16]] on interpreter",
    "  - [x=float32[4,64]] on interpreter  cuda 12.8 helion 1.5.0 torch 2.9.0+cu128 triton 3.5.0",
    "  ~ [x=float32[8,32]] on interpreter: config: block_sizes [8] -> [16]; latency 2 -> 1.5 ms (-25.0%)",
    "  baseline tests/test_ops.py::test_softmax[8-32] [x=float32[8,32]] on interpreter: "
    "1.2 -> 1.08 ms (-10.0%)",
    "1 added, 1 removed, 1 changed, 1 baseline changes",
]


def assert_diff(text: str) -> None:
    for expected in DIFF_LINES:
        assert any(line.startswith(expected) for line in text.splitlines()), (expected, text)
    assert MATMUL not in text  # unchanged kernels are not listed


def test_diff_two_directories(tmp_path: Path) -> None:
    a = v1(tmp_path / "a")
    baselines(a, 1.2)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    v2(b)
    baselines(b, 1.08)
    before = snapshot(b)
    done = cli("diff", str(a), str(b), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == [f"--- {a}", f"+++ {b}"]
    assert_diff(done.stdout)
    assert snapshot(b) == before

    data = json.loads(cli("diff", str(a), str(b), "--json", cwd=tmp_path).stdout)
    assert data["summary"] == {"added": 1, "removed": 1, "changed": 1, "baselines": 1}
    (changed,) = data["kernels"][SOFTMAX]["changed"]
    assert changed["latency_ms"] == [2.0, 1.5]
    assert changed["after"]["config"]["block_sizes"] == [16]
    assert cli("diff", str(a), str(a), "--exit-code", cwd=tmp_path).returncode == 0
    assert cli("diff", str(a), str(b), "--exit-code", cwd=tmp_path).returncode == 1


def test_diff_two_git_revisions_of_the_cache_dir(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    root = v1(repo / ".helion-tune")
    baselines(root, 1.2)
    git("add", "-A")
    git("commit", "-q", "-m", "tuned")
    v2(root)
    baselines(root, 1.08)
    git("add", "-A")
    git("commit", "-q", "-m", "retuned")
    (repo / "sub").mkdir()

    done = cli("diff", "HEAD~1", "HEAD", cwd=repo)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["--- HEAD~1:.helion-tune", "+++ HEAD:.helion-tune"]
    assert_diff(done.stdout)
    # B defaults to the working tree; REV:PATH names the folder explicitly, from anywhere inside.
    assert_diff(cli("diff", "HEAD~1", cwd=repo).stdout)
    explicit = cli("diff", "HEAD~1:.helion-tune", "HEAD:.helion-tune", cwd=repo / "sub")
    assert_diff(explicit.stdout)
    assert "0 added, 0 removed, 0 changed" in cli("diff", "HEAD", cwd=repo).stdout

    bad = cli("diff", "no-such-rev", "HEAD", cwd=repo)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: no-such-rev: neither a directory nor a git revision"


# -- prune --------------------------------------------------------------------------------


def test_prune_is_a_dry_run_until_write_and_leaves_a_valid_stable_file(tmp_path: Path) -> None:
    root = v1(tmp_path / ".helion-tune")
    path = ConfigStore(root).path_for(SOFTMAX)
    before = snapshot(root)

    dry = cli("prune", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert (
        "  - [x=float32[8,32]] on interpreter: superseded: kernel source edited; 100d old"
        in dry.stdout
    )
    assert "dry run: 1 entries would be dropped; nothing written (add --write)" in dry.stdout
    assert snapshot(root) == before
    assert "nothing to prune" in cli("prune", "--older-than", "200", cwd=tmp_path).stdout

    done = cli("prune", "--write", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{path.relative_to(tmp_path)}: rewritten (2 entries kept)" in done.stdout
    text = path.read_text()
    doc = jsonstore.parse(text, path)  # valid
    assert jsonstore.dumps(doc) == text  # canonical: sorted keys, stable layout
    left = ConfigStore(root).entries(SOFTMAX, fresh=True)
    assert sorted(e.key.source_hash for e in left) == ["5050505050505050"] * 2
    assert snapshot(root)[f"configs/{MATMUL}.json"] == before[f"configs/{MATMUL}.json"]

    again = cli("prune", "--write", "--older-than", "0", cwd=tmp_path)
    assert "nothing to prune" in again.stdout
    assert path.read_text() == text  # stable: a second run changes no byte


def test_prune_toolchains_not_installed(tmp_path: Path) -> None:
    root = v1(tmp_path / "store")
    dry = cli("prune", "--toolchain-not-installed", "--cache-dir", str(root), cwd=tmp_path)
    assert "toolchain not installed here: cuda 12.8 -> -, helion 1.5.0 -> " in dry.stdout
    assert "dry run: 3 entries would be dropped" in dry.stdout
    done = cli(
        "prune", "--toolchain-not-installed", "--write", "--cache-dir", str(root), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "deleted (no entries left)" in done.stdout  # matmul had only a GPU entry
    assert ConfigStore(root).kernels() == [SOFTMAX]
    assert [e.key.toolchain for e in ConfigStore(root).entries(SOFTMAX)] == [HERE]


# -- export -------------------------------------------------------------------------------


def test_export_prints_kernel_decorators_per_kernel_and_shape(tmp_path: Path) -> None:
    root = v1(tmp_path / "store")
    done = cli("export", "--kernel", "softmax", "--cache-dir", str(root), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(
        f"# {SOFTMAX} [x=float32[4,64]] on interpreter; cuda 12.8 helion 1.5.0"
    )
    decorators = [line for line in lines if line.startswith("@")]
    assert len(decorators) == 2  # the stale entry is left out
    call = ast.parse(decorators[0][1:]).body[0].value  # type: ignore[attr-defined]
    (config_kw,) = call.keywords
    config_call = config_kw.value
    assert ast.unparse(config_call.func) == "helion.Config"
    assert {k.arg: ast.literal_eval(k.value) for k in config_call.keywords} == {
        "block_sizes": [8],
        "num_warps": 4,
    }
    everything = cli("export", "--all", "--cache-dir", str(root), cwd=tmp_path)
    assert sum(line.startswith("@helion.kernel(") for line in everything.stdout.splitlines()) == 4


def test_export_json_files_load_with_helion(tmp_path: Path) -> None:
    root = build(
        tmp_path / "store",
        entry(config={"block_sizes": [4], "num_warps": 2, "pid_type": "flat"}),
        entry(spec="x=float32[4,64]", config={"block_sizes": [2], "num_warps": 1}),
    )
    out = tmp_path / "exported"
    args = ["export", "--format", "json", "--out", str(out), "--cache-dir", str(root)]
    dry = cli(*args, cwd=tmp_path)
    assert "dry run: 2 files would be written" in dry.stdout
    assert not out.exists()
    done = cli(*args, "--write", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    files = sorted(out.rglob("*.json"))
    assert [p.relative_to(out).as_posix() for p in files] == [
        f"{SOFTMAX}/interpreter__x_float32_4_64_.json",
        f"{SOFTMAX}/interpreter__x_float32_8_32_.json",
    ]
    helion = pytest.importorskip("helion")
    assert helion.Config.load(files[0]) == helion.Config(block_sizes=[2], num_warps=1)
    assert helion.Config.load(files[1]).config == {
        "block_sizes": [4],
        "num_warps": 2,
        "pid_type": "flat",
    }
    listing = json.loads(
        cli("export", "--format", "json", "--cache-dir", str(root), cwd=tmp_path).stdout
    )
    assert [(e["kernel"], e["specialization"]) for e in listing] == [
        (SOFTMAX, "x=float32[4,64]"),
        (SOFTMAX, "x=float32[8,32]"),
    ]


# -- damage and usage ----------------------------------------------------------------------


def test_damaged_file_is_a_clear_error_and_is_never_moved_or_written(tmp_path: Path) -> None:
    root = v1(tmp_path / ".helion-tune")
    broken = ConfigStore(root).path_for(SOFTMAX)
    broken.write_text('{"schema": 1, "entries": [\n<<<<<<< HEAD\n')
    before = snapshot(root)
    where = broken.relative_to(tmp_path)  # as the user named it: --cache-dir is relative
    expected = f"error: {where}: contains merge-conflict markers; resolve the conflict"

    listed = cli("list", cwd=tmp_path)
    assert listed.returncode == 1
    assert expected in listed.stderr.splitlines()
    assert f"{MATMUL}  (" in listed.stdout  # the readable kernels are still listed

    for args in (["show", "softmax"], ["prune", "--write", "--older-than", "0"], ["export"]):
        done = cli(*args, cwd=tmp_path)
        assert done.returncode == 1, args
        assert expected in done.stderr.splitlines(), (args, done.stderr)
    diffed = cli("diff", str(root), str(root), cwd=tmp_path)
    assert diffed.returncode == 1 and f"{SOFTMAX}: cannot compare" in diffed.stdout
    assert snapshot(root) == before  # not moved aside, not rewritten


def test_damaged_baselines_file_stops_only_its_kernels_diff(tmp_path: Path) -> None:
    a = v1(tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    v2(b)
    baselines(b, 1.0)
    (b / "baselines" / f"{SOFTMAX}.json").write_text("[1, 2")
    done = cli("diff", str(a), str(b), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{SOFTMAX}: cannot compare, {b}: {b}/baselines/{SOFTMAX}.json: not valid JSON" in (
        done.stdout
    )
    assert f"error: {SOFTMAX}: {b}: {b}/baselines/{SOFTMAX}.json: not valid JSON" in done.stderr


def test_unreadable_entry_is_reported_and_kept(tmp_path: Path) -> None:
    root = v1(tmp_path / ".helion-tune")
    path = ConfigStore(root).path_for(MATMUL)
    doc = json.loads(path.read_text())
    doc["entries"].append({"config": "not an object"})
    path.write_text(jsonstore.dumps(doc))
    done = cli("list", cwd=tmp_path)
    assert done.returncode == 0
    where = path.relative_to(tmp_path)
    assert f"error: {where}: entry 1 skipped (field 'config' missing or not a dict)" in done.stderr
    cli("prune", "--write", "--older-than", "0", cwd=tmp_path)
    assert {"config": "not an object"} in json.loads(path.read_text())["entries"]


def test_usage_errors(tmp_path: Path) -> None:
    assert cli(cwd=tmp_path).returncode == 2
    assert "invalid choice" in cli("frobnicate", cwd=tmp_path).stderr
    no_store = cli("prune", "--cache-dir", "absent", cwd=tmp_path)
    assert no_store.returncode == 1
    assert no_store.stderr.strip() == "error: absent: no such cache directory"
    wrong = cli("export", "--out", "x", "--cache-dir", str(v1(tmp_path / "s")), cwd=tmp_path)
    assert "use it with --format json" in wrong.stderr
    store = str(v1(tmp_path / "s2"))
    no_out = cli("export", "--format", "json", "--write", "--cache-dir", store, cwd=tmp_path)
    assert no_out.returncode == 1 and "--write writes the files of --out DIR" in no_out.stderr
    assert no_out.stdout == ""


def test_check_source_never_imports_modules_outside_the_project(tmp_path: Path) -> None:
    # A crafted store file naming a standard-library module must not make the CLI import it.
    build(tmp_path / ".helion-tune", entry(kernel="antigravity.fly"), entry(kernel="this.zen"))
    done = cli("list", "--check-source", cwd=tmp_path)
    assert "module antigravity is not part of the project" in done.stderr
    assert "module this is not part of the project" in done.stderr
    assert "The Zen of Python" not in done.stdout + done.stderr  # `import this` prints it
