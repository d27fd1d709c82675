"""Variation on arrays (evolve.search.batch_variation): valid children by construction,
the same operators and distributions as evolve.search.variation, determinism, one
compile per shape."""

from __future__ import annotations

from collections import Counter

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.catalog import load_problem
from evolve.ops import CONST, OPS, opcodes
from evolve.program import ProgramBatch, bucket, from_arrays, to_arrays, used, validate
from evolve.search import batch_variation as bv
from evolve.search import variation
from evolve.search.variation import CROSSOVERS, MUTATIONS, Space, VariationParams
from strategies import programs

SMALL = Space(opcodes(("add", "mul", "fma", "neg", "div", "const")), n_registers=5,
              n_inputs=2, max_length=8, output=4)
P, C = 6, 200  # one compile for every test on SMALL (and one for exp2: P_BIG, C_BIG)
P_BIG, C_BIG = 200, 20_000


def _host(batch: ProgramBatch) -> ProgramBatch:
    return ProgramBatch(*(np.asarray(x) for x in batch))


def _check_children(children: ProgramBatch, parents: ProgramBatch, pairs: np.ndarray,
                    space: Space) -> list:
    """Every child valid, padded with zeros, returning its first parent's register."""
    children = _host(children)
    L = parents.op.shape[1]
    assert children.op.shape == (len(pairs), L)
    progs = from_arrays(children)
    for c, prog in enumerate(progs):
        validate(prog, space.n_registers, space.max_length, space.ops)
        n = int(children.length[c])
        assert 1 <= n <= space.max_length
        assert children.output[c] == parents.output[pairs[c, 0]]
        for field in (children.op, children.dst, children.const):
            assert not field[c, n:].any()
        assert not children.args[c, n:].any()
        for i in range(n):
            op = int(children.op[c, i])
            assert not children.args[c, i, OPS[op].arity:].any()
            if op != CONST:
                assert children.const[c, i] == 0
            else:
                assert np.isfinite(children.const[c, i])
    assert ((children.args >= 0) & (children.args < space.n_registers)).all()
    return progs


def _pairs(seed: int, n_parents: int, n_children: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_parents, (n_children, 2)).astype(np.int32)


population = st.lists(programs(n_registers=SMALL.n_registers, max_length=SMALL.max_length,
                               ops=SMALL.ops, min_length=1), min_size=P, max_size=P)


@settings(max_examples=25, deadline=None)
@given(population, st.integers(0, 2**31 - 1))
def test_children_are_valid(parents, seed):
    batch = to_arrays(parents, length=bucket(SMALL.max_length))
    pairs = _pairs(seed, P, C)
    children, ck, mk = bv.make_children(jax.random.key(seed), batch, pairs, SMALL)
    _check_children(children, batch, pairs, SMALL)
    ck, mk = np.asarray(ck), np.asarray(mk)
    assert ((ck >= -1) & (ck < len(CROSSOVERS))).all()
    assert ((mk >= -1) & (mk < len(MUTATIONS))).all()


@settings(max_examples=25, deadline=None)
@given(population, st.integers(0, 2**31 - 1))
def test_children_differ_from_their_parent_unless_none(parents, seed):
    params = VariationParams(crossover_rate=0.0)
    batch = to_arrays(parents, length=bucket(SMALL.max_length))
    pairs = _pairs(seed, P, C)
    children, ck, mk = bv.make_children(jax.random.key(seed), batch, pairs, SMALL, params)
    progs = _check_children(children, batch, pairs, SMALL)
    assert (np.asarray(ck) == -1).all()
    for prog, (a, _), kind in zip(progs, pairs, np.asarray(mk)):
        assert (prog != parents[a]) == (kind != -1)


def test_crossover_only_recombines_parents():
    """With crossover always on and a mutation that never applies (swap on one
    instruction), a child is a[:i] + b[j:k] + a[m:] of its parents."""
    space = SMALL
    params = VariationParams(crossover_rate=1.0, mutation_weights={"swap": 1.0})
    rng = np.random.default_rng(3)
    parents = [variation.random_program(rng, space, int(rng.integers(1, 7))) for _ in range(P)]
    batch = to_arrays(parents, length=8)
    pairs = _pairs(4, P, C)
    children, ck, mk = bv.make_children(jax.random.key(5), batch, pairs, space, params)
    progs = _check_children(children, batch, pairs, space)
    checked = 0
    for prog, (a, b), kind, mut in zip(progs, pairs, np.asarray(ck), np.asarray(mk)):
        assert kind >= 0
        if mut != -1:  # swapped after the crossover
            continue
        A, B = parents[a].instructions, parents[b].instructions
        cuts = {(A[:i] + B[j:k] + A[m:])[:space.max_length] or A[:1]
                for i in range(len(A) + 1) for m in range(i, len(A) + 1)
                for j in range(len(B) + 1) for k in range(j, len(B) + 1)}
        assert prog.instructions in cuts
        checked += 1
    assert checked > 20  # children the swap left alone (27 of 200 with these keys)


