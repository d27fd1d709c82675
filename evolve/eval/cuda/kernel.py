"""A CUDA evaluator kernel, called from the JAX program through XLA's FFI.

CUDA C++ generated from the ops table for one op set and register count. A block takes
one program and ``tiles`` tiles of ``threads * points`` points in turn (a ``CudaShape``): the program
is loaded into shared memory once, each thread runs it on its ``E`` points of a tile, and
the errors are reduced once for all the tiles (warp shuffles, then across the warps).
Where a thread keeps its points' registers is the shape's ``registers`` (see ``source``):
by default ("acc") in shared memory, 16 bytes (four points) an access, with the last result kept in
the chip's registers; a plan computed in JAX before the kernel runs (``evolve.eval.cuda.plan``)
writes the instructions the kernel runs, each saying where its arguments are (shared
memory, that accumulator, or the program's table of constants) and whether its result must
be stored, and the kernel (``evolve.eval.cuda.acc``) jumps once an instruction (a PTX jump
table) to code for that op and variant. With ``fold`` (the default) only the instructions
that depend on an input and reach the output run at every point; a fold kernel, a thread
a program, computes the constant ones first with the ops' own code.
"smem" (``evolve.eval.cuda.modes``) is the plain shared-memory register file (an access
per operand and point; the fallback when "acc" cannot address the registers). Register
files in the chip's registers (a jump on every register index) were slower on the H200;
the last commit with them is tagged ``comparison-tables``.

Each op's code is its ``cuda`` (and ``ptx``) spelling in the ops table. Semantics are
those of ``OPS[i].np_fn`` bit for bit on exactly rounded ops: ``__fadd_rn``
and friends (never contracted into FMAs), IEEE division (zero, infinite and NaN operands
by rule, the rest by ``__fdiv_rn``) and square root, a single-rounding
``fmaf``, the IEEE 754-2019 min/max of the ops table; the transcendental ops use CUDA's
libm (a few ULP, like the other GPU paths).

The shared library is compiled with ``nvcc`` on first use (about 20 s) and cached in
``~/.cache/evolve/cuda`` under the hash of its source; ``available()`` says whether that can
work here (a CUDA GPU for JAX and an ``nvcc``). The entry point has the signature of
``kernels.errors`` (outputs reduced to error statistics in the kernel).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp

from evolve.eval import pallas as kernels
from evolve.eval.cuda import acc as cuda_acc
from evolve.eval.cuda import modes as cuda_modes
from evolve.eval.cuda import plan as cuda_plan
from evolve.eval.ffibuild import build_library, operands
from evolve.ops import CONST, OPS


@dataclass(frozen=True)
class CudaShape:
    """The kernel's shape and choices: ``points`` a thread (E) of every register,
    ``threads`` a block (a block's tile is threads * points points), ``tiles`` a block
    runs in turn, where the registers live (``registers``: "acc" or "smem", see
    ``source``), and for "acc" whether to ``fold`` (run only what depends on an input and
    reaches the output, ``cuda_plan.plan``)."""

    points: int = 8
    threads: int = 128
    tiles: int = 16
    registers: str = "acc"
    fold: bool = True


SHAPE = CudaShape()  # op sets the "acc" kernel computes all in PTX
# Op sets with an op computed in C++ (libm's sin, cos, exp, log and the like; min, max):
# on bench_eval's trees (add, sub, mul, div, sin, cos, exp, log) on an H200, 4 / 256 / 32
# gave 1,430 GPops/s at N = 1e5 and 1,699 at 2^20, against 633 and 1,445 for 8 / 128 / 16
# and 876 and 921 for the Pallas kernel (docs/h200/cuda_trees.jsonl)
LIBM_SHAPE = CudaShape(points=4, threads=256, tiles=32)
CACHE = Path(os.environ.get("EVOLVE_CUDA_CACHE", Path.home() / ".cache" / "evolve" / "cuda"))

_PRELUDE = r"""
#include <cstdint>
#include <cmath>
#include <cuda_runtime.h>
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

__device__ __forceinline__ float ev_min(float a, float b) {
    if (isnan(a) || isnan(b)) return __fadd_rn(a, b);
    return (a < b || (a == b && signbit(a))) ? a : b;
}
__device__ __forceinline__ float ev_max(float a, float b) {
    if (isnan(a) || isnan(b)) return __fadd_rn(a, b);
    return (a > b || (a == b && !signbit(a))) ? a : b;
}
// IEEE division. When an operand is zero, infinite or NaN, the division's own check
// would send it down its slow path (about a hundred instructions), and random programs
// divide by zero registers, infinities and NaNs often. For those the quotient is a
// product: the special operand (its reciprocal, for the divisor; exact for 0, inf and NaN)
// times the other's sign, or the two special operands multiplied. The division itself
// runs on 1 / 1 for them, which passes its check; selects choose, with no branch.
__device__ __forceinline__ float ev_rcp_special(float b) {  // 1/b for b = +-0, +-inf, NaN
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(b));
    return r;
}
__device__ __forceinline__ float ev_div(float a, float b) {
    const unsigned ma = __float_as_uint(a) & 0x7fffffffu, mb = __float_as_uint(b) & 0x7fffffffu;
    const bool a_special = ma == 0u || ma >= 0x7f800000u;
    const bool b_special = mb == 0u || mb >= 0x7f800000u;
    const bool special = a_special || b_special;
    const float q = __fdiv_rn(special ? 1.0f : a, special ? 1.0f : b);
    const float sa = a_special ? a : copysignf(1.0f, a);
    const float rb = b_special ? ev_rcp_special(b) : copysignf(1.0f, b);
    return special ? __fmul_rn(sa, rb) : q;
}
__device__ __forceinline__ double nan_max(double m, double v) {
    return (v > m || isnan(v)) ? v : m;
}
"""


def source(opset: tuple[int, ...], n_registers: int, shape: CudaShape = SHAPE) -> str:
    """The CUDA C++ source of the kernel and its FFI handler for one op set, register
    count and shape (``shape.fold`` is the plan's, not the source's).

    shape.registers: where a thread keeps its points' registers:

    - "acc" (the default): shared memory, a thread's points four by four (16-byte
      accesses), and the last result kept in the chip's registers: the words to run (each
      instruction's variant: where its arguments come from, whether its result is stored)
      and the registers to set at the start of a tile come from ``cuda_plan.plan``,
      computed before the kernel runs; constants come from a table the fold kernel
      (``cuda_acc.fold``) fills, a thread a program, before it;
    - "smem": shared memory, an access per operand and point (``evolve.eval.cuda.modes``),
      the fallback where "acc" cannot address the registers (``fitted``).

    shape.tiles: tiles of threads * points points a block runs in turn, so that loading
    the program and reducing the errors is paid once for all of them."""
    registers, points, threads, tiles = shape.registers, shape.points, shape.threads, shape.tiles
    if registers not in ("acc", "smem"):
        raise ValueError(f"registers must be 'acc' or 'smem', got {registers!r}")
    if registers == "acc" and points % 4:
        raise ValueError(f"registers={registers!r} takes points a thread in fours, got {points}")
    if registers == "acc" and not acc_fits(n_registers, threads, points):
        raise ValueError(f"registers='acc' addresses at most {cuda_plan.MAX_REGISTERS} "
                         "registers and 64 KB of them (registers x threads x points x 4 "
                         f"bytes), got {n_registers} x {threads} x {points}: use fewer "
                         "points or threads, or registers='smem'")
    if tiles < 1:
        raise ValueError(f"tiles a block must be at least 1, got {tiles}")
    R, E = n_registers, points
    ops = sorted(set(opset) | {CONST})
    p = cuda_acc.parts(ops, E, threads) if registers == "acc" else cuda_modes.parts(ops, E)
    arity = ", ".join(str(OPS[o].arity) if o in ops else "0" for o in range(len(OPS)))
    kernel = f"""
