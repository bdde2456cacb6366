"""One committed JSON document per file: locked read-merge-write, atomic replace, stable bytes,
damaged files moved aside and what they still hold recovered.

Shared by the config store and the baseline store; of entries it knows only their ``config``.
"""

from __future__ import annotations

import abc
import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import DamagedFileError, StoreError

SCHEMA = 1
LOCK_TIMEOUT_S = 600.0  # a tuning write holds the lock for milliseconds; minutes means a stuck peer
LOCK_TIMEOUT_ENV = "HELION_TUNE_LOCK_TIMEOUT"  # seconds; overrides LOCK_TIMEOUT_S
# A line that git writes around a conflict (diff3 style included).
_CONFLICT = re.compile(r"^(?:<{7}|={7}|>{7}|\|{7})(?: .*)?\r?$", re.MULTILINE)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_SCHEMA_FIELD = re.compile(r'"schema"\s*:\s*(\d{1,9})\b')
_SURROGATE = re.compile("[\ud800-\udfff]")
_IGNORE = (
    "# written by pytest-helion-tune: lock and temporary files are never committed\n*.lock\n*.tmp\n"
)

Document = dict[str, Any]


def safe_filename(name: str) -> str:
    """A file name for ``name`` that cannot leave its directory. A name with non-ASCII
    characters or over 200 characters gets a hash of itself appended, so that two such names
    (``softmax_`` and two Greek letters) never share a file; an ASCII name keeps its readable form."""
    cleaned = _SAFE.sub("_", name).strip(".") or "unnamed"
    if name.isascii() and len(cleaned) <= 200:
        return cleaned
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{cleaned[:180]}-{digest}"


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
    # A lone surrogate (read from a "\ud800" escape) cannot be written as UTF-8: keep it escaped.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", _format(doc, "")) + "\n"


def _timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def move_aside(path: Path) -> Path:
    """Renames a damaged file out of the way (never overwrites it) and returns the new path."""
    target = path.with_name(f"{path.name}.damaged-{_timestamp()}")
    os.replace(path, target)
    return target


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; no store file may hold them (dumps refuses them).
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as infinity
        raise ValueError(f"{text} is out of range")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as json.loads skips it


def _loads(text: str) -> Any:
    """``json.loads`` without NaN/Infinity; every failure is a ``ValueError``."""
    try:
        value, end = _DECODER.raw_decode(text, _SPACE.match(text).end())  # type: ignore[union-attr]
    except RecursionError:
        raise ValueError("nested too deeply") from None
    end = _SPACE.match(text, end).end()  # type: ignore[union-attr]
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def parse(text: str, path: Path) -> Document:
    """Parses one store document; raises ``DamagedFileError`` naming the file.

    A newer schema raises ``StoreError`` (the file must be left alone), also where the file is
    damaged as well (salvaging it would write it back under this schema); an older one is
    migrated.
    """
    try:
        return _parse(text, path)
    except DamagedFileError:
        declared = max((int(n) for n in _SCHEMA_FIELD.findall(text)), default=SCHEMA)
        if declared > SCHEMA:
            raise StoreError(
                f"{path}: damaged, and it declares schema {declared}, newer than this "
                f"pytest-helion-tune understands ({SCHEMA}); upgrade the plugin. The file was "
                "left untouched."
            ) from None
        raise


def _parse(text: str, path: Path) -> Document:
    if _CONFLICT.search(text):
        raise DamagedFileError(f"{path}: contains merge-conflict markers; resolve the conflict")
    try:
        doc = _loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except ValueError as exc:
        raise DamagedFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise DamagedFileError(f"{path}: expected a JSON object at the top level")
    schema = doc.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise DamagedFileError(f"{path}: missing or non-integer 'schema' field")
    if schema > SCHEMA:
        raise StoreError(
            f"{path}: schema {schema} is newer than this pytest-helion-tune understands "
            f"({SCHEMA}); upgrade the plugin. The file was left untouched."
        )
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise DamagedFileError(f"{path}: 'entries' must be a list")
    return _migrate(doc)


def _migrate(doc: Document) -> Document:
    # Schema 0 (before versioning was settled) had the same layout; each future layout change
    # adds a step here, so an old committed file is read, and rewritten at the next write.
    if doc["schema"] < SCHEMA:
        doc = {**doc, "schema": SCHEMA}
    return doc


