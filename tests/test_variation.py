"""Every child of every variation operator is a valid program of its space."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.ops import OPCODE
from evolve.program import validate
from evolve.search.variation import (
    MUTATIONS,
    Space,
    VariationParams,
    crossover,
    make_children,
    mutate,
    random_program,
    rng_from_key,
)

SPACE = Space(ops=tuple(OPCODE[o] for o in ("add", "mul", "fma", "div", "sin", "const")),
              n_registers=6, n_inputs=2, max_length=10, output=2)


def check(program, space=SPACE):
    validate(program, space.n_registers, space.max_length, space.ops)
    assert program.output == space.output
    assert all(ins.dst >= space.n_inputs for ins in program.instructions)  # inputs read-only


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 10))
def test_mutations_give_valid_different_programs(seed, length):
    rng = np.random.default_rng(seed)
    parent = random_program(rng, SPACE, length)
    check(parent)
    for kind in MUTATIONS:
        params = VariationParams(mutation_weights={kind: 1.0, "rewire": 1e-9})
        child, applied = mutate(rng, parent, SPACE, params)
        check(child)
        assert child != parent or applied == "none"


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_crossover_children_are_valid(seed):
    rng = np.random.default_rng(seed)
    a = random_program(rng, SPACE, int(rng.integers(1, 11)))
    b = random_program(rng, SPACE, int(rng.integers(1, 11)))
    for _ in range(5):
        child, kind = crossover(rng, a, b, SPACE)
        check(child)
        assert kind in ("one_point", "two_point", "homologous")
        assert 1 <= len(child) <= SPACE.max_length


def test_mutation_at_limits_picks_an_applicable_kind():
    rng = np.random.default_rng(0)
    full = random_program(rng, SPACE, SPACE.max_length)
    child, kind = mutate(rng, full, SPACE, VariationParams(mutation_weights={"insert": 1.0,
                                                                              "delete": 1.0}))
    assert len(child) == SPACE.max_length - (kind == "delete")
    single = random_program(rng, SPACE, 1)
    child, kind = mutate(rng, single, SPACE, VariationParams(mutation_weights={"insert": 1.0,
                                                                                "delete": 1.0}))
    assert kind == "insert" and len(child) == 2


def test_variation_is_a_pure_function_of_the_key():
    def run():
        rng = rng_from_key(jax.random.fold_in(jax.random.key(7), 3))
        parents = [random_program(rng, SPACE, 5) for _ in range(6)]
        pairs = rng.integers(0, 6, (20, 2))
        return make_children(rng, parents, pairs, SPACE)

    assert run() == run()


def test_random_programs_write_the_output_and_read_written_registers():
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = random_program(rng, SPACE, int(rng.integers(1, 10)))
        assert p.instructions[-1].dst == SPACE.output
        written = set(range(SPACE.n_inputs))
        for ins in p.instructions:
            assert set(ins.args) <= written
            written.add(ins.dst)


def test_unknown_mutation_kind_is_named():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown mutation kind 'grow'"):
        mutate(rng, random_program(rng, SPACE, 3), SPACE,
               VariationParams(mutation_weights={"grow": 1.0}))