#define R {R}
#define E {E}
#define THREADS {threads}
#define TILES {tiles}
{p['at']}// point e of a thread is THREADS apart: scalar accesses, conflict-free
#define S(r, e) s_reg[(r) * (THREADS * E) + threadIdx.x + (e) * THREADS]
#define PSTEP THREADS
#define POINT(e) (base + threadIdx.x + (int64_t)(e) * THREADS)
__constant__ int ARITY[{len(OPS)}] = {{{arity}}};
{p['tables']}
{p['kernels']}__global__ void __launch_bounds__(THREADS{p['min_blocks']}) evolve_errors_cuda(
        const int32_t* __restrict__ op, const int32_t* __restrict__ args,
        const int32_t* __restrict__ dst, const float* __restrict__ cst,
        const int32_t* __restrict__ length, const int32_t* __restrict__ output,
        {p['params']}const float* __restrict__ x, int n_inputs, const double* __restrict__ y,
        const double* __restrict__ scale, const int32_t* __restrict__ mask,
        int64_t n_points, int L, int64_t p0, double* __restrict__ stats) {{
    // {p['prog_comment']}
    extern __shared__ __align__(16) unsigned char smem_raw[];
    int4* s_prog = (int4*)smem_raw;  // {p['prog']}
{p['decl']}
    const int64_t p = p0 + blockIdx.y;
    const int n = length[p], outreg = output[p];
    if (n < 0) {{  // a row padding the batch: nothing to run
        if (threadIdx.x == 0) {{
            double* s = stats + (p * gridDim.x + blockIdx.x) * 3;
            s[0] = s[1] = s[2] = 0.0;
        }}
        return;
    }}
{p['pack']}

    const int64_t n_tiles = (n_points + THREADS * E - 1) / (THREADS * E);
    const int64_t t_end = min(n_tiles, (int64_t)(blockIdx.x + 1) * TILES);
    double mxs = 0.0, mx = 0.0, sq = 0.0;
    for (int64_t tile = (int64_t)blockIdx.x * TILES; tile < t_end; ++tile) {{
        const int64_t base = tile * (THREADS * E);
        const int64_t j0 = POINT(0);  // this thread's first point; point e is e * PSTEP on
{p['fill']}
        {p['loop']}
{p['step']}
        }}
{p['final']}
{p['errors']}
    }}
{p['tail']}    // The block's reduction: within each warp by shuffles, then across the warps.
    #pragma unroll
    for (int off = 16; off > 0; off >>= 1) {{
        mxs = nan_max(mxs, __shfl_down_sync(0xffffffffu, mxs, off));
        mx = nan_max(mx, __shfl_down_sync(0xffffffffu, mx, off));
        sq += __shfl_down_sync(0xffffffffu, sq, off);
    }}
    __shared__ double s_red[THREADS / 32][3];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {{ s_red[warp][0] = mxs; s_red[warp][1] = mx; s_red[warp][2] = sq; }}
    __syncthreads();
    if (threadIdx.x == 0) {{
        for (int q = 1; q < THREADS / 32; ++q) {{
            mxs = nan_max(mxs, s_red[q][0]); mx = nan_max(mx, s_red[q][1]); sq += s_red[q][2];
        }}
        double* s = stats + (p * gridDim.x + blockIdx.x) * 3;
        s[0] = mxs; s[1] = mx; s[2] = sq;
    }}
}}

