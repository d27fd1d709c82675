"""A tiny run configuration for tests of runs and the command line, and run comparisons.

Every test that runs a search uses the same ``search`` settings, so the engine (whose
construction compiles the evaluator, ~10 s here) is built once per test process.
"""

import csv
from pathlib import Path

from evolve.runs.config import RunConfig, build_config
from evolve.runs.files import is_wall_clock

PROBLEM = "exp2"
SETS = ["search.population=16", "search.children=16", "search.n_train=512",
        "search.fit_points=64", "checkpoint_every=3", "keep_checkpoints=3"]


def cli_args(generations: int) -> list[str]:
    """``evolve run`` arguments for the tiny run of ``generations``."""
    return [PROBLEM, "--generations", str(generations), "--quiet",
            *(a for s in SETS for a in ("--set", s))]


def config(generations: int, seed: int = 0) -> RunConfig:
    return build_config(sets=SETS, overrides={"problem": PROBLEM, "generations": generations,
                                              "seed": seed})


def metrics_without_wall_clock(run_dir: Path) -> list[list[str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, c in enumerate(rows[0]) if not is_wall_clock(c)]
    return [[row[i] for i in keep] for row in rows]


def assert_same_run(a: Path, b: Path) -> None:
    """The exact-resume contract: same front.csv bytes, same metrics but wall clock."""
    assert (a / "front.csv").read_bytes() == (b / "front.csv").read_bytes()
    ma, mb = metrics_without_wall_clock(a), metrics_without_wall_clock(b)
    assert len(ma) == len(mb)
    for ra, rb in zip(ma, mb):
        assert ra == rb
