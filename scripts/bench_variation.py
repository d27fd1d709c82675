"""Children per second of variation on arrays (batch_variation.make_children, jitted)
against the per-program variation.make_children, on exp2's space; one JSON line a case.

    python scripts/bench_variation.py [--sizes 1000 10000 100000] [--reference 1000 10000]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import numpy as np

import evolve  # noqa: F401  (XLA flags, float64)
from evolve.catalog import load_problem
from evolve.program import bucket, to_arrays
from evolve.search import batch_variation, variation


def _population(space: variation.Space, size: int, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [variation.random_program(rng, space, int(n))
            for n in rng.integers(1, space.max_length + 1, size)]


def bench_arrays(space, pop, n_children: int, repeats: int = 3) -> dict:
    L = bucket(space.max_length)
    batch = to_arrays(pop, length=L)
    batch = type(batch)(*(jax.device_put(x) for x in batch))
    pairs = jax.device_put(np.random.default_rng(1).integers(
        0, len(pop), (n_children, 2)).astype(np.int32))
    t = time.perf_counter()
    jax.block_until_ready(batch_variation.make_children(jax.random.key(0), batch, pairs, space))
    first = time.perf_counter() - t
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(batch_variation.make_children(jax.random.key(r + 1), batch,
                                                            pairs, space))
        times.append(time.perf_counter() - t)
    best = min(times)
    return {"impl": "batch_variation", "children": n_children, "L": L,
            "first_call_s": round(first, 3), "seconds": round(best, 4),
            "children_per_s": round(n_children / best)}


def bench_reference(space, pop, n_children: int) -> dict:
    pairs = np.random.default_rng(1).integers(0, len(pop), (n_children, 2))
    t = time.perf_counter()
    variation.make_children(np.random.default_rng(0), pop, pairs, space)
    took = time.perf_counter() - t
    return {"impl": "variation", "children": n_children, "seconds": round(took, 4),
            "children_per_s": round(n_children / took)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000])
    ap.add_argument("--reference", type=int, nargs="*", default=[1000, 10_000])
    ap.add_argument("--population", type=int, default=1000)
    args = ap.parse_args()
    space = variation.Space.from_problem(load_problem("exp2"))
    pop = _population(space, args.population)
    host = {"device": str(jax.devices()[0].device_kind), "machine": platform.machine(),
            "jax": jax.__version__}
    for n in args.reference:
        print(json.dumps({**bench_reference(space, pop, n), **host}), flush=True)
    for n in args.sizes:
        print(json.dumps({**bench_arrays(space, pop, n), **host}), flush=True)


if __name__ == "__main__":
    main()
