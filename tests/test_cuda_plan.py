"""The plan of the CUDA kernel's "acc" mode (evolve.eval.cuda.plan): computed in JAX, so it is
checked here on the CPU, by running its words with a numpy model of the kernel against the
reference interpreter; the kernel itself runs only on CUDA GPUs (scripts/check_gpu.py
--stages cuda checks it there against the Pallas kernel)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.eval.cuda import plan as cuda_plan
from evolve.eval.evaluator import run_numpy
from evolve.ops import CONST, OPCODE, OPS
from evolve.program import Instruction, Program, input_dependent, to_arrays, used
from tests.strategies import programs

ARITH = tuple(sorted(OPCODE[n] for n in ("add", "sub", "mul", "div", "fma")))
EXACT = tuple(sorted(OPCODE[n] for n in ("add", "sub", "mul", "div", "fma", "neg", "min")))
S, A, K = cuda_plan.SMEM, cuda_plan.ACC, cuda_plan.KONST
STRIDE = 4096  # bytes a register: 256 threads x 4 points x 4 bytes


def plan(progs, L=None, size=None, n_inputs=1, opset=ARITH, fold=False):
    b = to_arrays(progs, length=L, size=size)
    words, init = cuda_plan.plan(b.op, b.args, b.dst, b.const, b.length, b.output, opset,
                                n_inputs, STRIDE, fold)
    return b, np.asarray(words), np.asarray(init).view(np.uint32)


def table(prog, L, n_inputs, n_registers, opset):
    """The fold kernel's row for one program (evolve.eval.cuda.acc.fold), in numpy."""
    t = np.zeros(3 * L + 1, np.float32)
    cv = np.zeros(n_registers, np.float32)
    konst = set(range(n_inputs, n_registers))
    for i, ins in enumerate(prog.instructions):
        if ins.op == CONST:
            cv[ins.dst] = ins.value
            konst.add(ins.dst)
            continue
        if ins.op not in opset:
            continue
        for j, r in enumerate(ins.args):
            if r in konst:
                t[3 * i + j] = cv[r]
        if all(r in konst for r in ins.args):
            cv[ins.dst] = OPS[ins.op].np_fn(*(cv[[r]] for r in ins.args))[0]
            konst.add(ins.dst)
        else:
            konst.discard(ins.dst)
    if prog.output in konst:
        t[3 * L] = cv[prog.output]
    return t


