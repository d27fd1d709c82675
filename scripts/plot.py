#!/usr/bin/env python3
"""``evolve plot`` from a checkout, without installing: ``python scripts/plot.py RUN_DIR ...``.

Same options and exit statuses as ``evolve plot``; see ``python scripts/plot.py --help``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evolve.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["plot", *sys.argv[1:]]))