_MAX_SALVAGE_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _depth(text: str) -> int:
    """How deep brackets nest outside strings (a damaged text may close more than it opens)."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub('""', text)):
        depth = depth + 1 if bracket in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def salvage(text: str) -> list[Any]:
    """The entries still readable in a damaged document: every JSON object in the text that
    parses on its own and carries a ``config`` object, in order, duplicates dropped.

    Merge-conflict marker lines are removed first, so both sides of a conflict are kept.
    """
    text = _CONFLICT.sub("", text)
    if _depth(text) > _MAX_SALVAGE_DEPTH:
        return []  # no store file nests this deep, and scanning it would take minutes
    found: list[Any] = []
    seen: set[str] = set()
    start = text.find("{")
    while start >= 0:
        try:
            value, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            value, end = None, start + 1
        if isinstance(value, dict) and isinstance(value.get("config"), dict):
            canonical = json.dumps(value, sort_keys=True)
            if canonical not in seen:
                seen.add(canonical)
                found.append(value)
        else:
            end = start + 1  # not an entry: look inside it, an entry may be nested there
        start = text.find("{", end)
    return found


def read(path: Path, notes: list[str] | None = None, *, _held: bool = False) -> Document | None:
    """Reads ``path``. A damaged file is moved aside (never overwritten), the entries it still
    holds are written back in its place and returned, and a note says so; without them it
    reads as absent."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path}: cannot be read ({exc.strerror})") from None
    text = data.decode("utf-8", errors="replace")
    try:
        data.decode("utf-8")
        return parse(text, path)
    except UnicodeDecodeError:
        damage = f"{path}: not UTF-8 text"
    except DamagedFileError as exc:
        damage = str(exc)
    recovered = salvage(text)
    if not _held:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(locked(path))
            except LockError as exc:
                where = f"left as it is ({exc.reason})"
            else:
                # Under the lock: another process may have repaired it meanwhile.
                return read(path, notes, _held=True)
    else:
        where = _repair(path, recovered)
    if recovered and "recovered" not in where:
        where += f"; {_count(recovered)} recovered and used"
    if notes is not None:
        notes.append(f"{damage}; {where}")
    return {"schema": SCHEMA, "entries": recovered} if recovered else None


def _count(entries: list[Any]) -> str:
    return f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"


def _repair(path: Path, recovered: list[Any]) -> str:
    """Moves a damaged file aside and writes what it still holds in its place (under the lock);
    says what happened."""
    try:
        where = f"moved aside to {move_aside(path).name}"
    except FileNotFoundError:
        return "moved aside by another process"
    except OSError as exc:
        return f"could not be moved aside ({exc.strerror}), left as it is"
    if not recovered:
        return where
    count = _count(recovered)
    try:
        write_atomic(path, dumps({"schema": SCHEMA, "entries": recovered}))
    except StoreError as exc:
        return f"{where}; {count} recovered for this run but not written back ({exc})"
    return f"{where}; {count} recovered and written back"


