"""Check and time the fused Pallas evaluator kernel on a GPU; JSON lines on stdout.

Stages (each prints JSON lines; a stage that raises prints {"stage": ..., "error": ...} and
the script goes on):

- ``correct``: Evaluator(backend="pallas") outputs against ``run_numpy_batch``, bit for
  bit on random programs of exactly rounded ops (float32 points with signed zeros, inf,
  nan, huge and tiny values), single-op programs per op (also on subnormal points), the
  transcendental ops in ULPs, ``errors()`` against numpy, the plain ``jax_fn`` lowering
  of div/sqrt/neg (why the kernel overrides them), and the float64 mode.
- ``bench``: the fused errors path, GPops/s = sum of program lengths x N / seconds, after
  a warm-up; compile time (first call less a steady one) reported on its own.
  ``device``: the jitted sharded call on device-resident arrays; ``e2e``: the public
  ``Evaluator.errors`` with numpy in and out.
- ``div``: the kernel's float32 division (bits against numpy, and speed).
- ``sweep``: tile size and warps at one size (with ``--choose`` the fastest is used from
  then on).
- ``lax``: the portable lax path on the GPU at one small size, and its agreement.

Workload: random straight-line programs over R=8 registers, one input, lengths uniform in
1..L, ops add sub mul div sin cos exp log and literals (scripts/bench_eval.py's op set;
its DEAP trees are not used because DEAP is not on the GPU machine); points uniform in
[-3, 3]; target cos(x).

One concept over 400 lines: the GPU kernels' checks and benchmarks, a stage a function.

    python scripts/check_gpu.py                       # all stages, in this order
    python scripts/check_gpu.py --stages correct,bench --deadline 200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import evolve  # noqa: E402,F401  (XLA flags before jax starts)
from evolve.eval import pallas as kernels  # noqa: E402
from evolve.eval.cuda.kernel import CudaShape  # noqa: E402
from evolve.eval.evaluator import Evaluator, run_numpy_batch  # noqa: E402
from evolve.eval.roofline import fp32_fraction  # noqa: E402
from evolve.ops import CONST, OPCODE, OPS  # noqa: E402
from evolve.problem import ulp32  # noqa: E402
from evolve.program import (  # noqa: E402
    Instruction,
    Program,
    ProgramBatch,
    from_arrays,
    input_dependent,
    to_arrays,
    used,
)

R = 8
EXACT = [i for i, op in enumerate(OPS) if op.exact]
INEXACT = [i for i, op in enumerate(OPS) if not op.exact]
BENCH_OPS = [OPCODE[n] for n in ("add", "sub", "mul", "div", "sin", "cos", "exp", "log")]
EXACT_OPS = [OPCODE[n] for n in ("add", "sub", "mul", "div", "fma", "min", "max", "neg",
                                 "abs", "sqrt")]
T_START = time.time()
SMALL = bool(os.environ.get("CHECK_SMALL"))  # a smoke test off the GPU (interpret mode)
OUT = os.environ.get("OUT")


def emit(**kw):
    line = json.dumps(kw, default=float)
    print(line, flush=True)
    if OUT:
        with open(os.path.join(OUT, "results.jsonl"), "a") as f:
            f.write(line + "\n")


def bits(a):
    return np.asarray(a, np.float32).view(np.uint32)


def mismatches(got, want):
    same = (bits(got) == bits(want)) | (np.isnan(got) & np.isnan(want))
    return int((~same).sum())


def equal_counts(a, b, keys):
    """Programs whose errors ``a[k]`` and ``b[k]`` (dicts of float64 arrays) are equal, NaN
    counting as equal to NaN, for each key k."""
    return {k: int(((a[k] == b[k]) | (np.isnan(a[k]) & np.isnan(b[k]))).sum()) for k in keys}


def parse_configs(text):
    """``--configs``: "mode,points,threads,tiles[,ulp];..." as tuples, numbers as ints."""
    return [tuple(int(v) if v.isdigit() else v for v in c.split(",")) for c in text.split(";")]


# -- workloads --------------------------------------------------------------------------
def random_program(rng, ops, length, n_registers=R, n_inputs=2):
    ins = []
    for _ in range(length):
        op = int(rng.choice(ops))
        args = tuple(int(a) for a in rng.integers(0, n_registers, OPS[op].arity))
        value = float(np.float32(rng.normal() * 4)) if op == CONST else 0.0
        ins.append(Instruction(op, int(rng.integers(0, n_registers)), args, value))
    return Program(tuple(ins), int(rng.integers(0, n_registers)))


def bench_batch(P, L, ops, seed=0, p_const=0.2):
    """P random programs as arrays (vectorised): lengths 1..L, output = last dst."""
    rng = np.random.default_rng(seed)
    length = rng.integers(1, L + 1, P).astype(np.int32)
    op = np.asarray(ops, np.int32)[rng.integers(0, len(ops), (P, L))]
    op = np.where(rng.random((P, L)) < p_const, CONST, op).astype(np.int32)
    arity = np.array([o.arity for o in OPS])[op]
    args = rng.integers(0, R, (P, L, 3)).astype(np.int32)
    args = np.where(np.arange(3) < arity[..., None], args, 0).astype(np.int32)
    dst = rng.integers(0, R, (P, L)).astype(np.int32)
    const = np.where(op == CONST, rng.uniform(-1, 1, (P, L)), 0).astype(np.float32)
    live = np.arange(L) < length[:, None]
    op, dst, const = op * live, dst * live, const * live
    args = args * live[..., None]
    output = dst[np.arange(P), length - 1].astype(np.int32)
    return ProgramBatch(op, args, dst, const, length, output)


def with_empty_programs(batch, outputs=(0, 5, 0, 7)):
    """The batch with its first programs emptied (no instructions), returning an input
    or a zero register: a tree that is a bare input compiles to such a program."""
    k = len(outputs)
    length, output = batch.length.copy(), batch.output.copy()
    length[:k], output[:k] = 0, outputs
    op, args, dst, const = (a.copy() for a in (batch.op, batch.args, batch.dst, batch.const))
    for a in (op, args, dst, const):
        a[:k] = 0
    return ProgramBatch(op, args, dst, const, length, output)


def special_points(rng, n, subnormal=False):
    x = rng.uniform(-3, 3, (n, 2)).astype(np.float32)
    sp = [[0.0, -0.0], [-0.0, 0.0], [np.inf, 1.0], [np.nan, 2.0], [1e38, 1e-30],
          [-np.inf, 3e38], [3e38, -3e38], [1e-30, 1e-20], [-1.5, 0.0], [2.0, -np.inf]]
    if subnormal:
        sp += [[1e-40, 3.0], [-1e-42, 1e-41], [1.2e-38, 0.5], [1e-20, 1e-25]]
        x[len(sp):len(sp) + 200] *= np.float32(1e-39)  # many subnormal inputs
    x[: len(sp)] = sp
    return x


# -- stages ---------------------------------------------------------------------------
def stage_probe(args):
    """One tiny call of the kernel: does it build and run here, and how long the first
    call takes."""
    batch = to_arrays([random_program(np.random.default_rng(0), EXACT, 8, n_inputs=1)], length=8)
    x = np.linspace(-1, 1, 1000).astype(np.float32)
    try:
        t0 = time.perf_counter()
        evaluator(args, n_registers=R, n_inputs=1, backend="pallas").errors(batch, x, x * 0.0)
        emit(stage="probe", ok=True, first_call_s=time.perf_counter() - t0)
    except Exception as e:
        emit(stage="probe", ok=False, error=f"{type(e).__name__}: {str(e)[:4000]}")


def stage_correct(args):
    rng = np.random.default_rng(0)
    ev = evaluator(args, n_registers=R, n_inputs=2, backend="pallas")
    n_points = 700 if SMALL else 5000
    x = special_points(rng, n_points)

    # random programs of exact ops, L = 32
    progs = [random_program(rng, EXACT, int(rng.integers(0, 33)))
             for _ in range(20 if SMALL else 200)]
    batch = to_arrays(progs, length=32)
    t0 = time.perf_counter()
    got = ev.outputs(batch, x)
    emit(stage="correct", check="outputs_first_call_s", value=time.perf_counter() - t0)
    want = run_numpy_batch(batch, x, R)
    emit(stage="correct", check="exact_random_programs_bitwise", programs=len(progs),
         points=len(x), mismatches=mismatches(got, want), values=int(got.size))

    # single-op programs per op, normal and subnormal points, kernel and plain jax_fn lowering
    singles = [Program((Instruction(op, 3, (0, 1, 0)[: OPS[op].arity]),), 3)
               for op in range(len(OPS)) if op != CONST]
    names = [OPS[op].name for op in range(len(OPS)) if op != CONST]
    sbatch = to_arrays(singles, length=32)
    for label, pts in (("normal", x), ("subnormal", special_points(rng, n_points, True))):
        got = ev.outputs(sbatch, pts)
        want = run_numpy_batch(sbatch, pts, R)
        per_op = {}
        for i, name in enumerate(names):
            if OPS[OPCODE[name]].exact:
                per_op[name] = mismatches(got[i], want[i])
            else:
                g, w = got[i].astype(np.float64), want[i].astype(np.float64)
                ok = np.isfinite(g) & np.isfinite(w) & (w != 0)
                with np.errstate(all="ignore"):
                    ulp = np.abs(g - w)[ok] / np.spacing(np.abs(want[i][ok])).astype(np.float64)
                per_op[name] = {"max_ulp_vs_numpy": float(ulp.max()) if ulp.size else None,
                                "nan_or_inf_disagree": int((np.isfinite(g) != np.isfinite(w)).sum()
                                                           + (np.isnan(g) != np.isnan(w)).sum())}
        emit(stage="correct", check=f"single_ops_{label}_points", points=len(pts),
             exact_mismatches_and_inexact_ulps=per_op)

    # plain jax_fn lowering (no overrides) for div, sqrt, neg: why the overrides exist
    arrays, P = ev._pad_batch(sbatch)
    xt, _, _ = ev._tiles(x)
    plain = jax.jit(lambda *a: kernels.outputs(*a, n_registers=R, exact_lowering=False))
    got = np.asarray(plain(*arrays, xt))[:P, : len(x)]
    want = run_numpy_batch(sbatch, x, R)
    emit(stage="correct", check="plain_jax_fn_lowering_mismatches",
         per_op={n: mismatches(got[i], want[i]) for i, n in enumerate(names)
                 if n in ("div", "sqrt", "neg", "add", "mul", "fma", "min", "max")})

    # errors() against numpy, with a mask (N not a multiple of the tile) and a scale
    xe = x[: n_points * 3 // 5 + 1]
    with np.errstate(all="ignore"):
        y = np.cos(xe[:, 0].astype(np.float64))
    scale = 1 / (1 + np.abs(np.nan_to_num(y)))
    err = ev.errors(batch, xe, y, scale)
    with np.errstate(all="ignore"):
        diff = np.abs(run_numpy_batch(batch, xe, R).astype(np.float64) - y)
        diff[np.isnan(diff)] = np.inf
        ref = {"max_abs": diff.max(1), "max_scaled": (diff * scale).max(1),
               "mse": (diff ** 2).mean(1)}
    res = {}
    for k in ref:
        a, b = err[k], ref[k]
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        fin = np.isfinite(a) & np.isfinite(b) & (b != 0)
        rel = float(np.max(np.abs(a - b)[fin] / np.abs(b[fin]))) if fin.any() else 0.0
        res[k] = {"equal": int(same.sum()), "of": len(a), "max_rel_diff": rel}
    emit(stage="correct", check="errors_vs_numpy", **res)

    # float64 mode (exact ops but fma: float64 fma is two roundings, see ops.py)
    ev64 = evaluator(args, n_registers=R, n_inputs=1, dtype="float64", backend="pallas")
    x64 = rng.uniform(-2, 2, 300 if SMALL else 3000)
    progs64 = [random_program(rng, [o for o in EXACT if o != OPCODE["fma"]], 20, n_inputs=1)
               for _ in range(10 if SMALL else 50)]
    b64 = to_arrays(progs64, length=32)
    got = ev64.outputs(b64, x64)
    want = run_numpy_batch(b64, x64, R, np.float64)
    same = (got.view(np.uint64) == want.view(np.uint64)) | (np.isnan(got) & np.isnan(want))
    emit(stage="correct", check="float64_mode_bitwise", mismatches=int((~same).sum()),
         values=int(got.size))


def device_call(ev, batch, x, y, scale=None):
    """The jitted sharded errors call on device-resident arrays (what errors() runs)."""
    arrays, P = ev._pad_batch(batch)
    xt, n_tiles, T = ev._tiles(x.reshape(len(x), -1))
    N = len(x)

    def tiles(v, fill):
        out = np.full(n_tiles * T, fill, v.dtype)
        out[:N] = v
        return out.reshape(n_tiles, T)

    s = np.ones(N) if scale is None else np.asarray(scale, np.float64)
    data = jax.device_put((*arrays, xt, tiles(y, 0.0), tiles(s, 0.0),
                           tiles(np.ones(N, bool), False)))
    return lambda: ev._errors(*data).block_until_ready()


def with_mode(shape: CudaShape, mode: str) -> CudaShape:
    """``shape`` in the CUDA register mode ``mode``: "acc+fold" is "acc" with constant
    folding, "acc" without, "smem" the shared-memory fallback."""
    registers, _, fold = mode.partition("+")
    return replace(shape, registers=registers, fold=fold == "fold")


def cuda_shape(args, names, mode=None, sizes=None) -> CudaShape:
    """The CUDA kernel's shape for the op set ``names``: the op set's default, or
    ``--cuda`` (both op set kinds), or for op sets all in PTX the one the cuda stage chose
    or ``--defaults``; then ``sizes`` (points, threads, tiles) and ``mode`` if given."""
    from evolve.eval.cuda import kernel as cuda

    shape = cuda.default_shape(tuple(OPCODE[n] for n in names))
    in_ptx = shape == cuda.SHAPE
    if args.cuda:
        first, *given = args.cuda.split(",")
        shape = with_mode(CudaShape(*map(int, given)), first)
    elif in_ptx and getattr(args, "chosen_cuda", None):
        shape = args.chosen_cuda
    elif in_ptx and args.defaults:
        points, threads, tiles = map(int, args.defaults.split(","))
        shape = replace(shape, points=points, threads=threads, tiles=tiles)
    if sizes:
        shape = replace(shape, points=sizes[0], threads=sizes[1], tiles=sizes[2])
    return with_mode(shape, mode) if mode else shape


def shape_config(shape: CudaShape) -> dict:
    """The JSON fields of a CUDA shape."""
    return {"registers": shape.registers + ("+fold" if shape.fold else ""),
            "points_per_thread": shape.points, "threads": shape.threads,
            "tiles_per_block": shape.tiles}


def evaluator(args, *, shape: CudaShape | None = None, **kw) -> Evaluator:
    """An Evaluator running the kernels with ``shape`` (the CUDA kernel's) and the Pallas
    kernel's tile and warps of ``--config`` or the sweep's choice. The Evaluator takes no
    kernel shape of its own yet: they go into the kernel arguments it passes."""
    ev = Evaluator(**kw)
    ev._kernel_args.update(getattr(args, "pallas", {}))
    if shape is not None:
        ev._kernel_args["shape"] = shape
    return ev


def timed(fn, min_s=1.0, max_reps=10):
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    fn()  # second warm-up
    times = []
    while len(times) < max_reps and (len(times) < 2 or sum(times) < min_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times))


def stage_bench(args):
    cases = [(P, L, N) for P in (1000, 10000) for L in (16, 32) for N in (1000, 100000)]
    cases.append((10000, 32, 1 << 20))
    if SMALL:
        cases = [(10, 16, 1000), (20, 32, 3000)]
    dev = jax.devices()[0]
    for P, L, N in cases:
        if time.time() - T_START > args.deadline:
            emit(stage="bench", case={"P": P, "L": L, "N": N}, skipped="deadline")
            continue
        batch = bench_batch(P, L, BENCH_OPS)
        x = np.random.default_rng(1).uniform(-3, 3, N).astype(np.float32)
        y = np.cos(x.astype(np.float64))
        ev = evaluator(args, n_registers=R, n_inputs=1, backend="pallas")
        work = int(batch.length.sum()) * N
        first, steady = timed(device_call(ev, batch, x, y))
        case = {"P": P, "L": L, "N": N, "mean_len": float(batch.length.mean()),
                "ops": "add,sub,mul,div,sin,cos,exp,log+const", "device": dev.device_kind,
                "devices_sharded_over": len(ev.devices)}
        emit(bench="pallas_errors", path="device", case=case, metric="gpops",
             value=work / steady / 1e9, unit="GPops/s", seconds=steady,
             compile_s=max(first - steady, 0.0))
        _, e2e = timed(lambda ev=ev, b=batch, x=x, y=y: ev.errors(b, x, y), min_s=0.5,
                       max_reps=5)
        emit(bench="pallas_errors", path="e2e", case=case, metric="gpops",
             value=work / e2e / 1e9, unit="GPops/s", seconds=e2e)
    # exact ops only, one size
    if time.time() - T_START < args.deadline:
        P, L, N = (20, 32, 3000) if SMALL else (10000, 32, 100000)
        batch = bench_batch(P, L, EXACT_OPS)
        x = np.random.default_rng(1).uniform(-3, 3, N).astype(np.float32)
        ev = evaluator(args, n_registers=R, n_inputs=1, backend="pallas")
        first, steady = timed(device_call(ev, batch, x, np.cos(x.astype(np.float64))))
        emit(bench="pallas_errors", path="device",
             case={"P": P, "L": L, "N": N, "mean_len": float(batch.length.mean()),
                   "ops": "exact ops (add,sub,mul,div,fma,min,max,neg,abs,sqrt)+const"},
             metric="gpops", value=int(batch.length.sum()) * N / steady / 1e9,
             unit="GPops/s", seconds=steady, compile_s=max(first - steady, 0.0))


SWEEP = [(1024, 4), (1024, 8), (512, 4), (256, 2), (512, 8), (256, 4), (2048, 16), (128, 1)]


def stage_sweep(args):
    """Tile size and warps at one size; with ``--choose`` the fastest is used by the
    stages after this one."""
    P, L, N = (20, 32, 3000) if SMALL else (10000, 32, 100000)
    batch = bench_batch(P, L, BENCH_OPS)
    x = np.random.default_rng(1).uniform(-3, 3, N).astype(np.float32)
    y = np.cos(x.astype(np.float64))
    work = int(batch.length.sum()) * N
    base = Evaluator(n_registers=R, n_inputs=1, backend="pallas", tile=256)
    arrays, _ = base._pad_batch(batch)
    configs = [c for i, c in enumerate(SWEEP) if str(i) in args.sweep.split(",")] \
        if args.sweep else SWEEP
    best = None
    for tile, warps in configs:
        if time.time() - T_START > args.deadline:
            emit(stage="sweep", config=[tile, warps], skipped="deadline")
            continue
        T = tile
        n_tiles = -(-N // T)
        Np = n_tiles * T
        xp = np.zeros(Np, np.float32)
        xp[:N] = x
        xt = xp.reshape(n_tiles, 1, T)
        yt = np.zeros(Np)
        yt[:N] = y
        m = np.zeros(Np, bool)
        m[:N] = True
        f = jax.jit(lambda *a, tile=tile, warps=warps: kernels.errors(
            *a, n_registers=R, tile=tile, num_warps=warps, interpret=None))
        data = jax.device_put((*arrays, xt, yt.reshape(n_tiles, T), np.ones((n_tiles, T)),
                               m.reshape(n_tiles, T)))
        try:
            first, steady = timed(lambda f=f, d=data: f(*d).block_until_ready())
        except Exception as e:
            emit(stage="sweep", config=[tile, warps],
                 error=f"{type(e).__name__}: {str(e)[:500]}")
            continue
        gp = work / steady / 1e9
        emit(stage="sweep", case={"P": P, "L": L, "N": N}, tile=tile, num_warps=warps,
             gpops=gp, seconds=steady, compile_s=max(first - steady, 0.0))
        if best is None or gp > best[0]:
            best = (gp, tile, warps)
    if best:
        if args.choose:
            args.pallas = {"tile": best[1], "num_warps": best[2]}
        emit(stage="sweep", fastest={"tile": best[1], "num_warps": best[2]},
             used=pallas_config(args))


ARITH_OPS = [OPCODE[n] for n in ("add", "sub", "mul", "div", "fma")]
ARITH_NAMES = ("add", "sub", "mul", "div", "fma")
# (tile, warps, specialised to the op set). Measured on an H200 (GPops/s, P=1e4, L=32,
# N=2^20): 512/4 specialised 766, general 743; 1024/8 754; 1024/4 732; 256/2 737; 2048/4 554.
ARITH_SWEEP = [(512, 4, True), (512, 4, False), (1024, 4, True), (1024, 8, True),
               (2048, 8, True), (2048, 4, True), (256, 2, True), (4096, 8, True)]


def pallas_config(args) -> dict:
    """The Pallas kernel's tile and warps in use: ``--config`` or the sweep's choice, else
    the kernel's defaults."""
    return {"tile": kernels.TILE, "num_warps": kernels.NUM_WARPS, **getattr(args, "pallas", {})}


def arith_call(batch, N, tile, warps, special, values=False):
    """The errors kernel on device-resident data for one configuration: a timed closure
    (``values``: one that returns the errors)."""
    x = np.random.default_rng(1).uniform(0, 1, N).astype(np.float32)
    n_tiles = -(-N // tile)
    Np = n_tiles * tile
    xp = np.zeros(Np, np.float32)
    xp[:N] = x
    yt = np.zeros(Np)
    yt[:N] = np.exp2(x.astype(np.float64))
    m = np.arange(Np) < N
    opset = tuple(sorted(set(ARITH_OPS) | {CONST})) if special else None
    f = jax.jit(lambda *a: kernels.errors(*a, n_registers=R, tile=tile, num_warps=warps,
                                          opset=opset))
    arrays = (batch.op, batch.args, batch.dst, batch.const, batch.length, batch.output)
    data = jax.device_put((*arrays, xp.reshape(n_tiles, 1, tile), yt.reshape(n_tiles, tile),
                           np.ones((n_tiles, tile)), m.reshape(n_tiles, tile)))
    if values:
        return lambda: f(*data)
    return lambda: f(*data).block_until_ready()


def stage_ncu(args):
    """A few launches of the chosen configuration for Nsight Compute (run under ncu)."""
    P, L, N = (32, 32, 4096) if SMALL else (1000, 32, 1 << 20)
    batch = bench_batch(P, L, ARITH_OPS)
    config = pallas_config(args)
    run = arith_call(batch, N, config["tile"], config["num_warps"], True)
    for _ in range(3):
        run()
    emit(stage="ncu", config=[config["tile"], config["num_warps"]],
         instructions=int(batch.length.sum()), points=N)


def stage_arith(args):
    """Issue 6's bar: P=10000, L=32, N=2^20, arithmetic ops (add sub mul div fma and
    literals), the fused errors kernel; a sweep of the kernel's shape, with the roofline
    fraction (GPops/s against the device's float32 peak)."""
    P, L, N = (32, 32, 4096) if SMALL else (10000, 32, 1 << 20)
    dev = jax.devices()[0]
    best = None
    for label, fixed in (("lengths_1_to_L", False), ("length_L", True)):
        batch = bench_batch(P, L, ARITH_OPS)
        if fixed:
            batch = bench_batch(P, L, ARITH_OPS, seed=1)
            batch = batch._replace(length=np.full(P, L, np.int32))
            rng = np.random.default_rng(2)
            op = np.where(rng.random((P, L)) < 0.2, CONST, np.asarray(ARITH_OPS)[
                rng.integers(0, len(ARITH_OPS), (P, L))]).astype(np.int32)
            arity = np.array([o.arity for o in OPS])[op]
            args3 = np.where(np.arange(3) < arity[..., None],
                             rng.integers(0, R, (P, L, 3)), 0).astype(np.int32)
            batch = batch._replace(op=op, args=args3,
                                   const=np.where(op == CONST, rng.uniform(-1, 1, (P, L)),
                                                  0).astype(np.float32),
                                   output=batch.dst[:, L - 1].astype(np.int32))
        work = int(batch.length.sum()) * N
        sweep = ARITH_SWEEP if label == "lengths_1_to_L" else [best[1]] if best else []
        for cfg in sweep:
            if time.time() - T_START > args.deadline:
                emit(stage="arith", config=cfg, skipped="deadline")
                continue
            tile, warps, special = cfg
            try:
                if label == "lengths_1_to_L":  # the same errors as the general kernel
                    small = bench_batch(64, L, ARITH_OPS, seed=9)
                    got = np.asarray(arith_call(small, 4096, tile, warps, special,
                                                values=True)())
                    want = np.asarray(arith_call(small, 4096, 512, 4, False, values=True)())
                    same = (got[:, :2] == want[:, :2]).all(axis=1) & np.isclose(
                        got[:, 2], want[:, 2], rtol=1e-12, atol=0)  # sums: other order
                    emit(stage="arith", config=cfg, check="errors_equal_general_kernel",
                         equal=int(same.sum()), of=len(got))
                first, steady = timed(arith_call(batch, N, tile, warps, special), min_s=0.5,
                                      max_reps=5)
            except Exception as e:
                emit(stage="arith", config=cfg, error=f"{type(e).__name__}: {str(e)[:800]}")
                continue
            gp = work / steady / 1e9
            emit(bench="arith_errors", programs=label,
                 case={"P": P, "L": L, "N": N, "mean_len": float(batch.length.mean()),
                       "ops": ",".join(ARITH_NAMES) + "+const", "device": dev.device_kind,
                       "devices_sharded_over": 1},  # arith_call: the default device
                 tile=tile, num_warps=warps, specialised=special,
                 metric="gpops", value=gp, unit="GPops/s", seconds=steady,
                 roofline_fp32=fp32_fraction(gp, dev.device_kind),
                 compile_s=max(first - steady, 0.0))
            if label == "lengths_1_to_L" and (best is None or gp > best[0]):
                best = (gp, cfg)
    if best:
        emit(stage="arith", fastest=best[1], gpops=best[0])
        if args.choose:
            args.pallas = {"tile": best[1][0], "num_warps": best[1][1]}


def stage_multi(args):
    """The same benchmark through the Evaluator on 1 device and on all (programs sharded);
    for the CUDA backend, in each register mode of --modes (default: acc+fold, acc). On one
    device, also each half of the programs: the whole batch's time over the slower half's
    is the most two devices could gain (each runs a half; sharding itself costs nothing)."""
    devs = jax.devices()
    P, L, N = (32, 32, 4096) if SMALL else (10000, 32, 1 << 20)
    batch = bench_batch(P, L, ARITH_OPS)
    x = np.random.default_rng(1).uniform(0, 1, N).astype(np.float32)
    y = np.exp2(x.astype(np.float64))
    work = int(batch.length.sum()) * N
    modes = [None]
    if args.backend == "cuda":
        modes = args.modes.split(",") if args.modes else ["acc+fold", "acc"]
    for mode in modes:
        shape = cuda_shape(args, ARITH_NAMES, mode) if mode else None
        base = None
        for n in sorted({1, len(devs)}):
            ev = evaluator(args, shape=shape, n_registers=R, n_inputs=1, backend=args.backend,
                           devices=devs[:n], ops=ARITH_NAMES)
            first, steady = timed(device_call(ev, batch, x, y), min_s=0.5, max_reps=5)
            gp = work / steady / 1e9
            base = base or gp
            config = shape_config(shape) if shape else pallas_config(args)
            emit(bench="multi_gpu", devices=n, backend=args.backend,
                 case={"P": P, "L": L, "N": N}, **config, metric="gpops", value=gp,
                 unit="GPops/s", seconds=steady, speedup=gp / base,
                 roofline_fp32_per_device=fp32_fraction(gp / n, devs[0].device_kind))
            if n == 1:  # each half of the programs on one device: what two would run
                halves = [timed(device_call(ev, ProgramBatch(*(a[h] for a in batch)), x, y),
                                min_s=0.5, max_reps=5)[1]
                          for h in (slice(0, P // 2), slice(P // 2, P))]
                emit(bench="multi_gpu", devices=1, backend=args.backend, programs=P // 2,
                     case={"P": P, "L": L, "N": N}, **config, seconds=halves,
                     two_device_bound=steady / max(halves))  # if sharding were free


SEED3_EXP2 = """\
r1 = 0.00021843685
r2 = 0.0012397608
r2 = fma(r1, r0, r2)
r1 = 0.009683505
r1 = fma(r0, r2, r1)
r3 = 0.24023037
r2 = 0.055480983
r1 = fma(r1, r0, r2)
r2 = fma(r1, r0, r3)
r1 = 0.69314694
r1 = fma(r0, r2, r1)
r2 = 1.0
r1 = fma(r1, r0, r2)
return r1
"""


def stage_verify(args):
    """Exhaustive certification of the evolved 2^x program of docs/results.md (13 instructions) over
    all float32 in [0, 1]: the reference on the device, then on the host."""
    from evolve.catalog import load_problem
    from evolve.results import certify as verify
    from evolve.text import parse_program

    problem = load_problem("exp2")
    prog = parse_program(SEED3_EXP2, n_registers=problem.n_registers)
    stride = 4096 if SMALL else 1
    for reference in ("device", "device", "host"):
        if reference == "host" and time.time() - T_START > args.deadline:
            emit(stage="verify", reference=reference, skipped="deadline")
            continue
        t0 = time.perf_counter()
        cert = verify.certify(prog, problem, stride=stride, reference=reference)
        emit(stage="verify", reference=reference, instructions=len(prog),
             wall_s=time.perf_counter() - t0, seconds=cert.seconds, max_ulp=cert.max_ulp,
             worst_x=cert.worst_x, over_1ulp=cert.over_1ulp, points=cert.points,
             describe=cert.describe())


def input_dependent_work(batch, N):
    """(input-dependent instructions x points: what a kernel folding constants, as
    evolve.eval.cpu.kernel does, still runs at every point; instructions that also reach the
    output x points: what "acc+fold" runs)."""
    dep = kept = 0
    for p in from_arrays(batch):
        d = input_dependent(p, 1)
        dep += sum(d)
        kept += sum(x and u for x, u in zip(d, used(p)))
    return N * dep, N * kept


def rates(mode, work, dep_work, kept_work, seconds):
    """GPops/s of a timed call counted three ways: over all the programs' instructions,
    over the input-dependent ones, and over those the kernel runs at every point (for
    "acc+fold" only the input-dependent ones that reach the output; else all)."""
    ran = kept_work if mode == "acc+fold" else work
    return dict(value=work / seconds / 1e9, input_dependent_gpops=dep_work / seconds / 1e9,
                executed_gpops=ran / seconds / 1e9)


def stage_cuda(args):
    """The CUDA kernel (evolve.eval.cuda.kernel): the same errors as the Pallas kernel on random
    programs (exact ops bit for bit in the max columns), then issue 6's benchmark with a
    sweep of points a thread and threads a block."""
    from evolve.eval.cuda import kernel as cuda

    emit(stage="cuda", nvcc=cuda.nvcc(), available=cuda.available(),
         defaults=shape_config(cuda_shape(args, ARITH_NAMES)),  # --defaults, else SHAPE
         # op sets with ops in C++ (cuda.default_shape)
         libm_defaults=shape_config(cuda_shape(args, ("sin",))))
    rng = np.random.default_rng(4)
    x = special_points(rng, 5000)[:, :1]
    y = np.cos(np.nan_to_num(x[:, 0]).astype(np.float64))
    # no scale, a positive one (as a ULP scale is), and one with zeros (an infinite error
    # there is NaN)
    positive = rng.uniform(0.5, 2.0, len(y))
    scale = positive.copy()
    scale[::97] = 0.0
    all_ops = [o for o in range(len(OPS)) if o != CONST]
    for label, ops, mode in (("exact", EXACT_OPS, "acc"), ("all", all_ops, "acc"),
                             ("arith", ARITH_OPS, "acc"), ("exact", EXACT_OPS, "acc+fold"),
                             ("all", all_ops, "acc+fold"), ("arith", ARITH_OPS, "acc+fold"),
                             ("exact", EXACT_OPS, "smem"), ("all", all_ops, "smem")):
        if args.modes and mode not in args.modes.split(","):
            continue
        batch = with_empty_programs(bench_batch(200, 32, ops, seed=3))
        names = tuple(sorted({OPS[o].name for o in ops} | {"const"}))
        ours = evaluator(args, shape=cuda_shape(args, names, mode), n_registers=R,
                         n_inputs=1, backend="cuda", ops=names)
        theirs = evaluator(args, n_registers=R, n_inputs=1, backend="pallas", ops=names)
        for s, scaled in ((None, ""), (positive, "_positive"), (scale, "_scaled")):
            t0 = time.perf_counter()
            a = ours.errors(batch, x, y, s)
            first = time.perf_counter() - t0  # the build, for the first scale
            b = theirs.errors(batch, x, y, s)
            res = equal_counts(a, b, a)
            # NaN in one and inf in the other: an infinite error at a zero scale
            nan_inf = {k: int(((np.isnan(a[k]) & np.isinf(b[k])) | (np.isinf(a[k]) & np.isnan(b[k]))).sum())
                       for k in a}
            emit(stage="cuda", check=f"errors_vs_pallas_{label}_{mode}{scaled}_ops", equal=res,
                 nan_vs_inf=nan_inf, cuda_nan=int(np.isnan(a["max_scaled"]).sum()),
                 of=len(batch.length), mse_max_rel=float(np.nanmax(np.abs(a["mse"] - b["mse"]) / np.maximum(
                     np.abs(b["mse"]), 1e-300))), first_call_s=first)
    P, L, N = (32, 32, 4096) if SMALL else (10000, 32, 1 << 20)
    batch = bench_batch(P, L, ARITH_OPS)
    xb = np.random.default_rng(1).uniform(0, 1, N).astype(np.float32)
    yb = np.exp2(xb.astype(np.float64))
    work = int(batch.length.sum()) * N
    dep_work, kept_work = input_dependent_work(batch, N)
    dev = jax.devices()[0]
    # measured (GPops/s; the register files removed since are in the commit tagged
    # comparison-tables): smem 4/128/1 1201, 4/128/8 1381, 8/128/8 1187, 4/256/8 1368; with
    # byte offsets (docs/h200/cuda_asm2.jsonl) 4/128 1659, 4/256 1649
    best = None
    # acc (docs/h200/cuda_acc*.jsonl): 4/256/8 2324 to 2348, 4/128/8 2277 to 2282,
    # 8/128/8 2315 to 2342, 4/128/16 2243 to 2251, 8/64/8 2281 to 2284
    # acc+fold (docs/h200/cuda_acc_skip.jsonl): 4/256/8 6221, 4/256/32 6729, 4/128/8 6196,
    # 8/128/8 5419; acc 4/256/8 2043, 4/128/8 1981, 8/128/8 2044; with the dense error code
    # (cuda_acc_dense*.jsonl) acc+fold 4/256/32 8216 to 8244, acc 4/256/32 2175; with
    # tiles skipping a scale of 1 (cuda_acc_unit, _e8, _default.jsonl) acc+fold 4/256/32
    # 8533, 8/128/8 10923, 8/128/16 11476 to 11688, 8/128/32 11217, 8/64/8 10615,
    # 12/128/8 9928, 16/64/8 8922; acc 8/128/16 2243, 8/128/8 2434 to 2443; the
    # defaults first; "ulp": the targets' ULP as the scale (max_ulp problems), else none
    # (a scale of 1, as for rmse: those tiles load no scale)
    configs = [("acc+fold", 8, 128, 16), ("acc+fold", 8, 128, 16, "ulp"), ("acc", 8, 128, 16),
               ("acc", 8, 128, 16, "ulp"), ("acc", 8, 128, 8), ("acc+fold", 8, 128, 8),
               ("acc+fold", 4, 256, 32), ("smem", 4, 128, 8), ("acc+fold", 8, 64, 8)]
    ulp_scale = 1.0 / ulp32(yb)
    if args.configs:  # "mode,points,threads,tiles[,ulp];..." in place of the list above
        configs = parse_configs(args.configs)
    for mode, points, threads, tiles, *scaled in configs:
        if args.modes and mode not in args.modes.split(","):
            continue
        if time.time() - T_START > args.deadline:
            emit(stage="cuda", config=[mode, points, threads, tiles], skipped="deadline")
            continue
        shape = cuda_shape(args, ARITH_NAMES, mode, (points, threads, tiles))
        try:
            ev = evaluator(args, shape=shape, n_registers=R, n_inputs=1, backend="cuda",
                           ops=ARITH_NAMES)
            first, steady = timed(device_call(ev, batch, xb, yb, ulp_scale if scaled else None),
                                  min_s=0.5, max_reps=5)
        except Exception as e:
            emit(stage="cuda", config=[mode, points, threads, tiles, *scaled],
                 error=f"{type(e).__name__}: {str(e)[:1500]}")
            continue
        counted = rates(mode, work, dep_work, kept_work, steady)
        gp = counted["value"]
        emit(bench="cuda_errors", case={"P": P, "L": L, "N": N, "mean_len": float(batch.length.mean()),
                                        "ops": ",".join(ARITH_NAMES) + "+const",
                                        "device": dev.device_kind,
                                        "devices_sharded_over": len(ev.devices)},
             registers=mode, points_per_thread=points, threads=threads, tiles_per_block=tiles,
             scale="ulp" if scaled else "none", metric="gpops", **counted,
             unit="GPops/s", seconds=steady, roofline_fp32=fp32_fraction(gp, dev.device_kind),
             compile_s=max(first - steady, 0.0))
        if not scaled and (best is None or gp > best[0]):
            best = (gp, mode, points, threads, tiles, shape)
    if best:
        args.chosen_cuda = best[5]  # for the stages after this one
        emit(stage="cuda", fastest=best[1:5], gpops=best[0])


def stage_cuda_ops(args):
    """Issue 6's benchmark with the CUDA kernel per op set (division's share of the cost)
    in each register mode (with and without folding, and the "smem" fallback)."""
    P, L, N = (32, 32, 4096) if SMALL else (10000, 32, 1 << 20)
    xb = np.random.default_rng(1).uniform(0, 1, N).astype(np.float32)
    yb = np.exp2(xb.astype(np.float64))
    dev = jax.devices()[0]
    for names in (ARITH_NAMES, ("add", "sub", "mul", "fma"), ("add", "sub", "mul")):
        batch = bench_batch(P, L, [OPCODE[n] for n in names])
        work = int(batch.length.sum()) * N
        dep_work, kept_work = input_dependent_work(batch, N)
        for mode in ("acc", "acc+fold", "smem"):
            if args.modes and mode not in args.modes.split(","):
                continue
            shape = cuda_shape(args, names, mode)
            ev = evaluator(args, shape=shape, n_registers=R, n_inputs=1, backend="cuda",
                           ops=names)
            first, steady = timed(device_call(ev, batch, xb, yb), min_s=0.5, max_reps=5)
            emit(bench="cuda_ops", case={"P": P, "L": L, "N": N, "ops": ",".join(names) + "+const",
                                         "device": dev.device_kind,
                                         "devices_sharded_over": len(ev.devices)},
                 **shape_config(shape),
                 metric="gpops", **rates(mode, work, dep_work, kept_work, steady),
                 unit="GPops/s", seconds=steady)


def stage_cuda_split(args):
    """Where the default CUDA kernel's time goes on issue 6's benchmark: the whole call,
    the plan alone (JAX, cuda_plan.plan), and the call at other N (fixed against per-point
    costs), and on programs that compute constants only (no instruction runs per point)."""
    from evolve.eval.cuda import plan as cuda_plan

    P, L = (32, 32) if SMALL else (10000, 32)
    shape = cuda_shape(args, ARITH_NAMES)
    dev = jax.devices()[0]
    batch = bench_batch(P, L, ARITH_OPS)
    # the same programs with every instruction a literal: nothing runs per point
    constants = ProgramBatch(np.full_like(batch.op, CONST), np.zeros_like(batch.args),
                             batch.dst, batch.const, batch.length, batch.output)
    for N in ((4096,) if SMALL else (1 << 18, 1 << 20, 1 << 22)):
        x = np.random.default_rng(1).uniform(0, 1, N).astype(np.float32)
        y = np.exp2(x.astype(np.float64))
        for name, b in (("bench", batch), ("constants", constants)):
            ev = evaluator(args, shape=shape, n_registers=R, n_inputs=1, backend="cuda",
                           ops=ARITH_NAMES)
            first, steady = timed(device_call(ev, b, x, y), min_s=0.5, max_reps=5)
            emit(stage="cuda_split", programs=name, P=P, L=L, N=N, seconds=steady,
                 ns_per_program_point=steady / (P * N) * 1e9,
                 gpops=int(b.length.sum()) * N / steady / 1e9,
                 config=shape_config(shape), device=dev.device_kind)
    arrays = jax.device_put((batch.op, batch.args, batch.dst, batch.const, batch.length,
                             batch.output))
    stride = shape.threads * shape.points * 4

    def run():
        return jax.block_until_ready(cuda_plan.plan(*arrays, tuple(ARITH_OPS), 1, stride,
                                                   shape.fold))

    first, steady = timed(run, min_s=0.5, max_reps=10)
    emit(stage="cuda_split", part="plan", P=P, L=L, seconds=steady, compile_s=first - steady)


def tree_batch(P, L):
    """scripts/bench_eval.py's workload (DEAP trees over add, sub, mul, div, sin, cos,
    exp, log) as a batch, where DEAP is installed; else None."""
    try:
        import bench_eval
    except ImportError:
        return None
    _, programs = bench_eval.workload(P, L, 0)
    return to_arrays(programs, length=L)


def stage_cuda_trees(args):
    """The CUDA kernel against the Pallas kernel on the transcendental op set (add, sub,
    mul, div, sin, cos, exp, log): the agreement of their errors, then both timed on
    bench_eval's trees and on check_gpu's random programs, for the CUDA configs in
    ``--configs`` (default: a few) and Pallas's default. ``--registers``: the evaluators'
    register count (default 8; the programs use at most 8), as symbolic regression
    problems have n_inputs + 8."""
    regs = args.registers or R
    from evolve.eval.cuda import kernel as cuda

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_eval
    names = ("add", "sub", "mul", "div", "sin", "cos", "exp", "log")
    P, L = (32, 32) if SMALL else (10000, 32)
    sizes = (4096,) if SMALL else (100000, 1 << 20)
    # measured (docs/h200/cuda_trees.jsonl), trees at N = 1e5 and 2^20 (Pallas 876, 921):
    # acc+fold 8/128/16 633, 1,445; 4/256/32 1,430, 1,699; acc 8/128/16 572, 1,082;
    # smem 4/128/8 1,386, 1,485; 4/256/8 1,383, 1,479
    configs = [("acc+fold", 4, 256, 32), ("acc+fold", 8, 128, 16), ("acc", 8, 128, 16),
               ("smem", 4, 128, 8), ("smem", 4, 256, 8)]
    if args.configs:
        configs = parse_configs(args.configs)
    workloads = {"random": bench_batch(P, L, BENCH_OPS)}
    trees = tree_batch(P, L)
    if trees is not None:
        workloads["trees"] = trees
    else:
        emit(stage="cuda_trees", note="no DEAP: bench_eval's trees skipped")
    dev = jax.devices()[0]
    for N in sizes:
        x = np.random.default_rng(1).uniform(-3, 3, N).astype(np.float32)
        y = np.cos(x.astype(np.float64))
        for label, batch in workloads.items():
            work = int(batch.length.sum()) * N
            pallas = evaluator(args, n_registers=regs, n_inputs=1, backend="pallas", ops=names)
            want = pallas.errors(batch, x, y)
            first, steady = timed(device_call(pallas, batch, x, y), min_s=0.5, max_reps=5)
            emit(bench="trees_errors", backend="pallas", workload=label,
                 case={"P": P, "L": L, "N": N, "mean_len": float(batch.length.mean()),
                       "n_registers": regs, "device": dev.device_kind}, metric="gpops", value=work / steady / 1e9,
                 unit="GPops/s", seconds=steady, compile_s=max(first - steady, 0.0))
            for mode, points, threads, tiles in configs:
                if time.time() - T_START > args.deadline:
                    emit(stage="cuda_trees", config=[mode, points, threads, tiles],
                         skipped="deadline")
                    continue
                shape = cuda_shape(args, names, mode, (points, threads, tiles))
                try:
                    ev = evaluator(args, shape=shape, n_registers=regs, n_inputs=1,
                                   backend="cuda", ops=names)
                    got = ev.errors(batch, x, y)
                    first, steady = timed(device_call(ev, batch, x, y), min_s=0.5, max_reps=5)
                except Exception as e:
                    emit(stage="cuda_trees", config=[mode, points, threads, tiles],
                         error=f"{type(e).__name__}: {str(e)[:1500]}")
                    continue
                equal = equal_counts(got, want, ("max_abs", "max_scaled"))
                emit(bench="trees_errors", backend="cuda", workload=label,
                     config=[mode, points, threads, tiles],
                     case={"P": P, "L": L, "N": N, "mean_len": float(batch.length.mean()),
                           "n_registers": regs, "device": dev.device_kind}, metric="gpops", value=work / steady / 1e9,
                     unit="GPops/s", seconds=steady, compile_s=max(first - steady, 0.0),
                     equal_to_pallas=equal, of=P,
                     ran=shape_config(cuda.fitted(regs, shape, L)))


def stage_ncu_cuda(args):
    """A few launches of the CUDA kernel (the op set's shape, or ``--cuda``) for Nsight
    Compute."""
    P, L, N = (32, 32, 4096) if SMALL else (1000, 32, 1 << 20)
    if args.ncu_workload == "trees":  # bench_eval's, at its N
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        N = 4096 if SMALL else 100000
        batch, names = tree_batch(P, L), ("add", "sub", "mul", "div", "sin", "cos", "exp", "log")
        x = np.random.default_rng(1).uniform(-3, 3, N).astype(np.float32)
        y = np.cos(x.astype(np.float64))
    else:
        batch, names = bench_batch(P, L, ARITH_OPS), ARITH_NAMES
        x = np.random.default_rng(1).uniform(0, 1, N).astype(np.float32)
        y = np.exp2(x.astype(np.float64))
    shape = cuda_shape(args, names)
    ev = evaluator(args, shape=shape, n_registers=R, n_inputs=1, backend="cuda", ops=names)
    run = device_call(ev, batch, x, y)
    for _ in range(3):
        run()
    emit(stage="ncu_cuda", workload=args.ncu_workload, config=shape_config(shape),
         instructions=int(batch.length.sum()), points=N)


def stage_cuda_calls(args):
    """Three errors calls of the default CUDA kernel on issue 6's batch, then three on its
    first half, for ``ncu --metrics gpu__time_duration.sum --csv``: the time of every
    kernel of a call (the plan's XLA kernels, the fold kernel, the errors kernel, the
    reductions), and which of them shrink with the programs. With ``--trace DIR``, three
    more calls at each size under ``jax.profiler.trace`` (DIR/P/.../*.trace.json.gz)."""
    P, L, N = (32, 32, 4096) if SMALL else (10000, 32, 1 << 20)
    batch = bench_batch(P, L, ARITH_OPS)
    x = np.random.default_rng(1).uniform(0, 1, N).astype(np.float32)
    y = np.exp2(x.astype(np.float64))
    ev = evaluator(args, shape=cuda_shape(args, ARITH_NAMES), n_registers=R, n_inputs=1,
                   backend="cuda", ops=ARITH_NAMES)
    for k in (P, P // 2):
        run = device_call(ev, ProgramBatch(*(a[:k] for a in batch)), x, y)
        for _ in range(3):
            run()
        if args.trace:  # three more under JAX's profiler: a timeline with the host's side
            with jax.profiler.trace(f"{args.trace}/{k}"):
                for _ in range(3):
                    run()
        emit(stage="cuda_calls", programs=k, calls=3, points=N)


def stage_div(args):
    """The kernel's float32 division (PTX div.rn.f32 on the GPU, jnp in interpret mode):
    bits against numpy on special, subnormal, wide and tied quotients, and speed."""
    rng = np.random.default_rng(7)
    prog = Program((Instruction(OPCODE["div"], 3, (0, 1)),), 3)
    batch = to_arrays([prog] * 8, length=8)
    pts = {"normal": special_points(rng, 20000),
           "subnormal": special_points(rng, 20000, subnormal=True)}
    # wide exponent range too
    w = rng.normal(size=(20000, 2)) * 10.0 ** rng.integers(-38, 38, (20000, 2))
    pts["wide"] = np.clip(w, -3e38, 3e38).astype(np.float32)
    # exact ties of subnormal quotients: a / b = (2k+1) * 2^-150, b = m * 2^10 (m odd)
    k = rng.integers(0, 1 << 16, 20000)
    m = rng.choice([3, 5, 7, 9, 11, 13], 20000)
    sign = rng.choice([-1.0, 1.0], 20000)
    a = sign * m * (2 * k + 1) * 2.0 ** -140
    pts["subnormal_ties"] = np.stack([a, m * 2.0 ** 10], 1).astype(np.float32)
    assert (pts["subnormal_ties"][:, 0].astype(np.float64) == a).all()
    P, L, N = (20, 32, 3000) if SMALL else (10000, 32, 100000)
    dbatch = bench_batch(P, L, [OPCODE["div"]], p_const=0.3)
    xb = np.random.default_rng(1).uniform(-3, 3, N).astype(np.float32)
    variant = "jnp" if kernels.default_interpret() else "ptx"
    ev = evaluator(args, n_registers=R, n_inputs=2, backend="pallas")
    counts = {}
    for label, x in pts.items():
        got = ev.outputs(batch, x)[0]
        with np.errstate(all="ignore"):
            want = x[:, 0] / x[:, 1]
        counts[label] = mismatches(got, want)
    ev1 = evaluator(args, n_registers=R, n_inputs=1, backend="pallas")
    _, steady = timed(device_call(ev1, dbatch, xb, np.cos(xb.astype(np.float64))), min_s=0.3)
    gp = int(dbatch.length.sum()) * N / steady / 1e9
    emit(stage="div", variant=variant, mismatches=counts, div_only_gpops=gp)


def stage_lax(args):
    P, L, N = (10, 32, 3000) if SMALL else (100, 32, 100000)
    batch = bench_batch(P, L, BENCH_OPS)
    x = np.random.default_rng(1).uniform(-3, 3, N).astype(np.float32)
    y = np.cos(x.astype(np.float64))
    work = int(batch.length.sum()) * N
    lax_ev = Evaluator(n_registers=R, n_inputs=1, backend="lax")
    pal_ev = evaluator(args, n_registers=R, n_inputs=1)  # auto: pallas on the GPU
    emit(stage="lax", auto_backend_is_pallas=bool(pal_ev._pallas))
    first, steady = timed(device_call(lax_ev, batch, x, y), min_s=0.5, max_reps=3)
    emit(bench="lax_errors", path="device", case={"P": P, "L": L, "N": N}, metric="gpops",
         value=work / steady / 1e9, unit="GPops/s", seconds=steady,
         compile_s=max(first - steady, 0.0))
    first, steady = timed(device_call(pal_ev, batch, x, y), min_s=0.5, max_reps=3)
    emit(bench="pallas_errors", path="device", case={"P": P, "L": L, "N": N}, metric="gpops",
         value=work / steady / 1e9, unit="GPops/s", seconds=steady)
    a, b = lax_ev.errors(batch, x, y), pal_ev.errors(batch, x, y)
    out_a, out_b = lax_ev.outputs(batch, x), pal_ev.outputs(batch, x)
    emit(stage="lax", check="pallas_vs_lax_on_gpu",
         outputs_bitwise_mismatches=mismatches(out_a, out_b), values=int(out_a.size),
         max_abs_equal=int((a["max_abs"] == b["max_abs"]).sum()), of=P)
    ex = bench_batch(P, L, EXACT_OPS, seed=5)
    out_a, out_b = lax_ev.outputs(ex, x), pal_ev.outputs(ex, x)
    want = run_numpy_batch(ex, x[:2000], R)
    emit(stage="lax", check="pallas_vs_lax_exact_ops_bitwise",
         mismatches=mismatches(out_a, out_b), values=int(out_a.size),
         lax_vs_numpy_first_2000_points=mismatches(out_a[:, :2000], want),
         pallas_vs_numpy_first_2000_points=mismatches(out_b[:, :2000], want))
    # per exact op, on special and subnormal points: both paths against numpy
    ops = [op for op in EXACT if op != CONST]
    singles = to_arrays([Program((Instruction(op, 3, (0, 1, 0)[: OPS[op].arity]),), 3)
                         for op in ops], length=8)
    xs = special_points(np.random.default_rng(3), 3000, subnormal=True)
    lax2 = Evaluator(n_registers=R, n_inputs=2, backend="lax")
    pal2 = evaluator(args, n_registers=R, n_inputs=2, backend="pallas")
    want = run_numpy_batch(singles, xs, R)
    got_l, got_p = lax2.outputs(singles, xs), pal2.outputs(singles, xs)
    emit(stage="lax", check="single_exact_ops_vs_numpy_subnormal_points",
         lax={OPS[op].name: mismatches(got_l[i], want[i]) for i, op in enumerate(ops)},
         pallas={OPS[op].name: mismatches(got_p[i], want[i]) for i, op in enumerate(ops)})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", default="probe,div,correct,bench,lax,sweep")
    parser.add_argument("--deadline", type=float, default=240.0,
                        help="seconds after start past which remaining cases are skipped")
    parser.add_argument("--sweep", default="", help="indices of sweep configs to run")
    parser.add_argument("--backend", default="pallas", help="the multi stage's backend")
    parser.add_argument("--config", default="",
                        help="tile,warps for the Pallas kernel (default: its TILE, NUM_WARPS)")
    parser.add_argument("--cuda", default="",
                        help="registers,points,threads,tiles for the CUDA kernel (ncu_cuda; "
                             "registers acc+fold: acc with constant folding)")
    parser.add_argument("--defaults", default="",
                        help="points,threads,tiles of the CUDA kernel for the cuda stage's checks")
    parser.add_argument("--configs", default="",
                        help="the cuda stage's timed configs, mode,points,threads,tiles[,ulp] "
                             "separated by ';' (default: its list)")
    parser.add_argument("--modes", default="",
                        help="the CUDA kernel's register modes to check and time (cuda stage; "
                             "default all)")
    parser.add_argument("--ncu-workload", default="arith", choices=("arith", "trees"),
                        help="ncu_cuda's programs: issue 6's arithmetic ones, or "
                             "bench_eval's trees (N = 1e5)")
    parser.add_argument("--registers", type=int, default=0,
                        help="cuda_trees: the evaluators' register count (default 8)")
    parser.add_argument("--trace", default="",
                        help="cuda_calls: a directory for JAX profiler traces of the calls")
    parser.add_argument("--choose", action="store_true",
                        help="use the sweep's (and arith's) fastest config in later stages")
    args = parser.parse_args()
    args.pallas = {}  # the Pallas kernel's tile and warps (evaluator, pallas_config)
    if args.config:
        tile, warps = map(int, args.config.split(","))
        args.pallas = {"tile": tile, "num_warps": warps}
    # --cuda: the CUDA kernel's shape for every op set (cuda_shape)
    d = jax.devices()
    emit(stage="env", jax=jax.__version__, devices=[x.device_kind for x in d],
         platform=d[0].platform, xla_flags=os.environ.get("XLA_FLAGS"))
    stages = {"probe": stage_probe, "div": stage_div, "correct": stage_correct,
              "bench": stage_bench, "sweep": stage_sweep,
              "lax": stage_lax, "arith": stage_arith, "multi": stage_multi,
              "verify": stage_verify, "ncu": stage_ncu,
              "cuda": stage_cuda, "cuda_ops": stage_cuda_ops, "ncu_cuda": stage_ncu_cuda,
              "cuda_split": stage_cuda_split, "cuda_trees": stage_cuda_trees,
              "cuda_calls": stage_cuda_calls}
    for name in args.stages.split(","):
        t0 = time.time()
        try:
            stages[name](args)
        except Exception as e:  # report and go on
            emit(stage=name, error=f"{type(e).__name__}: {str(e)[:3000]}")
            traceback.print_exc()
        emit(stage=name, seconds=time.time() - t0)


if __name__ == "__main__":
    main()
