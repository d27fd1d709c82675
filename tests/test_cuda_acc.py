"""The accumulator plan of the CUDA kernel (evolve.cuda_acc): computed in JAX, so it is
checked here on the CPU; the kernel that follows it runs only on CUDA GPUs
(scripts/check_gpu.py --stages cuda checks it there against the Pallas kernel)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve import cuda, cuda_acc
from evolve.ops import CONST, OPCODE, OPS
from evolve.program import Instruction, Program, to_arrays
from tests.strategies import programs

ARITH = tuple(sorted(OPCODE[n] for n in ("add", "sub", "mul", "div", "fma")))
RUNS = (True,) * len(OPS)
S, A, Z = cuda_acc.SMEM, cuda_acc.ACC, cuda_acc.ZERO


def plan(progs, L=None, size=None, n_inputs=1, runs=RUNS):
    b = to_arrays(progs, length=L, size=size)
    variants, init = cuda_acc.plan(b.op, b.args, b.dst, b.length, b.output, runs, n_inputs)
    return b, np.asarray(variants), np.asarray(init)


def simulate(op, args, dst, length, output, variants, init, n_registers, n_inputs):
    """Check a plan symbolically (numpy, one program a row): every read finds the current
    value of its register where the plan says it is. Returns, per program, the place the
    output is read from ("acc" or "smem") or raises AssertionError naming the first read
    that would see a stale value. Registers hold version numbers; a tile starts with the
    registers of ``init`` set (version 0) and the others unset (None); version 0 of a
    register past the inputs is zero."""
    places = []
    for p in range(len(length)):
        current = [0] * n_registers  # the version each register holds now
        smem = [0 if (int(init[p]) >> r) & 1 else None for r in range(n_registers)]
        acc = None  # (register, version)
        for i in range(int(length[p])):
            o, v, d = int(op[p, i]), int(variants[p, i]), int(dst[p, i])
            for j, src in enumerate(cuda_acc.sources(v, OPS[o].arity)):
                r = int(args[p, i, j])
                seen = {S: (r, smem[r]), A: acc, Z: (r, 0)}[src]
                assert seen == (r, current[r]), (p, i, j, r, seen, current[r])
                assert src != Z or r >= n_inputs, (p, i, j, "an input read as zero")
            current[d] += 1
            acc = (d, current[d])
            if v & cuda_acc.STORE:
                smem[d] = current[d]
        r = int(output[p])
        if np.uint32(np.int32(init[p])) & np.uint32(cuda_acc.OUT_FROM_ACC):
            assert acc == (r, current[r]), (p, "output", acc, current[r])
            places.append("acc")
        else:
            assert smem[r] == current[r], (p, "output", smem[r], current[r])
            places.append("smem")
    return places


def ins(name, dst, *args, value=0.0):
    return Instruction(OPCODE[name], dst, tuple(args), value)


def variant(*sources, store=False):
    return int(store) + 2 * sum(s * 3 ** j for j, s in enumerate(sources))


@settings(max_examples=150, deadline=None)
@given(st.lists(programs(n_registers=5, max_length=14), min_size=1, max_size=6),
       st.integers(1, 3))
def test_every_read_finds_the_current_value(progs, n_inputs):
    b, variants, init = plan(progs, L=16, size=6, n_inputs=n_inputs)
    places = simulate(b.op, b.args, b.dst, b.length, b.output, variants, init, 5,
                               n_inputs)
    for p, prog in enumerate(progs):
        last = prog.instructions[-1] if prog.instructions else None
        assert places[p] == ("acc" if last and last.dst == prog.output else "smem")


def test_variants_number_the_sources_densely():
    seen = {tuple(cuda_acc.sources(v, 3)) + (v & 1,) for v in range(2 * 27)}
    assert len(seen) == 54 and cuda_acc.sources(variant(A, Z, S), 3) == [A, Z, S]


def test_a_chain_stores_nothing_and_reads_the_accumulator():
    # r1 = x + x; r2 = r1 * r1; r3 = fma(r2, r0, r2); return r3: each result is read
    # only by the next instruction, so nothing is stored and only r0 is set at the start
    prog = Program((ins("add", 1, 0, 0), ins("mul", 2, 1, 1), ins("fma", 3, 2, 0, 2)), 3)
    _, variants, init = plan([prog])
    assert variants[0, :3].tolist() == [variant(S, S), variant(A, A), variant(A, S, A)]
    assert np.uint32(init[0]) == (1 | cuda_acc.OUT_FROM_ACC)


def test_results_read_later_are_stored_and_unread_registers_not_set():
    # r1 = 2.5; r2 = x - r1; r4 = r1 / r2; return r4: r1 is read two instructions on (so
    # stored), r2 by the next (accumulator); r3 and the output's old value are never read
    prog = Program((ins("const", 1, value=2.5), ins("sub", 2, 0, 1), ins("div", 4, 1, 2)), 4)
    _, variants, init = plan([prog])
    assert variants[0, :3].tolist() == [variant(store=True), variant(S, A), variant(S, A)]
    assert np.uint32(init[0]) == (1 | cuda_acc.OUT_FROM_ACC)


def test_registers_never_written_are_read_as_zero():
    # r1 = r5 * x; r2 = r1 - r6; r5 = r2 + r2; r3 = r5 * r5; return r3: r5 and r6 hold
    # their zeros where the first two read them, so only x is set at the start
    prog = Program((ins("mul", 1, 5, 0), ins("sub", 2, 1, 6), ins("add", 5, 2, 2),
                    ins("mul", 3, 5, 5)), 3)
    _, variants, init = plan([prog])
    assert variants[0, :4].tolist() == [variant(Z, S), variant(A, Z), variant(A, A),
                                        variant(A, A)]
    assert np.uint32(init[0]) == (1 | cuda_acc.OUT_FROM_ACC)
    # with two inputs r1 is x's partner, not zero: "r2 = r1 - r6" then reads it
    _, variants, init = plan([Program((ins("sub", 2, 1, 6),), 2)], n_inputs=2)
    assert variants[0, 0] == variant(S, Z) and np.uint32(init[0]) == (2 | cuda_acc.OUT_FROM_ACC)


def test_empty_and_padded_programs_read_the_output_register():
    progs = [Program((), 3), Program((ins("add", 1, 0, 0),), 0)]
    b, variants, init = plan(progs, L=4)
    assert np.all(variants[:, 1:] == 0)  # padding
    assert init.tolist() == [1 << 3, 1]  # r3 set (zero), x kept: the output is r0
    assert simulate(b.op, b.args, b.dst, b.length, b.output, variants, init,
                             4, 1) == ["smem", "smem"]
    _, variants, init = plan([Program((), 3)], L=0)  # a batch with no columns at all
    assert variants.shape == (1, 0) and init.tolist() == [1 << 3]


def test_ops_outside_the_set_leave_the_accumulator_alone():
    # sub is not run: r2 keeps its zero and the add reads r1 from shared memory, so the
    # first add's result is stored
    prog = Program((ins("add", 1, 0, 0), ins("sub", 2, 1, 1), ins("add", 3, 1, 2)), 3)
    runs = tuple(o != OPCODE["sub"] for o in range(len(OPS)))
    _, variants, init = plan([prog], runs=runs)
    assert variants[0, :3].tolist() == [variant(S, S, store=True), 0, variant(S, Z)]
    assert np.uint32(init[0]) == (1 | cuda_acc.OUT_FROM_ACC)


def test_layout_gives_each_op_its_variants():
    base, nop, stop = cuda_acc.layout(list(ARITH))
    # the literal 2 variants, add/sub/mul/div 18 each, fma 54
    assert nop == 2 + 4 * 18 + 54 and stop == nop + 1
    assert sorted(b for b in base if b >= 0) == [0, 2, 20, 38, 56, 74]
    assert base[OPCODE["sin"]] == -1 and base[CONST] == 0


def test_acc_source_jumps_to_a_case_for_each_variant():
    src = cuda.source(ARITH, 8, points=8, threads=128, registers="acc")
    _, nop, stop = cuda_acc.layout(list(ARITH))
    # two instructions a turn (words w and v), each with its copy of the jump table
    assert f"L{stop - 1}:" in src and f"L{stop}:" not in src and src.count("brx.idx") == 2
    assert f"if (w.w == {stop}) goto done;" in src and f"if (v.w == {stop}) goto done;" in src
    assert '"r"(q + 16)' in src and "q += 32" in src
    # half the variants store, 8 points a thread in two 16-byte accesses 2,048 bytes apart
    assert src.count("st.shared.v4.f32") == 2 * (nop // 2 * 2) and "[x_d+2048]" in src
    assert src.count("add.rn.f32") == 2 * 18 * 8 and src.count("div.rn.f32") == 2 * 18 * 8
    assert "mov.f32 x_z, 0f00000000;" in src  # a register never written: zero
    assert "shr.u32 x_c" in src and "and.b32 x_b" in src  # fma's b and c share a word
    assert "pend" not in src  # every op of the set has a PTX spelling


def test_acc_runs_ops_without_ptx_in_cpp():
    ops = tuple(sorted(OPCODE[n] for n in ("add", "min", "sin")))
    src = cuda.source(ops, 8, registers="acc")
    assert "if (pend) {" in src and "ev_min(a, b)" in src and "sinf(a)" in src
    base, _, _ = cuda_acc.layout(list(ops))
    # min's variant 1 (store) hands C++ its op and the store bit
    assert f"mov.u32 %{3 * 4}, {(OPCODE['min'] + 1) << 1 | 1};" in src


def test_the_default_falls_back_to_smaller_blocks_then_smem():
    assert cuda.REGISTERS == "acc" and cuda.acc_fits(8, 128, 4)
    assert not cuda.acc_fits(40, 128, 4)  # past the 31 bits of init
    assert not cuda.acc_fits(16, 256, 4)  # c's byte offset past 16 bits
    assert not cuda.acc_fits(8, 128, 2)  # points in fours
    assert cuda.fitted(8, 4, 256, "acc") == ("acc", 256)
    assert cuda.fitted(16, 4, 256, "acc") == ("acc", 128)  # 16 x 128 x 16 bytes fit
    assert cuda.fitted(31, 4, 256, "acc") == ("acc", 128)
    assert cuda.fitted(40, 4, 256, "acc") == ("smem", 128)
    assert cuda.fitted(40, 4, 256, "smem") == ("smem", 256)  # other modes as asked


def test_fold_computes_constant_instructions_once_a_block_with_the_ops_own_code():
    src = cuda.source(ARITH, 8, registers="acc", fold=True)
    fold = src.split("constant folding (cuda_acc.fold)")[1].split("__syncthreads();")[0]
    for name, spelling in (("add", "__fadd_rn(a, b)"), ("div", "ev_div(a, b)"),
                           ("fma", "__fmaf_rn(a, b, c)")):
        assert f"case {OPCODE[name]}: {{" in fold and spelling in fold
    # the folded word is the literal's case with the instruction's store bit
    assert f"{cuda_acc.layout(list(ARITH))[0][CONST]} + (plan[g] & {cuda_acc.STORE})" in fold
    assert "constant folding" not in cuda.source(ARITH, 8, registers="acc")
    assert cuda.FOLD is False  # not yet run on a GPU
    with pytest.raises(ValueError, match="folding"):
        cuda.source(ARITH, 8, registers="smem", fold=True)


def test_acc_refuses_register_files_it_cannot_address():
    with pytest.raises(ValueError, match="registers"):
        cuda.source(ARITH, 40, registers="acc")
    with pytest.raises(ValueError, match="points"):
        cuda.source(ARITH, 8, points=2, registers="acc")
