"""One committed JSON document per file: locked read-merge-write, atomic replace, stable bytes.

Shared by the config store and the baseline store; knows nothing of what the entries mean.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import DamagedFileError, StoreError

SCHEMA = 1
LOCK_TIMEOUT_S = 600.0  # a tuning write holds the lock for milliseconds; minutes means a stuck peer
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_IGNORE = (
    "# written by pytest-helion-tune: lock and temporary files are never committed\n*.lock\n*.tmp\n"
)

Document = dict[str, Any]


def safe_filename(name: str) -> str:
    """A file name for ``name`` that cannot leave its directory."""
    cleaned = _SAFE.sub("_", name).strip(".") or "unnamed"
    return cleaned[:200]


def _format(value: Any, indent: str) -> str:
    # Lists of scalars stay on one line ("block_sizes": [64, 32]): a changed tile size is
    # then a one-line diff, and a config stays readable at a glance.
    if isinstance(value, dict) and value:
        inner = indent + "  "
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: {_format(value[k], inner)}"
            for k in sorted(value)
        ]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + _format(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(", ", ": ")
    )


def dumps(doc: Document) -> str:
    """The canonical text of a store file: sorted keys, stable layout, trailing newline."""
    return _format(doc, "") + "\n"


def _timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def move_aside(path: Path) -> Path:
    """Renames a damaged file out of the way (never overwrites it) and returns the new path."""
    target = path.with_name(f"{path.name}.damaged-{_timestamp()}")
    os.replace(path, target)
    return target


def parse(text: str, path: Path) -> Document:
    """Parses one store document; raises ``DamagedFileError`` naming the file."""
    if "<<<<<<<" in text or ">>>>>>>" in text:
        raise DamagedFileError(f"{path}: contains merge-conflict markers; resolve the conflict")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise DamagedFileError(f"{path}: expected a JSON object at the top level")
    schema = doc.get("schema")
    if not isinstance(schema, int):
        raise DamagedFileError(f"{path}: missing or non-integer 'schema' field")
    if schema > SCHEMA:
        raise StoreError(
            f"{path}: schema {schema} is newer than this pytest-helion-tune understands "
            f"({SCHEMA}); upgrade the plugin. The file was left untouched."
        )
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise DamagedFileError(f"{path}: 'entries' must be a list")
    return doc


def read(path: Path, notes: list[str] | None = None) -> Document | None:
    """Reads ``path``; a damaged file is moved aside, noted, and read as absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        text = "\x00"  # undecodable bytes: treated like any other damage below
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return parse(text, path)
    except DamagedFileError as exc:
        moved = move_aside(path)
        if notes is not None:
            notes.append(f"{exc}; moved aside to {moved.name}")
        return None


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{directory}: cannot create the directory ({exc.strerror})") from None
    ignore = directory.parent / ".gitignore"
    if directory.parent.name and not ignore.exists():
        with contextlib.suppress(OSError):
            ignore.write_text(_IGNORE, encoding="utf-8")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds ``<path>.lock`` (one writer per file across processes)."""
    import filelock

    _ensure_dir(path.parent)
    lock = filelock.FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            yield
    except filelock.Timeout:
        raise StoreError(
            f"{path}: waited {LOCK_TIMEOUT_S:.0f} s for {path.name}.lock; another process holds it"
        ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_orphans(path: Path) -> None:
    """Deletes temporary files of writers that died mid-write (their pid is in the name)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid_text = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def write_atomic(path: Path, text: str) -> None:
    """Writes via a temporary file in the same directory and ``os.replace``: never half-written."""
    _remove_orphans(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; committed files are ordinary files
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise StoreError(
            f"{path}: cannot be written ({exc.strerror}); the previous file is intact"
        ) from None


def update(
    path: Path,
    mutate: Callable[[Document | None], Document],
    notes: list[str] | None = None,
) -> Document:
    """Locks, re-reads, applies ``mutate`` and replaces the file; skips the write if nothing changed."""
    with locked(path):
        before = read(path, notes)
        after = mutate(before)
        text = dumps(after)
        if before is None or dumps(before) != text:
            write_atomic(path, text)
        return after
