"""Islands on K devices: evaluations per second of a run of K islands, for each K given.

With ``--backend ray`` (the default) each island is a Ray actor: on a machine with K GPUs
each actor gets one (``num_gpus=1``), so K islands compute on K devices at once; on a
machine without GPUs each gets a CPU (or a share of the CPUs). ``--backend inprocess``
runs the K islands one after another in this process, on its default device (a
reference: islands without parallelism). The search is a real run (migration, the shared
cache), started from ``--seed``; after ``--warmup`` generations (compilation) the clock
runs for ``--generations`` more. One JSON object a line, per K and metric:

  - evaluations_per_second: programs evaluated on the training points per second
    (cache misses; the work that devices do),
  - candidates_per_second: children assessed per second (islands x children per
    generation: fixed work, whatever the cache hit rate),

each with K = 1 as the baseline (ratio = value / value at K = 1; 1.8 on 2 GPUs is the
aim for the evaluations). Example, on a machine with 2 GPUs:

    python scripts/bench_islands.py --islands 1,2 --points 1000000
    python scripts/bench_islands.py --islands 1,2 --population 64 --generations 5   # CPU, quick
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import evolve  # configures XLA before JAX starts
from evolve.catalog import load_problem
from evolve.runs.config import build_config
from evolve.runs.driver import open_islands
from evolve.runs.islands.core import TOTAL
from evolve.search.engine import Engine


def run(args, k: int) -> dict:
    sets = [f"search.population={args.population}", f"search.children={args.population}",
            f"islands.count={k}", f"islands.migrate_every={args.migrate_every}",
            f"search.fit={'false' if args.no_fit else 'true'}"]
    if args.points:
        sets.append(f"search.n_train={args.points}")
    if args.backend == "ray":
        sets.append("islands.ray_address=auto")  # the connection made in main()
    config = build_config(sets=sets, overrides={"problem": args.problem, "seed": args.seed,
                                                "generations": args.warmup + args.generations})
    with tempfile.TemporaryDirectory() as tmp:
        search = open_islands(config, lambda: Engine(load_problem(config.problem),
                                                     config.search),
                              Path(tmp), lambda m: print(m, file=sys.stderr))
        try:
            devices = _devices(search)
            state = search.init(args.seed)
            for _ in range(args.warmup):
                state = search.step(state).state
            evaluated = candidates = 0
            t0 = time.perf_counter()
            for _ in range(args.generations):
                state, _, rows = search.step(state)
                total = rows[-1]
                assert total["island"] == TOTAL
                evaluated += total["evaluated"]
                candidates += k * config.search.children
            seconds = time.perf_counter() - t0
        finally:
            search.close()
    return {"evaluations_per_second": evaluated / seconds,
            "candidates_per_second": candidates / seconds, "seconds": seconds,
            "evaluations": evaluated, "best_error": float(state.error.min()),
            "devices": devices}


def _devices(search) -> list:
    actors = getattr(search.backend, "actors", None)
    if actors is None:
        import jax

        return [str(jax.devices()[0])]
    import ray

    return [ray.get(a.devices.remote()) for a in actors]


def main() -> None:
    evolve.use_compilation_cache()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--islands", default="1,2", help="the K to run, comma-separated")
    ap.add_argument("--backend", choices=("ray", "inprocess"), default="ray")
    ap.add_argument("--ray-address", default="local",
                    help="local (start Ray here), auto (the running cluster) or an address")
    ap.add_argument("--problem", default="exp2")
    ap.add_argument("--population", type=int, default=200, help="and children, per island")
    ap.add_argument("--points", type=int, default=None,
                    help="training points (default: the problem's)")
    ap.add_argument("--migrate-every", type=int, default=10)
    ap.add_argument("--no-fit", action="store_true", help="constant fitting off")
    ap.add_argument("--warmup", type=int, default=3, help="generations before the clock")
    ap.add_argument("--generations", type=int, default=20, help="generations timed")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ks = [int(k) for k in args.islands.split(",")]
    if args.backend == "ray":  # one Ray for every K (a run's own connection would end with it)
        import ray

        ray.init(address=None if args.ray_address == "local" else args.ray_address,
                 include_dashboard=False)
    results = {k: run(args, k) for k in ks}
    base = results[ks[0]] if ks[0] == 1 else None
    case = {"problem": args.problem, "backend": args.backend, "population": args.population,
            "points": args.points, "fit": not args.no_fit, "seed": args.seed,
            "warmup": args.warmup, "generations": args.generations}
    for k, r in results.items():
        for metric in ("evaluations_per_second", "candidates_per_second"):
            b = base[metric] if base else None
            print(json.dumps({"bench": "islands", "case": {**case, "islands": k,
                                                           "devices": r["devices"]},
                              "metric": metric, "value": r[metric], "unit": "programs/s",
                              "baseline": "1 island" if b else None, "baseline_value": b,
                              "ratio": r[metric] / b if b else None,
                              "seconds": r["seconds"], "best_error": r["best_error"]}))
    if args.backend == "ray":
        import ray

        ray.shutdown()


if __name__ == "__main__":
    main()
