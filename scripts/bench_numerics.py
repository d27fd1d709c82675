"""Evolved float32 functions against Sollya's polynomials and libm: op count, accuracy, speed.

For each function problem (exp2, exp, log2, erf, tanh and the ``_nofma`` twins that have an
evolved front) three implementations are compared:

- evolved: from ``<fronts>/<problem>-<seed>-front.csv`` (``evolve verify``'s columns), the
  cheapest row certified under 1 ULP; where no certified row is under 1 ULP, the row with
  the lowest certified max ULP, flagged ``"under_1ulp": false``.
- sollya: from ``problems/baselines/<problem>.json``, the cheapest polynomial whose error
  is under 1 ULP; where there is none, the most accurate one, flagged likewise.
- libm: glibc's ``exp2f expf log2f erff tanhf`` in C, ``jnp.exp2 jnp.exp jnp.log2
  jax.scipy.special.erf jnp.tanh`` under XLA. These are full-range functions (range
  reduction, special cases); the evolved and Sollya programs are the core approximation on
  the problem's reduced domain only. Inputs are the same for all three.

Speed is measured two ways:

- C: each program exported by ``evolve.results.export`` (one translation unit each) and a harness
  compiled into one binary with gcc, ``-ffp-contract=off`` always, for each ``--cflags``
  set (by default portable x86-64, where ``fmaf`` is a call into libm, and
  ``-march=native``, where it is one instruction). The harness calls the function through
  a pointer chosen at run time (no inlining, as for libm) on ``--points`` inputs evenly
  spaced over the domain, cycled to ``--calls`` calls, stores every output and prints
  their sum. Before timing, the binary's outputs are checked bit for bit against
  ``evolve.eval.evaluator.run_numpy``.
- XLA: the program as a jitted JAX function on the CPU (the ops table's JAX functions,
  which are the ones ``evolve export --format jax`` writes out: float32 ops, ``fma``
  through float64 rounded to odd), on ``--jax-points`` float32 inputs, after a warm-up
  call. Checked against ``run_numpy`` too, but not
  required to agree: under ``jit`` XLA's CPU backend contracts ``a * b + c`` into one FMA
  (whatever ``-ffp-contract`` says), so a program with a mul feeding an add computes
  something else there; ``differ_from_run_numpy`` counts the points where it does.

``ns_per_call`` is CPU time (the process's, all threads) over calls, the minimum over
``--repeats`` repeats, taken round robin over the three implementations of a problem so
that they see the same load; the wall-clock figure is in the case (``wall_ns_per_call``). On a
machine shared with other work, CPU time is what a call costs, while wall time also
counts the time the process waited for a core. ``gcalls_per_s`` is its inverse.

Output, one JSON object per line (also written to ``--out``)::

    {"bench": "numerics", "case": {...}, "metric": str, "value": float, "unit": str,
     "baseline": str|null, "baseline_value": float|null, "ratio": float|null}

with ratio = value / baseline_value: for ``gcalls_per_s`` above 1 means faster than the
baseline; for ``op_count`` and ``max_ulp`` below 1 means fewer ops or more accurate. Each
case records the 1-minute load average: the machine may be shared.

    python scripts/bench_numerics.py [--problems exp2,exp] [--calls 1e8] [--repeats 5]
                                     [--out docs/bench_numerics_cpu.jsonl]
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.scipy.special  # noqa: E402
import numpy as np  # noqa: E402
from evolve.problems._common import load_baselines  # noqa: E402

import evolve  # noqa: E402, F401  (XLA flags, float64: before any JAX backend starts)
from evolve.catalog import load_problem  # noqa: E402
from evolve.errors import UserError  # noqa: E402
from evolve.eval.evaluator import run_numpy  # noqa: E402
from evolve.ops import CONST, OPS  # noqa: E402
from evolve.problem import Problem  # noqa: E402
from evolve.program import Program, input_dependent, used  # noqa: E402
from evolve.results.export import export  # noqa: E402
from evolve.text import parse_program  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
from bench_search import cpu_model  # noqa: E402  (one description of the machine)

# function -> (libm symbol, its XLA counterpart)
LIBM = {"exp2": ("exp2f", jnp.exp2), "exp": ("expf", jnp.exp), "log2": ("log2f", jnp.log2),
        "erf": ("erff", jax.scipy.special.erf), "tanh": ("tanhf", jnp.tanh)}
PROBLEMS = tuple(f"{f}{s}" for f in LIBM for s in ("", "_nofma"))
DEFAULT_CFLAGS = ("-O2 -ffp-contract=off", "-O2 -ffp-contract=off -march=native")

HARNESS = r"""
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