static ffi::Error evolve_errors_impl(
        cudaStream_t stream, ffi::Buffer<ffi::S32> op, ffi::Buffer<ffi::S32> args,
        ffi::Buffer<ffi::S32> dst, ffi::Buffer<ffi::F32> cst, ffi::Buffer<ffi::S32> length,
        ffi::Buffer<ffi::S32> output, {p['handler_params']}ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F64> y,
        ffi::Buffer<ffi::F64> scale, ffi::Buffer<ffi::S32> mask,
        ffi::ResultBuffer<ffi::F64> stats{p['results']}) {{
    const int64_t P = op.dimensions()[0], L = op.dimensions()[1];
    const int64_t N = y.element_count();
    const int n_inputs = (int)(x.element_count() / (N > 0 ? N : 1));
    const int64_t tiles = (N + THREADS * E - 1) / (THREADS * E);
    const int64_t blocks = (tiles + TILES - 1) / TILES;
    if (n_inputs > R) return ffi::Error::InvalidArgument("more inputs than registers");
    if (stats->element_count() != P * blocks * 3)
        return ffi::Error::InvalidArgument("stats has the wrong shape for this kernel");
{p['pre_launch']}    for (int64_t p0 = 0; p0 < P; p0 += 65535) {{
        const int64_t rows = P - p0 < 65535 ? P - p0 : 65535;
        dim3 grid((unsigned)blocks, (unsigned)rows);
        const size_t smem = {p['prog_bytes']} + (size_t)R * THREADS * E * 4;
        if (smem > 48 * 1024) {{
            cudaFuncSetAttribute(evolve_errors_cuda,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        }}
        evolve_errors_cuda<<<grid, THREADS, smem, stream>>>(
            op.typed_data(), args.typed_data(), dst.typed_data(), cst.typed_data(),
            length.typed_data(), output.typed_data(), {p['launch_args']}x.typed_data(), n_inputs,
            y.typed_data(), scale.typed_data(), mask.typed_data(), N, (int)L, p0,
            stats->typed_data());
    }}
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return ffi::Error::Internal(cudaGetErrorString(err));
    return ffi::Error::Success();
}}

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    EvolveErrors, evolve_errors_impl,
    ffi::Ffi::Bind()
        .Ctx<ffi::PlatformStream<cudaStream_t>>()
        .Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>()
        .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::S32>>().Arg<ffi::Buffer<ffi::S32>>()
        {p['binds']}
        .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F64>>().Arg<ffi::Buffer<ffi::F64>>()
        .Arg<ffi::Buffer<ffi::S32>>()
        .Ret<ffi::Buffer<ffi::F64>>(){p['rets']});
