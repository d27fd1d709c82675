"""Measured speed as a cost: the wall-clock latency of a program jitted by XLA on the CPU.

AutoNumerics-Zero estimates a candidate's speed by compiling it and timing it many times,
keeping the minimum. ``LatencyCost`` does that for the programs that compete on cost: a
program's live instructions become a JAX function (the ops table's ``jax_fn``, so the
same float32 semantics as the evaluator), jitted for the CPU and run on a fixed block of
points ``repeats`` times; its cost is the minimum time, in nanoseconds per point.

Compiling costs tens of milliseconds a program, so only programs whose error meets the
problem's target (those that compete on cost alone in accuracy-first mode) are timed, and
each distinct program once (an LRU cache keyed by its live instructions). The others get
an estimate on the same scale: ``base + per_op * weighted op count``, with ``base`` and
``per_op`` measured at start-up on the problem's own ops.

``CLatencyCost`` (``search.cost: c``) times what a user ships instead, as AutoNumerics-Zero
times compiled code: the program exported to C (``evolve export --format c``), built by gcc
(``C_FLAGS``: -O2, the host's instruction set, so fma is one instruction where the CPU has
it) into a shared library with a timing loop that calls it out of line through a pointer,
as libm is called (``scripts/bench_numerics.py`` times the same way), itself called
through ctypes; the cost is the minimum over ``repeats`` passes of ns per call over the
block of points.

Timings are measurements: two runs, or a run and its resume, can time a program
differently by the machine's noise, so with ``search.cost: latency`` or ``c`` a resumed run
is exact only up to that noise (a checkpoint keeps the population's costs as measured).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from evolve.c_code import c_source
from evolve.errors import UserError
from evolve.ops import CONST, OPS
from evolve.program import Instruction, Program, live

# ns per point per unit of op weight below which a calibration is taken as noise
PER_OP_FLOOR = 1e-3


def live_instructions(program: Program, n_inputs: int) -> list[Instruction]:
    """The instructions whose value reaches the output, in order (``program.live``)."""
    return live(program)


def program_function(program: Program, n_registers: int, n_inputs: int):
    """The program as a JAX function of its inputs (each [N] float32): [N] float32."""
    body = live_instructions(program, n_inputs)

    def f(*xs):
        zero = jnp.zeros_like(xs[0])
        regs = [xs[r] if r < n_inputs else zero for r in range(n_registers)]
        for ins in body:
            if ins.op == CONST:
                regs[ins.dst] = jnp.full_like(zero, np.float32(ins.value))
            else:
                regs[ins.dst] = OPS[ins.op].jax_fn(*(regs[a] for a in ins.args)).astype(
                    jnp.float32)
        return regs[program.output]

    return f


class LatencyCost:
    """Costs in nanoseconds per point: measured for accurate programs, estimated for others.

    problem: the problem (its registers, inputs, domain, ops, target and op weights).
    points: the block of points a program is timed on; repeats: timings kept (minimum).
    """

    def __init__(self, problem, points: int = 4096, repeats: int = 30, capacity: int = 4096,
                 device=None):
        self.problem = problem
        self.repeats = repeats
        self.capacity = capacity
        self.device = device or jax.devices("cpu")[0]
        x = problem.grid(points).astype(np.float32)
        self.x = [jax.device_put(x[:, j], self.device) for j in range(problem.n_inputs)]
        # the estimate's unit: the ops table's weights of live, input-dependent instructions
        self._weights = replace(problem, cost_model="weighted")
        self.cache: OrderedDict[tuple, float] = OrderedDict()
        self.measured = 0
        self._calibrate()

    def _key(self, program: Program) -> tuple:
        return (program.output,) + tuple(
            (i.op, i.dst, i.args, i.value) for i in live_instructions(program,
                                                                      self.problem.n_inputs))

    def time(self, program: Program) -> float:
        """The program's latency, ns per point (minimum of ``repeats`` timed runs)."""
        key = self._key(program)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        # the points live on the CPU device, so the jitted function runs there
        f = jax.jit(program_function(program, self.problem.n_registers, self.problem.n_inputs))
        f(*self.x).block_until_ready()
        best = float("inf")
        for _ in range(self.repeats):
            t0 = time.perf_counter()
            f(*self.x).block_until_ready()
            best = min(best, time.perf_counter() - t0)
        ns = best / len(self.x[0]) * 1e9
        self.cache[key] = ns
        self.measured += 1
        if len(self.cache) > self.capacity:
            self.cache.popitem(last=False)
        return ns

    def _calibrate(self) -> None:
        """``base`` (ns per point of a program that returns its input) and ``per_op`` (ns
        per point per unit of op weight), from chains of each of the problem's own ops.

        On a small block, dispatch overhead can hide a short chain's work in the machine's
        noise (a chain timed no slower than the identity), so the chains are 32 ops long
        and ``per_op`` is floored at ``PER_OP_FLOOR``: the estimate must keep growing with
        the op count, or every inaccurate program would cost the same."""
        x0 = Program((), 0)
        self.base = self.time(x0)
        ops = [o for o in self.problem.opcodes if o != CONST]
        slopes = []
        for o in ops:
            n = 32
            body = tuple(Instruction(o, 0, (0,) * OPS[o].arity) for _ in range(n))
            t = self.time(Program(body, 0))
            slopes.append(max(t - self.base, 0.0) / (n * max(OPS[o].cost, 1e-9)))
        self.per_op = max(float(np.median(slopes)) if slopes else 0.0, PER_OP_FLOOR)

    def __call__(self, programs: list[Program], error: np.ndarray) -> np.ndarray:
        """Costs of ``programs`` given their errors: measured where the error meets the
        target, estimated elsewhere (everywhere for a problem without a target)."""
        target = self.problem.target
        out = np.empty(len(programs))
        for i, (p, e) in enumerate(zip(programs, error)):
            timed = target is not None and np.isfinite(e) and e < target
            out[i] = self.time(p) if timed else self.base + self.per_op * self._weights.cost(p)
        return out