%(declarations)s

static const struct { const char *name; float (*f)(float); } FUNCTIONS[] = {
%(table)s
};

static double now(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return (double) t.tv_sec + 1e-9 * (double) t.tv_nsec;
}

/* passes over x, every output stored: the calls cannot be removed */
__attribute__((noinline)) static void
sweep(float (*f)(float), const float *x, float *y, long n, long passes)
{
    for (long p = 0; p < passes; p++)
        for (long i = 0; i < n; i++)
            y[i] = f(x[i]);
}

static float *read_floats(const char *path, long *n)
{
    FILE *in = fopen(path, "rb");
    if (!in)
        return NULL;
    fseek(in, 0, SEEK_END);
    *n = ftell(in) / (long) sizeof(float);
    rewind(in);
    float *x = malloc((size_t) *n * sizeof(float));
    if (!x || fread(x, sizeof(float), (size_t) *n, in) != (size_t) *n)
        return NULL;
    fclose(in);
    return x;
}

/* harness time NAME INPUTS CALLS REPEATS: "cpu_seconds wall_seconds calls checksum" on
   stdout, each time the minimum over the repeats
   harness dump NAME INPUTS OUTPUTS: the outputs, float32, to OUTPUTS */
int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6)
        return 2;
    float (*f)(float) = NULL;
    for (size_t k = 0; k < sizeof FUNCTIONS / sizeof FUNCTIONS[0]; k++)
        if (strcmp(FUNCTIONS[k].name, argv[2]) == 0)
            f = FUNCTIONS[k].f;
    long n;
    float *x = read_floats(argv[3], &n);
    if (!f || !x || n < 1)
        return 3;
    float *y = malloc((size_t) n * sizeof(float));
    if (strcmp(argv[1], "dump") == 0 && argc == 5) {
        sweep(f, x, y, n, 1);
        FILE *out = fopen(argv[4], "wb");
        if (!out || fwrite(y, sizeof(float), (size_t) n, out) != (size_t) n)
            return 4;
        return fclose(out) != 0;
    }
    if (strcmp(argv[1], "time") != 0 || argc != 6)
        return 2;
    long passes = atol(argv[4]) / n, repeats = atol(argv[5]);
    if (passes < 1)
        passes = 1;
    double best_cpu = INFINITY, best_wall = INFINITY;
    for (long r = 0; r < repeats; r++) {
        double c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
        sweep(f, x, y, n, passes);
        double c = now(CLOCK_PROCESS_CPUTIME_ID) - c0, w = now(CLOCK_MONOTONIC) - w0;
        best_cpu = c < best_cpu ? c : best_cpu;
        best_wall = w < best_wall ? w : best_wall;
    }
    double sum = 0.0;
    for (long i = 0; i < n; i++)
        sum += y[i];
    printf("%%.9g %%.9g %%ld %%.17g\n", best_cpu, best_wall, passes * n, sum);
    return 0;
}
"""


@dataclass(frozen=True)
class Candidate:
    """A program to measure: where it comes from and what is known of its accuracy."""

    impl: str  # "evolved" or "sollya"
    name: str  # its C function name
    label: str  # where it comes from (front row, baseline name)
    program: Program
    max_ulp: float
    checked: str  # how max_ulp was found
    under_1ulp: bool


def op_counts(program: Program, problem: Problem) -> dict[str, int]:
    """Live, input-dependent instructions by op name (what the cost model counts)."""
    dep = input_dependent(program, problem.n_inputs)
    return dict(sorted(Counter(ins.name for ins, u, d in zip(program.instructions,
                                                             used(program), dep)
                               if u and d and ins.op != CONST).items()))


def evolved_candidate(problem: Problem, fronts: Path) -> Candidate | None:
    """The cheapest certified < 1 ULP row of the problem's fronts, else the most accurate
    certified row; None when there is no front file."""
    paths = sorted(fronts.glob(f"{problem.name}-*-front.csv"))
    if not paths:
        return None
    rows = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            for i, row in enumerate(csv.DictReader(f)):
                if row.get("certified_max_ulp"):
                    rows.append((float(row["certified_max_ulp"]), float(row["cost"]),
                                 f"{path.name} row {i}", row))
    if not rows:
        raise UserError(f"the fronts of {problem.name!r} in {str(fronts)!r} have no certified "
                        "row; run `evolve verify` on the run first")
    under = [r for r in rows if r[0] < 1]
    ulp, _, label, row = (min(under, key=lambda r: (r[1], r[0])) if under
                          else min(rows, key=lambda r: (r[0], r[1])))
    program = parse_program(row["program"], n_registers=problem.n_registers)
    return Candidate("evolved", f"evolved_{problem.name}", label, program, ulp,
                     "exhaustive (evolve verify)", ulp < 1)


def sollya_candidate(problem: Problem) -> Candidate:
    """The cheapest Sollya baseline under 1 ULP, else the most accurate one."""
    base = [b for b in load_baselines(problem.name) if b.get("program")]
    if not base:
        raise UserError(f"problem {problem.name!r} has no baselines in problems/baselines/; "
                        f"run `python scripts/sollya_baselines.py {problem.name}`")
    under = [b for b in base if b["error"] < 1]
    b = (min(under, key=lambda b: (b["cost"], b["error"])) if under
         else min(base, key=lambda b: (b["error"], b["cost"])))
    program = parse_program(b["program"], n_registers=problem.n_registers)
    return Candidate("sollya", f"sollya_{problem.name}", b["name"], program, b["error"],
                     b.get("checked", "?"), b["error"] < 1)


def jax_function(program: Program):
    """The program as a jitted JAX function of one float32 array: the ops table's JAX
    functions, one statement per live instruction, as ``evolve export --format jax``."""
    live = [ins for ins, u in zip(program.instructions, used(program)) if u]

    def f(x):
        x = jnp.asarray(x, jnp.float32)
        regs = {0: x}
        zero = jnp.zeros_like(x)
        for ins in live:
            if ins.op == CONST:
                regs[ins.dst] = jnp.float32(ins.value)
            else:
                regs[ins.dst] = OPS[ins.op].jax_fn(*(regs.get(a, zero) for a in ins.args))
        return jnp.broadcast_to(regs.get(program.output, zero), x.shape).astype(jnp.float32)

    return jax.jit(f)


# -- C ----------------------------------------------------------------------------------------
def build_harness(entries: list[tuple[Problem, Candidate]], cflags: str, workdir: Path,
                  exe_name: str = "harness") -> Path:
    """One binary with every candidate (exported C, a file each), the libm functions of
    their problems and the harness, built with ``gcc cflags``."""
    sources = []
    for problem, c in entries:
        path = workdir / f"{c.name}.c"
        path.write_text(export(c.program, problem, "c", name=c.name, info=c.label))
        sources.append(str(path))
    libm = sorted({LIBM[p.name.removesuffix("_nofma")][0] for p, _ in entries})
    names = [c.name for _, c in entries]
    harness = HARNESS % {
        "declarations": "\n".join(f"float {n}(float x);" for n in names),
        "table": "\n".join(f'    {{"{n}", {n}}},' for n in names + libm)}
    (workdir / "harness.c").write_text(harness)
    exe = workdir / exe_name
    cmd = ["gcc", *shlex.split(cflags), "-std=c99", "-Wall", "-o", str(exe),
           str(workdir / "harness.c"), *sources, "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"gcc failed ({shlex.join(cmd)}):\n{done.stderr}")
    return exe


def c_outputs(exe: Path, name: str, x: np.ndarray, workdir: Path) -> np.ndarray:
    """The binary's outputs of function ``name`` on the float32 inputs ``x``."""
    (workdir / "check-in.bin").write_bytes(np.asarray(x, np.float32).tobytes())
    out = workdir / "check-out.bin"
    subprocess.run([str(exe), "dump", name, str(workdir / "check-in.bin"), str(out)],
                   check=True, timeout=600)
    return np.frombuffer(out.read_bytes(), np.float32).copy()