"""
    return _PRELUDE + kernel


def default_shape(opset: tuple[int, ...]) -> CudaShape:
    """The shape for this op set by default: ``SHAPE`` where the "acc" kernel computes
    every op in PTX, ``LIBM_SHAPE`` where some op runs in C++."""
    return SHAPE if all(cuda_acc.in_ptx(o) for o in opset) else LIBM_SHAPE


def acc_fits(n_registers: int, threads: int, points: int) -> bool:
    """Whether registers="acc" can address this register file (``source`` says why not)."""
    return (n_registers <= cuda_plan.MAX_REGISTERS and points % 4 == 0
            and n_registers * threads * points * 4 <= 0xFFFF)


def fitted(n_registers: int, shape: CudaShape, length: int = 0) -> CudaShape:
    """The shape to run with: "acc" with smaller blocks (down to 64 threads) where its
    byte offsets cannot reach every register, "smem" with at most 4 points a thread (its
    fastest on the H200) and the threads asked where that does not help or the programs
    are longer than ``cuda_plan.MAX_LENGTH``."""
    if shape.registers != "acc":
        return shape
    fewer = shape.threads
    while fewer > 64 and not acc_fits(n_registers, fewer, shape.points):
        fewer //= 2
    if acc_fits(n_registers, fewer, shape.points) and length <= cuda_plan.MAX_LENGTH:
        return replace(shape, threads=fewer)
    return replace(shape, registers="smem", points=min(shape.points, 4))


def nvcc() -> str | None:
    """The nvcc to build with: $EVOLVE_NVCC, $CUDA_HOME/bin/nvcc or the PATH's."""
    for cand in (os.environ.get("EVOLVE_NVCC"),
                 os.environ.get("CUDA_HOME") and str(Path(os.environ["CUDA_HOME"]) / "bin/nvcc"),
                 shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if cand and Path(cand).is_file():
            return cand
    return None


def available(devices=None) -> bool:
    """Whether this kernel can run here: CUDA GPUs for JAX and an nvcc to build it."""
    devices = devices or jax.devices()
    return all(d.platform == "gpu" for d in devices) and nvcc() is not None


def _arch(devices=None) -> str:
    cap = getattr((devices or jax.devices())[0], "compute_capability", None)
    return "sm_" + str(cap).replace(".", "") if cap else "sm_90"


def build(src: str, arch: str = "sm_90", out_dir: Path = CACHE) -> Path:
    """Compile ``src`` into a shared library (cached by the hash of source and arch)."""
    compiler = nvcc()
    if compiler is None:
        raise RuntimeError("the CUDA evaluator needs nvcc (CUDA's compiler): install the CUDA "
                           "toolkit or set EVOLVE_NVCC, or use backend='pallas'")

    def commands(source: Path, out: Path) -> list[list[str]]:
        return [[compiler, "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC",
                 "--fmad=false", f"-arch={arch}", "-I", jax.ffi.include_dir(), str(source),
                 "-o", str(out)]]

    return build_library(src, ".cu", out_dir, arch, commands)


@lru_cache(maxsize=32)
def _target(opset: tuple[int, ...], n_registers: int, shape: CudaShape, arch: str) -> str:
    """Build (or find) the library for this op set and size; register its FFI target."""
    src = source(opset, n_registers, shape)
    lib = ctypes.cdll.LoadLibrary(str(build(src, arch)))
    name = f"evolve_errors_{hashlib.sha256(src.encode()).hexdigest()[:16]}"
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(lib.EvolveErrors), platform="CUDA")
    return name


