"""The search's own speed: children a second and seconds a generation, and time to an answer.

Two kinds of records, one JSON object a line:

- ``{"bench": "search", ...}``: ``exp2`` (or ``--problem``) at each population of
  ``--populations`` (children = population), after ``--warmup`` generations (compilation),
  timed over ``--generations`` generations: children a second, seconds a generation, and
  the share of a generation spent in the evaluator (``errors`` and ``outputs`` calls) and in
  constant fitting, measured by wrapping those calls with timers;
- ``{"bench": "search_discovery", ...}``: for each seed of ``--seeds``, a search at
  ``--discovery-population`` until a program meets the problem's target (< 1 ULP for
  exp2) on the engine's training and verification points, or ``--discovery-seconds``
  pass: the seconds of search (initial population included) and the generation; with
  ``--certify K``, the search runs the whole time and the cheapest programs meeting the
  target are then certified over every float32 of the domain (``certified``).

Every record names the host (CPU model, core count, JAX devices) and versions. Timings are
of this machine only; compare them only with records made on the same one.

    python scripts/bench_search.py                                   # 1e3, 1e4 on the CPU
    python scripts/bench_search.py --populations 1000,10000,100000 --out docs/results/bench_search.jsonl
    python scripts/bench_search.py --populations 0 --seeds 1,2,3,4,5   # discovery only
    python scripts/bench_search.py --populations 0 --seeds 1,2,3,4,5 --discovery-seconds 20 --certify 3
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from itertools import product
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import evolve  # noqa: E402
from evolve.catalog import load_problem  # noqa: E402
from evolve.eval.evaluator import EvalParams  # noqa: E402
from evolve.runs.host import cpu_model  # noqa: E402  (one description of the CPU, for the scripts too)
from evolve.search.engine import Engine, SearchParams  # noqa: E402


def host() -> dict:
    """What the figures were measured on."""
    devices = jax.devices()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": devices[0].platform,
            "devices": [d.device_kind for d in devices][:1] + ([f"x{len(devices)}"]
                                                               if len(devices) > 1 else []),
            "jax": jax.__version__, "evolve": evolve.__version__}


class Timers:
    """Seconds spent in parts of a generation, each part's time without the parts it calls
    (a call to the evaluator from inside the fingerprints counts as evaluator time; the
    jitted variation is timed until its children are ready, not only dispatched): the
    evaluator (``errors``, ``outputs``), constant fitting, and the engine's own steps."""

    PARTS = (("evaluator", "evaluator", ("errors", "outputs")),
             ("fitter", "fitting", ("fit",)),
             ("representation", "variation", ("children",)),
             (None, "fingerprints", ("_fingerprints",)),
             (None, "mate choice and features", ("features",)),
             (None, "selection", ("_select",)))

    def __init__(self, engine: Engine):
        self.seconds = {bucket: 0.0 for _, bucket, _ in self.PARTS}
        self._inner = [0.0]  # time of wrapped calls inside the current one
        for owner, bucket, names in self.PARTS:
            obj = engine if owner is None else getattr(engine, owner)
            for name in names:
                setattr(obj, name, self._timed(getattr(obj, name), bucket))

    def _timed(self, fn, bucket):
        def wrapped(*args, **kwargs):
            t0 = time.perf_counter()
            self._inner.append(0.0)
            try:
                out = fn(*args, **kwargs)
                if bucket == "variation":  # jitted: its work ends when its arrays are ready
                    jax.block_until_ready(out[0])
                return out
            finally:
                spent = time.perf_counter() - t0
                inner = self._inner.pop()
                self.seconds[bucket] += spent - inner
                self._inner[-1] += spent
        return wrapped

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)

    def shares(self, seconds: float) -> dict:
        """Each part's share of ``seconds``, and the rest ("other": cache, cost, gathers)."""
        out = {k: round(v / seconds, 3) for k, v in self.seconds.items()}
        out["other"] = round(1 - sum(self.seconds.values()) / seconds, 3)
        return out


def _engine(problem, backend: str, **params) -> Engine:
    """An engine whose evaluator is ``backend`` ("auto", "native", ...): the native (C++)
    kernel runs on the host's CPU devices, also on a GPU machine."""
    devices = jax.devices("cpu") if backend == "native" else None
    return Engine(problem, SearchParams(**params, evaluator=EvalParams(backend=backend)),
                  devices=devices)


def bench_population(problem, population: int, generations: int, warmup: int,
                     seed: int, fit_limit: int | None, profile: int = 0,
                     early_exit: int = 0, backend: str = "auto") -> dict:
    """One throughput record at ``population`` (children = population). ``profile`` > 0:
    the timed generations run under cProfile (slower), whose ``profile`` costliest
    functions, by own time, go to stderr."""
    engine = _engine(problem, backend, population=population, children=population,
                     fit_limit=fit_limit, early_exit=early_exit)
    timers = Timers(engine)
    t0 = time.perf_counter()
    state = engine.init(seed)
    init_s = time.perf_counter() - t0
    for _ in range(warmup):
        state = engine.step(state).state
    timers.reset()
    evaluated = fits = exits = 0
    profiler = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(generations):
        step = engine.step(state)
        state = step.state
        evaluated += step.row["evaluated"]
        fits += step.row["fits"]
        exits += step.row.get("early_exits", 0)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - t0
    if profiler:
        print(f"# cProfile, population {population}, fit_limit {fit_limit}, "
              f"{generations} generations, {seconds:.2f} s", file=sys.stderr)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(profile)
        stats.sort_stats("cumulative").print_stats("evolve", profile)  # our own calls
    per_gen = seconds / generations
    return {"bench": "search", "problem": problem.name, "population": population,
            "children": population, "fit_limit": fit_limit, "early_exit": early_exit,
            "evaluator": engine.evaluator.kind,
            "generations": generations,
            "warmup": warmup,
            "seed": seed, "seconds_per_generation": round(per_gen, 4),
            "children_per_second": round(population * generations / seconds, 1),
            "evaluated_per_generation": round(evaluated / generations, 1),
            "fits_per_generation": round(fits / generations, 1),
            "early_exits_per_generation": round(exits / generations, 1),
            "evaluator_share": round(timers.seconds["evaluator"] / seconds, 3),
            "fitting_share": round(timers.seconds["fitting"] / seconds, 3),
            "shares": timers.shares(seconds),
            "init_seconds": round(init_s, 2), "best_error": float(np.min(state.error)),
            "host": host()}