def time_c(exe: Path, name: str, inputs: Path, calls: int, repeats: int = 1) -> dict:
    """CPU and wall ns per call of function ``name``: each the minimum over ``repeats``
    sweeps of ``calls`` calls."""
    done = subprocess.run([str(exe), "time", name, str(inputs), str(calls), str(repeats)],
                          capture_output=True, text=True, check=True, timeout=3600)
    cpu, wall, n, checksum = done.stdout.split()
    return {"ns": float(cpu) / int(n) * 1e9, "wall_ns": float(wall) / int(n) * 1e9,
            "calls": int(n), "checksum": float(checksum)}


# -- XLA --------------------------------------------------------------------------------------
def time_jax(fn, x, repeats: int = 1) -> dict:
    """CPU (all threads of the process) and wall ns per element of ``fn(x)``: each the
    minimum over ``repeats`` calls (call it once before, to compile)."""
    cpu, wall = float("inf"), float("inf")
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn(x).block_until_ready()
        cpu = min(cpu, time.process_time() - c0)
        wall = min(wall, time.perf_counter() - w0)
    return {"ns": cpu / x.size * 1e9, "wall_ns": wall / x.size * 1e9, "calls": int(x.size)}


def interleaved(measures: dict[str, Callable[[], dict]], repeats: int) -> dict[str, dict]:
    """Each measurement taken ``repeats`` times, round robin, so that all see the same
    load; for each, the minimum CPU and wall ns (and the load average at its last run)."""
    best: dict[str, dict] = {}
    for _ in range(repeats):
        for key, measure in measures.items():
            t = {**measure(), "loadavg_1m": os.getloadavg()[0]}
            if key in best:
                t["ns"], t["wall_ns"] = (min(t[k], best[key][k]) for k in ("ns", "wall_ns"))
            best[key] = t
    return best


