"""The CUDA kernel's source (evolve.eval.cuda.kernel): generated from the ops table, and compiled
by nvcc where there is one. It runs only on CUDA GPUs (scripts/check_gpu.py --stages
cuda checks it there against the Pallas kernel)."""

import shutil

import pytest

from evolve.eval.cuda import kernel as cuda
from evolve.eval.evaluator import Evaluator
from evolve.ops import CONST, OPCODE, OPS

ARITH = tuple(sorted(OPCODE[n] for n in ("add", "sub", "mul", "div", "fma")))


def test_source_holds_the_op_set_only():
    src = cuda.source(ARITH, 8, cuda.CudaShape(points=4, registers="smem"))
    for o in ARITH + (CONST,):
        assert f"case {o}:" in src
    assert "ev_div(a, b)" in src and "expf" not in src
    assert "#define R 8" in src


def test_smem_packs_byte_offsets_and_a_stop():
    R = 8
    src = cuda.source(ARITH, R, cuda.CudaShape(points=4, threads=128, registers="smem"))
    # registers as byte offsets into s_reg, two int4 an instruction, a stop after the last
    assert "a * (THREADS * E * 4)" in src and "dst[g] * (THREADS * E * 4)" in src
    assert "s_prog + 2 * (L + 1)" in src and "(L + 1) * 32 +" in src
    assert "u >> 24" not in src and "S(d, e)" not in src and "S(outreg, e)" in src
    stop = max(ARITH + (CONST,)) + 1
    assert f"case {stop}: goto done;" in src and f"make_int4(0, 0, 0, {stop})" in src
    assert f"o == {stop} ? -1 : o" in src  # the op numbered like the stop runs as none
    assert "pd[e * THREADS] = __fadd_rn(a, b);" in src and "AT(q[1].x)" in src
    assert "AT(w.x)" not in src.split(f"case {CONST}:")[1].split("case")[0]  # a's the value
    full = cuda.source(tuple(range(len(OPS))), R, cuda.CudaShape(registers="smem"))
    assert f"case {len(OPS)}: goto done;" in full and "? -1 : o" not in full


def test_tiles_a_block_set_the_grid():
    src = cuda.source(ARITH, 8, cuda.CudaShape(tiles=3))
    assert "#define TILES 3" in src
    with pytest.raises(ValueError, match="tiles"):
        cuda.source(ARITH, 8, cuda.CudaShape(tiles=0))


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="registers"):
        cuda.source(ARITH, 8, cuda.CudaShape(registers="global"))
    for gone in ("regs", "smem4", "asm", "asm3"):  # tagged comparison-tables
        with pytest.raises(ValueError, match="registers"):
            cuda.source(ARITH, 8, cuda.CudaShape(registers=gone))
    with pytest.raises(ValueError, match="fours"):
        cuda.source(ARITH, 8, cuda.CudaShape(points=2))
    with pytest.raises(ValueError, match="CUDA GPUs"):
        Evaluator(n_registers=4, backend="cuda")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here")
def test_source_compiles(tmp_path):
    lib = cuda.build(cuda.source(ARITH, 4), "sm_90", out_dir=tmp_path)
    assert lib.is_file() and lib.stat().st_size > 0
    full = cuda.build(cuda.source(tuple(range(len(OPS))), 3,
                                  cuda.CudaShape(points=2, threads=64, registers="smem")),
                      "sm_90", out_dir=tmp_path)  # smem: every op, another layout
    assert full.is_file() and full != lib
    for ops in (ARITH, tuple(range(len(OPS)))):  # the PTX cases, and C++ for the others
        acc = cuda.build(cuda.source(ops, 8), "sm_90", out_dir=tmp_path)
        assert acc.is_file() and acc != full
    assert cuda.build(cuda.source(ARITH, 4), "sm_90", out_dir=tmp_path) == lib  # cached
