"""Seconds per call of ``nsga2`` and ``pareto_ranks`` (two objectives): arrays against DEAP.

For each n in ``--sizes`` and each input kind, ``mu = n // 2`` (the engine keeps a
population from parents and children), one JSON object per line::

    {"n": int, "input": str, "mu": int, "fronts": int,
     "nsga2_array_s": float, "ranks_array_s": float,
     "nsga2_deap_s": float, "ranks_deap_s": float}

Inputs: "random" uniform in [0, 1)^2; "tied" the same rounded to a 31 x 31 grid (many
equal rows); "engine" accuracy-first-like rows (errors log-uniform, clipped at 1e-3,
integer costs 1..59). Times are the best of a few calls; DEAP's (``_deap_nsga2``,
``_deap_ranks``) only up to ``--deap-max`` rows, and there the two paths' survivors are
checked equal. The machine may be shared: take the best of several runs.

    /work/venv/bin/python scripts/bench_selection.py --sizes 4000,20000,200000 --deap-max 20000
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable

import numpy as np

from evolve.search.selection import _deap_nsga2, _deap_ranks, nsga2, pareto_ranks


def best_seconds(f: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` wall-clock timings of ``f()``."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def inputs(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The objective arrays [n, 2] timed, by kind."""
    return {
        "random": rng.random((n, 2)),
        "tied": np.round(rng.random((n, 2)) * 30),
        "engine": np.stack([np.maximum(10 ** rng.uniform(-8, 1, n), 1e-3),
                            rng.integers(1, 60, n)], 1).astype(np.float64),
    }


def timings(n: int, kind: str, obj: np.ndarray, deap_max: int) -> dict:
    """One output row for ``obj`` [n, 2]."""
    mu = n // 2
    repeats = 5 if n <= 20000 else 2
    row = {"n": n, "input": kind, "mu": mu, "fronts": int(pareto_ranks(obj).max()) + 1,
           "nsga2_array_s": best_seconds(lambda: nsga2(obj, mu, random.Random(1)), repeats),
           "ranks_array_s": best_seconds(lambda: pareto_ranks(obj), repeats)}
    if n <= deap_max:
        same = (nsga2(obj, mu, random.Random(1)).tolist()
                == _deap_nsga2(obj, mu, random.Random(1)).tolist())
        if not same:
            raise AssertionError(f"array and DEAP survivors differ (n={n}, {kind})")
        row["nsga2_deap_s"] = best_seconds(lambda: _deap_nsga2(obj, mu, random.Random(1)), 1)
        row["ranks_deap_s"] = best_seconds(lambda: _deap_ranks(obj), 1)
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="4000,20000,200000")
    parser.add_argument("--deap-max", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for n in (int(s) for s in args.sizes.split(",")):
        for kind, obj in inputs(n, rng).items():
            print(json.dumps(timings(n, kind, obj, args.deap_max)), flush=True)


if __name__ == "__main__":
    main()