C_FLAGS = ("-O2", "-march=native", "-ffp-contract=off", "-fPIC", "-shared")

_C_HARNESS = """
#include <time.h>

double evolve_time(const float *const *x, float *y, int n, int repeats)
{{
    /* called out of line through a pointer, as libm is: not inlined into the loop */
    float (*volatile call)({params}) = evolve_f;
    double best = 1e300;
    for (int r = 0; r < repeats; r++) {{
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        float chain = 0.0f;  /* each call waits for the one before: its latency counts */
        for (int i = 0; i < n; i++) {{
            chain = call({args}) * 0.0f;
            y[i] = chain;
        }}
        clock_gettime(CLOCK_MONOTONIC, &b);
        double t = (double) (b.tv_sec - a.tv_sec) * 1e9 + (double) (b.tv_nsec - a.tv_nsec);
        if (t < best)
            best = t;
    }}
    return best / n;
}}
"""


class CLatencyCost(LatencyCost):
    """``LatencyCost`` with the programs timed as gcc compiles them (``search.cost: c``):
    each distinct timed program is built once (tens of milliseconds) into its own library
    in a temporary folder of this instance."""

    def __init__(self, problem, points: int = 4096, repeats: int = 30, capacity: int = 4096,
                 cflags: tuple[str, ...] = C_FLAGS):
        self.gcc = shutil.which("gcc")
        if self.gcc is None:
            raise UserError("search.cost = 'c' builds each timed program with gcc, which is "
                            "not on PATH; install gcc, or set search.cost: latency")
        self.cflags = tuple(cflags)
        self.folder = Path(tempfile.mkdtemp(prefix="evolve-c-"))
        self._built = 0
        x = problem.grid(points).astype(np.float32)
        self._columns = [np.ascontiguousarray(x[:, j]) for j in range(problem.n_inputs)]
        self._y = np.zeros(points, np.float32)
        super().__init__(problem, points, repeats, capacity, jax.devices("cpu")[0])

    def time(self, program: Program) -> float:
        """The program's time as C, ns per call (minimum of ``repeats`` passes)."""
        key = self._key(program)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        args = ", ".join(f"x[{j}][i] + chain" for j in range(self.problem.n_inputs))
        params = ", ".join(["float"] * self.problem.n_inputs)
        source = c_source(program, self.problem, "evolve_f") + \
            _C_HARNESS.format(args=args, params=params)
        self._built += 1
        c_file = self.folder / f"p{self._built}.c"
        lib = self.folder / f"p{self._built}.so"
        c_file.write_text(source)
        done = subprocess.run([self.gcc, *self.cflags, "-o", str(lib), str(c_file), "-lm"],
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"gcc failed on an exported program:\n{done.stderr[-2000:]}")
        f = ctypes.CDLL(str(lib)).evolve_time
        f.restype = ctypes.c_double
        f.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_int,
                      ctypes.c_int]
        pointers = (ctypes.c_void_p * len(self._columns))(
            *(c.ctypes.data for c in self._columns))
        ns = float(f(pointers, self._y.ctypes.data, len(self._y), self.repeats))
        lib.unlink()  # loaded: the file is no longer needed
        c_file.unlink()
        self.cache[key] = ns
        self.measured += 1
        if len(self.cache) > self.capacity:
            self.cache.popitem(last=False)
        return ns