# -- the benchmark ----------------------------------------------------------------------------
def _line(case: dict, metric: str, value: float, unit: str, baseline: str | None = None,
          baseline_value: float | None = None) -> dict:
    ratio = value / baseline_value if baseline_value else None
    return {"bench": "numerics", "case": case, "metric": metric, "value": value, "unit": unit,
            "baseline": baseline, "baseline_value": baseline_value, "ratio": ratio}


def _describe(c: Candidate, problem: Problem) -> dict:
    ops = op_counts(c.program, problem)
    return {"function": c.name, "source": c.label, "ops": ops, "op_count": sum(ops.values()),
            "cost": problem.cost(c.program), "max_ulp": c.max_ulp, "max_ulp_checked": c.checked,
            "under_1ulp": c.under_1ulp}


def _speed_lines(base: dict, timings: dict[str, dict], names: dict[str, str]) -> list[dict]:
    """ns_per_call for each implementation; gcalls_per_s of evolved against sollya and libm,
    and of sollya against libm."""
    lines = []
    for impl, t in timings.items():
        case = {**base, "impl": impl, "function": names[impl], "calls": t["calls"],
                "wall_ns_per_call": t["wall_ns"], "loadavg_1m": t["loadavg_1m"]}
        if "differ" in t:
            case["differ_from_run_numpy"] = t["differ"]
        lines.append(_line(case, "ns_per_call", t["ns"], "ns"))
        speed = 1.0 / t["ns"]
        against = {"evolved": ("sollya", "libm"), "sollya": ("libm",), "libm": ()}[impl]
        if not against:
            lines.append(_line(case, "gcalls_per_s", speed, "Gcalls/s"))
        for other in against:
            lines.append(_line(case, "gcalls_per_s", speed, "Gcalls/s",
                               f"{other} {names[other]}", 1.0 / timings[other]["ns"]))
    return lines


