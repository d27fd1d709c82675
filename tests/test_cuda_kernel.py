"""The CUDA kernel's source (evolve.eval.cuda.kernel): generated from the ops table, and compiled
by nvcc where there is one. It runs only on CUDA GPUs (scripts/check_gpu.py --stages
cuda checks it there against the Pallas kernel)."""

import shutil

import pytest

from evolve.eval.cuda import asm as cuda_asm
from evolve.eval.cuda import kernel as cuda
from evolve.eval.evaluator import Evaluator
from evolve.ops import CONST, OPCODE, OPS

ARITH = tuple(sorted(OPCODE[n] for n in ("add", "sub", "mul", "div", "fma")))


def test_every_op_has_a_cuda_spelling():
    assert {op.name for op in OPS if op.arity} == set(cuda.CUDA_OPS)


@pytest.mark.parametrize("registers", ["regs", "smem", "smem4"])
def test_source_holds_the_op_set_only(registers):
    src = cuda.source(ARITH, 8, registers=registers)
    for o in ARITH + (CONST,):
        assert f"case {o}:" in src
    assert "ev_div(a, b)" in src and "expf" not in src
    assert "#define R 8" in src


def test_smem_packs_byte_offsets_and_a_stop():
    R, E, T = 8, 4, 128
    src = cuda.source(ARITH, R, points=E, threads=T, registers="smem")
    # registers as byte offsets into s_reg, two int4 an instruction, a stop after the last
    assert "a * (THREADS * E * 4)" in src and "dst[g] * (THREADS * E * 4)" in src
    assert "s_prog + 2 * (L + 1)" in src and "(L + 1) * 32 +" in src
    assert "u >> 24" not in src and "S(d, e)" not in src and "S(outreg, e)" in src
    stop = max(ARITH + (CONST,)) + 1
    assert f"case {stop}: goto done;" in src and f"make_int4(0, 0, 0, {stop})" in src
    assert f"o == {stop} ? -1 : o" in src  # the op numbered like the stop runs as none
    assert "pd[e * THREADS] = __fadd_rn(a, b);" in src and "AT(q[1].x)" in src
    assert "AT(w.x)" not in src.split(f"case {CONST}:")[1].split("case")[0]  # a's the value
    full = cuda.source(tuple(range(len(OPS))), R, registers="smem")
    assert f"case {len(OPS)}: goto done;" in full and "? -1 : o" not in full
    # the other modes keep one int4 an instruction, the register numbers a byte each
    for mode in ("smem4", "regs"):
        other = cuda.source(ARITH, R, registers=mode)
        assert "a | b << 8 | c << 16 | dst[g] << 24" in other and "L * 16 +" in other
        assert "goto done" not in other and "AT(" not in other


def test_asm_jump_tables_cover_every_register_combination():
    R, E = 4, 2
    src = cuda.source(ARITH, R, points=E, registers="asm")
    # (op, arguments): the literal, R * R for each of add, sub, mul, then R * R argument
    # pairs and R single arguments copied out for the ops computed in C++ (div, fma)
    base, n = cuda_asm.layout(sorted(ARITH + (CONST,)), R)
    assert n == 1 + 3 * R * R + R * R + R
    assert base[OPCODE["div"]] == base[OPCODE["fma"]] == 1 + 3 * R * R
    assert f"L{n - 1}:" in src and f"L{n}:" not in src and "brx.idx" in src
    assert src.count("add.rn.f32") == R * R * E and src.count("fma.rn.f32") == R * E
    assert "div.rn.f32" not in src and "case " + str(OPCODE["div"]) + ":" in src
    assert "#pragma unroll 1" in src and "SLOT" not in src


def test_asm3_tables_on_the_first_argument_the_op_and_second_then_the_destination():
    R, E = 4, 2
    src = cuda.source(ARITH, R, points=E, registers="asm3")
    # (op, second argument): the literal, R for each of add, sub, mul, R second arguments
    # copied out for div and fma and one copying nothing
    base, n = cuda_asm.layout(sorted(ARITH + (CONST,)), R, tables=3)
    assert n == 1 + 3 * R + R + 1 and base[OPCODE["div"]] == base[OPCODE["fma"]] == 1 + 3 * R
    assert src.count("add.rn.f32") == R * E and src.count("fma.rn.f32") == R * E
    assert src.count("brx.idx") == 4  # first argument, (op, second), c for fma, destination
    assert "w.z >> 24" in src and "? a : R" in src


def test_tiles_a_block_set_the_grid():
    src = cuda.source(ARITH, 8, tiles=3)
    assert "#define TILES 3" in src
    with pytest.raises(ValueError, match="tiles"):
        cuda.source(ARITH, 8, tiles=0)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="registers"):
        cuda.source(ARITH, 8, registers="global")
    with pytest.raises(ValueError, match="fours"):
        cuda.source(ARITH, 8, points=2, registers="smem4")
    with pytest.raises(ValueError, match="CUDA GPUs"):
        Evaluator(n_registers=4, backend="cuda")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here")
def test_source_compiles(tmp_path):
    lib = cuda.build(cuda.source(ARITH, 4), "sm_90", out_dir=tmp_path)
    assert lib.is_file() and lib.stat().st_size > 0
    full = cuda.build(cuda.source(tuple(range(len(OPS))), 3, points=2, threads=64,
                                  registers="smem"),
                      "sm_90", out_dir=tmp_path)  # smem: every op, another layout
    assert full.is_file() and full != lib
    asm = cuda.build(cuda.source(ARITH, 4, registers="asm"), "sm_90", out_dir=tmp_path)
    assert asm.is_file() and asm != lib
    asm3 = cuda.build(cuda.source(ARITH, 4, registers="asm3"), "sm_90", out_dir=tmp_path)
    assert asm3.is_file() and asm3 not in (lib, asm)
    for ops in (ARITH, tuple(range(len(OPS)))):  # the PTX cases, and C++ for the others
        acc = cuda.build(cuda.source(ops, 8, registers="acc"), "sm_90", out_dir=tmp_path)
        assert acc.is_file() and acc not in (lib, asm, asm3)
    assert cuda.build(cuda.source(ARITH, 4), "sm_90", out_dir=tmp_path) == lib  # cached
