"""Representations (evolve/search/representation.py): trees through the engine, the checkpoint
and an exact resume; linear programs as before."""

import random

import numpy as np
import pytest

import tiny
from evolve.catalog import load_problem
from evolve.errors import UserError
from evolve.runs import driver as runs
from evolve.runs.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from evolve.runs.config import build_config

SETS = ["search.population=16", "search.children=16", "search.representation=tree",
        "search.fit_iterations=3", "search.mating=ideal", "search.tree.max_size=15",
        "search.tree.max_height=6", "checkpoint_every=3", "keep_checkpoints=3"]
PROBLEM = "nguyen-9"


def _config(generations):
    return build_config(sets=SETS, overrides={"problem": PROBLEM, "generations": generations})


@pytest.fixture(scope="module")
def engine():
    # the engine the run tests below use too: compiled once
    return runs.engine_for(_config(6), load_problem(PROBLEM))


def _run(engine, seed, generations):
    state = engine.init(seed)
    for _ in range(generations):
        state = engine.step(state).state
    return state


def test_trees_are_the_genomes_of_the_programs(engine):
    state = _run(engine, 0, 4)
    rep = engine.representation
    assert len(state.genomes) == len(state.programs) == len(state.error)
    for text, program, cost in zip(state.genomes, state.programs, state.cost):
        tree = rep.tree(text)
        assert rep.compile(tree) == program  # fitted literals were written back
        assert len(tree) <= 15 and tree.height <= 6
        assert cost == len(tree)  # size: the node count
    assert isinstance(state.tree_random, random.Random)


def test_a_seeded_tree_run_is_deterministic(engine):
    random.seed(1)
    before = random.getstate()
    a, b, c = _run(engine, 5, 3), _run(engine, 5, 3), _run(engine, 6, 3)
    assert a.genomes == b.genomes and a.programs == b.programs
    assert a.tree_random.getstate() == b.tree_random.getstate()
    assert c.genomes != a.genomes
    assert random.getstate() == before  # DEAP drew from the run's own stream only


def test_checkpoint_keeps_genomes_and_the_private_stream(engine, tmp_path):
    state = _run(engine, 2, 2)
    again, _ = load_checkpoint(save_checkpoint(tmp_path, state))
    assert again.genomes == state.genomes and again.programs == state.programs
    assert again.tree_random.getstate() == state.tree_random.getstate()
    a = engine.step(state).state
    b = engine.step(again).state
    assert a.genomes == b.genomes
    np.testing.assert_array_equal(a.error, b.error)


def test_tree_runs_resume_exactly(tmp_path):
    whole = runs.start(_config(6), tmp_path / "whole", quiet=True).run_dir
    part = runs.start(_config(3), tmp_path / "part", quiet=True).run_dir
    state, _ = load_checkpoint(list_checkpoints(part / "checkpoints")[-1][1])
    assert state.genomes and state.ideals is not None and state.tree_random is not None
    runs.resume(part, 6, quiet=True)
    tiny.assert_same_run(whole, part)


def test_bad_representation_is_a_user_error():
    with pytest.raises(UserError, match="search.representation.*'linear' or 'tree'"):
        build_config(sets=["search.representation=graph"], overrides={"problem": "exp2"})
    with pytest.raises(UserError, match="search.mating"):
        build_config(sets=["search.mating=sexy"], overrides={"problem": "exp2"})
    with pytest.raises(UserError, match="cannot take LLM edits"):
        build_config(sets=["search.representation=tree", "llm.rate=0.1"],
                     overrides={"problem": "nguyen-1"})
    # trees migrate between islands as their text (tests/test_islands_core.py)
    assert build_config(sets=["search.representation=tree", "islands.count=2"],
                        overrides={"problem": "nguyen-1"}).islands.migrants == 2


def test_a_tree_exports_to_sympy_latex_and_jax():
    import jax.numpy as jnp
    import sympy

    from evolve.eval.evaluator import run_numpy
    from evolve.results.export import export, to_latex, to_sympy
    from evolve.search.trees import parse_tree, primitive_set, tree_to_program

    problem = load_problem("nguyen-10")
    pset = primitive_set([o for o in problem.ops if o != "const"], 2)
    tree = parse_tree("mul(mul(sin(ARG0), 2.0), cos(add(ARG1, sub(ARG0, ARG0))))", pset)
    program = tree_to_program(tree, 2, problem.n_registers)
    x0, x1 = sympy.symbols("x0 x1", real=True)
    assert sympy.simplify(to_sympy(program, problem, simplify=True)
                          - 2 * sympy.sin(x0) * sympy.cos(x1)) == 0
    assert to_latex(program, problem, simplify=True) in (
        r"2.0 \sin{\left(x_{0} \right)} \cos{\left(x_{1} \right)}",
        r"2.0 \cos{\left(x_{1} \right)} \sin{\left(x_{0} \right)}")
    namespace: dict = {}
    exec(export(program, problem, "jax"), namespace)  # the exported module, as a user runs it
    x = np.random.default_rng(0).uniform(0, 1, (32, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(namespace["f"](jnp.asarray(x[:, 0]), jnp.asarray(x[:, 1]))),
                               run_numpy(program, x, problem.n_registers), rtol=1e-6)