def bench_discovery(problem, population: int, seed: int, limit_s: float,
                    fit_limit: int | None, certify_count: int = 0, early_exit: int = 0,
                    backend: str = "auto") -> dict:
    """Seconds of search until a program meets the problem's target (on the engine's
    sampled training and verification points: not a certificate).

    With ``certify_count`` > 0 the search runs the whole ``limit_s`` and then certifies
    (``evolve.results.certify``, every float32 of the domain) up to that many of the
    cheapest programs meeting the target on the sampled points, cheapest first, stopping
    at the first certified under the target: ``certified`` lists what was checked."""
    engine = _engine(problem, backend, population=population, children=population,
                     fit_limit=fit_limit, early_exit=early_exit)
    # compile first, on another seed: the time to an answer is search, not compilation
    warm = engine.init(seed + 10_000)
    engine.step(warm)
    t0 = time.perf_counter()
    state = engine.init(seed)
    target = problem.target
    found = None
    while time.perf_counter() - t0 < limit_s:
        if found is None and target is not None and np.any(state.error < target):
            found = time.perf_counter() - t0
            if not certify_count:
                break
        state = engine.step(state).state
    searched = time.perf_counter() - t0
    if found is None and target is not None and np.any(state.error < target):
        found = searched  # met by the last generation of the budget
    ok = state.error < target if target is not None else np.zeros(len(state.error), bool)
    record = {"bench": "search_discovery", "problem": problem.name, "population": population,
              "fit_limit": fit_limit, "early_exit": early_exit, "seed": seed,
              "evaluator": engine.evaluator.kind,
              "seconds": None if found is None else round(found, 2),
              "generation": state.generation, "limit_s": limit_s,
              "searched_seconds": round(searched, 2),
              "best_error": float(np.min(state.error)),
              "cheapest_at_target": float(np.min(state.cost[ok])) if ok.any() else None}
    if certify_count:
        from evolve.results.certify import certify

        checked = []
        for i in np.flatnonzero(ok)[np.lexsort((state.error[ok], state.cost[ok]))][:certify_count]:
            c = certify(state.programs[int(i)], problem)
            checked.append({"ops": float(state.cost[i]), "sampled": float(state.error[i]),
                            "certified_max_ulp": c.max_ulp, "seconds": round(c.seconds, 2)})
            if c.max_ulp < target:
                break
        good = [c["ops"] for c in checked if c["certified_max_ulp"] < target]
        record.update(certified=checked, cheapest_certified=min(good) if good else None)
    record["host"] = host()
    return record


def _limits(text: str) -> list[int | None]:
    return [None if v.strip() in ("none", "") else int(v) for v in text.split(",")]


def _ints(text: str) -> list[int]:
    return [int(float(v)) for v in text.split(",") if v.strip() and float(v) > 0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--problem", default="exp2")
    p.add_argument("--populations", default="1000,10000",
                   help="comma-separated populations (children = population); 0: none")
    p.add_argument("--generations", type=int, default=5, help="timed generations a case")
    p.add_argument("--warmup", type=int, default=2, help="untimed generations first")
    p.add_argument("--seeds", default="", help="discovery runs: comma-separated seeds")
    p.add_argument("--discovery-population", type=int, default=1000)
    p.add_argument("--discovery-seconds", type=float, default=60.0)
    p.add_argument("--certify", type=int, default=0, metavar="K",
                   help="discovery runs search the whole --discovery-seconds, then certify "
                        "up to K of the cheapest programs meeting the target")
    p.add_argument("--fit-limits", default="none",
                   help="comma-separated search.fit_limit values to run each case with "
                        "('none': fit every new structure)")
    p.add_argument("--early-exits", default="0",
                   help="comma-separated search.early_exit values to run each case with "
                        "(0: off)")
    p.add_argument("--backends", default="auto",
                   help="comma-separated search.evaluator.backend values to run each case "
                        "and discovery run with (e.g. auto,native: on a GPU machine, the "
                        "GPU and the host's CPU cores side by side)")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="run the timed generations under cProfile and print its N costliest "
                        "functions to stderr (the timings then include the profiler's cost)")
    p.add_argument("--out", type=Path, default=None, help="also append the lines here")
    args = p.parse_args(argv)
    evolve.use_compilation_cache()
    problem = load_problem(args.problem)
    records = []

    def emit(record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        records.append(line)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(args.out, "a") as f:
                f.write(line + "\n")

    limits = _limits(args.fit_limits)
    earlies = [int(v) for v in args.early_exits.split(",")]
    backends = args.backends.split(",")
    for population, limit, early, backend in product(_ints(args.populations), limits,
                                                     earlies, backends):
        emit(bench_population(problem, population, args.generations, args.warmup, seed=1,
                              fit_limit=limit, profile=args.profile, early_exit=early,
                              backend=backend))
    for limit, early, backend, seed in product(limits, earlies, backends,
                                               _ints(args.seeds)):
        emit(bench_discovery(problem, args.discovery_population, seed,
                             args.discovery_seconds, limit, args.certify, early, backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
