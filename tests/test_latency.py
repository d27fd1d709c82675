"""Measured speed as a cost (evolve.search.latency): the jitted function equals the reference
interpreter, timings are positive and cached, programs over the target are estimated, and the engine
uses it as its second objective with ``search.cost: latency``."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from evolve.catalog import load_problem
from evolve.errors import UserError
from evolve.eval.evaluator import run_numpy
from evolve.search import latency
from evolve.search.engine import Engine, SearchParams
from evolve.search.latency import (
    CLatencyCost,
    LatencyCost,
    live_instructions,
    program_function,
)
from evolve.text import parse_program

FAST = "r1 = 1.5\nr1 = fma(r0, r1, r1)\nreturn r1\n"
SLOW = ("r1 = 1.5\n" + "r1 = div(r1, r0)\nr1 = fma(r0, r1, r1)\n" * 24 + "return r1\n")
DEAD = "r2 = div(r0, r0)\nr1 = 1.5\nr1 = fma(r0, r1, r1)\nreturn r1\n"


def test_function_equals_the_interpreter_and_dead_code_is_dropped():
    prog = parse_program(SLOW, n_registers=4)
    x = np.linspace(0.1, 1, 257, dtype=np.float32)
    got = np.asarray(program_function(prog, 4, 1)(x))
    np.testing.assert_array_equal(got, run_numpy(prog, x, 4))
    assert len(live_instructions(parse_program(DEAD, n_registers=4), 1)) == 2


def test_accurate_programs_are_timed_others_estimated(monkeypatch):
    problem = load_problem("exp2")
    cost = LatencyCost(problem, points=2048, repeats=5)
    assert cost.base > 0 and cost.per_op > 0
    fast, slow = (parse_program(t, n_registers=4) for t in (FAST, SLOW))
    assert cost.time(fast) > 0  # a real measurement (no comparison of timings in tests)
    cost.cache.clear()
    # The bookkeeping, on a clock that advances 1 ms a reading: every run takes 1 ms.
    clock = iter(np.arange(1, 10_000) * 1e-3)
    monkeypatch.setattr(latency, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    before = cost.measured
    timed = cost([fast, slow], np.array([0.5, 0.5]))
    assert cost.measured == before + 2
    np.testing.assert_allclose(timed, 1e-3 / 2048 * 1e9)
    again = cost([fast], np.array([0.5]))
    assert cost.measured == before + 2 and again[0] == timed[0]  # cached
    estimated = cost([slow], np.array([50.0]))  # over the target: the op-weight estimate
    assert cost.measured == before + 2
    assert np.isclose(estimated[0], cost.base + cost.per_op * (24 * 4 + 24))


def test_engine_with_latency_cost():
    problem = load_problem("exp2")
    engine = Engine(problem, SearchParams(population=16, children=16, n_train=512, fit=False,
                                          cost="latency"))
    state = engine.init(0)
    state, _, row = engine.step(state)
    assert engine.latency is not None and np.isfinite(state.cost).all()
    assert (state.cost > 0).all()


def test_noise_cannot_flatten_the_estimate(monkeypatch):
    # a machine so noisy that every chain times like the identity program
    monkeypatch.setattr(LatencyCost, "time", lambda self, program: 5.0)
    cost = LatencyCost(load_problem("exp2"), points=256, repeats=1)
    assert cost.per_op == latency.PER_OP_FLOOR
    fast, slow = (parse_program(t, n_registers=4) for t in (FAST, SLOW))
    est = cost([fast, slow], np.array([50.0, 50.0]))
    assert est[1] > est[0] > cost.base


needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="search.cost 'c' needs gcc")


@needs_gcc
def test_c_cost_builds_each_timed_program_once_and_the_engine_runs_with_it():
    problem = load_problem("exp2")
    cost = CLatencyCost(problem, points=1024, repeats=3)
    assert cost.base > 0 and cost.per_op > 0 and cost.folder.is_dir()
    fast, slow = (parse_program(t, n_registers=4) for t in (FAST, SLOW))
    built = cost._built
    t = cost([fast, slow], np.array([0.5, 0.5]))  # under the target: timed as C
    assert np.isfinite(t).all() and (t > 0).all() and cost._built == built + 2
    assert cost([fast], np.array([0.5]))[0] == t[0] and cost._built == built + 2  # cached
    assert not list(cost.folder.iterdir())  # sources and libraries removed once loaded
    engine = Engine(problem, SearchParams(population=16, children=16, n_train=512, fit=False,
                                          cost="c"))
    assert isinstance(engine.latency, CLatencyCost)
    state, _, _ = engine.step(engine.init(0))
    assert np.isfinite(state.cost).all() and (state.cost > 0).all()


def test_c_cost_without_gcc_names_the_fix(monkeypatch):
    monkeypatch.setattr(latency.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="install gcc, or set search.cost: latency"):
        CLatencyCost(load_problem("exp2"))
