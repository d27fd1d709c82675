#!/usr/bin/env python3
"""The ``evolve`` command line from a checkout, without installing: ``python scripts/run.py demo``.

Same arguments and exit statuses as ``evolve``; see ``evolve --help``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evolve.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
