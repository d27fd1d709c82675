"""A CUDA evaluator kernel, called from the JAX program through XLA's FFI.

The Pallas kernel (``evolve.kernels``) keeps a program's registers in the chip's registers
too, but Triton moves every register value through each join of the branch trees that
read and write a register chosen at run time; Nsight Compute counted 38 instructions per
instruction and point. This kernel is plain CUDA C++, generated from the ops table for
one op set and register count: a thread holds ``E`` points of each register in its own
registers (``v[R][E]``, indexed only by constants), and each instruction reads its
arguments and writes its result through ``switch`` statements on the block-uniform
register index, so the compiler can jump rather than move every register.

Semantics are those of ``OPS[i].np_fn`` bit for bit on exactly rounded ops: ``__fadd_rn``
and friends (never contracted into FMAs), IEEE division and square root, a single-rounding
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
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp

from evolve.ffibuild import build_library, operands
from evolve.ops import CONST, OPS

# CUDA spelling of each op over float operands a, b, c (exactly rounded where IEEE is).
CUDA_OPS: dict[str, str] = {
    "add": "__fadd_rn(a, b)",
    "sub": "__fsub_rn(a, b)",
    "mul": "__fmul_rn(a, b)",
    "div": "__fdiv_rn(a, b)",
    "fma": "__fmaf_rn(a, b, c)",
    "neg": "(-a)",
    "abs": "fabsf(a)",
    "min": "ev_min(a, b)",
    "max": "ev_max(a, b)",
    "sqrt": "__fsqrt_rn(a)",
    "exp2": "exp2f(a)",
    "exp": "expf(a)",
    "log": "logf(a)",
    "sin": "sinf(a)",
    "cos": "cosf(a)",
    "tanh": "tanhf(a)",
}

POINTS_PER_THREAD = 4  # E: points of every register a thread holds
THREADS = 128  # threads a block: a block's tile is THREADS * E points
REGISTERS = "smem"  # where registers live: "regs", "smem" or "smem4" (see ``source``)
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
__device__ __forceinline__ double nan_max(double m, double v) {
    return (v > m || isnan(v)) ? v : m;
}
"""