def emulate(words, init, t, output, x, n_registers, opset):
    """The kernel's loop over one program's words, in numpy, on points x [N, n_inputs]:
    raises AssertionError where it would read shared memory never written."""
    base, stop = cuda_plan.layout(list(opset))
    cases = {base[o] + v: (o, v) for o in opset + (CONST,) for v in range(2 * 3 ** OPS[o].arity)}
    smem = [None] * n_registers
    for r in range(n_registers):
        if (int(init) >> r) & 1:
            assert r < x.shape[1], ("a register past the inputs set at the start", r)
            smem[r] = x[:, r]
    acc = None
    for word in words:
        wx, wy, wz, case = (int(v) for v in word)
        if case == stop:
            break
        o, v = cases[case]
        if o == CONST:
            acc = np.full(len(x), np.int32(wx).view(np.float32))
        else:
            vals = []
            for j, src in enumerate(cuda_plan.sources(v, OPS[o].arity)):
                off = wx if j == 0 else (wy & 0xFFFF if j == 1 else wy >> 16)
                if src == S:
                    assert off % STRIDE == 0 and smem[off // STRIDE] is not None, (word, j)
                    vals.append(smem[off // STRIDE])
                elif src == A:
                    assert acc is not None
                    vals.append(acc)
                else:
                    vals.append(np.full(len(x), t[off // 4], np.float32))
            acc = np.asarray(OPS[o].np_fn(*vals), np.float32)
        if v & cuda_plan.STORE:
            smem[wz // STRIDE] = acc
    else:
        raise AssertionError("no stop word")
    if np.uint32(init) & np.uint32(cuda_plan.OUT_FROM_ACC):
        return acc
    if np.uint32(init) & np.uint32(cuda_plan.OUT_KONST):
        return np.full(len(x), t[-1], np.float32)
    assert smem[output] is not None, ("the output read where it was never stored", output)
    return smem[output]


def ins(name, dst, *args, value=0.0):
    return Instruction(OPCODE[name], dst, tuple(args), value)


def variant(*sources, store=False):
    return int(store) + 2 * sum(s * 3 ** j for j, s in enumerate(sources))


def cases(words, opset=ARITH):
    """The (op name, variant) of each word up to the stop."""
    base, stop = cuda_plan.layout(list(opset))
    out = []
    for w in words[:, 3]:
        if w == stop:
            return out
        o = max(o for o in range(len(OPS)) if 0 <= base[o] <= w)
        out.append((OPS[o].name, int(w) - base[o]))
    raise AssertionError("no stop word")


NAMES = ("add", "sub", "mul", "div", "fma", "neg", "min", "const")


def points(n_inputs, seed=0):
    rng = np.random.default_rng(seed)
    special = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e30, -1e-40, 3e38],
                       np.float32)
    x = rng.uniform(-3, 3, (40, n_inputs)).astype(np.float32)
    x[:10, 0] = special
    return x


def same(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))


def check(progs, n_inputs=1, opset=ARITH, fold=False, L=None, n_registers=5, size=None):
    """Plan, fold and emulate every program; compare with the reference interpreter run
    on the program without the ops outside ``opset`` (the kernel does not run them)."""
    b, words, init = plan(progs, L=L, size=size, n_inputs=n_inputs, opset=opset, fold=fold)
    x = points(n_inputs)
    for p, prog in enumerate(progs):
        t = table(prog, b.op.shape[1], n_inputs, n_registers, opset)
        got = emulate(words[p], init[p], t, prog.output, x, n_registers, opset)
        runs = Program(tuple(i for i in prog.instructions if i.op == CONST or i.op in opset),
                       prog.output)
        assert same(got, run_numpy(runs, x, n_registers)), (p, prog)
    return b, words, init


@settings(max_examples=150, deadline=None)
@given(st.lists(programs(n_registers=5, max_length=14, ops=NAMES), min_size=1, max_size=5),
       st.integers(1, 3), st.booleans(), st.booleans())
def test_the_words_compute_what_the_reference_interpreter_does(progs, n_inputs, fold, every):
    opset = EXACT if every else ARITH  # ARITH leaves neg and min out: they do nothing
    _, words, _ = check(progs, n_inputs, opset, fold, L=16, size=6)
    if fold and every:  # only what depends on an input and reaches the output runs
        for p, prog in enumerate(progs):
            kept = [d and u for d, u in zip(input_dependent(prog, n_inputs), used(prog))]
            assert len(cases(words[p], opset)) == sum(kept)


def test_variants_number_the_sources_densely():
    seen = {tuple(cuda_plan.sources(v, 3)) + (v & 1,) for v in range(2 * 27)}
    assert len(seen) == 54 and cuda_plan.sources(variant(A, K, S), 3) == [A, K, S]


def test_a_chain_stores_nothing_and_reads_the_accumulator():
    # r1 = x + x; r2 = r1 * r1; r3 = fma(r2, r0, r2); return r3: each result is read
    # only by the next instruction, so nothing is stored and only r0 is set at the start
    prog = Program((ins("add", 1, 0, 0), ins("mul", 2, 1, 1), ins("fma", 3, 2, 0, 2)), 3)
    for fold in (False, True):
        _, words, init = check([prog], fold=fold)
        assert cases(words[0]) == [("add", variant(S, S)), ("mul", variant(A, A)),
                                   ("fma", variant(A, S, A))]
        assert init[0] == 1 | cuda_plan.OUT_FROM_ACC
    # byte offsets: a's in x, b's and c's in the halves of y (in the register file, or
    # in the table: r6 is never written), the destination's in z
    prog = Program((ins("mul", 1, 0, 0), ins("add", 2, 0, 0), ins("sub", 3, 0, 0),
                    ins("fma", 4, 3, 1, 2), ins("fma", 5, 1, 4, 6)), 5)
    _, words, _ = check([prog], n_registers=8)
    assert cases(words[0])[3:] == [("fma", variant(A, S, S)), ("fma", variant(S, A, K))]
    assert words[0, 3, 1:3].tolist() == [STRIDE | 2 * STRIDE << 16, 4 * STRIDE]
    assert words[0, 4, :2].tolist() == [STRIDE, (3 * 4 + 2) * 4 << 16]


def test_results_read_later_are_stored_and_literals_folded_into_the_table():
    # r1 = 2.5; r2 = x - r1; r4 = r1 / r2; return r4: r1 is read two instructions on (so
    # stored), r2 by the next (accumulator); r3 and the output's old value are never read
    prog = Program((ins("const", 1, value=2.5), ins("sub", 2, 0, 1), ins("div", 4, 1, 2)), 4)
    _, words, init = check([prog])
    assert cases(words[0]) == [("const", variant(store=True)), ("sub", variant(S, A)),
                               ("div", variant(S, A))]
    assert words[0, 0, 0] == np.float32(2.5).view(np.int32)
    assert init[0] == 1 | cuda_plan.OUT_FROM_ACC
    # folded: the literal is no instruction; both reads of r1 find 2.5 in the table
    _, words, init = check([prog], fold=True)
    assert cases(words[0]) == [("sub", variant(S, K)), ("div", variant(K, A))]
    assert words[0, 0, 1] == (3 * 1 + 1) * 4 and words[0, 1, 0] == (3 * 2 + 0) * 4
    t = table(prog, 3, 1, 5, ARITH)
    assert t[3 * 1 + 1] == t[3 * 2 + 0] == 2.5


def test_registers_never_written_are_read_from_the_table_as_zero():
    # r1 = r5 * x; r2 = r1 - r6; r5 = r2 + r2; r3 = r5 * r5; return r3: r5 and r6 hold
    # their zeros where the first two read them, so only x is set at the start
    prog = Program((ins("mul", 1, 5, 0), ins("sub", 2, 1, 6), ins("add", 5, 2, 2),
                    ins("mul", 3, 5, 5)), 3)
    _, words, init = check([prog], n_registers=8)
    assert cases(words[0]) == [("mul", variant(K, S)), ("sub", variant(A, K)),
                               ("add", variant(A, A)), ("mul", variant(A, A))]
    assert init[0] == 1 | cuda_plan.OUT_FROM_ACC
    # with two inputs r1 is x's partner, not zero: "r2 = r1 - r6" then reads it
    _, words, init = check([Program((ins("sub", 2, 1, 6),), 2)], n_inputs=2, n_registers=8)
    assert cases(words[0]) == [("sub", variant(S, K))] and init[0] == 2 | cuda_plan.OUT_FROM_ACC


def test_folding_drops_constants_and_dead_code():
    # r1 = 3; r2 = r1 * r1 (9, a constant); r3 = x + r2; r4 = x * x (never read);
    # r5 = r3 / r2; return r5: two instructions run, reading 9 from the table
    prog = Program((ins("const", 1, value=3.0), ins("mul", 2, 1, 1), ins("add", 3, 0, 2),
                    ins("mul", 4, 0, 0), ins("div", 5, 3, 2)), 5)
    _, words, init = check([prog], n_registers=6, fold=True)
    assert cases(words[0]) == [("add", variant(S, K)), ("div", variant(A, K))]
    t = table(prog, 5, 1, 6, ARITH)
    assert t[3 * 2 + 1] == t[3 * 4 + 1] == 9.0 and init[0] == 1 | cuda_plan.OUT_FROM_ACC
    _, words, _ = check([prog], n_registers=6)  # without folding all five run
    assert len(cases(words[0])) == 5


def test_a_constant_output_is_the_tables_last_entry():
    prog = Program((ins("const", 1, value=2.0), ins("add", 2, 1, 1)), 2)
    _, words, init = check([prog], fold=True)
    assert cases(words[0]) == [] and init[0] == cuda_plan.OUT_KONST
    assert table(prog, 2, 1, 5, ARITH)[-1] == 4.0
    _, words, init = check([prog])
    assert cases(words[0]) == [("const", 0), ("add", variant(A, A))]
    assert init[0] == cuda_plan.OUT_FROM_ACC


def test_empty_and_padded_programs():
    progs = [Program((), 3), Program((ins("add", 1, 0, 0),), 0)]
    for fold in (False, True):
        b, words, init = check(progs, L=4, fold=fold)
        # r3 is never written: a constant (zero); the output r0 is x, set at the start
        assert init.tolist() == [cuda_plan.OUT_KONST, 1]
        assert cases(words[0]) == [] and len(cases(words[1])) == (0 if fold else 1)
    _, words, init = plan([Program((), 3)], L=0)  # a batch with no columns at all
    assert words.shape == (1, 1, 4) and cases(words[0]) == []
    assert init.tolist() == [cuda_plan.OUT_KONST]


def test_ops_outside_the_set_have_no_word():
    # sub is not run: r2 keeps its zero; the second add reads r1 from the accumulator
    prog = Program((ins("add", 1, 0, 0), ins("sub", 2, 1, 1), ins("add", 3, 1, 2)), 3)
    opset = tuple(o for o in ARITH if o != OPCODE["sub"])
    _, words, init = check([prog], opset=opset)
    assert cases(words[0], opset) == [("add", variant(S, S)), ("add", variant(A, K))]
    assert init[0] == 1 | cuda_plan.OUT_FROM_ACC


def test_layout_gives_each_op_its_variants():
    base, stop = cuda_plan.layout(list(ARITH))
    # the literal 2 variants, add/sub/mul/div 18 each, fma 54; the stop after them
    assert stop == 2 + 4 * 18 + 54
    assert sorted(b for b in base if b >= 0) == [0, 2, 20, 38, 56, 74]
    assert base[OPCODE["sin"]] == -1 and base[CONST] == 0
