"""The command line shared by the tools that read Helion's per-candidate logs
(``job_times.py``, ``refine_phases.py``): paths to CSV logs or folders, a markdown table on
stdout, the rows as JSON on request."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Rows = list[dict[str, Any]]


def run(
    description: str,
    argv: Sequence[str] | None,
    rows_for: Callable[[list[Path]], Rows],
    table: Callable[[Rows], str],
    what: str,
) -> int:
    """Parses ``argv``, builds the rows of the logs under the given paths and prints the table;
    a clear error naming the path when a path is missing or holds no ``what``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("paths", nargs="+", type=Path, help="CSV logs or folders holding them")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    rows = rows_for(args.paths)
    if not rows:
        parser.error(f"no {what} under {', '.join(map(str, args.paths))}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0
