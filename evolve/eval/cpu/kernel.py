"""A C++ evaluator kernel for the CPU, called from the JAX program through XLA's FFI.

XLA's CPU code for the interpreter loop (``evolve.eval.evaluator``, backend "lax") pays for
the generality of a ``lax.switch`` at every instruction and runs ``sin`` and ``cos`` at a
third of numpy's speed. This kernel is C++ generated from the ops table for one op set
and register count (``evolve.eval.cpu.source``), compiled with the machine's C++ compiler
on first use (about 5 s) and cached in ``~/.cache/evolve/native`` under the hash of its
source:

- a program runs on a tile of ``TILE`` points at a time, its registers a ``[R][TILE]``
  array that stays in the L1 cache; each instruction is one loop over the tile, which the
  compiler vectorises for the widest vectors of the host (``host_isa``, built with
  -march=native): AVX-512 (16 floats) where the CPU has AVX-512F, else AVX2 and FMA (8
  floats), else the compiler's default target. ``host_isas`` lists what the host runs
  (``isas_of`` its compiler's target macros); the cache key holds those macros, so a
  cache folder shared by hosts of different CPUs gives each its own build;
- exactly rounded ops use the ops table's C spellings, compiled without contraction
  (``-ffp-contract=off``, no fast-math), so they equal numpy bit for bit, subnormals
  included;
- the transcendental ops (exp, exp2, log, sin, cos, tanh) by one of three codes, the
  run configuration's ``search.evaluator.native_math`` (the evaluator's ``native_math``):
  - "own32", the default: our float32 sin, cos, exp, exp2, log and tanh (``vecmath.OWN32_MATH``:
    Cody-Waite argument reductions with constants split into float32 parts, Sollya
    minimax polynomials with float32 coefficients, FMA), one C++ template for 8-float
    AVX2 and 16-float AVX-512 vectors, inlined into the tile loop: the same operations
    in the same order at either width, so the same bits on every x86 host with AVX2 and
    FMA; within 1.5 ULP of the exact value on its fast range (sin 1.43, cos 1.42, exp
    0.99, exp2 1.0, log 0.89, tanh 1.29 on every 101st float32 there:
    ``scripts/check_vecmath.py``); per core in the
    kernel on an AVX-512 Zen 5, sin as fast as libmvec's, cos 1.05-1.08x, exp
    1.7-1.8x, log 1.5-1.7x, exp2 2-2.3x, tanh 2.6x;
  - "libmvec": glibc's vector math library (8 floats a call, float32 arithmetic: up to
    2-4 ULP off, 93-98 % correctly rounded, like numpy's own SIMD code) on the lanes it
    handles fast; on AVX-512, 16 floats a vector for sin, cos, exp and log, whose 16-float
    variants equal the 8-float ones bit for bit (``source._MVEC16``), so that the results
    do not depend on the host's vector width;
  - "own": our AVX2 and FMA code in float64 (``vecmath.OWN_MATH``): each op computed in
    float64 from the exact argument (argument reduction, then a minimax polynomial or
    rational function) and rounded once to float32, within 1 ULP of the correctly
    rounded value on its fast range (``source._MVEC``) and equal to it but for a fraction
    2.6e-5 (sin), 3.9e-5 (cos), 7e-7 (log), 3e-8 (exp, exp2, tanh) of the floats there
    (every float of the fast range, against glibc's float64 functions rounded). The
    float64 arithmetic bounds it to 1.05-1.4 Gelem/s per core in the kernel on an AVX2
    Zen 3, 0.55-0.7 times libmvec (tanh excepted: 1.2 times).
  ``scripts/bench_native_ops.py`` times them. The lanes of a vector outside the fast
  range (NaN, Inf, huge arguments, subnormal results) take rules (``source._RULES``),
  set from masks computed independently of each other, or the scalar libm function.
  Without AVX2 and FMA: libmvec where glibc has it, else libm;
- a register that a program reads before writing it starts each tile at zero; the
  others are not cleared between tiles;
- constant folding: an instruction whose arguments are all constant (literals, unwritten
  registers, values computed from those alone) is computed once, on one vector of copies
  by the op's own code, and runs as a literal of that value (the same bits at every
  point). A third of the transcendental instructions of random trees are such;
- literals (given or folded) get registers of their own past R (``SLOTS`` of them),
  filled once a program instead of once a tile, and leave the tile loop; an input
  register that no instruction writes is read in place from the points (no copy a
  tile); ``errors`` with a plain mask skips the tiles wholly past the last point counted
  (the evaluator's padding), which add nothing to the statistics;
- ``errors`` reduces outputs to the error statistics of ``kernels.errors`` in the kernel;
  ``outputs`` returns them (for fingerprints), so both agree, subnormals and all.

The kernel shares a batch's programs out among ``threads`` threads of its own, a group
of ``source.GROUP`` (2) programs at a time as they finish: a thread runs a group's programs
tile by tile and reduces their errors side by side (each program's sum of squares is a
chain of dependent additions, in a fixed order; two chains in one loop), each program's
results those it gives alone (the evaluator gives it one XLA device and a thread a core,
unless it was given devices: then each device's shard gets cores / devices threads).
``available()`` says whether a compiler is there.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from evolve.eval.cpu.source import TILE, check_isa, source
from evolve.eval.ffibuild import build_library, operands
from evolve.ops import OPCODE, OPS

CACHE = Path(os.environ.get("EVOLVE_NATIVE_CACHE",
                            Path.home() / ".cache" / "evolve" / "native"))


def compiler() -> str | None:
    """The C++ compiler to build with: $EVOLVE_CXX, $CXX, or g++/c++/clang++ on the PATH."""
    for cand in (os.environ.get("EVOLVE_CXX"), os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


# The compiler flags of each instruction set (``source.ISAS``): the host's own
# (-march=native) with 512-bit vectors preferred, the host's without AVX-512, or the
# compiler's default target (portable: no vector code of ours).
FLAGS = {"avx512": ["-march=native", "-mprefer-vector-width=512"],
         "avx2": ["-march=native", "-mno-avx512f"],
         "generic": []}
_COMMON = ["-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", "-ffp-contract=off",
           "-fno-math-errno"]


@lru_cache(maxsize=1)
def target_macros() -> frozenset[str]:
    """The macros the compiler predefines for this host's CPU (-march=native): what it
    targets here, as it knows it (empty without a compiler, or where it fails)."""
    cxx = compiler()
    if cxx is None:
        return frozenset()
    res = subprocess.run([cxx, "-march=native", "-dM", "-E", "-x", "c++", os.devnull],
                         capture_output=True, text=True)
    if res.returncode != 0:
        return frozenset()
    return frozenset(" ".join(line.split()[1:]) for line in res.stdout.splitlines()
                     if line.startswith("#define "))


def isas_of(macros) -> tuple[str, ...]:
    """The instruction sets (``source.ISAS``, widest first) a target with these predefined
    macros (names, or "NAME VALUE") runs: "avx512" with AVX-512F, AVX2 and FMA, "avx2"
    with AVX2 and FMA, "generic" always."""
    names = {m.split()[0] for m in macros}
    vector = {"__AVX2__", "__FMA__"} <= names
    found = [isa for isa, have in (("avx512", vector and "__AVX512F__" in names),
                                   ("avx2", vector)) if have]
    return (*found, "generic")


def host_isas() -> tuple[str, ...]:
    """The instruction sets (``source.ISAS``, widest first) the compiler targets on this
    host with -march=native (``isas_of`` its macros): what the CPU has, as far as the
    compiler knows it ("generic" always; none without a compiler)."""
    return isas_of(target_macros()) if compiler() is not None else ()


def host_isa() -> str:
    """The widest instruction set of this host (``host_isas``): what the kernel is built
    for unless told otherwise."""
    isas = host_isas()
    return isas[0] if isas else "generic"


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether the kernel can be built here: a C++ compiler that builds a tiny one."""
    if compiler() is None:
        return False
    try:
        build(source((OPCODE["add"],), 2, isa=host_isa()), host_isa())
    except (RuntimeError, OSError):
        return False
    return True


