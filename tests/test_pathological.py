"""Pathological programs: division by zero, overflow, NaN, huge literals, the longest
programs, every op at the edges of float32. Evaluating them never fails, their error is
the worst value (inf), and they never reach the front, however cheap they are."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import numpy as np
import pytest

from evolve.catalog import load_problem
from evolve.eval.evaluator import Evaluator
from evolve.ops import CONST, OPCODE, OPS
from evolve.program import Instruction, Program, to_arrays
from evolve.runs.files import front_rows
from evolve.search.engine import Engine, SearchParams
from evolve.search.selection import nsga2, pareto_ranks
from evolve.search.variation import rng_from_key

F32_MAX = float(np.finfo(np.float32).max)
EDGES = [0.0, -0.0, 1.0, -1.0, float(np.float32(1e-45)), float(np.finfo(np.float32).tiny),
         F32_MAX, -F32_MAX, 88.8, -104.0, 128.0, 1e30, float(np.float32(3.2e6))]
POINTS = np.array([*EDGES, np.inf, -np.inf, np.nan], np.float32)
R = 8


def ins(op: str, dst: int, *args: int, value: float = 0.0) -> Instruction:
    return Instruction(OPCODE[op], dst, tuple(args), value)


def _edge_programs() -> list[Program]:
    """Every op on every mix of edge operands: the input, a literal edge value, +Inf,
    NaN and -0, the last three made by the program itself (literals are finite)."""
    out = []
    sources = (0, 2, 3, 4, 5)  # x, literal, inf, nan, -0
    for value in EDGES:
        setup = (ins("const", 2, value=value), ins("const", 6, value=F32_MAX),
                 ins("add", 3, 6, 6), ins("sub", 4, 3, 3), ins("const", 5, value=-0.0))
        for code, op in enumerate(OPS):
            if code == CONST:
                continue
            for args in itertools.product(sources, repeat=op.arity):
                out.append(Program((*setup, Instruction(code, 1, args)), 1))
    return out


def test_every_op_at_the_edges_evaluates_and_non_finite_is_the_worst_error():
    programs = _edge_programs()
    problem = load_problem("exp2")
    ev = Evaluator(n_registers=R, n_inputs=1, dtype="float32")
    batch = to_arrays(programs, length=8)
    out = ev.outputs(batch, POINTS)
    assert out.shape == (len(programs), len(POINTS))
    stats = ev.errors(batch, POINTS, np.zeros(len(POINTS)), np.ones(len(POINTS)))
    error = problem.error_value(stats)
    broken = ~np.isfinite(out).all(axis=1)
    assert broken.any() and (~broken).any()
    assert np.all(error[broken] == np.inf)  # NaN and Inf outputs: the worst error
    assert np.all(np.isfinite(error[~broken]))
    for name in ("max_abs", "mse", "max_scaled"):
        assert not np.isnan(stats[name]).any()


@pytest.fixture(scope="module")
def engine():
    # Constant fitting off: it would refit the literals that make these programs fail.
    return Engine(load_problem("exp2"), SearchParams(population=16, children=16, n_train=512,
                                                     fit=False))


def _pathological(engine) -> list[Program]:
    """Programs (of exp2's ops and registers) that divide by zero, overflow, make NaN, hold
    the largest literals or are as long as the problem allows; some of them cost nothing."""
    n = engine.problem.max_length
    big = ins("const", 2, value=F32_MAX)
    return [
        Program((big, ins("mul", 1, 2, 2)), 1),  # inf, a constant: cost 0
        Program((ins("const", 1, value=0.0), ins("div", 1, 1, 1)), 1),  # nan, cost 0
        Program((big, ins("add", 2, 2, 2), ins("mul", 1, 0, 2)), 1),  # 0 * inf at x = 0
        Program((ins("div", 1, 0, 0),), 1),  # 0/0 at x = 0
        Program((ins("div", 1, 0, 3),), 1),  # x/0: r3 starts at zero
        Program((ins("const", 2, value=1e-45), ins("div", 1, 0, 2)), 1),  # x/subnormal
        Program((big, ins("const", 3, value=-F32_MAX), ins("fma", 1, 2, 2, 3)), 1),  # inf
        Program((big, *(ins("mul", 2, 2, 2) for _ in range(n - 2)), ins("sub", 1, 2, 2)), 1),
        Program((ins("const", 1, value=1e30),
                 *(ins("fma", 1, 1, 1, 0) for _ in range(n - 1))), 1),
    ]


def test_pathological_programs_get_the_worst_error_in_the_engine(engine):
    programs = _pathological(engine)
    assert max(len(p) for p in programs) == engine.problem.max_length
    state = engine.init(0)
    probe = engine.probe_points(state.key)
    rng = rng_from_key(state.key)
    programs, error, cost, fps, _ = engine.assess(state, programs, probe, rng)
    assert np.all(error == np.inf), error
    assert np.all(np.isfinite(cost)) and min(cost) == 0
    assert len(fps) == len(programs)  # fingerprinted (NaN and Inf outputs are tokens)


def _with(state, programs, error, cost, fps):
    from dataclasses import replace

    return replace(state, programs=state.programs + programs,
                   error=np.concatenate([state.error, error]),
                   cost=np.concatenate([state.cost, cost]),
                   fingerprints=state.fingerprints + fps)


def test_pathological_programs_never_reach_the_front_or_survive_selection(engine):
    state = engine.init(1)
    probe = engine.probe_points(state.key)
    bad, error, cost, fps, _ = engine.assess(state, _pathological(engine), probe,
                                             rng_from_key(state.key))
    mixed = _with(state, bad, error, cost, fps)
    assert front_rows(mixed) == front_rows(state)  # none of them on front.csv
    assert all(np.isfinite(row[0]) for row in front_rows(mixed))
    keep = engine._select(mixed.error, mixed.cost, mixed.fingerprints, random.Random(0))
    # every finite one survives; broken ones (some of generation 0's too) only fill the rest
    finite = set(np.flatnonzero(np.isfinite(mixed.error)).tolist())
    assert finite <= set(keep) and len(keep) <= engine.params.population
    # and they die out of a population that starts with them
    current = mixed
    for _ in range(3):
        current, _, row = engine.step(current)
        assert np.isfinite(row["best_error"])
        assert all(np.isfinite(r[0]) for r in front_rows(current))


@pytest.mark.parametrize("accuracy_first", [True, False])
def test_selection_ranks_non_finite_errors_last(engine, accuracy_first):
    error = np.array([5.0, np.inf, np.nan, 3.0, np.inf, 40.0])
    cost = np.array([10.0, 0.0, 0.0, 20.0, 1.0, 1.0])
    view = SimpleNamespace(params=SimpleNamespace(accuracy_first=accuracy_first),
                           problem=engine.problem)
    obj = Engine._objectives(view, error, cost)
    ranks = pareto_ranks(obj)
    finite = np.isfinite(error)
    assert ranks[~finite].min() > ranks[finite].max()
    assert set(nsga2(obj, int(finite.sum()), random.Random(0))) == set(np.flatnonzero(finite))
