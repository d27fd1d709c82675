"""Tests for the DEAP bridge: compiled programs compute what DEAP computes."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from deap import gp

from evolve.eval.evaluator import run_numpy
from evolve.ops import CONST, OPCODE, OPS
from evolve.program import validate
from evolve.search.trees import (
    primitive_set,
    private_random,
    random_trees,
    registers_needed,
    tree_to_program,
)

EXACT = ["add", "sub", "mul", "div", "neg"]
SMOOTH = ["add", "sub", "mul", "div", "sin", "cos", "exp", "log"]


def _points(n_inputs: int, n: int = 64, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).uniform(-3, 3, (n, n_inputs)).astype(np.float32)
    x[0] = 0.0  # exercise division by zero, log(0)
    return x


def compile_tree(tree, pset):
    """The tree as a function of its inputs by DEAP's own ``gp.compile``, warnings
    silenced (IEEE infinities and NaNs, as in our programs): the reference."""
    fn = gp.compile(tree, pset)

    def run(*inputs: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return fn(*inputs)

    return run


def _deap_values(tree, pset, x: np.ndarray) -> np.ndarray:
    out = compile_tree(tree, pset)(*x.T)
    return np.broadcast_to(np.asarray(out, np.float32), (x.shape[0],))


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    # NaNs compare by being NaN: numpy does not promise one NaN payload
    both_nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(both_nan | (a.view(np.uint32) == b.view(np.uint32))))


@pytest.mark.parametrize("n_inputs", [1, 2])
def test_bit_exact_against_deap(n_inputs):
    pset = primitive_set(EXACT, n_inputs)
    trees = random_trees(random.Random(1), pset, 200, 0, 5)
    x = _points(n_inputs)
    for tree in trees:
        program = tree_to_program(tree, n_inputs, 12)
        validate(program, 12)
        assert len(program) == sum(not str(n.name).startswith("ARG") for n in tree)
        ours = run_numpy(program, x, 12)
        assert ours.dtype == np.float32
        assert _same_bits(ours, _deap_values(tree, pset, x)), str(tree)


def test_transcendental_ops_agree_with_deap():
    pset = primitive_set(SMOOTH, 1)
    x = _points(1)
    for tree in random_trees(random.Random(2), pset, 100, 1, 4):
        ours = run_numpy(tree_to_program(tree, 1, 10), x, 10)
        np.testing.assert_allclose(ours, _deap_values(tree, pset, x), rtol=1e-5, atol=1e-6,
                                   err_msg=str(tree))


def test_argument_order_and_literals():
    pset = primitive_set(["sub", "div"], 2)
    tree = gp.PrimitiveTree.from_string("div(sub(ARG1, ARG0), sub(0.25, ARG1))", pset)
    program = tree_to_program(tree, 2, 4)
    x = _points(2)
    assert _same_bits(run_numpy(program, x, 4), _deap_values(tree, pset, x))
    consts = [ins for ins in program.instructions if ins.op == CONST]
    assert [c.value for c in consts] == [0.25]


def test_literals_are_float32_values():
    pset = primitive_set(["add"], 1, literal_range=(-2.0, 2.0))
    for tree in random_trees(random.Random(3), pset, 50, 1, 3):
        for node in tree:
            if isinstance(node, gp.Terminal) and not isinstance(node.value, str):
                assert -2.0 <= node.value <= 2.0
                assert float(np.float32(node.value)) == node.value


def test_bare_input_and_bare_literal():
    pset = primitive_set(["add"], 2)
    x = _points(2)
    program = tree_to_program(gp.PrimitiveTree.from_string("ARG1", pset), 2, 2)
    assert len(program) == 0 and program.output == 1
    np.testing.assert_array_equal(run_numpy(program, x, 2), x[:, 1])
    program = tree_to_program(gp.PrimitiveTree.from_string("1.5", pset), 2, 3)
    assert [ins.op for ins in program.instructions] == [CONST]
    np.testing.assert_array_equal(run_numpy(program, x, 3), np.full(64, 1.5, np.float32))


def _full_tree(pset, height: int) -> gp.PrimitiveTree:
    def expr(h):
        return "0.5" if h == 0 else f"add({expr(h - 1)}, {expr(h - 1)})"

    return gp.PrimitiveTree.from_string(expr(height), pset)


def test_registers_grow_with_log_of_size():
    pset = primitive_set(["add"], 1)
    for height in range(6):
        tree = _full_tree(pset, height)  # 2^height literals: the worst case for its size
        assert registers_needed(tree, 1) == 1 + height + 1
        program = tree_to_program(tree, 1, 1 + height + 1)
        validate(program, 1 + height + 1)
        assert max(ins.dst for ins in program.instructions) == height + 1
        value = run_numpy(program, _points(1), height + 2)
        assert np.all(value == np.float32(0.5 * 2**height))


def test_register_limit_error():
    pset = primitive_set(["add"], 1)
    tree = _full_tree(pset, 3)
    with pytest.raises(ValueError, match=r"needs 5 registers .*n_registers=4.*raise n_registers"):
        tree_to_program(tree, 1, 4)


def test_random_trees_fit_their_register_estimate():
    pset = primitive_set(SMOOTH, 1)
    for tree in random_trees(random.Random(4), pset, 100, 2, 6):
        need = registers_needed(tree, 1)
        assert need <= 1 + math.floor(math.log2(len(tree))) + 1
        program = tree_to_program(tree, 1, need)
        validate(program, need)
        if need > 1:  # a bare input needs no register past its own
            with pytest.raises(ValueError, match="registers"):
                tree_to_program(tree, 1, need - 1)


def test_rejects_foreign_primitives_and_terminals():
    pset = gp.PrimitiveSet("MAIN", 1)
    pset.addPrimitive(np.hypot, 2, name="hypot")
    tree = gp.PrimitiveTree.from_string("hypot(ARG0, ARG0)", pset)
    with pytest.raises(ValueError, match="not an op of ours"):
        tree_to_program(tree, 1, 4)
    ours = primitive_set(["add"], 2)
    tree = gp.PrimitiveTree.from_string("add(ARG0, ARG1)", ours)
    with pytest.raises(ValueError, match="not an input ARG0..ARG0"):
        tree_to_program(tree, 1, 4)


def test_primitive_set_validates_ops():
    with pytest.raises(KeyError, match="known ops"):
        primitive_set(["add", "pow"])
    with pytest.raises(ValueError, match="literal"):
        primitive_set(["const"])
    pset = primitive_set(["add", "fma", "neg"], 3, literal_range=None)
    assert {p.name: p.arity for p in pset.primitives[pset.ret]} == {"add": 2, "fma": 3, "neg": 1}
    assert all(t.name.startswith("ARG") for t in pset.terminals[pset.ret])


def test_fma_primitive_matches_program():
    pset = primitive_set(["fma", "mul"], 2)
    x = _points(2)
    for tree in random_trees(random.Random(5), pset, 50, 1, 3):
        program = tree_to_program(tree, 2, 8)
        assert _same_bits(run_numpy(program, x, 8), _deap_values(tree, pset, x))


@pytest.mark.parametrize("name", sorted(op.name for op in OPS if op.ufunc is not None))
def test_ufunc_primitives_match_ops_table(name):
    op = OPS[OPCODE[name]]
    args = [np.random.default_rng(i).uniform(-4, 4, 256).astype(np.float32)
            for i in range(op.arity)]
    args[0][:4] = [0.0, -0.0, np.inf, np.nan]
    with np.errstate(all="ignore"):
        ours = np.asarray(op.ufunc(*args, dtype=np.float32))
    assert ours.dtype == np.float32
    assert _same_bits(ours, np.asarray(op.np_fn(*args), np.float32))


def test_private_rng_is_deterministic_and_global_state_untouched():
    pset = primitive_set(SMOOTH, 1)
    random.seed(123)
    before = random.getstate()
    a = random_trees(random.Random(7), pset, 30, 1, 5)
    assert random.getstate() == before
    b = random_trees(random.Random(7), pset, 30, 1, 5)
    assert [str(t) for t in a] == [str(t) for t in b]
    rng = random.Random(7)
    first = random_trees(rng, pset, 15, 1, 5)
    second = random_trees(rng, pset, 15, 1, 5)  # continues the stream: the rng advanced
    assert [str(t) for t in first + second] == [str(t) for t in a]
    assert random.getstate() == before
    assert random.random() == random.Random(123).random()


def test_private_random_restores_global_state_on_error():
    random.seed(5)
    before = random.getstate()
    rng = random.Random(9)
    with pytest.raises(RuntimeError):
        with private_random(rng):
            random.random()
            raise RuntimeError("boom")
    assert random.getstate() == before
    expected = random.Random(9)
    expected.random()  # the draw made inside the block
    assert rng.random() == expected.random()


# -- text, literals, variation, sympy (the tree representation's building blocks) --------
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from evolve.program import Program  # noqa: E402
from evolve.search.trees import (  # noqa: E402
    TREE_MUTATIONS,
    TreeParseError,
    crossover,
    literal_node,
    mutate,
    parse_tree,
    program_nodes,
    set_literals,
    tree_text,
    within_limits,
)
from strategies import f32_literals  # noqa: E402

SR = ["add", "sub", "mul", "div", "sin", "cos", "exp", "log", "sqrt"]


@given(st.integers(0, 2**32 - 1))
def test_text_round_trips(seed):
    pset = primitive_set(SR, 3)
    (tree,) = random_trees(random.Random(seed), pset, 1, 0, 5)
    text = tree_text(tree)
    assert text == str(tree)  # DEAP's own spelling, read back without eval
    again = parse_tree(text, pset)
    assert tree_text(again) == text
    assert tree_to_program(again, 3, 20) == tree_to_program(tree, 3, 20)


@given(f32_literals())
def test_literals_round_trip_bit_exactly(value):
    pset = primitive_set(["add"], 1)
    tree = parse_tree(tree_text(gp.PrimitiveTree([pset.mapping["add"], pset.mapping["ARG0"],
                                                 literal_node(pset, value)])), pset)
    assert np.float32(tree[2].value).view(np.uint32) == np.float32(value).view(np.uint32)
    assert isinstance(tree[2], pset.mapping["literal"])  # an ephemeral: mutEphemeral sees it


@pytest.mark.parametrize("text, message", [
    ("add(ARG0, foo)", r"column 11: unknown 'foo'"),
    ("add(ARG0 ARG0)", r"column 10: expected ','"),
    ("add(ARG0, ARG0))", r"column 16: unexpected '\)'"),
    ("add(ARG0,", r"expected an op, an input or a number, got the end"),
    ("sin ARG0", r"expected '\(' after sin"),
    ("1e39", r"not a finite float32"),
    ("__import__('os')", r"column 12: unexpected \"'\""),
    ("exec(ARG0)", r"column 1: unknown 'exec'"),
])
def test_parse_errors_name_the_column(text, message):
    with pytest.raises(TreeParseError, match=message):
        parse_tree(text, primitive_set(SR, 1))


def test_set_literals_writes_fitted_values_back():
    pset = primitive_set(SR, 2)
    x = _points(2)
    for tree in random_trees(random.Random(11), pset, 100, 1, 5):
        program = tree_to_program(tree, 2, 20)
        nodes = program_nodes(tree, 2)
        assert len(nodes) == len(program)
        assert all((ins.op == CONST) == (not isinstance(tree[n], gp.Primitive))
                   for ins, n in zip(program.instructions, nodes))
        body = tuple(type(ins)(ins.op, ins.dst, ins.args, ins.value * 3 + 1)
                     if ins.op == CONST else ins for ins in program.instructions)
        fitted = set_literals(tree, Program(body, program.output), pset, 2)
        assert tree_to_program(fitted, 2, 20) == Program(body, program.output)
        assert _same_bits(run_numpy(tree_to_program(fitted, 2, 20), x, 20),
                          run_numpy(Program(body, program.output), x, 20))


@pytest.mark.parametrize("kind", TREE_MUTATIONS)
def test_mutations_are_valid_and_leave_parents_alone(kind):
    pset = primitive_set(SR, 2)
    rng = random.Random(3)
    parents = random_trees(random.Random(4), pset, 40, 1, 4)
    texts = [tree_text(t) for t in parents]
    changed = 0
    for tree in parents:
        child = mutate(rng, tree, pset, kind)
        validate(tree_to_program(child, 2, 40), 40)
        changed += tree_text(child) != tree_text(tree)
    assert [tree_text(t) for t in parents] == texts
    assert changed > 10


def test_crossover_and_limits():
    pset = primitive_set(SR, 1)
    rng = random.Random(5)
    trees = random_trees(random.Random(6), pset, 30, 2, 5)
    for a, b in zip(trees, trees[1:]):
        before = tree_text(a), tree_text(b)
        child = crossover(rng, a, b)
        assert (tree_text(a), tree_text(b)) == before
        validate(tree_to_program(child, 1, 40), 40)
    big = _full_tree(pset, 4)  # 31 nodes, height 4, needs 6 registers
    assert within_limits(big, 1, 31, 4, 6)
    assert not within_limits(big, 1, 30, 4, 6)
    assert not within_limits(big, 1, 31, 3, 6)
    assert not within_limits(big, 1, 31, 4, 5)


def test_variation_draws_only_from_the_private_stream():
    pset = primitive_set(SR, 1)
    trees = random_trees(random.Random(7), pset, 10, 1, 4)
    random.seed(99)
    before = random.getstate()

    def run(seed):
        rng = random.Random(seed)
        out = [tree_text(crossover(rng, a, b)) for a, b in zip(trees, trees[1:])]
        out += [tree_text(mutate(rng, t, pset, k)) for t in trees for k in TREE_MUTATIONS]
        return out, rng.getstate()

    assert run(1) == run(1)
    assert run(1)[0] != run(2)[0]
    assert random.getstate() == before


def test_variation_draws_as_under_private_random():
    """crossover, mutate and random_trees redirect DEAP's gp module to the private
    stream (no state copies): the same trees as drawing from the global module holding
    that stream (private_random), the same stream state after, global state untouched."""
    from evolve.search import trees

    pset = primitive_set(SMOOTH, 2)

    def run(fast: bool):
        rng = random.Random(11)
        if fast:
            population = random_trees(rng, pset, 20, 1, 4)
        else:
            with private_random(rng):
                population = [gp.PrimitiveTree(gp.genHalfAndHalf(pset, 1, 4))
                              for _ in range(20)]
        out = []
        for k in range(200):
            a, b = population[k % 20], population[(3 * k + 1) % 20]
            kind = trees.TREE_MUTATIONS[k % len(trees.TREE_MUTATIONS)]
            if fast:
                child = (trees.crossover(rng, a, b) if k % 3 == 0
                         else trees.mutate(rng, a, pset, kind))
            else:
                with private_random(rng):
                    c = gp.PrimitiveTree(list(a))
                    if k % 3 == 0:
                        child = gp.cxOnePoint(c, gp.PrimitiveTree(list(b)))[0]
                    elif kind == "uniform":
                        child = gp.mutUniform(c, lambda pset, type_: gp.genFull(pset, 0, 2),
                                              pset)[0]
                    elif kind == "node_replacement":
                        child = gp.mutNodeReplacement(c, pset)[0]
                    elif kind == "shrink":
                        child = gp.mutShrink(c)[0]
                    elif kind == "ephemeral":
                        child = gp.mutEphemeral(c, "one")[0]
                    else:
                        child = gp.mutInsert(c, pset)[0]
            population[k % 20] = child
            out.append(str(child))
        return out, rng.getstate()

    random.seed(4)
    before = random.getstate()
    fast = run(True)
    assert random.getstate() == before
    assert fast == run(False)
    assert gp.random is random
