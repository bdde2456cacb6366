"""Merges ``run.py --archive`` archives from GPU machines into the committed results folder.

Each archive holds the whole results folder as it was on the machine after its run, including
the files that run did not touch, as they were when the machine got its copy of the tree (older,
when an earlier archive of the same batch changed them). So a file is taken from an archive only
where it differs from the committed one (``git HEAD``); archives are merged in the order given,
the later one winning where two changed a file. ``runlog.jsonl`` gets each archive's lines that
it lacks, in order; Helion's logs (``logs/``, only the run's own: the machine's tree has none)
go into ``--logs-dir``, where the earlier stage logs of a search the archive ran again are
removed (a search clears its ``<base>-*`` logs when it starts, so a stage it did not reach this
time, say ``-lfbo`` where it now climbed, would otherwise stay beside the new ones); the
device's ``_device.json`` is kept as committed unless ``--device-json``.

A machine's tree can hold results merged from an earlier call but not yet committed, and its
archive then carries them too, in the version the machine got: a result file (JSON with a
``finished_at``) is taken only where it finished later than the one already in the folder, and a
re-timing file taken over an older one keeps that one in its ``history`` (the re-timing on the
machine did not see it). Usage::

    python benchmarks/merge_results.py A.tar.gz [B.tar.gz ...] --into benchmarks/results/DEVICE \
        [--logs-dir logs-cold] [--device-json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: ``benchmarks`` is this folder
    sys.path.insert(0, str(ROOT))

RUNLOG = "runlog.jsonl"
DEVICE = "_device.json"


def committed(path: Path) -> bytes | None:
    """The file's bytes at git HEAD, or None where git does not have it."""
    done = subprocess.run(
        ["git", "show", f"HEAD:./{path.name}"],
        cwd=path.parent,
        capture_output=True,
        check=False,
    )
    return done.stdout if done.returncode == 0 else None


def _finished(data: bytes) -> tuple[str, dict[str, Any]] | None:
    """A result file's ``finished_at`` (ISO 8601, UTC: ordered as text) and its object."""
    try:
        obj = json.loads(data)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get("finished_at"), str):
        return obj["finished_at"], obj
    return None


def newest(current: bytes | None, new: bytes) -> bytes | None:
    """What an archive's file leaves in the folder: ``new``, unless both are result files and
    ``current`` finished later (then None: keep it). A re-timing file (one with
    ``contenders``; its first on a machine has no ``history`` yet) that replaces an older one
    gets that one and its history joined into its own."""
    if current is None:
        return new
    old, fresh = _finished(current), _finished(new)
    if old is None or fresh is None:
        return new
    if old[0] > fresh[0]:
        return None
    if "contenders" not in fresh[1] or old[0] == fresh[0]:
        return new
    from benchmarks.run import RETIME_HISTORY, retime_snapshot

    own = fresh[1].get("history", [])
    earlier = [*old[1].get("history", []), retime_snapshot(old[1]), *own]
    joined = {str(h.get("finished_at")): h for h in earlier}
    if len(joined) == len(own):
        return new
    history = [joined[at] for at in sorted(joined)]
    merged = {**fresh[1], "history": history[-RETIME_HISTORY:]}
    return (json.dumps(merged, indent=1, sort_keys=True) + "\n").encode()


def _results_dir(root: Path, into: Path) -> Path:
    """The folder in an extracted archive that holds the results: the one named like ``into``,
    else the one holding ``_device.json``."""
    named = [p for p in root.rglob(into.name) if p.is_dir()]
    if named:
        return named[0]
    found = [p.parent for p in root.rglob(DEVICE)]
    if not found:
        raise SystemExit(f"merge_results: no results folder ({DEVICE}) in the archive")
    return found[0]


def search_base(name: str) -> str:
    """The search a Helion log file belongs to: ``x__seeded_warm`` for
    ``x__seeded_warm-climb1.csv`` (stage suffixes start with ``-``; base names have no dots)."""
    return name.split(".")[0].split("-")[0]


def _remove_stale_logs(new: Path, logs: Path, done: dict[str, list[str]]) -> None:
    """Removes from ``logs`` the files of every search that has logs in ``new`` but that ``new``
    lacks: the search ran again and cleared them first."""
    if not new.is_dir() or not logs.is_dir():
        return
    fresh = {p.name for p in new.iterdir() if p.is_file()}
    for base in sorted({search_base(n) for n in fresh}):
        for old in sorted(logs.iterdir()):
            if old.name in fresh or search_base(old.name) != base:
                continue
            old.unlink()
            done["stale_logs"].append(str(old))


def merge(
    archives: Sequence[Path], into: Path, logs_dir: str, device_json: bool
) -> dict[str, list[str]]:
    """Merges ``archives`` into ``into``; returns what it did, by kind."""
    done: dict[str, list[str]] = {
        "files": [],
        "runlog_lines": [],
        "logs": [],
        "stale_logs": [],
        "older_kept": [],
    }
    runlog = into / RUNLOG
    lines = runlog.read_text(encoding="utf-8").splitlines() if runlog.exists() else []
    for archive in archives:
        with tempfile.TemporaryDirectory(prefix="merge-results-") as tmp:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            source = _results_dir(Path(tmp), into)
            _remove_stale_logs(source / "logs", into / logs_dir, done)
            for path in sorted(source.rglob("*")):
                if not path.is_file():
                    continue
                rel = path.relative_to(source)
                if rel.parts[0] == "logs":
                    target = into / logs_dir / Path(*rel.parts[1:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                    done["logs"].append(str(target.relative_to(into)))
                elif rel.name == RUNLOG and len(rel.parts) == 1:
                    for line in path.read_text(encoding="utf-8").splitlines():
                        if line.strip() and line not in lines:
                            lines.append(line)
                            done["runlog_lines"].append(line)
                elif rel.name == DEVICE and len(rel.parts) == 1 and not device_json:
                    continue
                else:
                    target = into / rel
                    data = path.read_bytes()
                    head = committed(target) if target.parent.exists() else None
                    if head == data:  # untouched by this archive's run
                        continue
                    kept = newest(target.read_bytes() if target.exists() else None, data)
                    if kept is None:  # an older copy the machine got with its tree
                        done["older_kept"].append(str(rel))
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(kept)
                    if str(rel) not in done["files"]:
                        done["files"].append(str(rel))
    if done["runlog_lines"]:
        runlog.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "archives", nargs="+", type=Path, help="run.py --archive files, oldest first"
    )
    parser.add_argument("--into", type=Path, required=True, help="the committed results folder")
    parser.add_argument(
        "--logs-dir", default="logs", help="where the archives' logs/ go (in --into)"
    )
    parser.add_argument(
        "--device-json", action="store_true", help=f"take the archives' {DEVICE} too"
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in [*args.archives, args.into] if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    done = merge(args.archives, args.into, args.logs_dir, args.device_json)
    print(
        f"{len(done['files'])} result files changed, {len(done['runlog_lines'])} runlog lines "
        f"added, {len(done['logs'])} log files into {args.into / args.logs_dir}, "
        f"{len(done['stale_logs'])} stale log files of searches run again removed, "
        f"{len(done['older_kept'])} older copies not taken"
    )
    for name in done["files"]:
        print(f"  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
