"""``python -m pytest_helion_tune``: runs the cache CLI.

Only forwards to ``cli.main``; the commands live in ``cli``.
"""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