def _differ(got: np.ndarray, want: np.ndarray) -> int:
    """How many outputs differ in their bits."""
    return int(np.count_nonzero(np.asarray(got, np.float32).view(np.uint32)
                                != want.view(np.uint32)))


def _c_lines(pairs, cflags_sets, calls, repeats, points, check_points, host) -> list[dict]:
    entries = [(p, c) for p, pair in pairs for c in pair]
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout
    lines = []
    with tempfile.TemporaryDirectory(prefix="bench_numerics-") as tmp:
        workdir = Path(tmp)
        for k, cflags in enumerate(cflags_sets):
            exe = build_harness(entries, cflags, workdir, f"harness-{k}")
            for problem, (evolved, sollya) in pairs:
                x_check = problem.grid(check_points)[:, 0]
                for c in (evolved, sollya):
                    want = run_numpy(c.program, x_check, problem.n_registers)
                    if _differ(c_outputs(exe, c.name, x_check, workdir), want):
                        raise RuntimeError(f"{c.name} built with {cflags!r} differs from "
                                           "run_numpy: keep -ffp-contract=off, no -ffast-math")
                inputs = workdir / f"x-{problem.name}.bin"
                inputs.write_bytes(problem.grid(points)[:, 0].tobytes())
                libm = LIBM[problem.name.removesuffix("_nofma")][0]
                timings = interleaved({
                    impl: functools.partial(time_c, exe, fname, inputs, calls)
                    for impl, fname in (("evolved", evolved.name), ("sollya", sollya.name),
                                        ("libm", libm))}, repeats)
                for impl in ("evolved", "sollya"):
                    timings[impl]["differ"] = 0  # checked above
                base = {"problem": problem.name, "backend": "c", "cflags": cflags,
                        "compiler": f"gcc {gcc.strip()}", "points": points,
                        "repeats": repeats, "host": host, "checked_points": check_points}
                names = {"evolved": evolved.name, "sollya": sollya.label, "libm": libm}
                lines += _speed_lines(base, timings, names)
    return lines


def _xla_lines(pairs, jax_points, repeats, check_points, host) -> list[dict]:
    device = jax.devices("cpu")[0]
    lines = []
    for problem, (evolved, sollya) in pairs:
        x = jax.device_put(problem.grid(jax_points)[:, 0], device)
        x_check = problem.grid(check_points)[:, 0]
        symbol, xla_fn = LIBM[problem.name.removesuffix("_nofma")]
        label = "jax.scipy.special.erf" if symbol == "erff" else f"jnp.{xla_fn.__name__}"
        fns = {"evolved": jax_function(evolved.program), "sollya": jax_function(sollya.program),
               "libm": jax.jit(xla_fn)}
        for fn in fns.values():
            fn(x).block_until_ready()  # compile
        timings = interleaved({impl: functools.partial(time_jax, fn, x)
                               for impl, fn in fns.items()}, repeats)
        for impl, c in (("evolved", evolved), ("sollya", sollya)):
            # XLA on CPUs contracts a*b + c into an FMA: count the points where it matters
            timings[impl]["differ"] = _differ(fns[impl](jax.device_put(x_check, device)),
                                              run_numpy(c.program, x_check, problem.n_registers))
        base = {"problem": problem.name, "backend": "xla", "jax": jax.__version__,
                "device": device.device_kind, "points": jax_points, "repeats": repeats,
                "host": host, "checked_points": check_points}
        names = {"evolved": evolved.name, "sollya": sollya.label, "libm": label}
        lines += _speed_lines(base, timings, names)
    return lines


