#!/usr/bin/env python3
"""``evolve resume`` from a checkout, without installing: ``python scripts/resume.py RUN_DIR``.

Same options and exit statuses as ``evolve resume``; see ``python scripts/resume.py --help``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evolve.cli import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main(["resume", *sys.argv[1:]]))