def build(src: str, isa: str, out_dir: Path = CACHE) -> Path:
    """Compile ``src``, generated for ``isa``, into a shared library (cached by the hash
    of source and flags)."""
    flags = [*_COMMON, *FLAGS[check_isa(isa)]]
    # -march=native means this CPU: the key names what it resolved to (the target's
    # macros), so that a cache folder shared between hosts never hands one host's build
    # to another CPU
    key = " ".join(flags)
    if "-march=native" in flags:
        key += " " + hashlib.sha256("\n".join(sorted(target_macros())).encode()).hexdigest()
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("the native CPU evaluator needs a C++ compiler (g++ or clang++); "
                           "install one or set EVOLVE_CXX, or use backend='lax'")

    def commands(source: Path, out: Path) -> list[list[str]]:
        cmd = [cxx, *flags, "-I", jax.ffi.include_dir(), str(source), "-o", str(out)]
        # with glibc's vector math library; without it, the scalar libm path
        return [cmd + ["-lmvec", "-lm"], cmd + ["-DEVOLVE_NO_MVEC", "-lm"]]

    return build_library(src, ".cc", out_dir, key, commands)


@lru_cache(maxsize=32)
def _target(opset: tuple[int, ...], n_registers: int, tile: int, math: str = "own32",
            isa: str = "avx2") -> str:
    """Build (or find) the library; register its two FFI targets (NAME_errors,
    NAME_outputs) and return NAME, which names the instruction set."""
    if isa not in host_isas():
        raise ValueError(f"this host's kernel can be built for {', '.join(host_isas())}, "
                         f"not {isa!r}")
    src = source(opset, n_registers, tile, math, isa)
    lib = ctypes.cdll.LoadLibrary(str(build(src, isa)))
    name = f"evolve_native_{isa}_{hashlib.sha256(src.encode()).hexdigest()[:16]}"
    jax.ffi.register_ffi_target(f"{name}_errors", jax.ffi.pycapsule(lib.EvolveErrors),
                                platform="cpu")
    jax.ffi.register_ffi_target(f"{name}_outputs", jax.ffi.pycapsule(lib.EvolveOutputs),
                                platform="cpu")
    return name


