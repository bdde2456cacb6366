"""The cache CLI: ``python -m pytest_helion_tune [cache] list|show|diff|prune|export``.

Reads stores without changing them (a damaged file is reported, never moved); writes only with ``--write``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import fnmatch
import json
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from . import jsonstore
from .cache import CONFIGS_DIR, ConfigEntry, sort_entries
from .errors import HelionTuneError, StoreError
from .key import toolchain_changes

BASELINES_DIR = "baselines"  # the baseline store's folder; its module is not imported here
DEFAULT_CACHE_DIR = ".helion-tune"
DEFAULT_PRUNE_DAYS = 30.0
_LIST_COLUMNS = (
    "key",
    "specialization",
    "device",
    "source",
    "toolchain",
    "here",
    "age",
    "latency",
    "status",
)


class CliError(HelionTuneError):
    """A command cannot do what it was asked; the message says why, in one line."""


# -- reading stores --------------------------------------------------------------------


@dataclasses.dataclass
class KernelDoc:
    """One ``configs/<kernel>.json`` as read: parsed entries plus any that could not be."""

    kernel: str
    where: str  # a file path, or REV:path
    entries: list[ConfigEntry]
    skipped: list[str]


@dataclasses.dataclass
class Snapshot:
    """A whole store at one place: a directory or a git revision."""

    label: str
    configs: dict[str, KernelDoc] = dataclasses.field(default_factory=dict)
    baselines: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    damaged: dict[str, str] = dataclasses.field(default_factory=dict)  # kernel -> message
    damaged_baselines: dict[str, str] = dataclasses.field(default_factory=dict)

    def kernels(self) -> list[str]:
        return sorted(set(self.configs) | set(self.damaged))


def _parse(text: str, where: str, stem: str) -> tuple[str, list[Any]]:
    doc = jsonstore.parse(text, Path(where))
    kernel = doc.get("kernel")
    return (kernel if isinstance(kernel, str) and kernel else stem), doc["entries"]


def _add_config_file(snapshot: Snapshot, where: str, stem: str, read: Callable[[], str]) -> None:
    try:
        kernel, raw_entries = _parse(read(), where, stem)
    except StoreError as exc:  # DamagedFileError, a newer schema, an unreadable file
        snapshot.damaged[stem] = str(exc)
        return
    except UnicodeDecodeError:
        snapshot.damaged[stem] = f"{where}: not UTF-8 text"
        return
    entries, skipped = [], []
    for index, raw in enumerate(raw_entries):
        try:
            entries.append(ConfigEntry.from_json(kernel, raw))
        except ValueError as exc:
            skipped.append(f"{where}: entry {index} skipped ({exc})")
    snapshot.configs[kernel] = KernelDoc(kernel, where, entries, skipped)


def _add_baseline_file(snapshot: Snapshot, where: str, stem: str, read: Callable[[], str]) -> None:
    try:
        kernel, raw_entries = _parse(read(), where, stem)
    except StoreError as exc:
        snapshot.damaged_baselines[stem] = str(exc)
        return
    except UnicodeDecodeError:
        snapshot.damaged_baselines[stem] = f"{where}: not UTF-8 text"
        return
    snapshot.baselines[kernel] = [e for e in raw_entries if isinstance(e, dict)]


def _read_text(path: Path) -> Callable[[], str]:
    def read() -> str:
        try:
            return path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"{path}: cannot be read ({exc.strerror})") from None

    return read


def read_dir(root: Path) -> Snapshot:
    """A store directory, read-only."""
    snapshot = Snapshot(str(root))
    for folder, add in ((CONFIGS_DIR, _add_config_file), (BASELINES_DIR, _add_baseline_file)):
        directory = root / folder
        if directory.is_dir():
            for path in sorted(directory.glob("*.json")):
                add(snapshot, str(path), path.stem, _read_text(path))
    return snapshot


def _git_bytes(args: Sequence[str], cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except OSError as exc:
        raise CliError(f"cannot run git ({exc.strerror})") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines() or ["failed"]
        raise CliError(f"git {' '.join(args)}: {message[0]}")
    return done.stdout


def _git(args: Sequence[str], cwd: Path) -> str:
    return _git_bytes(args, cwd).decode("utf-8", "surrogateescape")


def read_git(spec: str, cache_dir: Path) -> Snapshot:
    """``REV`` (the cache dir as of that commit) or ``REV:PATH``, read with git."""
    rev, has_path, rel_text = spec.partition(":")
    anchor = cache_dir if cache_dir.is_dir() else Path.cwd()
    top = Path(_git(["rev-parse", "--show-toplevel"], anchor).strip())
    if has_path and rel_text:
        rel = PurePosixPath(rel_text)
    else:
        try:
            rel = PurePosixPath(cache_dir.resolve().relative_to(top.resolve()).as_posix())
        except ValueError:
            raise CliError(f"{cache_dir} is outside the git repository at {top}") from None
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], top).strip()
    except CliError:
        raise CliError(f"{spec}: neither a directory nor a git revision") from None
    snapshot = Snapshot(f"{rev}:{rel}")
    folders = [f"{rel}/{CONFIGS_DIR}/", f"{rel}/{BASELINES_DIR}/"]
    listing = _git(["ls-tree", "-r", "--name-only", "-z", commit, "--", *folders], top)
    for name in sorted(n for n in listing.split("\0") if n.endswith(".json")):
        path = PurePosixPath(name)
        folder = path.parent.name
        if path.parent.parent != rel or folder not in (CONFIGS_DIR, BASELINES_DIR):
            continue

        def read(name: str = name) -> str:
            # Strict decoding: undecodable bytes are damage, reported like any other.
            return _git_bytes(["show", f"{commit}:{name}"], top).decode("utf-8")

        add = _add_config_file if folder == CONFIGS_DIR else _add_baseline_file
        add(snapshot, f"{rev}:{name}", path.stem, read)
    return snapshot


def open_store(spec: str, cache_dir: Path) -> Snapshot:
    path = Path(spec)
    if path.is_dir():
        return read_dir(path)
    if path.exists():
        raise CliError(f"{spec}: not a directory")
    return read_git(spec, cache_dir)


# -- what an entry is worth now ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Status:
    """Whether an entry still serves: ``stale`` says why not ("" when it does)."""

    stale: str
    installed: bool | None  # its toolchain is this machine's; None when unknown
    age_days: float | None


def installed_toolchain() -> dict[str, str] | None:
    """This machine's toolchain, computed exactly as the plugin keys entries."""
    try:
        from .key import toolchain

        return dict(toolchain())
    except Exception:  # no torch here: the CLI still reads and diffs stores
        return None


