"""The C++ kernel's transcendental ops against float64, as JSON lines: max error in ULPs.

For each op (sin, cos, exp, exp2, log, tanh) and each ``--math`` (the run configuration's
``search.evaluator.native_math``), the program ``r1 = op(r0)`` runs on every ``--stride``-th
float32 bit pattern inside the op's fast range (``evolve.eval.cpu.source._MVEC``; the other
inputs take the kernel's special-lane code), once with each instruction set this host
runs (AVX-512, AVX2). Error: |out - f(x)| / 2^(floor(log2|f(x)|) - 23) with f in float64
(numpy), the ULP of the exact value's binade (at least 2^-149). Each line also says
whether the vector widths gave the same bits (``same_bits_across_isas``).

    python scripts/check_vecmath.py                       # own32, every 101st float
    python scripts/check_vecmath.py --math own32,libmvec --stride 1009
"""

from __future__ import annotations

import argparse
import json
import os
import sys

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_force_host_platform_device_count=1").strip()

import numpy as np  # noqa: E402

from evolve.eval.cpu import kernel as native  # noqa: E402
from evolve.eval.cpu import source  # noqa: E402
from evolve.eval.evaluator import NATIVE_MATHS, Evaluator  # noqa: E402
from evolve.ops import OPCODE  # noqa: E402
from evolve.program import Instruction, Program, to_arrays  # noqa: E402

CHUNK = 1 << 22  # points a call


def fast_floats(name: str, stride: int) -> np.ndarray:
    """Every ``stride``-th float32 bit pattern x with lo < x < hi (the op's fast range)."""
    _, _, lo, hi = source._MVEC[name]
    pos = np.arange(0, 0x7F800000, stride, dtype=np.uint32).view(np.float32)
    x = np.concatenate([-pos[pos > 0], pos])
    return x[(x > lo) & (x < hi)]


def ulp_errors(out: np.ndarray, exact: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        binade = np.floor(np.log2(np.abs(exact)))
    ulp = np.maximum(np.exp2(np.where(np.isfinite(binade), binade, -149.0) - 23), 2.0 ** -149)
    return np.abs(out.astype(np.float64) - exact) / ulp


def outputs(name: str, math: str, isa: str, x: np.ndarray) -> np.ndarray:
    native.host_isa = lambda: isa  # the kernel built for this instruction set
    ev = Evaluator(n_registers=2, n_inputs=1, backend="native", native_math=math)
    batch = to_arrays([Program((Instruction(OPCODE[name], 1, (0,)),), 1)])
    return np.concatenate([ev.outputs(batch, x[i:i + CHUNK, None])[0]
                           for i in range(0, len(x), CHUNK)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", default=",".join(source._MVEC))
    p.add_argument("--math", default="own32", help=f"comma-separated: {', '.join(NATIVE_MATHS)}")
    p.add_argument("--stride", type=int, default=101, help="every stride-th float32 (1: all)")
    args = p.parse_args(argv)
    if not native.available():
        p.error("the C++ kernel cannot be built here")
    isas = [isa for isa in native.host_isas() if isa != "generic"]
    for math in args.math.split(","):
        for name in args.ops.split(","):
            x = fast_floats(name, args.stride)
            exact = getattr(np, name)(x.astype(np.float64))
            got = {isa: outputs(name, math, isa, x) for isa in isas}
            err = ulp_errors(got[isas[0]], exact)
            worst = int(np.argmax(err))
            same = all(np.array_equal(got[isa].view(np.uint32), got[isas[0]].view(np.uint32))
                       for isa in isas[1:])
            print(json.dumps({"bench": "vecmath", "op": name, "math": math,
                              "stride": args.stride, "points": len(x), "isas": isas,
                              "max_ulp": round(float(err[worst]), 4),
                              "worst_x": float(x[worst]),
                              "mean_ulp": round(float(err.mean()), 4),
                              "same_bits_across_isas": same}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