def _ensure_dir(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{directory}: cannot create the directory ({exc.strerror})") from None
    ignore = directory.parent / ".gitignore"
    if directory.parent.name and not ignore.exists():
        with contextlib.suppress(OSError):
            ignore.write_text(_IGNORE, encoding="utf-8")


class LockError(StoreError):
    """The lock of a store file cannot be taken: held too long by another process, or the
    directory refuses it (read-only, full)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def lock_timeout() -> float:
    """Seconds a writer waits for a file's lock: ``HELION_TUNE_LOCK_TIMEOUT`` or the default."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        value = float(raw)
    except ValueError:
        return LOCK_TIMEOUT_S
    return value if value > 0 and value == value else LOCK_TIMEOUT_S


@contextlib.contextmanager
def locked(path: Path, *, wait: bool = False) -> Iterator[None]:
    """Holds ``<path>.lock`` (one writer per file across processes).

    The lock is ``fcntl.flock``: it dies with its holder, so a killed writer never blocks the
    next one. A live holder makes the writer wait ``lock_timeout()`` seconds, then fail; with
    ``wait`` as long as the holder lives (a claim held for a whole search).
    """
    import filelock

    _ensure_dir(path.parent)
    timeout = -1.0 if wait else lock_timeout()
    lock = filelock.FileLock(str(path) + ".lock", timeout=timeout)
    try:
        lock.acquire()
    except filelock.Timeout:
        reason = f"waited {timeout:g} s for {path.name}.lock; another process holds it"
        raise LockError(
            f"{path}: {reason} (set {LOCK_TIMEOUT_ENV} to wait longer)", reason
        ) from None
    except OSError as exc:  # a read-only directory, a full disk
        reason = f"cannot take {path.name}.lock ({exc.strerror or exc})"
        raise LockError(f"{path}: {reason}; nothing was written", reason) from None
    try:
        yield
    finally:
        lock.release()


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
    """Writes via a temporary file in the same directory and ``os.replace``: never half-written.

    Whatever stops the write (a full disk, a read-only directory, Ctrl-C) leaves the previous
    file as it was and removes the temporary file.
    """
    _remove_orphans(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; committed files are ordinary files
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise StoreError(
                f"{path}: cannot be written ({exc.strerror or exc}); the previous file is intact"
            ) from None
        raise


def update(
    path: Path,
    mutate: Callable[[Document | None], Document],
    notes: list[str] | None = None,
) -> Document:
    """Locks, re-reads, applies ``mutate`` and replaces the file; skips the write if nothing changed.

    Top-level fields that ``mutate`` does not know (a newer writer's, a note left by hand) stay.
    """
    with locked(path):
        before = read(path, notes, _held=True)
        after = mutate(before)
        for name, value in (before or {}).items():
            after.setdefault(name, value)
        text = dumps(after)
        if before is None or dumps(before) != text:
            write_atomic(path, text)
        return after


E = TypeVar("E")


class KernelFiles(abc.ABC, Generic[E]):
    """One document per kernel under ``<root>/<subdir>/``: cached reads, entries parsed from
    untrusted JSON (bad ones noted and kept in the file), and merged, locked writes.

    The config store and the baseline store differ only in their entries and identities.
    """

    subdir = ""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.notes: list[str] = []  # damaged files and skipped entries, for the summary
        self._docs: dict[str, Document | None] = {}

    @abc.abstractmethod
    def parse_entry(self, kernel: str, raw: Any) -> E:
        """One entry from JSON; ``ValueError`` naming the field when it is not one."""

    @abc.abstractmethod
    def identity(self, raw: Any) -> tuple[str, ...]:
        """What makes two raw entries the same entry; also the order in the file."""

    def path_for(self, kernel: str) -> Path:
        return self.root / self.subdir / f"{safe_filename(kernel)}.json"

    def _document(self, kernel: str, *, fresh: bool = False) -> Document | None:
        if fresh or kernel not in self._docs:
            self._docs[kernel] = read(self.path_for(kernel), self.notes)
        return self._docs[kernel]

    def entries(self, kernel: str, *, fresh: bool = False) -> list[E]:
        """Every valid entry of ``kernel``; invalid ones are noted, skipped and kept in the file."""
        doc = self._document(kernel, fresh=fresh)
        if doc is None:
            return []
        out = []
        for index, raw in enumerate(doc["entries"]):
            try:
                out.append(self.parse_entry(kernel, raw))
            except ValueError as exc:
                note = f"{self.path_for(kernel)}: entry {index} skipped ({exc}); it is kept in the file"
                if note not in self.notes:
                    self.notes.append(note)
        return out

    def sort_entries(self, entries: Iterable[Any]) -> list[Any]:
        """A stable order, so that a file's diff shows only what changed."""
        return sorted(entries, key=self.identity)

    def put_raw(self, kernel: str, new: dict[str, Any], known: frozenset[str]) -> None:
        """Adds or replaces the entry with ``new``'s identity, re-read under the lock (another
        process may have written meanwhile); every other entry, and the fields of the replaced
        one that this version does not know (``known``), stay."""
        wanted = self.identity(new)

        def merge(doc: Document | None) -> Document:
            entries: list[Any] = []
            replaced: list[dict[str, Any]] = []
            for e in (doc or {}).get("entries", []):
                same = isinstance(e, dict) and self.identity(e) == wanted
                (replaced if same else entries).append(e)
            kept = {k: v for old in replaced for k, v in old.items() if k not in known}
            entries.append({**kept, **new})
            return {"schema": SCHEMA, "kernel": kernel, "entries": self.sort_entries(entries)}

        self._docs[kernel] = update(self.path_for(kernel), merge, self.notes)

    def kernels(self) -> list[str]:
        directory = self.root / self.subdir
        if not directory.is_dir():
            return []
        return sorted(p.stem for p in directory.glob("*.json"))
