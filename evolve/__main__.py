"""``python -m evolve``: the same command line as the ``evolve`` script."""

from evolve.cli import main

raise SystemExit(main())