def test_insert_at_max_length_drops_a_dead_instruction():
    space = SMALL
    params = VariationParams(crossover_rate=0.0, mutation_weights={"insert": 1.0})
    rng = np.random.default_rng(7)
    parents = [variation.random_program(rng, space, 8) for _ in range(P)]
    batch = to_arrays(parents, length=8)
    pairs = _pairs(8, P, C)
    children, _, mk = bv.make_children(jax.random.key(9), batch, pairs, space, params)
    progs = _check_children(children, batch, pairs, space)
    for prog, (a, _), kind in zip(progs, pairs, np.asarray(mk)):
        has_dead = not all(used(parents[a]))
        assert kind == (MUTATIONS.index("insert") if has_dead else -1) or (
            has_dead and kind == -1)
        assert len(prog) == 8
        if kind != -1:  # the live instructions of the parent are all still there
            rest = list(prog.instructions)
            for ins, u in zip(parents[a].instructions, used(parents[a])):
                if u:
                    assert ins in rest
                    rest = rest[rest.index(ins) + 1:]


def test_insert_literal_loads_a_free_register_read_next():
    params = VariationParams(crossover_rate=0.0, mutation_weights={"insert_literal": 1.0})
    rng = np.random.default_rng(11)
    parents = [variation.random_program(rng, SMALL, int(rng.integers(1, 7)))
               for _ in range(P)]
    batch = to_arrays(parents, length=8)
    pairs = _pairs(12, P, C)
    children, _, mk = bv.make_children(jax.random.key(13), batch, pairs, SMALL, params)
    progs = _check_children(children, batch, pairs, SMALL)
    for prog, (a, _), kind in zip(progs, pairs, np.asarray(mk)):
        if kind == -1:
            continue
        parent = parents[a].instructions
        body = prog.instructions
        assert len(body) == len(parent) + 2
        i = next(i for i in range(len(parent) + 1)
                 if body[:i] == parent[:i] and body[i + 2:] == parent[i:])
        load, use = body[i], body[i + 1]
        assert load.op == CONST and use.op != CONST and load.dst in use.args
        assert load.dst in variation._free(parents[a], i, SMALL)
        defined = set(variation._defined(parents[a], i, SMALL).tolist()) | {load.dst}
        assert set(use.args) <= defined


def test_same_key_same_children_and_one_compile():
    space = Space.from_problem(load_problem("exp2"))
    rng = np.random.default_rng(0)
    L = bucket(space.max_length)

    def population():
        return to_arrays([variation.random_program(rng, space, int(rng.integers(1, 25)))
                          for _ in range(P_BIG)], length=L)

    batch, pairs = population(), _pairs(1, P_BIG, C_BIG)
    first = bv.make_children(jax.random.key(1), batch, pairs, space)
    traces = bv.TRACES["make_children"]
    again = bv.make_children(jax.random.key(1), batch, pairs, space)
    for x, y in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    other = bv.make_children(jax.random.key(2), population(), _pairs(2, P_BIG, C_BIG), space)
    assert not all(np.array_equal(np.asarray(x), np.asarray(y))
                   for x, y in zip(jax.tree.leaves(first), jax.tree.leaves(other)))
    rates = VariationParams(crossover_rate=0.5, const_sigma=0.3,
                            mutation_weights={"swap": 1.0, "delete": 2.0})
    bv.make_children(jax.random.key(3), batch, pairs, space, rates)
    assert bv.TRACES["make_children"] == traces  # no new trace, so no new compile


def test_kinds_text():
    assert bv.kinds_text(np.array([1, -1, -1, 0]), np.array([1, 7, -1, -1])) == [
        "two_point+rewire", "swap", "none", "one_point+none"]


def test_unknown_kind_and_short_padding_are_refused():
    batch = to_arrays([variation.random_program(np.random.default_rng(0), SMALL, 3)],
                      length=8)
    with pytest.raises(ValueError, match="unknown mutation"):
        bv.make_children(jax.random.key(0), batch, np.zeros((1, 2), np.int32), SMALL,
                         VariationParams(mutation_weights={"grow": 1.0}))
    small = to_arrays([variation.random_program(np.random.default_rng(0), SMALL, 3)],
                      length=4)
    with pytest.raises(ValueError, match="padded"):
        bv.make_children(jax.random.key(0), small, np.zeros((1, 2), np.int32), SMALL)


# ---------------------------------------------------------------------------------------
# distributions against variation.make_children