def point_facts(mask, scale) -> jax.Array:
    """[2] int64 the kernel reads once a block: n where the mask is ones at points
    0 .. n - 1 and zeros after (a batch's points padded to whole tiles), else 0, so that
    tiles below n skip the mask; and the same n where the scale is also 1 at every point
    of the mask (no scale given), else 0, so that those tiles skip the scale too: the
    scaled max is then the max."""
    m = jnp.asarray(mask).reshape(-1).astype(bool)
    n = jnp.sum(m, dtype=jnp.int64)
    prefix = jnp.all(m == (jnp.arange(m.size, dtype=jnp.int64) < n))
    unit = jnp.all((jnp.asarray(scale).reshape(-1) == 1.0) | ~m)
    dense = jnp.where(prefix, n, 0)
    return jnp.stack([dense, jnp.where(unit, dense, 0)])


def errors(op, args, dst, const, length, output, xt, y, scale, mask, *, n_registers,
           opset=None, shape: CudaShape | None = None, **_other_kernels):
    """``kernels.errors`` by the CUDA kernel: float64 [P, 3] per program. ``shape``: the
    kernel's (default: the op set's, ``default_shape``). Arguments of the Pallas kernel
    (the Evaluator passes one set to both) are ignored."""
    opset = tuple(range(len(OPS))) if opset is None else tuple(opset)
    shape = fitted(n_registers, shape or default_shape(opset), op.shape[1])
    points, threads, tiles = shape.points, shape.threads, shape.tiles
    name = _target(opset, n_registers, replace(shape, fold=True), _arch())  # fold: the plan's
    n_tiles = -(-xt.shape[0] * xt.shape[2] // (threads * points))
    blocks = -(-n_tiles // tiles)
    data = operands(op, args, dst, const, length, output, xt, y, scale, mask)
    shapes = [jax.ShapeDtypeStruct((op.shape[0], blocks, 3), jnp.float64)]
    if shape.registers == "acc":  # the words to run, facts of mask and scale, constants
        data[6:6] = [*cuda_plan.plan(op, args, dst, const, length, output, opset, xt.shape[1],
                                     threads * points * 4, shape.fold), point_facts(mask, scale)]
        shapes.append(jax.ShapeDtypeStruct((op.shape[0], 3 * op.shape[1] + 1), jnp.float32))
    stats = jax.ffi.ffi_call(name, shapes)(*data)[0]
    return jnp.stack([kernels.nan_max(stats[..., 0], axis=1), jnp.max(stats[..., 1], axis=1),
                      jnp.sum(stats[..., 2], axis=1)], axis=1)
