#!/usr/bin/env python3
"""``evolve run`` from a checkout, without installing: ``python scripts/run.py exp2 --generations 50``.

Same options and exit statuses as ``evolve run``; see ``python scripts/run.py --help``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evolve.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["run", *sys.argv[1:]]))