def bench_problems(problem_names: list[str], fronts: Path, calls: int, repeats: int,
                   points: int, jax_points: int, cflags_sets: list[str],
                   check_points: int = 4096) -> list[dict]:
    """Every measurement for the named problems, as JSON-ready dicts: op counts and
    accuracy, then C speed for each set of flags, then XLA speed."""
    pairs = []
    for name in problem_names:
        problem = load_problem(name)
        evolved = evolved_candidate(problem, fronts)
        if evolved is None:
            raise UserError(f"no evolved front for {name!r}: expected "
                            f"{str(fronts / (name + '-<seed>-front.csv'))!r}; pass --fronts "
                            "DIR or leave the problem out")
        pairs.append((problem, (evolved, sollya_candidate(problem))))
    host = {"machine": platform.machine(), "cores": os.cpu_count(), "cpu": cpu_model()}
    lines = []
    for problem, (evolved, sollya) in pairs:
        case = {"problem": problem.name, "domain": list(problem.domain[0]),
                "evolved": _describe(evolved, problem), "sollya": _describe(sollya, problem)}
        for metric, unit in (("op_count", "ops"), ("cost", "weighted ops"), ("max_ulp", "ULP")):
            lines.append(_line(case, metric, float(case["evolved"][metric]), unit,
                               f"sollya {sollya.label}", float(case["sollya"][metric])))
    lines += _c_lines(pairs, cflags_sets, calls, repeats, points, check_points, host)
    return lines + _xla_lines(pairs, jax_points, repeats, check_points, host)


def _count(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (e.g. 1e8)") from None
    if not (value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(value)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default=None,
                    help="comma-separated (default: those of " + ", ".join(PROBLEMS) +
                    " with a front in --fronts)")
    ap.add_argument("--fronts", type=Path, default=ROOT / "docs" / "suite-h200",
                    help="directory of <problem>-<seed>-front.csv files, certified")
    ap.add_argument("--calls", type=_count, default=100_000_000, help="C calls per repeat")
    ap.add_argument("--points", type=_count, default=1_000_000,
                    help="distinct C inputs, cycled to --calls")
    ap.add_argument("--jax-points", type=_count, default=10_000_000,
                    help="inputs of one jitted call")
    ap.add_argument("--repeats", type=_count, default=5, help="timings; the minimum is kept")
    ap.add_argument("--cflags", action="append", default=None,
                    help=f"gcc flags, repeatable (default: {' and '.join(map(repr, DEFAULT_CFLAGS))})")
    ap.add_argument("--out", type=Path, default=None, help="also write the lines here")
    args = ap.parse_args(argv)
    cflags = args.cflags or list(DEFAULT_CFLAGS)
    if shutil.which("gcc") is None:
        sys.exit("bench_numerics: gcc not found: the C timings need it (Debian: apt-get "
                 "install gcc)")
    try:
        for flags in cflags:
            if "-ffp-contract=off" not in shlex.split(flags) or "-ffast-math" in flags:
                raise UserError(f"--cflags {flags!r}: add -ffp-contract=off and leave out "
                                "-ffast-math, or the C will not compute what the program does")
        if args.problems:
            names = [n.strip() for n in args.problems.split(",") if n.strip()]
            bad = [n for n in names if n not in PROBLEMS]
            if bad:
                raise UserError(f"--problems: {bad} are not function problems; choose from "
                                f"{', '.join(PROBLEMS)}")
        else:
            names = [n for n in PROBLEMS if list(args.fronts.glob(f"{n}-*-front.csv"))]
            skipped = sorted(set(PROBLEMS) - set(names))
            if skipped:
                print(f"no evolved front in {args.fronts} for {', '.join(skipped)}: skipped",
                      file=sys.stderr)
        lines = bench_problems(names, args.fronts, args.calls, args.repeats, args.points,
                               args.jax_points, cflags)
    except UserError as e:
        sys.exit(f"bench_numerics: error: {e}")
    text = "".join(json.dumps(line) + "\n" for line in lines)
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