def _age_days(tuned_at: str, now: datetime.datetime) -> float | None:
    try:
        when = datetime.datetime.fromisoformat(tuned_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (now - when).total_seconds() / 86400)


def statuses(
    doc: KernelDoc,
    installed: dict[str, str] | None,
    current_source: str | None = None,
    now: datetime.datetime | None = None,
) -> list[Status]:
    """One ``Status`` per entry of ``doc``, in order.

    Stale means superseded: a newer entry for the same shape and device exists with another
    source hash or toolchain (the plugin then reads that one), or, when the kernel's
    current source is known, the entry's source hash is not it.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    out = []
    for entry in doc.entries:
        key = entry.key
        newer = [
            other
            for other in doc.entries
            if other.key.specialization == key.specialization
            and other.key.device == key.device
            and other.key != key
            and other.tuned_at
            and entry.tuned_at
            and other.tuned_at > entry.tuned_at
        ]
        reason = ""
        if current_source is not None and key.source_hash != current_source:
            reason = f"kernel source changed (now {current_source})"
        elif newer:
            latest = max(newer, key=lambda e: e.tuned_at).key
            parts = []
            if latest.source_hash != key.source_hash:
                parts.append("kernel source edited")
            if latest.toolchain != key.toolchain:
                parts.append(toolchain_changes(key.toolchain_dict, latest.toolchain_dict))
            reason = "superseded: " + "; ".join(parts)
        out.append(
            Status(
                stale=reason,
                installed=None if installed is None else key.toolchain_dict == installed,
                age_days=_age_days(entry.tuned_at, now),
            )
        )
    return out


def current_source_hash(kernel: str) -> tuple[str | None, str]:
    """Imports ``kernel`` (``module.qualname``) to hash its source; (hash, problem).

    The name comes from a store file, so only a module that lives under the current
    directory (the project being checked) is ever imported: a crafted file cannot make this
    command run code from anywhere else.
    """
    import importlib
    import importlib.util

    from .key import source_hash

    root = Path.cwd().resolve()
    module_name, _, qualname = kernel.rpartition(".")
    while module_name:
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            spec = None
        origin = getattr(spec, "origin", None)
        if spec is not None and (not origin or not Path(origin).resolve().is_relative_to(root)):
            return (
                None,
                f"{kernel}: module {module_name} is not part of the project under {root}; not imported",
            )
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            qualname = f"{head}.{qualname}"
            continue
        except Exception as exc:
            return None, f"importing {module_name} failed ({type(exc).__name__}: {exc})"
        try:
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            return None, f"{kernel}: not found in module {module_name}"
        return source_hash(obj), ""
    return None, f"{kernel}: no importable module (run from the project root)"


# -- formatting --------------------------------------------------------------------------


def _toolchain_text(toolchain: dict[str, str]) -> str:
    return " ".join(f"{n} {v}" for n, v in sorted(toolchain.items()))


def _age_text(days: float | None) -> str:
    if days is None:
        return "?"
    seconds = days * 86400
    if seconds < 60:
        return "now"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{days:.0f}d"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g} ms"


def _change(old: float | None, new: float | None) -> str:
    if old is None or new is None:
        return f"{_ms(old)} -> {_ms(new)}"
    pct = f" ({(new - old) / old * 100:+.1f}%)" if old > 0 else ""
    return f"{old:.4g} -> {new:.4g} ms{pct}"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        (indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
        for r in rows
    ]


def _config_expr(config: dict[str, Any]) -> str:
    """``helion.Config(...)`` as Helion itself prints it (sorted keys, Python literals)."""
    return "helion.Config(" + ", ".join(f"{k}={config[k]!r}" for k in sorted(config)) + ")"


def _entry_json(entry: ConfigEntry, status: Status | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"kernel": entry.key.kernel, "key": entry.key.short, **entry.to_json()}
    if status is not None:
        doc["stale"] = status.stale
        doc["toolchain_installed"] = status.installed
        doc["age_days"] = None if status.age_days is None else round(status.age_days, 3)
    return doc


# -- selecting kernels -------------------------------------------------------------------


def select(names: Iterable[str], pattern: str | None) -> list[str]:
    """Kernels named by ``pattern``: exact, a glob, or a dotted suffix (``softmax``)."""
    names = sorted(names)
    if pattern is None:
        return names
    if pattern in names:
        return [pattern]
    if any(c in pattern for c in "*?["):
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return [n for n in names if n.endswith("." + pattern)]


def _one_kernel(snapshot: Snapshot, pattern: str) -> str:
    found = select(snapshot.kernels(), pattern)
    if not found:
        known = ", ".join(snapshot.kernels()) or "none"
        raise CliError(f"no kernel {pattern!r} in {snapshot.label} (kernels: {known})")
    if len(found) > 1:
        raise CliError(f"{pattern!r} names several kernels: {', '.join(found)}")
    return found[0]


def _report_problems(snapshot: Snapshot, kernels: Iterable[str], err: TextIO) -> int:
    """Prints the damage and skipped entries that touch ``kernels``; 1 if any file is damaged."""
    wanted = set(kernels)
    damaged = [m for k, m in sorted(snapshot.damaged.items()) if k in wanted]
    damaged += [m for k, m in sorted(snapshot.damaged_baselines.items()) if k in wanted]
    skipped = [
        m for k in sorted(wanted & set(snapshot.configs)) for m in snapshot.configs[k].skipped
    ]
    for message in damaged + skipped:
        print(f"error: {message}", file=err)
    return 1 if damaged else 0


# -- commands ----------------------------------------------------------------------------


def cmd_list(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    snapshot = read_dir(Path(ns.cache_dir))
    kernels = select(snapshot.kernels(), ns.kernel)
    installed = installed_toolchain()
    listing: list[dict[str, Any]] = []
    lines: list[str] = []
    counts = {"entries": 0, "stale": 0, "foreign": 0}
    for kernel in kernels:
        doc = snapshot.configs.get(kernel)
        if doc is None:
            lines.append(f"{kernel}  [unreadable: see the error below]")
            continue
        source, problem = current_source_hash(kernel) if ns.check_source else (None, "")
        if problem:
            print(f"warning: {problem}; its source was not checked", file=err)
        rows = [list(_LIST_COLUMNS)]
        recorded = _baseline_latencies(snapshot.baselines.get(kernel, []))
        for entry, status in zip(doc.entries, statuses(doc, installed, source), strict=True):
            if ns.stale and not status.stale:
                continue
            counts["entries"] += 1
            counts["stale"] += bool(status.stale)
            counts["foreign"] += status.installed is False
            baseline_ms = recorded.get((entry.key.specialization, entry.key.device))
            listing.append({**_entry_json(entry, status), "baseline_latency_ms": baseline_ms})
            rows.append(
                [
                    entry.key.short,
                    entry.key.specialization,
                    entry.key.device,
                    entry.key.source_hash,
                    _toolchain_text(entry.key.toolchain_dict),
                    {True: "yes", False: "no", None: "?"}[status.installed],
                    _age_text(status.age_days),
                    _ms(entry.latency_ms)
                    if entry.latency_ms is not None or baseline_ms is None
                    else f"{_ms(baseline_ms)} (baseline)",
                    f"STALE ({status.stale})" if status.stale else "current",
                ]
            )
        if len(rows) > 1:
            lines.append(f"{kernel}  ({doc.where})")
            lines.extend(_table(rows))
    if ns.json:
        json.dump(listing, out, indent=1, sort_keys=True)
        out.write("\n")
    else:
        for line in lines:
            print(line, file=out)
        here = _toolchain_text(installed) if installed is not None else "unknown (no torch)"
        print(
            f"{len(kernels)} kernels, {counts['entries']} entries, {counts['stale']} stale, "
            f"{counts['foreign']} for a toolchain other than this machine's ({here})",
            file=out,
        )
    return _report_problems(snapshot, kernels, err)


def cmd_show(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    snapshot = read_dir(Path(ns.cache_dir))
    kernel = _one_kernel(snapshot, ns.kernel)
    doc = snapshot.configs.get(kernel)
    if doc is None:
        return _report_problems(snapshot, [kernel], err) or 1
    installed = installed_toolchain()
    marks = statuses(doc, installed)
    if ns.json:
        json.dump(
            [_entry_json(e, s) for e, s in zip(doc.entries, marks, strict=True)], out, indent=1
        )
        out.write("\n")
        return _report_problems(snapshot, [kernel], err)
    print(f"{kernel}  ({doc.where}, {len(doc.entries)} entries)", file=out)
    for number, (entry, status) in enumerate(zip(doc.entries, marks, strict=True), 1):
        key = entry.key
        print(file=out)
        state = f"STALE ({status.stale})" if status.stale else "current"
        print(f"[{number}] {key.specialization}  on {key.device}  {state}", file=out)
        here = {True: "installed here", False: "not installed here", None: "?"}[status.installed]
        print(f"    key        {key.short}  source {key.source_hash}", file=out)
        print(f"    toolchain  {_toolchain_text(key.toolchain_dict)}  ({here})", file=out)
        tuned = f"{entry.tuned_at or '?'} ({_age_text(status.age_days)} ago)"
        how = f"{entry.strategy or '?'}, {entry.configs_tested} configs in {entry.tune_seconds:g} s"
        print(f"    tuned      {tuned} by {entry.nodeid or '?'} with {how}", file=out)
        partial = "  (partial: search interrupted)" if entry.partial else ""
        print(
            f"    latency    {_ms(entry.latency_ms)}  eager {_ms(entry.eager_ms)}{partial}",
            file=out,
        )
        print("    config", file=out)
        for name in sorted(entry.config):
            print(f"      {name}: {json.dumps(entry.config[name])}", file=out)
    return _report_problems(snapshot, [kernel], err)


# diff ------------------------------------------------------------------------------------


def _config_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 4) -> str:
    names = [n for n in sorted(set(old) | set(new)) if old.get(n) != new.get(n)]
    parts = [
        f"{n} {json.dumps(old.get(n, '-'))} -> {json.dumps(new.get(n, '-'))}" for n in names[:limit]
    ]
    if len(names) > limit:
        parts.append(f"+{len(names) - limit} more")
    return "; ".join(parts)


def _key_changes(old: ConfigEntry, new: ConfigEntry) -> list[str]:
    parts = []
    if old.key.source_hash != new.key.source_hash:
        parts.append(f"source {old.key.source_hash} -> {new.key.source_hash}")
    if old.key.toolchain != new.key.toolchain:
        parts.append(toolchain_changes(old.key.toolchain_dict, new.key.toolchain_dict))
    return parts


def _slot(entry: ConfigEntry) -> tuple[str, str]:
    return entry.key.specialization, entry.key.device


def _pair(
    a: list[ConfigEntry], b: list[ConfigEntry]
) -> tuple[list[tuple[ConfigEntry, ConfigEntry]], list[ConfigEntry], list[ConfigEntry]]:
    """Pairs entries: same key first, then same shape and device (newest with newest).

    A retune after an edit or an upgrade replaces an entry under a new key; pairing by shape
    shows it as one change (source, toolchain, config, latency) rather than a remove and an add.
    """
    old_keys = {e.key: e for e in a}
    new_keys = {e.key for e in b}
    pairs = [(old_keys[e.key], e) for e in b if e.key in old_keys]
    left = [e for e in a if e.key not in new_keys]
    right = [e for e in b if e.key not in old_keys]
    removed, added = [], []
    for shape in sorted({_slot(e) for e in left} | {_slot(e) for e in right}):
        olds = sorted((e for e in left if _slot(e) == shape), key=lambda e: e.tuned_at)[::-1]
        news = sorted((e for e in right if _slot(e) == shape), key=lambda e: e.tuned_at)[::-1]
        pairs.extend(zip(olds, news, strict=False))
        removed.extend(olds[len(news) :])
        added.extend(news[len(olds) :])
    return pairs, removed, added


def _baseline_id(raw: dict[str, Any]) -> tuple[str, str, str]:
    return (
        str(raw.get("nodeid", raw.get("case", ""))),
        str(raw.get("specialization", "")),
        str(raw.get("device", "")),
    )


def _baseline_latencies(raw: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """Recorded baseline latency by (specialization, device): what ``list`` shows for an entry
    that carries none of its own (written before entries recorded their latency)."""
    out: dict[tuple[str, str], float] = {}
    for r in raw:
        ms = _latency(r)
        if ms is not None:
            out[(str(r.get("specialization", "")), str(r.get("device", "")))] = ms
    return out


def _latency(raw: dict[str, Any]) -> float | None:
    value = raw.get("latency_ms")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def diff_kernel(kernel: str, a: Snapshot, b: Snapshot) -> dict[str, Any]:
    """What changed for one kernel between two snapshots, as plain data."""
    old = a.configs.get(kernel)
    new = b.configs.get(kernel)
    pairs, removed, added = _pair(old.entries if old else [], new.entries if new else [])
    changed, unchanged = [], 0
    for x, y in pairs:
        what = _key_changes(x, y)
        if x.config != y.config:
            what.append("config: " + _config_changes(x.config, y.config))
        if x.latency_ms != y.latency_ms:
            what.append("latency " + _change(x.latency_ms, y.latency_ms))
        if x.partial != y.partial:
            what.append("partial" if y.partial else "no longer partial")
        if not what:
            unchanged += 1
            continue
        changed.append(
            {
                "specialization": y.key.specialization,
                "device": y.key.device,
                "changes": what,
                "latency_ms": [x.latency_ms, y.latency_ms],
                "before": x.to_json(),
                "after": y.to_json(),
            }
        )
    baselines = []
    old_b = {_baseline_id(r): r for r in a.baselines.get(kernel, [])}
    new_b = {_baseline_id(r): r for r in b.baselines.get(kernel, [])}
    for ident in sorted(set(old_b) | set(new_b)):
        x_ms = _latency(old_b[ident]) if ident in old_b else None
        y_ms = _latency(new_b[ident]) if ident in new_b else None
        state = "added" if ident not in old_b else "removed" if ident not in new_b else "changed"
        if state == "changed" and x_ms == y_ms:
            continue
        baselines.append(
            {
                "case": ident[0],
                "specialization": ident[1],
                "device": ident[2],
                "state": state,
                "latency_ms": [x_ms, y_ms],
            }
        )
    return {
        "added": [e.to_json() for e in added],
        "removed": [e.to_json() for e in removed],
        "changed": changed,
        "unchanged": unchanged,
        "baselines": baselines,
    }


def _entry_line(sign: str, raw: dict[str, Any]) -> str:
    return (
        f"  {sign} [{raw['specialization']}] on {raw['device']}  "
        f"{_toolchain_text(raw['toolchain'])}  source {raw['source_hash']}  {_ms(raw['latency_ms'])}"
    )


def cmd_diff(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cache_dir = Path(ns.cache_dir)
    a = open_store(ns.a, cache_dir)
    b = open_store(ns.b, cache_dir) if ns.b else read_dir(cache_dir)
    names = {*a.kernels(), *b.kernels(), *a.baselines, *b.baselines}
    kernels = select(names | set(a.damaged_baselines) | set(b.damaged_baselines), ns.kernel)
    result: dict[str, Any] = {"a": a.label, "b": b.label, "kernels": {}, "unreadable": {}}
    totals = {"added": 0, "removed": 0, "changed": 0, "baselines": 0}
    lines = [f"--- {a.label}", f"+++ {b.label}"]
    for kernel in kernels:
        broken = [
            f"{s.label}: {problems[kernel]}"
            for s in (a, b)
            for problems in (s.damaged, s.damaged_baselines)
            if kernel in problems
        ]
        if broken:
            result["unreadable"][kernel] = broken
            lines.append(f"{kernel}: cannot compare, {'; '.join(broken)}")
            continue
        d = diff_kernel(kernel, a, b)
        if not (d["added"] or d["removed"] or d["changed"] or d["baselines"]):
            continue
        result["kernels"][kernel] = d
        for name in totals:
            totals[name] += len(d[name])
        lines.append(kernel)
        lines.extend(_entry_line("+", e) for e in d["added"])
        lines.extend(_entry_line("-", e) for e in d["removed"])
        for c in d["changed"]:
            lines.append(
                f"  ~ [{c['specialization']}] on {c['device']}: " + "; ".join(c["changes"])
            )
        for base in d["baselines"]:
            what = _change(*base["latency_ms"]) if base["state"] == "changed" else base["state"]
            lines.append(
                f"  baseline {base['case']} [{base['specialization']}] on {base['device']}: {what}"
            )
    result["summary"] = totals
    if ns.json:
        json.dump(result, out, indent=1, sort_keys=True)
        out.write("\n")
    else:
        for line in lines:
            print(line, file=out)
        print(
            f"{totals['added']} added, {totals['removed']} removed, {totals['changed']} changed, "
            f"{totals['baselines']} baseline changes",
            file=out,
        )
    for kernel, messages in result["unreadable"].items():
        for message in messages:
            print(f"error: {kernel}: {message}", file=err)
    if result["unreadable"]:
        return 1
    differs = any(totals.values())
    return 1 if ns.exit_code and differs else 0


# prune -----------------------------------------------------------------------------------


def _identity(raw: Any, kernel: str) -> tuple[Any, ...] | None:
    try:
        return dataclasses.astuple(ConfigEntry.from_json(kernel, raw).key)
    except ValueError:
        return None  # an entry we cannot read is never pruned


def rewrite_without(path: Path, kernel: str, drop: set[tuple[Any, ...]]) -> str:
    """Removes entries from one store file under its lock; returns what happened."""
    with jsonstore.locked(path):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return "gone"
        doc = jsonstore.parse(text, path)  # a file damaged since the plan: raise, touch nothing
        kept = [raw for raw in doc["entries"] if _identity(raw, kernel) not in drop]
        if len(kept) == len(doc["entries"]):
            return "unchanged"
        if not kept:
            path.unlink()
            return "deleted (no entries left)"
        doc["entries"] = sort_entries(kept)
        jsonstore.write_atomic(path, jsonstore.dumps(doc))
        return f"rewritten ({len(kept)} entries kept)"


def cmd_prune(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    root = Path(ns.cache_dir)
    if not root.is_dir():
        raise CliError(f"{root}: no such cache directory")
    snapshot = read_dir(root)
    installed = installed_toolchain() if ns.toolchain_not_installed else None
    if ns.toolchain_not_installed and installed is None:
        raise CliError(
            "--toolchain-not-installed needs torch importable here to know the toolchain"
        )
    plan: dict[str, list[tuple[ConfigEntry, str]]] = {}
    for kernel in select(snapshot.kernels(), ns.kernel):
        doc = snapshot.configs.get(kernel)
        if doc is None:
            continue
        source, problem = current_source_hash(kernel) if ns.check_source else (None, "")
        if problem:
            print(f"warning: {problem}; its source was not checked", file=err)
        for entry, status in zip(doc.entries, statuses(doc, installed, source), strict=True):
            age = status.age_days
            why = ""
            if status.stale and age is not None and age >= ns.older_than:
                why = f"{status.stale}; {_age_text(age)} old"
            elif ns.toolchain_not_installed and status.installed is False:
                assert installed is not None
                why = "toolchain not installed here: " + toolchain_changes(
                    entry.key.toolchain_dict, installed
                )
            if why:
                plan.setdefault(kernel, []).append((entry, why))
    total = sum(len(v) for v in plan.values())
    for kernel, drops in plan.items():
        print(f"{kernel}  ({snapshot.configs[kernel].where})", file=out)
        for entry, why in drops:
            print(f"  - [{entry.key.specialization}] on {entry.key.device}: {why}", file=out)
    code = _report_problems(snapshot, snapshot.kernels(), err)
    if not total:
        print("nothing to prune", file=out)
        return code
    if not ns.write:
        print(f"dry run: {total} entries would be dropped; nothing written (add --write)", file=out)
        return code
    for kernel, drops in plan.items():
        path = Path(snapshot.configs[kernel].where)
        identities = {dataclasses.astuple(e.key) for e, _ in drops}
        try:
            outcome = rewrite_without(path, kernel, identities)
        except StoreError as exc:
            print(f"error: {exc}", file=err)
            code = 1
            continue
        print(f"{path}: {outcome}", file=out)
    return code


# export ----------------------------------------------------------------------------------


def _export_name(entry: ConfigEntry) -> str:
    return jsonstore.safe_filename(f"{entry.key.device}__{entry.key.specialization}")


def cmd_export(ns: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    snapshot = read_dir(Path(ns.cache_dir))
    kernels = select(snapshot.kernels(), ns.kernel)
    chosen: list[ConfigEntry] = []
    for kernel in kernels:
        doc = snapshot.configs.get(kernel)
        if doc is None:
            continue
        for entry, status in zip(doc.entries, statuses(doc, None), strict=True):
            if status.stale and not ns.all:
                continue
            if ns.device and ns.device not in entry.key.device:
                continue
            chosen.append(entry)
    code = _report_problems(snapshot, kernels, err)
    if ns.write and ns.out is None:
        raise CliError("--write writes the files of --out DIR: give --out (and --format json)")
    if ns.out is not None and ns.format != "json":
        raise CliError("--out writes Helion-loadable JSON files: use it with --format json")
    if ns.format == "decorator":
        for entry in chosen:
            key = entry.key
            print(
                f"# {key.kernel} [{key.specialization}] on {key.device}; "
                f"{_toolchain_text(key.toolchain_dict)}; {_ms(entry.latency_ms)}",
                file=out,
            )
            print(f"@helion.kernel(config={_config_expr(entry.config)})", file=out)
        return code
    if ns.out is None:
        listing = [
            {
                "kernel": e.key.kernel,
                "specialization": e.key.specialization,
                "device": e.key.device,
                "toolchain": e.key.toolchain_dict,
                "config": e.config,
            }
            for e in chosen
        ]
        json.dump(listing, out, indent=1, sort_keys=True)
        out.write("\n")
        return code
    files: dict[Path, ConfigEntry] = {}
    for entry in chosen:
        folder = Path(ns.out) / jsonstore.safe_filename(entry.key.kernel)
        path = folder / f"{_export_name(entry)}.json"
        if path in files:  # same shape and device under two toolchains
            path = folder / f"{_export_name(entry)}__{entry.key.short}.json"
        files[path] = entry
    for path, entry in files.items():
        print(
            f"{path}  <- {entry.key.kernel} [{entry.key.specialization}] on {entry.key.device}",
            file=out,
        )
    if not ns.write:
        print(
            f"dry run: {len(files)} files would be written; nothing written (add --write)", file=out
        )
        return code
    for path, entry in files.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CliError(f"{path.parent}: cannot create the directory ({exc.strerror})") from None
        # Exactly what helion.Config.load reads: the config's own JSON object.
        jsonstore.write_atomic(path, json.dumps(entry.config, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(files)} files; load one with helion.Config.load(path)", file=out)
    return code


# -- entry point -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_helion_tune",
        description="Inspect and maintain the committed Helion config store "
        "(the word 'cache' may precede a command).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir",
        default=DEFAULT_CACHE_DIR,
        metavar="PATH",
        help=f"the store (default: {DEFAULT_CACHE_DIR})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", parents=[common], help="kernels, keys, devices, ages, stale entries")
    p.add_argument("--kernel", metavar="NAME", help="a kernel name, dotted suffix or glob")
    p.add_argument("--stale", action="store_true", help="only stale entries")
    p.add_argument(
        "--check-source",
        action="store_true",
        help="import each kernel to compare its current source hash (run from the project root)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", parents=[common], help="one kernel's entries, readably")
    p.add_argument("kernel", metavar="KERNEL", help="a kernel name or its dotted suffix")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "diff",
        parents=[common],
        help="entries added, removed, changed between two stores",
        description="A and B are store directories or git revisions (REV for the cache dir "
        "as of REV, or REV:PATH). B defaults to the cache dir in the working tree.",
    )
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B", nargs="?")
    p.add_argument("--kernel", metavar="NAME", help="a kernel name, dotted suffix or glob")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the stores differ")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser(
        "prune",
        parents=[common],
        help="drop stale entries; a dry run unless --write",
        description="Drops stale entries (superseded by a newer entry for the same shape and "
        "device, or, with --check-source, not matching the kernel's current source) older "
        "than --older-than days, and with --toolchain-not-installed every entry whose "
        "toolchain differs from this machine's. Nothing is written without --write.",
    )
    p.add_argument(
        "--older-than",
        type=float,
        default=DEFAULT_PRUNE_DAYS,
        metavar="DAYS",
        help=f"age of the stale entries to drop (default {DEFAULT_PRUNE_DAYS:g}; 0 for all)",
    )
    p.add_argument(
        "--toolchain-not-installed",
        action="store_true",
        help="also drop entries for toolchains other than this machine's (careful: entries "
        "written on a GPU machine have a toolchain a CPU machine lacks)",
    )
    p.add_argument("--check-source", action="store_true", help="see list --check-source")
    p.add_argument("--kernel", metavar="NAME", help="a kernel name, dotted suffix or glob")
    p.add_argument("--write", action="store_true", help="rewrite the files (else a dry run)")
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser(
        "export",
        parents=[common],
        help="configs as @helion.kernel(config=...) lines or Helion-loadable JSON",
    )
    p.add_argument("--kernel", metavar="NAME", help="a kernel name, dotted suffix or glob")
    p.add_argument("--device", metavar="TEXT", help="only entries whose device contains TEXT")
    p.add_argument("--format", choices=("decorator", "json"), default="decorator")
    p.add_argument("--all", action="store_true", help="stale entries too")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="with --format json: one file per kernel and shape, for helion.Config.load",
    )
    p.add_argument("--write", action="store_true", help="write the --out files (else a dry run)")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["cache"]:  # `python -m pytest_helion_tune cache list` == `... list`
        args = args[1:]
    ns = build_parser().parse_args(args)
    try:
        code: int = ns.func(ns, sys.stdout, sys.stderr)
    except HelionTuneError as exc:  # CliError, StoreError: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... | head`
        return 0
    return code
