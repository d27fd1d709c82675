"""Per-op throughput of the native CPU kernel (``evolve.eval.cpu.kernel``) against numpy, as JSON lines.

For each op, a batch of P programs that each apply the op C times to the input register
(``r1 = op(r0)`` C times, ``r1 = op(r0, r0)`` for a binary op), run by
``Evaluator.errors`` on N float32 points on one XLA CPU device (one thread). The op's own
cost is the difference between programs of 2C and of C copies, so the per-tile costs
(loading inputs, the error reduction) cancel: Gelem/s = P * C * N / (t_2C - t_C) / 1e9,
the best of ``--repeats`` timings of each, interleaved. The baseline is numpy's float32
ufunc on the same points (``np.sin(x, out=buf)``), best of as many repeats.

Points per op, all inside the kernel's fast range: sin, cos uniform in [-10, 10]; exp,
tanh in [-5, 5]; exp2 in [-7, 7]; log uniform in [1e-3, 1e3] on a log scale; the
arithmetic ops in [-3, 3].

Output, one JSON object per line::

    {"bench": "native_ops", "case": {...}, "metric": "gelem_per_s", "value": float,
     "unit": "Gelem/s", "baseline": "numpy", "baseline_value": float, "ratio": float}

The transcendental ops are timed with each implementation the run configuration offers
(``search.evaluator.native_math``): our float32 code ("own32", the default), glibc's
vector math library ("libmvec") and our float64 code ("own") (``--math own32,libmvec``;
"math" in the case says which), interleaved so that all see the same load. The machine
may be shared: take the best of several runs, and pin to one core for steadier figures
(``taskset -c 1``).

    .venv/bin/python scripts/bench_native_ops.py
    .venv/bin/python scripts/bench_native_ops.py --ops sin,exp --math own32,libmvec,own
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=1").strip()

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from evolve.eval.cpu import kernel as native  # noqa: E402
from evolve.eval.evaluator import NATIVE_MATHS, Evaluator  # noqa: E402
from evolve.ops import OPCODE, OPS  # noqa: E402
from evolve.program import Instruction, Program, to_arrays  # noqa: E402

RANGES = {"sin": (-10, 10), "cos": (-10, 10), "exp": (-5, 5), "tanh": (-5, 5),
          "exp2": (-7, 7)}
NUMPY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
         "sin": np.sin, "cos": np.cos, "exp": np.exp, "log": np.log, "exp2": np.exp2,
         "tanh": np.tanh}


def points(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "log":
        return np.exp(rng.uniform(np.log(1e-3), np.log(1e3), n)).astype(np.float32)
    lo, hi = RANGES.get(name, (-3, 3))
    return rng.uniform(lo, hi, n).astype(np.float32)


def batch(o: int, copies: int, programs: int):
    """``programs`` copies of the program ``r1 = op(r0, ...)`` repeated ``copies`` times."""
    ins = tuple(Instruction(o, 1, (0,) * OPS[o].arity) for _ in range(copies))
    return to_arrays([Program(ins, 1)] * programs, length=copies)


def timed(fn, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", default="sin,cos,exp,log,exp2,tanh,add,mul,div")
    ap.add_argument("--math", default=",".join(NATIVE_MATHS),
                    help="the transcendental ops' code to time, in turn: "
                         + ", ".join(NATIVE_MATHS))
    ap.add_argument("--n", type=int, default=100_000, help="points")
    ap.add_argument("--programs", type=int, default=8, help="programs per batch (P)")
    ap.add_argument("--copies", type=int, default=16, help="copies of the op (C)")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    if not native.available():
        sys.exit("the native kernel cannot be built here (no C++ compiler)")
    rng = np.random.default_rng(0)
    maths = args.math.split(",")
    bad = [m for m in maths if m not in NATIVE_MATHS]
    if bad:
        ap.error(f"--math: unknown {bad}; choose from {', '.join(NATIVE_MATHS)}")
    for name in args.ops.split(","):
        o = OPCODE[name]
        x = points(name, args.n, rng)
        y = np.zeros(args.n)

        short, long_ = (batch(o, c, args.programs) for c in (args.copies, 2 * args.copies))
        kinds = maths if not OPS[o].exact else maths[:1]
        # one evaluator per implementation, traced (and its kernel built) first; then the
        # timings interleave, best of repeats
        runs = {}
        for math in kinds:
            ev = Evaluator(n_registers=2, n_inputs=1, backend="native", ops=(name,),
                           native_math=math)
            for b in (short, long_):
                ev.errors(b, x, y)
            runs[math] = ev
        fn, buf, nargs = NUMPY[name], np.empty_like(x), OPS[o].arity
        best = {key: float("inf") for key in [(m, c) for m in kinds for c in (1, 2)] + ["np"]}
        for _ in range(args.repeats):
            for math, ev in runs.items():
                best[math, 1] = min(best[math, 1], timed(ev.errors, short, x, y))
                best[math, 2] = min(best[math, 2], timed(ev.errors, long_, x, y))
            with np.errstate(all="ignore"):
                best["np"] = min(best["np"], timed(fn, *(x,) * nargs, out=buf))
        base = args.n / best["np"] / 1e9
        for math in kinds:
            dt = max(best[math, 2] - best[math, 1], 1e-12)
            ours = args.programs * args.copies * args.n / dt / 1e9
            case = {"op": name, "n": args.n, "programs": args.programs, "copies": args.copies,
                    "math": math if not OPS[o].exact else "exact", "threads": 1,
                    "load": round(os.getloadavg()[0], 2)}
            print(json.dumps({"bench": "native_ops", "case": case, "metric": "gelem_per_s",
                              "value": round(ours, 4), "unit": "Gelem/s", "baseline": "numpy",
                              "baseline_value": round(base, 4),
                              "ratio": round(ours / base, 3)}), flush=True)


if __name__ == "__main__":
    main()