def errors(op, args, dst, const, length, output, xt, y, scale, mask, *, n_registers,
           opset=None, threads=1, math="own32", isa=None, **_ignored):
    """``kernels.errors`` by the C++ kernel on the CPU: float64 [P, 3] per program, the
    programs shared out among ``threads`` threads, the transcendental ops by ``math``
    (``source.MATHS``), the vector code for ``isa`` (``host_isas()``; None: the widest,
    ``host_isa()``)."""
    name = _target(_opset(opset), n_registers, TILE, math, isa or host_isa())
    return jax.ffi.ffi_call(f"{name}_errors", jax.ShapeDtypeStruct((op.shape[0], 3),
                                                                    jnp.float64))(
        *operands(op, args, dst, const, length, output, xt, y, scale, mask),
        threads=np.int32(threads))


def outputs(op, args, dst, const, length, output, xt, *, n_registers, opset=None, threads=1,
            math="own32", isa=None, **_ignored):
    """``kernels.outputs`` by the C++ kernel on the CPU: float32 [P, n_tiles * T0], the
    transcendental ops by ``math`` (``source.MATHS``), the vector code for ``isa`` (None:
    ``host_isa()``)."""
    name = _target(_opset(opset), n_registers, TILE, math, isa or host_isa())
    N = xt.shape[0] * xt.shape[2]
    return jax.ffi.ffi_call(f"{name}_outputs", jax.ShapeDtypeStruct((op.shape[0], N),
                                                                     jnp.float32))(
        *operands(op, args, dst, const, length, output, xt), threads=np.int32(threads))


def _opset(opset) -> tuple[int, ...]:
    return tuple(range(len(OPS))) if opset is None else tuple(opset)
