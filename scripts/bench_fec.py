"""Functional-equivalence cache on and off: the same problem, seed and wall-clock budget.

Evaluation is made expensive on purpose (1e6 training points by default), as in the
issue: the cache pays when evaluation dominates. For each setting the script runs the
engine until the budget is spent and reports, one JSON object a line:
  - distinct candidates assessed per second (distinct = different fingerprints; with the
    cache off, a repeated candidate is evaluated again and counts once),
  - the cache hit rate,
  - the best error reached.
The "on" lines carry the "off" figures as their baseline, so ratio = on / off.

    python scripts/bench_fec.py [--problem exp2] [--seconds 120] [--points 1000000] [--seed 0]
                                [--no-fit]
"""

from __future__ import annotations

import argparse
import json
import time

import evolve  # configures XLA before JAX starts
from evolve.catalog import load_problem
from evolve.search.engine import Engine, SearchParams


def run(problem, fec: bool, seconds: float, points: int, seed: int, population: int,
        fit: bool = True) -> dict:
    params = SearchParams(population=population, children=population, fec=fec, n_train=points,
                          fit=fit)
    engine = Engine(problem, params)
    state = engine.init(seed)
    engine.step(state)  # compile every bucket before the clock starts (state is unchanged)
    seen: set[bytes] = set(state.fingerprints)
    hits = lookups = generations = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        state, children, row = engine.step(state)
        generations += 1
        hits += row["cache_hits"]
        lookups += row["cache_hits"] + row["cache_misses"]
        seen.update(children.fingerprints)
    elapsed = time.perf_counter() - t0
    return {"distinct_per_second": len(seen) / elapsed, "hit_rate": hits / max(lookups, 1),
            "best_error": float(state.error.min()), "generations": generations,
            "evaluations": state.evaluations, "seconds": elapsed}


def main() -> None:
    evolve.use_compilation_cache()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", default="exp2")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--population", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fit", action="store_true",
                    help="constant fitting off (its cost is the same with and without the cache)")
    args = ap.parse_args()
    problem = load_problem(args.problem)
    fit = not args.no_fit
    off = run(problem, False, args.seconds, args.points, args.seed, args.population, fit)
    on = run(problem, True, args.seconds, args.points, args.seed, args.population, fit)
    case = {"problem": args.problem, "seconds": args.seconds, "points": args.points,
            "population": args.population, "seed": args.seed, "fit": fit}
    for metric, unit, higher in (("distinct_per_second", "candidates/s", True),
                                 ("hit_rate", "fraction", True),
                                 ("best_error", problem.error, False)):
        base = off[metric]
        ratio = (on[metric] / base if higher else base / on[metric]) if base else None
        print(json.dumps({"bench": "fec", "case": {**case, "fec": True,
                                                   "generations": on["generations"]},
                          "metric": metric, "value": on[metric], "unit": unit,
                          "baseline": "fec off", "baseline_value": base, "ratio": ratio}))
    print(json.dumps({"bench": "fec", "case": {**case, "fec": False,
                                               "generations": off["generations"]},
                      "metric": "evaluations", "value": off["evaluations"], "unit": "programs",
                      "baseline": None, "baseline_value": None, "ratio": None}))


if __name__ == "__main__":
    main()