def _switch(index: str, body, n: int, indent: str) -> str:
    """``switch (index) { case r: body(r) break; ... }`` for r < n (the last is default)."""
    lines = [f"{indent}switch ({index}) {{"]
    for r in range(n):
        label = "default" if r == n - 1 else f"case {r}"
        lines.append(f"{indent}{label}: {{ {body(r)} break; }}")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def source(opset: tuple[int, ...], n_registers: int, points: int = POINTS_PER_THREAD,
           threads: int = THREADS, registers: str = "regs") -> str:
    """The CUDA C++ source of the kernel and its FFI handler for one op set and size.

    registers: where a thread keeps its points' registers: "regs" (the chip's registers,
    read and written through ``switch`` statements), "smem" (shared memory, indexed by
    the register number: no branches, a shared-memory access per operand and point) or
    "smem4" (the same with a thread's points contiguous: one float4 access per operand
    and four points)."""
    if registers not in ("regs", "smem", "smem4"):
        raise ValueError(f"registers must be 'regs', 'smem' or 'smem4', got {registers!r}")
    if registers == "smem4" and points % 4:
        raise ValueError(f"registers='smem4' takes points a thread in fours, got {points}")
    R, E = n_registers, points
    ops = sorted(set(opset) | {CONST})
    missing = [OPS[o].name for o in ops if o != CONST and OPS[o].name not in CUDA_OPS]
    if missing:
        raise ValueError(f"no CUDA spelling for ops {missing}")

    def read(name):
        return lambda r: f"for (int e = 0; e < E; ++e) {name}[e] = v[{r}][e];"

    cases = []
    for o in ops:
        if o == CONST:
            body = ("const float k = s_const[i]; for (int e = 0; e < E; ++e) "
                    + ("t[e] = k;" if registers == "regs" else "S(d, e) = k;"))
        elif registers == "smem4":  # four points a shared-memory access (float4)
            names = list(zip("abc", "ABC", ("ia", "ib", "ic")))[: OPS[o].arity]
            loads = "".join(f"const float4 {V} = SV({i}, q); " for _, V, i in names)
            comps = "".join(
                "{ " + "".join(f"const float {n} = {V}.{c}; " for n, V, _ in names)
                + f"T.{c} = {CUDA_OPS[OPS[o].name]}; }} " for c in "xyzw")
            body = f"for (int q = 0; q < E / 4; ++q) {{ {loads}float4 T; {comps}SV(d, q) = T; }}"
        elif registers == "regs":
            body = (f"for (int e = 0; e < E; ++e) {{ const float a = ra[e], b = rb[e], "
                    f"c = rc[e]; (void)a; (void)b; (void)c; t[e] = {CUDA_OPS[OPS[o].name]}; }}")
        else:
            operands = "".join(f"const float {n} = S({i}, e); "
                               for n, i in list(zip("abc", ("ia", "ib", "ic")))[: OPS[o].arity])
            body = (f"for (int e = 0; e < E; ++e) {{ {operands}"
                    f"S(d, e) = {CUDA_OPS[OPS[o].name]}; }}")
        cases.append(f"            case {o}: {{ {body} break; }}")
    arity = ", ".join(str(OPS[o].arity) if o in ops else "0" for o in range(len(OPS)))
    if registers == "regs":
        init = "v[r][e]"
        step = f"""        const int k = ARITY[o];
        float ra[E], rb[E], rc[E], t[E];
        if (k >= 1) {{
{_switch("ia", read("ra"), R, "            ")}
        }}
        if (k >= 2) {{
{_switch("ib", read("rb"), R, "            ")}
        }}
        if (k >= 3) {{
{_switch("ic", read("rc"), R, "            ")}
        }}
        switch (o) {{
{chr(10).join(cases)}
            default: {{ for (int e = 0; e < E; ++e) t[e] = 0.0f; break; }}
        }}
{_switch("d", lambda r: f"for (int e = 0; e < E; ++e) v[{r}][e] = t[e];", R, "        ")}"""
        final = f"""    float out[E];
{_switch("output[p]", read("out"), R, "    ")}"""
        decl = "    float v[R][E];"
    else:
        init = "S(r, e)"
        step = f"""        switch (o) {{
{chr(10).join(cases)}
            default: break;
        }}"""
        final = """    float out[E];
    for (int e = 0; e < E; ++e) out[e] = S(output[p], e);"""
        decl = "    float* s_reg = s_const + L;  // [R][THREADS * E]"
    kernel = f"""
#define R {R}
#define E {E}
#define THREADS {threads}
#define VEC {1 if registers == "smem4" else 0}
#if VEC  // a thread's E points are contiguous: float4 accesses, conflict-free
#define S(r, e) s_reg[(r) * (THREADS * E) + threadIdx.x * E + (e)]
#define SV(r, q) (((float4*)(s_reg + (r) * (THREADS * E)))[threadIdx.x * (E / 4) + (q)])
#define POINT(e) ((int64_t)blockIdx.x * THREADS * E + threadIdx.x * E + (e))
#else  // point e of a thread is THREADS apart: scalar accesses, conflict-free
#define S(r, e) s_reg[(r) * (THREADS * E) + threadIdx.x + (e) * THREADS]
#define POINT(e) ((int64_t)blockIdx.x * THREADS * E + threadIdx.x + (int64_t)(e) * THREADS)
#endif
__constant__ int ARITY[{len(OPS)}] = {{{arity}}};

__global__ void __launch_bounds__(THREADS) evolve_errors_cuda(
        const int32_t* __restrict__ op, const int32_t* __restrict__ args,
        const int32_t* __restrict__ dst, const float* __restrict__ cst,
        const int32_t* __restrict__ length, const int32_t* __restrict__ output,
        const float* __restrict__ x, int n_inputs, const double* __restrict__ y,
        const double* __restrict__ scale, const int32_t* __restrict__ mask,
        int64_t n_points, int L, int64_t p0, double* __restrict__ stats) {{
    extern __shared__ __align__(16) unsigned char smem_raw[];
    uint32_t* s_word = (uint32_t*)smem_raw;  // [L]: op | a << 8 | b << 14 | c << 20 | dst << 26
    float* s_const = (float*)(s_word + L);  // [L]
{decl}
    const int64_t p = p0 + blockIdx.y;
    const int64_t row = p * L;
    const int n = length[p];
    for (int i = threadIdx.x; i < n; i += THREADS) {{  // the program, into shared memory
        const int64_t g = row + i;
        s_word[i] = (uint32_t)op[g] | ((uint32_t)args[3 * g] << 8)
            | ((uint32_t)args[3 * g + 1] << 14) | ((uint32_t)args[3 * g + 2] << 20)
            | ((uint32_t)dst[g] << 26);
        s_const[i] = cst[g];
    }}
    #pragma unroll
    for (int r = 0; r < R; ++r)
        #pragma unroll
        for (int e = 0; e < E; ++e) {{
            const int64_t j = POINT(e);
            {init} = (r < n_inputs && j < n_points) ? x[r * n_points + j] : 0.0f;
        }}
    __syncthreads();
    for (int i = 0; i < n; ++i) {{
        const uint32_t w = s_word[i];
        const int o = w & 255, ia = (w >> 8) & 63, ib = (w >> 14) & 63, ic = (w >> 20) & 63;
        const int d = w >> 26;
        (void)ia; (void)ib; (void)ic;
{step}
    }}
{final}
    double mxs = 0.0, mx = 0.0, sq = 0.0;
    #pragma unroll
    for (int e = 0; e < E; ++e) {{
        const int64_t j = POINT(e);
        if (j < n_points && mask[j]) {{
            double err = fabs((double)out[e] - y[j]);
            if (isnan(err)) err = INFINITY;
            mxs = nan_max(mxs, err * scale[j]);
            mx = nan_max(mx, err);
            sq += err * err;
        }}
    }}
    __shared__ double s_mxs[THREADS], s_mx[THREADS], s_sq[THREADS];
    s_mxs[threadIdx.x] = mxs; s_mx[threadIdx.x] = mx; s_sq[threadIdx.x] = sq;
    __syncthreads();
    for (int w = THREADS / 2; w > 0; w >>= 1) {{
        if (threadIdx.x < w) {{
            s_mxs[threadIdx.x] = nan_max(s_mxs[threadIdx.x], s_mxs[threadIdx.x + w]);
            s_mx[threadIdx.x] = nan_max(s_mx[threadIdx.x], s_mx[threadIdx.x + w]);
            s_sq[threadIdx.x] += s_sq[threadIdx.x + w];
        }}
        __syncthreads();
    }}
    if (threadIdx.x == 0) {{
        double* s = stats + (p * gridDim.x + blockIdx.x) * 3;
        s[0] = s_mxs[0]; s[1] = s_mx[0]; s[2] = s_sq[0];
    }}
}}

static const bool SMEM_REGISTERS = {"false" if registers == "regs" else "true"};

static ffi::Error evolve_errors_impl(
        cudaStream_t stream, ffi::Buffer<ffi::S32> op, ffi::Buffer<ffi::S32> args,
        ffi::Buffer<ffi::S32> dst, ffi::Buffer<ffi::F32> cst, ffi::Buffer<ffi::S32> length,
        ffi::Buffer<ffi::S32> output, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F64> y,
        ffi::Buffer<ffi::F64> scale, ffi::Buffer<ffi::S32> mask,
        ffi::ResultBuffer<ffi::F64> stats) {{
    const int64_t P = op.dimensions()[0], L = op.dimensions()[1];
    const int64_t N = y.element_count();
    const int n_inputs = (int)(x.element_count() / (N > 0 ? N : 1));
    const int64_t tiles = (N + THREADS * E - 1) / (THREADS * E);
    if (n_inputs > R) return ffi::Error::InvalidArgument("more inputs than registers");
    for (int64_t p0 = 0; p0 < P; p0 += 65535) {{
        const int64_t rows = P - p0 < 65535 ? P - p0 : 65535;
        dim3 grid((unsigned)tiles, (unsigned)rows);
        const size_t smem = 2 * L * 4 + (SMEM_REGISTERS ? (size_t)R * THREADS * E * 4 : 0);
        if (smem > 48 * 1024) {{
            cudaFuncSetAttribute(evolve_errors_cuda,
                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        }}
        evolve_errors_cuda<<<grid, THREADS, smem, stream>>>(
            op.typed_data(), args.typed_data(), dst.typed_data(), cst.typed_data(),
            length.typed_data(), output.typed_data(), x.typed_data(), n_inputs,
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
        .Arg<ffi::Buffer<ffi::F32>>().Arg<ffi::Buffer<ffi::F64>>().Arg<ffi::Buffer<ffi::F64>>()
        .Arg<ffi::Buffer<ffi::S32>>()
        .Ret<ffi::Buffer<ffi::F64>>());
"""
    return _PRELUDE + kernel


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
def _target(opset: tuple[int, ...], n_registers: int, points: int, threads: int,
            arch: str, registers: str) -> str:
    """Build (or find) the library for this op set and size; register its FFI target."""
    src = source(opset, n_registers, points, threads, registers)
    lib = ctypes.cdll.LoadLibrary(str(build(src, arch)))
    name = f"evolve_errors_{hashlib.sha256(src.encode()).hexdigest()[:16]}"
    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(lib.EvolveErrors), platform="CUDA")
    return name


def errors(op, args, dst, const, length, output, xt, y, scale, mask, *, n_registers,
           opset=None, points=None, threads=None, registers=None, **_ignored):
    """``kernels.errors`` by the CUDA kernel: float64 [P, 3] per program."""
    points, threads = points or POINTS_PER_THREAD, threads or THREADS
    opset = tuple(range(len(OPS))) if opset is None else tuple(opset)
    name = _target(opset, n_registers, points, threads, _arch(), registers or REGISTERS)
    blocks = -(-xt.shape[0] * xt.shape[2] // (threads * points))
    stats = jax.ffi.ffi_call(name, jax.ShapeDtypeStruct((op.shape[0], blocks, 3),
                                                        jnp.float64))(
        *operands(op, args, dst, const, length, output, xt, y, scale, mask))
    return jnp.stack([jnp.max(stats[..., 0], axis=1), jnp.max(stats[..., 1], axis=1),
                      jnp.sum(stats[..., 2], axis=1)], axis=1)