def _summary(progs: list, kinds: list[str], space: Space) -> dict:
    ops = np.array([[sum(ins.op == o for ins in p.instructions) for o in space.ops]
                    for p in progs], float)
    return {"kinds": Counter(kinds),
            "length": np.array([len(p) for p in progs], float),
            "ops": ops,
            "literal": np.array([any(i.op == CONST for i in p.instructions) for p in progs],
                                float)}


def _z(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample z statistic of the means of x and y."""
    se = np.sqrt(x.var() / len(x) + y.var() / len(y))
    return 0.0 if se == 0 else float((x.mean() - y.mean()) / se)


def _chi2_p(a: Counter, b: Counter, min_count: int = 10) -> float:
    """p-value of a two-sample chi-square test of two categorical samples (rare
    categories pooled)."""
    from scipy.stats import chi2_contingency

    keys = sorted(set(a) | set(b))
    table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]], float)
    rare = table.sum(0) < min_count
    if rare.any():
        table = np.concatenate([table[:, ~rare], table[:, rare].sum(1, keepdims=True)], 1)
    return float(chi2_contingency(table)[1])


@pytest.mark.slow
def test_distributions_match_variation():
    """20,000 children of one population both ways: kinds, lengths, ops and literals
    agree within a few standard errors (fixed seeds: deterministic)."""
    space = Space.from_problem(load_problem("exp2"))
    rng = np.random.default_rng(2024)
    # half at max_length (insert must drop dead code, insert_literal cannot apply)
    lengths = np.concatenate([rng.integers(1, space.max_length + 1, 150),
                              np.full(50, space.max_length)])
    pop = [variation.random_program(rng, space, int(n)) for n in lengths]
    pairs = rng.integers(0, len(pop), (C_BIG, 2)).astype(np.int32)
    ref_children, ref_kinds = variation.make_children(np.random.default_rng(1), pop, pairs,
                                                      space)
    batch = to_arrays(pop, length=bucket(space.max_length))
    children, ck, mk = bv.make_children(jax.random.key(1), batch, pairs, space)
    ours = _check_children(children, batch, pairs, space)
    ref = _summary(ref_children, ref_kinds, space)
    got = _summary(ours, bv.kinds_text(ck, mk), space)

    assert _chi2_p(ref["kinds"], got["kinds"]) > 1e-3
    cross = [Counter(k.split("+")[0] if "+" in k else "-" for k in c.elements())
             for c in (ref["kinds"], got["kinds"])]
    assert _chi2_p(*cross) > 1e-3
    muts = [Counter(k.split("+")[-1] for k in c.elements()) for c in (ref["kinds"], got["kinds"])]
    assert _chi2_p(*muts) > 1e-3
    assert abs(_z(ref["length"], got["length"])) < 4
    assert _chi2_p(Counter(ref["length"].tolist()), Counter(got["length"].tolist())) > 1e-3
    for j in range(len(space.ops)):
        assert abs(_z(ref["ops"][:, j], got["ops"][:, j])) < 4, OPS[space.ops[j]].name
    assert abs(_z(ref["literal"], got["literal"])) < 4


@pytest.mark.slow
def test_literal_changes_match_variation():
    """perturb_const and redraw_const: the distribution of the new literal against the
    old one (ULP distance classes, sign flips) agrees with variation's."""
    space = Space.from_problem(load_problem("exp2"))
    rng = np.random.default_rng(5)
    pop = [variation.random_program(rng, space, int(n)) for n in rng.integers(4, 20, P_BIG)]
    pop = [p for p in pop if any(i.op == CONST for i in p.instructions)]
    pairs = rng.integers(0, len(pop), (C_BIG // 2, 2)).astype(np.int32)
    results = []
    for kind in ("perturb_const", "redraw_const"):
        params = VariationParams(crossover_rate=0.0, mutation_weights={kind: 1.0})
        ref, _ = variation.make_children(np.random.default_rng(2), pop, pairs, space, params)
        batch = to_arrays(pop, length=bucket(space.max_length), size=P_BIG)
        got, _, _ = bv.make_children(jax.random.key(2), batch, np.tile(pairs, (2, 1)), space,
                                     params)  # the shapes of the other tests: one compile
        got = from_arrays(_host(got))[:len(pairs)]
        for children in (ref, got):
            classes = Counter()
            for child, (a, _) in zip(children, pairs):
                old = pop[a].instructions
                (i,) = [i for i, (x, y) in enumerate(zip(old, child.instructions)) if x != y]
                u, v = np.float32(old[i].value), np.float32(child.instructions[i].value)
                ulps = abs(int(np.array(u).view(np.int32)) - int(np.array(v).view(np.int32)))
                size = ("ulps", ulps) if ulps <= 16 else ("log2", int(np.log2(ulps)))
                classes[("flip" if np.sign(u) != np.sign(v) else "same", *size)] += 1
            results.append(classes)
        assert _chi2_p(results[-2], results[-1]) > 1e-3, kind
