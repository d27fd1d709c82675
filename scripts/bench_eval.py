"""Evaluation throughput of our evaluator against DEAP and Operon, as JSON lines.

Throughput is GPops/s: instructions executed x points / second / 1e9. The work of a
program is its instruction count, which equals its tree's node count less the input
leaves (an input is read in place, as Operon and DEAP read a variable); every engine is
credited with the same count for the same programs.

For each case (P programs, at most L instructions each, N points):

- workload: P random trees from DEAP's ramped half-and-half (``evolve.search.trees``, fixed seed)
  over ops add, sub, mul, div, sin, cos, exp, log (unprotected: IEEE inf and NaN in every
  engine) with one input and float32 literals in [-1, 1], depths from log2(L) - 1 to
  log2(L) + 3, kept when their compiled length is in (L/2, L] so that L sets the size;
  programs are padded to L; the case reports the mean length. Points: N float32 values
  uniform in [-3, 3].
- ours: ``Evaluator.errors`` (fused: outputs and error reduction) and ``Evaluator.outputs``
  (the P x N values; skipped past 1 GB of output), on JAX's default devices: on a GPU
  machine the GPU kernel (run it there with ``--baselines none``). The compile time (first
  call less a steady call) is its own line. ``--backends pallas,cuda`` times the
  Evaluator under each backend named, side by side as engines of their own (each line
  says its ``backend``; without baselines the first backend is the others').
  ``roofline_fp32`` is our figure as a fraction of the device's float32 peak
  (``evolve.eval.roofline``; None where the peak is not known, as on CPUs).
- DEAP: trees compiled with ``gp.compile`` (not timed) to lambdas applied to the float32
  points, one tree after another on one core, outputs only.
- Operon: the same trees rebuilt node for node as ``pyoperon.Tree`` (Operon stores them
  postfix, first argument last) and run by ``EvaluateTrees`` on all cores, float32,
  outputs only. Agreement with DEAP's values (to 1e-3) is checked first and reported:
  bit for bit on add/sub/mul/div trees, a little below 1 with exp and log, which Operon
  computes its own way (exp underflows to about 1e-38, not 0, so log(exp(-100)) = -87.3).

When a full pass would exceed ``--max-seconds`` for an engine, that engine is measured on
the first k programs of the same workload, sized from a pilot run, and the case says
``"programs_measured": k``; nothing is extrapolated.

The engines are timed round robin after their warm-up calls (ours errors, ours outputs,
DEAP, Operon, the order turning each round), 3 to 7 rounds, so that every engine sees
the same load: the machines drift 20-40 % within minutes, and an engine timed alone
in a slow minute moved a ratio by half. ``value`` and ``baseline_value`` are the median
rounds; the case adds the best round of each (``best_of_rounds``,
``baseline_best_of_rounds``, ``ratio_best_of_rounds``) and ``rounds``. The engines
compared use one core (DEAP) or all of them (ours, Operon), so another process on the
machine moves the ratios: each case records the load average before and after
(``loadavg_1m``, ``loadavg_1m_end``) and ``others_cpu``, the share of the cores' time
that other processes and the hypervisor took while the rounds ran (0 on a quiet
machine; 0.5 where something else kept one of two cores busy); read ratios where it is
near 0.

Output, one JSON object per line::

    {"bench": "eval", "case": {...}, "metric": str, "value": float, "unit": str,
     "baseline": str|null, "baseline_value": float|null, "ratio": float|null}

with ratio = value / baseline_value. ``case["device"]`` names the CPU (``cpu``), the C++
kernel's instruction set there (``native_isa``: avx512, avx2 or generic, the widest the
host runs) and the SIMD targets numpy dispatches to (``numpy_simd``; X86_V4 is AVX-512,
where DEAP's float32 sin, cos, exp and log run 16 floats a vector). A baseline whose package is missing (pyoperon:
``pip install -e '.[bench]'``) is one line on stderr, and its rows are skipped. The machines drift about 20 % run to run, so compare
engines within one run, on a quiet machine (each case records the load average).

The script pins nothing. For single-thread figures pin to core 1
(``taskset -c 1 ...``), since core 0 takes the VM's interrupts; pinning this whole
script would also confine our evaluator and Operon to one core, so do it only for
single-core comparisons.

    .venv/bin/python scripts/bench_eval.py --quick
    .venv/bin/python scripts/bench_eval.py --cases 1000,32,100000 --max-seconds 120
    python3 scripts/bench_eval.py --baselines none --backends pallas,cuda --paths errors  # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from bench_search import cpu_model  # noqa: E402  (one description of the machine)
from deap import gp  # noqa: E402

from evolve.eval.evaluator import BACKENDS, NATIVE_MATHS, Evaluator  # noqa: E402
from evolve.eval.roofline import fp32_fraction  # noqa: E402
from evolve.program import to_arrays  # noqa: E402
from evolve.search.trees import primitive_set, random_trees, registers_needed, tree_to_program  # noqa: E402

OPS = ["add", "sub", "mul", "div", "sin", "cos", "exp", "log"]
N_REGISTERS = 8
ALL_CASES = [(P, L, N) for P in (1000, 10000) for L in (16, 32) for N in (1000, 100000)]
QUICK_CASES = [(1000, 16, 1000), (1000, 32, 1000)]
OUTPUT_BYTES_CAP = 1 << 30


# -- workload -----------------------------------------------------------------------------
def workload(P: int, L: int, seed: int) -> tuple[list, list]:
    """P trees (and their programs) of L/2 < length <= L instructions, from a seeded rng."""
    rng = random.Random(f"{seed}-{L}")
    pset = primitive_set(OPS, 1, literal_range=(-1.0, 1.0))
    min_depth, max_depth = max(1, L.bit_length() - 2), L.bit_length() + 2
    trees, programs = [], []
    while len(trees) < P:
        for tree in random_trees(rng, pset, P, min_depth, max_depth):
            if registers_needed(tree, 1) > N_REGISTERS:
                continue
            program = tree_to_program(tree, 1, N_REGISTERS)
            if L // 2 < len(program) <= L and len(trees) < P:
                trees.append(tree)
                programs.append(program)
    return trees, programs


def points(N: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-3.0, 3.0, N).astype(np.float32)


# -- timing ---------------------------------------------------------------------------------
def sized(make_run, programs, pilot_k: int, budget_s: float):
    """(k, run, the pilot's first call s, its steady call s): ``make_run(k)`` prepares
    (untimed) and returns a function running the first k programs; k is sized from a
    pilot on ``pilot_k`` of them so that a call takes about a quarter of ``budget_s``."""
    pilot_k = min(len(programs), pilot_k)
    run = make_run(pilot_k)
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    run()
    steady = time.perf_counter() - t0
    k = max(pilot_k, min(len(programs), int(budget_s / (4 * max(steady, 1e-9) / pilot_k))))
    if k != pilot_k:
        run = make_run(k)
        run()  # its warm-up
    return k, run, first, steady


def interleaved(runs: dict, budget_s: float, min_rounds: int = 3,
                max_rounds: int = 7) -> dict[str, list[float]]:
    """Seconds of each run, timed round robin (the order turning each round) so that all
    engines see the same load: at least ``min_rounds``, at most ``max_rounds``, and no
    new round once an engine has spent ``budget_s``."""
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(max_rounds):
        if r >= min_rounds and max(sum(t) for t in times.values()) > budget_s:
            break
        for n in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            runs[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def cpu_seconds() -> tuple[float, float, float] | None:
    """(wall clock s, busy s of all the cores, this process's CPU s with its threads) now,
    for ``others_share``; None where the kernel has no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return time.perf_counter(), busy, own.user + own.system


def others_share(before, after, cores: int) -> float | None:
    """The share of the cores' time that other processes (and the hypervisor's steal)
    took between two ``cpu_seconds`` readings: 0 on a quiet machine, 0.5 where another
    process kept one of two cores busy. None without readings."""
    if before is None or after is None or after[0] <= before[0]:
        return None
    other = (after[1] - before[1]) - (after[2] - before[2])
    return min(1.0, max(0.0, other / ((after[0] - before[0]) * cores)))


def gpops(programs, n_points: int, seconds: float) -> float:
    return sum(len(p) for p in programs) * n_points / seconds / 1e9


# optional peers: the package to import, and what installs it
PEERS = {"operon": ("pyoperon", "pip install -e '.[bench]'")}


def peer_missing(name: str) -> bool:
    """Whether baseline ``name``'s package cannot be imported; if so, says so on stderr
    (what to install) in one line."""
    if name not in PEERS:
        return False
    module, install = PEERS[name]
    try:
        __import__(module)
    except ImportError:
        print(f"bench_eval: {module} not installed ({install}); skipping its rows",
              file=sys.stderr)
        return True
    return False


# -- engines --------------------------------------------------------------------------------
def _known_backend(spec: str) -> bool:
    """Whether ``spec`` is an Evaluator backend, "auto" and "native" optionally with the
    C++ kernel's math after a slash ("native/own32")."""
    name, _, math = spec.partition("/")
    return name in BACKENDS and (not math or (name in ("auto", "native")
                                             and math in NATIVE_MATHS))


def ours_runs(programs, x, y, L, budget_s, backend="auto", paths=("errors", "outputs")):
    """Our evaluator's runs under ``backend``: {"errors": (k, run), "outputs": (k, run)
    unless P x N floats pass OUTPUT_BYTES_CAP}, of the ``paths`` asked, and the errors
    path's compile time (a first call less a steady one; None without that path)."""
    backend, _, math = backend.partition("/")  # e.g. "native/own32": the C++ kernel's math
    ev = Evaluator(n_registers=N_REGISTERS, n_inputs=1, dtype="float32", backend=backend,
                   **({"native_math": math} if math else {}))

    def errors_run(k):
        batch = to_arrays(programs[:k], length=L)
        return lambda: ev.errors(batch, x, y)

    def outputs_run(k):
        batch = to_arrays(programs[:k], length=L)
        return lambda: ev.outputs(batch, x)

    pilot = 1000
    runs, compile_s = {}, None
    if "errors" in paths:
        k, run, first, steady = sized(errors_run, programs, pilot, budget_s)
        runs["errors"] = (k, run)
        compile_s = max(first - steady, 0.0)
    cap = min(len(programs), OUTPUT_BYTES_CAP // (4 * len(x)))
    if "outputs" in paths and cap >= min(len(programs), pilot):
        k_out, run_out, _, _ = sized(outputs_run, programs[:cap], pilot, budget_s)
        runs["outputs"] = (k_out, run_out)
    return runs, compile_s


def deap_run(trees, programs, x, budget_s):
    """DEAP's usual path on one core: (k, run)."""
    pset = primitive_set(OPS, 1, literal_range=(-1.0, 1.0))

    def make_run(k):
        fns = [gp.compile(t, pset) for t in trees[:k]]  # compile time excluded

        def run():
            with np.errstate(all="ignore"):
                for f in fns:
                    f(x)

        return run

    k, run, _, _ = sized(make_run, programs, 100, budget_s)
    return k, run


_OPERON = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "sin": "Sin",
           "cos": "Cos", "exp": "Exp", "log": "Log"}


def operon_tree(tree, variable_hash: int):
    """The DEAP tree as an Operon tree: postfix with each node's first argument last."""
    import pyoperon as op

    nodes = []
    for node in reversed(tree):  # reversed prefix = Operon's postfix, arguments reversed
        if isinstance(node, gp.Primitive):
            n = op.Node(getattr(op.NodeType, _OPERON[node.name]))
        elif isinstance(node.value, str):  # ARG0
            n = op.Node(op.NodeType.Variable, variable_hash)
            n.Value = 1.0
        else:
            n = op.Node(op.NodeType.Constant)
            n.Value = float(node.value)
        nodes.append(n)
    return op.Tree(nodes).UpdateNodes()


def operon_run(trees, programs, x, budget_s):
    """Operon's batch evaluation on all cores: (k, run, agreement with DEAP)."""
    import pyoperon as op

    data = np.ascontiguousarray(x.reshape(-1, 1))  # Dataset keeps a view: keep data alive
    dataset = op.Dataset(data)
    vhash = dataset.VariableHashes[0]
    rows = op.Range(0, len(x))
    nthread = os.cpu_count() or 1
    agreement = operon_agreement(trees[:50], dataset, data, vhash)

    def make_run(k):
        otrees = [operon_tree(t, vhash) for t in trees[:k]]  # built untimed
        chunk = max(1, min(k, (256 << 20) // (4 * len(x))))  # result buffer <= 256 MiB
        chunks = [otrees[s: s + chunk] for s in range(0, k, chunk)]
        result = np.empty((chunk, len(x)), np.float32)

        def run():
            for c in chunks:
                op.EvaluateTrees(c, dataset, rows, result[: len(c)], nthread)

        run.keep = (dataset, data)  # the run holds what the dataset views
        return run

    k, run, _, _ = sized(make_run, programs, 1000, budget_s)
    return k, run, agreement


def operon_agreement(trees, dataset, data, vhash) -> float:
    """Fraction of (tree, point) values where Operon and DEAP agree to 1e-3 (NaN = NaN)."""
    import pyoperon as op

    n = min(len(data), 256)
    pset = primitive_set(OPS, 1, literal_range=(-1.0, 1.0))
    result = np.empty((len(trees), len(data)), np.float32)
    op.EvaluateTrees([operon_tree(t, vhash) for t in trees], dataset, op.Range(0, len(data)),
                     result, 1)
    with np.errstate(all="ignore"):
        ref = np.stack([np.broadcast_to(gp.compile(t, pset)(data[:n, 0]), (n,))
                        for t in trees])
    same = np.isclose(result[:, :n], ref, rtol=1e-3, atol=1e-5, equal_nan=True)
    return float(same.mean())


# -- main -----------------------------------------------------------------------------------
def host_vectors() -> dict:
    """The CPU and the vector code each engine runs on it: the C++ kernel's instruction
    set (``evolve.eval.cpu.kernel.host_isa``: avx512, avx2 or generic) and the SIMD
    targets numpy dispatches to here (DEAP's sin, cos, exp, log: X86_V4 is AVX-512)."""
    from evolve.eval.cpu.kernel import host_isa

    try:
        from numpy._core import _multiarray_umath as umath
        simd = [f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)]
    except (ImportError, AttributeError):
        simd = None
    return {"cpu": cpu_model(), "native_isa": host_isa(), "numpy_simd": simd}


def emit(case, metric, value, unit, baseline=None, baseline_value=None):
    ratio = value / baseline_value if baseline_value else None
    print(json.dumps({"bench": "eval", "case": case, "metric": metric, "value": value,
                      "unit": unit, "baseline": baseline, "baseline_value": baseline_value,
                      "ratio": ratio}), flush=True)


def parse_case(text: str) -> tuple[int, int, int]:
    try:
        P, L, N = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"a case is P,L,N (e.g. 1000,32,100000), got {text!r}") from None
    if min(P, L, N) < 1:
        raise argparse.ArgumentTypeError(f"P, L and N must be positive, got {text!r}")
    return P, L, N


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_CASES}")
    parser.add_argument("--cases", nargs="+", type=parse_case, metavar="P,L,N",
                        help="cases to run (default: P in 1000,10000 x L in 16,32 x N in "
                        "1000,100000)")
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="time budget per engine and case; past it an engine is measured "
                        "on a subset of the programs (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", default="deap,operon",
                        help="comma-separated baselines to run beside ours: deap, operon, or "
                        "none (e.g. on a GPU machine, where the CPU peers are not the point)")
    parser.add_argument("--backends", default="auto",
                        help="comma-separated Evaluator backends to time side by side, each "
                        "its own engine (auto, lax, pallas, cuda, native; default auto), "
                        "auto and native optionally with the C++ kernel's math after a "
                        "slash (native/own32, auto/libmvec); without baselines, the first "
                        "is the others' baseline")
    parser.add_argument("--paths", default="errors,outputs",
                        help="our paths to time: errors, outputs or both (default both)")
    args = parser.parse_args(argv)
    wanted = set() if args.baselines == "none" else set(args.baselines.split(","))
    wanted = {name for name in wanted if not peer_missing(name)}
    backends = args.backends.split(",")
    paths = [p for p in ("errors", "outputs") if p in args.paths.split(",")]
    unknown = (set(args.paths.split(",")) - {"errors", "outputs"}) | {
        b for b in backends if not _known_backend(b)}
    if unknown or not paths or len(set(backends)) != len(backends):
        parser.error(f"--paths takes errors and outputs, --backends distinct names among "
                     f"{', '.join(BACKENDS)} (auto and native optionally "
                     f"/MATH, MATH one of {', '.join(NATIVE_MATHS)}); got {args.paths!r} and "
                     f"{args.backends!r}")
    cases = args.cases or (QUICK_CASES if args.quick else ALL_CASES)

    dev = jax.devices()[0]
    device = {"platform": dev.platform, "device_kind": dev.device_kind,
              "n_devices": len(jax.devices()), "cpu_count": os.cpu_count(), **host_vectors()}
    for P, L, N in cases:
        trees, programs = workload(P, L, args.seed)
        x = points(N, args.seed)
        y = np.cos(x.astype(np.float64))
        base = {"P": P, "L": L, "N": N, "ops": OPS, "n_registers": N_REGISTERS,
                "mean_instructions": float(np.mean([len(p) for p in programs])),
                "mean_tree_nodes": float(np.mean([len(t) for t in trees])),
                "device": device, "loadavg_1m": os.getloadavg()[0]}

        runs, compiles = {}, {}  # runs keyed (backend, path) for ours, name for baselines
        for backend in backends:
            ours, compiles[backend] = ours_runs(programs, x, y, L, args.max_seconds,
                                                backend, paths)
            runs.update({(backend, path): r for path, r in ours.items()})
        extra = {}
        if "deap" in wanted:
            runs["deap"] = deap_run(trees, programs, x, args.max_seconds)
            extra["deap"] = {"baseline_path": "gp.compile lambdas on numpy float32, 1 core"}
        if "operon" in wanted:
            k_op, run_op, agreement = operon_run(trees, programs, x, args.max_seconds)
            runs["operon"] = (k_op, run_op)
            extra["operon"] = {"operon_agreement": agreement,
                               "baseline_path": f"pyoperon.EvaluateTrees float32, "
                               f"{os.cpu_count()} threads, exact trees"}
        before = cpu_seconds()
        times = interleaved({n: run for n, (_, run) in runs.items()}, args.max_seconds)
        base["others_cpu"] = others_share(before, cpu_seconds(), os.cpu_count() or 1)
        base["loadavg_1m_end"] = os.getloadavg()[0]
        value = {n: gpops(programs[:runs[n][0]], N, statistics.median(t))
                 for n, t in times.items()}
        best = {n: gpops(programs[:runs[n][0]], N, min(t)) for n, t in times.items()}
        rounds = len(next(iter(times.values())))
        for backend in backends:
            if compiles[backend] is not None:
                emit({**base, "path": "errors", "backend": backend,
                      "programs_measured": min(P, 1000)}, "compile_time", compiles[backend], "s")
            for path in paths:
                ours = (backend, path)
                if ours not in runs:
                    continue
                case = {**base, "path": path, "backend": backend,
                        "programs_measured_ours": runs[ours][0], "rounds": rounds,
                        "best_of_rounds": best[ours],
                        "roofline_fp32": fp32_fraction(value[ours], dev.device_kind)}
                # the baselines; else the first backend is the others'
                names = [b for b in ("deap", "operon") if b in wanted]
                if not names and backend != backends[0] and (backends[0], path) in runs:
                    names = [(backends[0], path)]
                for name in names or [None]:
                    line = dict(case)
                    label = name
                    if name:
                        label = name if isinstance(name, str) else f"evolve:{name[0]}"
                        line.update(programs_measured=runs[name][0],
                                    **extra.get(name, {}), baseline_best_of_rounds=best[name],
                                    ratio_best_of_rounds=best[ours] / best[name])
                    emit(line, "gpops", value[ours], "GPops/s", label,
                         value[name] if name else None)
            if "outputs" in paths and (backend, "outputs") not in runs:
                print(f"note: P={P} N={N}: outputs path skipped (P x N floats exceed "
                      f"{OUTPUT_BYTES_CAP >> 20} MiB)", file=sys.stderr)


if __name__ == "__main__":
    main()
