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

With --cache-only no engine runs: the script replays what one generation of --children
children does to the caches in ``Engine.assess`` (the working copies, the structures'
membership test and inserts, the lookups, the inserts of the misses; evaluation replaced
by random errors) on caches filled to each --capacities, and times ``to_state`` (what a
checkpoint writes). With --baseline REV it does the same, in the same process, on the
``FECache`` of git revision REV (its evolve/search/fec.py, loaded from git; the calls its
engine made then: per-child records), and the lines carry ratio = baseline / current.

    python scripts/bench_fec.py --cache-only [--children 100000] [--capacities 1e4,1e5,1e6]
                                [--baseline c68aa1f] [--repeats 3] [--generations 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import evolve  # configures XLA before JAX starts
from evolve.catalog import load_problem
from evolve.search.engine import Engine, SearchParams
from evolve.search.fec import FECache, as_keys, first_occurrences

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_search import cpu_model  # noqa: E402  (one description of the machine)


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


# -- --cache-only: the caches alone -----------------------------------------------------
def workload(children: int, capacity: int, generations: int, seed: int,
             hit_share: float = 0.45, copies: float = 0.1, literal_share: float = 0.8,
             known_structures: float = 0.6) -> tuple[list, list]:
    """(prefill, generations): the keys that fill the caches, then for each generation the
    children's fingerprints, their structures' (of the ``literal_share`` with literals)
    and their errors. A child's fingerprint is one seen lately (``hit_share``), a copy of
    another child's (``copies``) or new; ``known_structures`` of the structures were seen."""
    rng = np.random.default_rng(seed)
    prefill = [rng.integers(0, 256, (capacity, 16), dtype=np.uint8) for _ in range(2)]
    seen, seen_s = prefill[0][-3 * children:], prefill[1][-3 * children:]
    gens = []
    for _ in range(generations):
        n_old, n_copy = int(children * hit_share), int(children * copies)
        fresh = rng.integers(0, 256, (children - n_old - n_copy, 16), dtype=np.uint8)
        fps = np.concatenate([seen[rng.integers(0, len(seen), n_old)], fresh,
                              fresh[rng.integers(0, len(fresh), n_copy)]])
        fps = fps[rng.permutation(children)]
        n_s = int(children * literal_share)
        n_known = int(n_s * known_structures)
        fresh_s = rng.integers(0, 256, (n_s - n_known, 16), dtype=np.uint8)
        sfps = np.concatenate([seen_s[rng.integers(0, len(seen_s), n_known)], fresh_s])
        sfps = sfps[rng.permutation(n_s)]
        seen = np.concatenate([seen, fresh])[-3 * children:]
        seen_s = np.concatenate([seen_s, fresh_s])[-3 * children:]
        gens.append((fps.view("V16").ravel().tolist(), sfps.view("V16").ravel().tolist(),
                     rng.random(children)))
    return prefill, gens


def generation_records(cache, structures, fps, sfps, errors):
    """A generation's cache calls as ``Engine.assess`` made them with per-child records
    (before the cache held arrays: c68aa1f), evaluation replaced by ``errors``."""
    cache, structures = cache.copy(), structures.copy()
    new = {}
    for i, fp in enumerate(sfps):
        if fp not in new and fp not in structures:
            new[fp] = i
    structures.insert_column(list(new), "fitted", np.ones(len(new)))
    n = len(fps)
    error = np.full(n, np.nan)
    hits = cache.lookup_many(fps)
    found = np.array([hit is not None for hit in hits], bool)
    served = np.flatnonzero(found)
    error[served] = [hits[i]["error"] for i in served.tolist()]
    todo: dict[bytes, list[int]] = {}
    for i in np.flatnonzero(~found).tolist():
        todo.setdefault(fps[i], []).append(i)
    first = np.fromiter((ids[0] for ids in todo.values()), np.int64, len(todo))
    inserted, values = [], []
    for (fp, ids), e in zip(todo.items(), errors[first].tolist()):
        error[ids] = e
        inserted.append(fp)
        values.append(e)
    cache.insert_column(inserted, "error", np.array(values, np.float64))
    structures.take_stats()
    return cache, structures, cache.take_stats()["hits"]


def generation_arrays(cache, structures, fps, sfps, errors):
    """A generation's cache calls as ``Engine.assess`` makes them (arrays), evaluation
    replaced by ``errors``."""
    cache, structures = cache.copy(), structures.copy()
    skeys = as_keys(sfps)
    unknown = np.flatnonzero(~structures.contains_many(skeys))
    first = unknown[first_occurrences(skeys[unknown])[0]]
    new = {sfps[j]: j for j in first.tolist()}
    structures.insert_column(list(new), "fitted", np.ones(len(new)))
    keys = as_keys(fps)
    error = np.full(len(keys), np.nan)
    found, cached = cache.lookup_column(keys, "error")
    error[found] = cached[found]
    todo = np.flatnonzero(~found)
    first, group = first_occurrences(keys[todo])
    rows = todo[first]
    error[todo] = errors[rows][group]
    cache.insert_column(keys[rows], "error", errors[rows])
    structures.take_stats()
    return cache, structures, cache.take_stats()["hits"]


def time_cache(cls, children: int, capacity: int, generations: int, repeats: int,
               seed: int) -> dict:
    """Median seconds a generation and a ``to_state`` of both caches take with ``cls``."""
    prefill, gens = workload(children, capacity, generations, seed)
    step = generation_arrays if hasattr(cls, "lookup_column") else generation_records
    per_generation, state, hits = [], [], 0
    for _ in range(repeats):
        cache, structures = cls(capacity), cls(capacity)
        for c, keys in zip((cache, structures), prefill):
            c.insert_column(keys.view("V16").ravel().tolist(), "error", np.zeros(capacity))
            c.take_stats()
        hits = 0
        t0 = time.perf_counter()
        for fps, sfps, errors in gens:
            cache, structures, h = step(cache, structures, fps, sfps, errors)
            hits += h
        per_generation.append((time.perf_counter() - t0) / generations)
        t0 = time.perf_counter()
        cache.to_state(), structures.to_state()
        state.append(time.perf_counter() - t0)
        del cache, structures
    return {"generation": statistics.median(per_generation), "to_state": statistics.median(state),
            "hit_rate": hits / (children * generations)}


def load_baseline(rev: str):
    """``FECache`` of git revision ``rev`` (its evolve/search/fec.py as a module)."""
    source = subprocess.run(["git", "show", f"{rev}:evolve/search/fec.py"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "fec_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fec_baseline", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FECache


def cache_only(args) -> None:
    baseline = load_baseline(args.baseline) if args.baseline else None
    for capacity in (int(float(c)) for c in args.capacities.split(",")):
        case = {"children": args.children, "capacity": capacity, "generations": args.generations,
                "repeats": args.repeats, "seed": args.seed, "cpu": cpu_model(),
                "cores": os.cpu_count()}
        now = time_cache(FECache, args.children, capacity, args.generations, args.repeats,
                         args.seed)
        base = None
        if baseline is not None:
            base = time_cache(baseline, args.children, capacity, args.generations,
                              args.repeats, args.seed)
            if base["hit_rate"] != now["hit_rate"]:
                raise RuntimeError(f"the baseline served {base['hit_rate']} of the lookups "
                                   f"and the current cache {now['hit_rate']}: not one behaviour")
        case["hit_rate"] = round(now["hit_rate"], 4)
        for metric in ("generation", "to_state"):
            print(json.dumps({
                "bench": "fec_cache", "case": case, "metric": f"{metric}_seconds",
                "value": now[metric], "unit": "s",
                "baseline": f"FECache at {args.baseline}" if base else None,
                "baseline_value": base[metric] if base else None,
                "ratio": base[metric] / now[metric] if base else None,
                "load": os.getloadavg()[0]}), flush=True)


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
    ap.add_argument("--cache-only", action="store_true",
                    help="time the caches alone: one generation's calls, replayed")
    ap.add_argument("--children", type=int, default=100_000, help="--cache-only")
    ap.add_argument("--capacities", default="1e4,1e5,1e6", help="--cache-only")
    ap.add_argument("--generations", type=int, default=3, help="--cache-only, timed")
    ap.add_argument("--repeats", type=int, default=3, help="--cache-only")
    ap.add_argument("--baseline", default=None,
                    help="--cache-only: a git revision whose FECache to time as well")
    args = ap.parse_args()
    if args.cache_only:
        cache_only(args)
        return
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
