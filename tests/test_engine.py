"""The engine loop: deterministic for a seed, caches counted, objectives consistent."""

import dataclasses

import jax
import numpy as np
import pytest

from evolve.catalog import load_problem
from evolve.errors import UserError
from evolve.eval.evaluator import run_numpy
from evolve.ops import CONST
from evolve.runs.islands.core import SHARED, apply_logs, new_shared
from evolve.search.engine import Engine, SearchParams
from evolve.search.fingerprints import FINGERPRINT_HASH
from evolve.search.shared_cache import SharedCacheView
from evolve.text import format_program, parse_program

PARAMS = SearchParams(population=16, children=16, n_train=512, fit_points=64,
                      fit_iterations=4)


@pytest.fixture(scope="module")
def engine():
    return Engine(load_problem("exp2"), PARAMS)


def run(engine, seed, generations):
    state = engine.init(seed)
    rows = []
    for _ in range(generations):
        state, _, row = engine.step(state)
        rows.append(repr({k: v for k, v in row.items() if k != "wall_seconds"}))  # NaN-safe
    return state, rows


def test_a_seeded_run_is_deterministic(engine):
    a, rows_a = run(engine, 3, 4)
    b, rows_b = run(engine, 3, 4)
    assert a.programs == b.programs
    np.testing.assert_array_equal(a.error, b.error)
    assert rows_a == rows_b
    c, _ = run(engine, 4, 4)
    assert c.programs != a.programs


def test_objectives_match_a_fresh_evaluation(engine):
    state, rows = run(engine, 5, 3)
    p = engine.problem
    for prog, err, cost in zip(state.programs[:5], state.error, state.cost):
        out = run_numpy(prog, engine.x_train, p.n_registers).astype(np.float64)
        with np.errstate(all="ignore"):
            fresh = np.max(np.abs(out - engine.y_train) * engine.s_train)
        fresh = fresh if np.isfinite(fresh) else np.inf
        if err < p.target:  # re-checked on the verification points: never lower
            assert err >= fresh
        else:  # a cache hit carries the error of a program with the same fingerprint
            assert err == pytest.approx(fresh, rel=1e-3)
        assert cost == p.cost(prog)


def eval_row(text):
    import ast

    return ast.literal_eval(text.replace("nan", "None"))


def test_cache_counts_add_up(engine):
    _, rows = run(engine, 6, 3)
    for row in map(eval_row, rows):
        assert row["cache_hits"] + row["cache_misses"] == PARAMS.children
        assert row["evaluated"] <= row["cache_misses"]
        assert row["unique_fingerprints"] == row["population"]


def test_without_cache_every_child_is_evaluated():
    params = SearchParams(population=16, children=16, n_train=512, fec=False, fit=False)
    eng = Engine(load_problem("exp2"), params)
    state = eng.init(0)
    state, _, row = eng.step(state)
    assert row["cache_hits"] == 0


def test_fit_limit_fits_the_most_promising_new_structures(engine):
    """With ``fit_limit``, at most that many new structures are fitted a generation: the
    ones with the lowest training error before fitting."""
    eng = Engine(engine.problem, SearchParams(**{**PARAMS.__dict__, "fit_limit": 3}))
    state = eng.init(2)
    for _ in range(3):
        state, children, row = eng.step(state)
        assert row["fits"] <= 3
    batch = eng.batch(state.programs)
    new = {bytes([i]): i for i in range(len(state.programs))}
    chosen = sorted(eng._most_promising(batch, new)[0].values())
    assert len(chosen) == 3
    stats = eng.evaluator.errors(batch, eng.x_train, eng.y_train,
                                 eng.s_train)
    before = np.nan_to_num(eng.problem.error_value(stats)[: len(new)], nan=np.inf)
    assert sorted(np.argsort(before, kind="stable")[:3].tolist()) == chosen
    unlimited = Engine(engine.problem, PARAMS)
    assert unlimited._most_promising(batch, new) == (new, {})


# -- a step does not change the state it is given ------------------------------------------
def _cache_contents(cache) -> tuple:
    """Everything a cache (an FECache or an island's view of a shared one) holds."""
    if hasattr(cache, "base"):  # SharedCacheView
        return ("view", repr(cache.base.to_state()), repr(cache._own), repr(cache._log),
                repr(cache._stats))
    return ("cache", repr(cache.to_state()))


def snapshot(state) -> tuple:
    return (state.generation, repr(np.asarray(jax.random.key_data(state.key))),
            tuple(state.programs), state.error.tobytes(), state.cost.tobytes(),
            tuple(state.fingerprints), tuple(state.genomes), state.evaluations, state.fits,
            state.tree_random.getstate() if state.tree_random is not None else None,
            None if state.ideals is None else state.ideals.tobytes(),
            _cache_contents(state.cache), _cache_contents(state.structures))


def _assert_pure(engine, state, generations=2):
    for _ in range(generations):
        before = snapshot(state)
        first = engine.step(state)
        assert snapshot(state) == before
        again = engine.step(state)  # the same input: the same output
        assert snapshot(again.state) == snapshot(first.state)
        assert first.children.fingerprints == again.children.fingerprints
        assert len(first.children.programs) == len(first.children.kinds) == \
            len(first.children.error) == engine.params.children
        state = first.state


def test_a_step_leaves_its_input_unchanged(engine):
    _assert_pure(engine, engine.init(2))


def test_a_tree_step_leaves_its_input_unchanged():
    params = SearchParams(population=12, children=12, n_train=256, fit_points=32,
                          fit_iterations=2, representation="tree", mating="ideal")
    eng = Engine(load_problem("nguyen-9"), params)
    state = eng.init(1)
    assert state.tree_random is not None and state.genomes
    _assert_pure(eng, state)


def test_a_step_leaves_an_islands_shared_caches_unchanged(engine):
    shared = new_shared(engine)
    views = tuple(SharedCacheView(shared[name], name) for name in SHARED)
    state = engine.init(3, probe_key=jax.random.key(3), caches=views)
    apply_logs(shared, [{name: getattr(state, name).take_log() for name in SHARED}])
    _assert_pure(engine, state, generations=1)


def test_a_state_fingerprinted_by_an_earlier_rule_is_fingerprinted_again(engine):
    # Checkpoints written before fingerprints were MurmurHash3 (on the device) hold
    # blake2b fingerprints: the next step recomputes the population's, so that children
    # equal to a parent are recognised again.
    state = engine.init(8)
    old = dataclasses.replace(state, fingerprints=[bytes(16)] * len(state.programs),
                              fingerprint_hash="blake2b-128")
    a, _, _ = engine.step(state)
    b, _, _ = engine.step(old)
    assert b.fingerprint_hash == FINGERPRINT_HASH
    assert a.programs == b.programs and a.fingerprints == b.fingerprints
    assert old.fingerprints == [bytes(16)] * len(state.programs)  # the input is unchanged


def test_starts_from_the_problems_baselines_with_their_literals():
    problem = load_problem("exp2")
    engine = Engine(problem, SearchParams(population=16, children=16, n_train=512,
                                          fit_points=64, fit_iterations=4, starts="baselines"))
    texts = [b["program"] for b in problem.baselines]
    starts = engine.start_programs()
    assert [format_program(p) for p in starts] == [format_program(parse_program(t))
                                                    for t in texts]
    state = engine.init(0)
    # the baselines are programs of the first generation, their literals not refitted
    kept = {format_program(p) for p in state.programs}
    best = min(problem.baselines, key=lambda b: b["error"])
    assert format_program(parse_program(best["program"])) in kept


def test_starts_that_are_not_programs_of_the_problem_are_refused():
    problem = dataclasses.replace(load_problem("exp2"), starts=("r1 = sin(r0)\nreturn r1",))
    engine = Engine(problem, SearchParams(population=8, children=8, starts="starts"))
    with pytest.raises(UserError, match=r"starts\[0\] is not a program of this problem"):
        engine.start_programs()
    with pytest.raises(UserError, match="no baseline or starts program"):
        Engine(dataclasses.replace(problem, starts=(), baselines=()),
               SearchParams(starts="both")).start_programs()


def test_diversity_of_a_large_population_is_measured_on_an_even_spread(engine, monkeypatch):
    from evolve.batch import take
    from evolve.search import engine as engine_module
    from evolve.search import mating

    state = engine.init(0)
    probe = engine.probe_points(state.key)
    whole = engine._diversity(state.programs, probe)
    assert whole == mating.diversity(engine.features(state.programs, probe))
    monkeypatch.setattr(engine_module, "DIVERSITY_SAMPLE", 5)
    rows = np.linspace(0, len(state.programs) - 1, 5).astype(np.int64)
    spread = mating.diversity(engine.features(take(engine.batch(state.programs), rows), probe))
    assert engine._diversity(state.programs, probe) == spread != whole


def test_early_exit_keeps_the_front_exact_and_bounds_the_rest():
    from evolve.search.selection import front_indices

    params = dataclasses.replace(PARAMS, population=64, children=64, early_exit=32)
    eng = Engine(load_problem("exp2"), params)
    assert eng.early is not None and len(eng.early) == 32  # 512 points, every 16th
    state = eng.init(1)
    exits = 0
    for _ in range(6):
        state, children, row = eng.step(state)
        exits += row["early_exits"]
        assert row["early_exits"] <= row["evaluated"]
    assert exits > 0
    p = eng.problem

    def full(prog):
        out = run_numpy(prog, eng.x_train, p.n_registers).astype(np.float64)
        with np.errstate(all="ignore"):
            e = np.max(np.abs(out - eng.y_train) * eng.s_train)
        return e if np.isfinite(e) else np.inf

    front = front_indices(np.stack([state.error, state.cost], 1))
    for i in range(len(state.error)):
        fresh = full(state.programs[i])
        if i in front and state.error[i] >= p.target:  # the front: measured in full
            assert state.error[i] == pytest.approx(fresh, rel=1e-3)
        if state.error[i] >= p.target:  # the others: their error, or a lower bound of it
            assert state.error[i] <= fresh * (1 + 1e-3)


def test_hopeless_is_strict_domination_by_the_front(engine):
    rng = np.random.default_rng(0)
    state = engine.init(2)
    state.error = rng.choice([0.5, 2.0, 3.0, 10.0, np.inf], len(state.error))
    state.cost = rng.choice([1.0, 2.0, 5.0], len(state.cost)).astype(float)
    from evolve.search.selection import front_indices

    obj = engine._objectives(state.error, state.cost)
    front = obj[front_indices(obj)]
    cost = rng.choice([0.0, 1.0, 2.0, 3.0, 5.0, 7.0], 200).astype(float)
    bound = rng.choice([0.25, 0.5, 1.0, 2.0, 3.0, 10.0, np.inf], 200)
    may = rng.random(200) < 0.9
    got = engine._hopeless(state, cost, may)(np.arange(200), bound)
    child = engine._objectives(bound, cost)
    want = np.array([may[i] and any((f <= child[i]).all() and (f < child[i]).any() for f in front)
                     for i in range(200)])
    assert np.array_equal(got, want) and got.any() and not got.all()


def _baseline_engine():
    problem = load_problem("exp2")  # no fitting: a child keeps its literals
    return Engine(problem, dataclasses.replace(PARAMS, starts="baselines", fit=False)), problem


def test_hits_under_the_target_are_measured_unless_copies_of_the_population():
    from evolve.search.fec import as_keys

    engine, problem = _baseline_engine()
    state = engine.init(0)
    best = min(problem.baselines, key=lambda b: b["error"])  # 0.896 ULP: under the target
    text = best["program"]
    i = [format_program(p) for p in state.programs].index(format_program(parse_program(text)))
    assert state.error[i] < problem.target
    # the same function, other code: a dead instruction in front (same fingerprint)
    lines = text.splitlines()
    dead = "\n".join([f"r{problem.n_registers - 1} = 0.125", *lines]) + "\n"
    probe = engine.probe_points(state.key)
    fps = engine._fingerprints(engine.batch([parse_program(text), parse_program(dead)]), probe)
    assert fps[0] == fps[1] == state.fingerprints[i]
    # the cache says 0.5 for that fingerprint: served to the copy, measured for the other
    state.cache.insert_column(as_keys(fps[:1]), "error", np.array([0.5]))
    state.cache.take_stats()
    _, error, _, _, info = engine.assess(state, [parse_program(text), parse_program(dead)],
                                         probe, np.random.default_rng(0))
    assert error[0] == 0.5 and error[1] == pytest.approx(state.error[i])
    stats = state.cache.take_stats()
    assert stats["audits"] == 1 and stats["false_hits"] == 1 and info["evaluated"] == 1


def test_selection_keeps_the_lowest_error_of_a_fingerprint_then_the_newest(engine):
    import random

    fps = [b"a" * 16, b"b" * 16, b"a" * 16, b"b" * 16, b"a" * 16]
    error = np.array([1.9, 3.0, 1.5, 3.0, 1.5])  # exp2's target is 1 ULP
    cost = np.array([5.0, 1.0, 6.0, 1.0, 6.0])
    kept = engine._select(error, cost, fps, random.Random(0))
    assert sorted(kept.tolist()) == [3, 4]  # a: 1.5 twice, the newest; b: equal, the newest
    oldest = Engine(engine.problem, dataclasses.replace(PARAMS, keep="oldest"))
    assert sorted(oldest._select(error, cost, fps, random.Random(0)).tolist()) == [1, 2]
    error[2] = np.nan  # NaN is the worst error
    assert sorted(engine._select(error, cost, fps, random.Random(0)).tolist()) == [3, 4]
    error[4] = np.nan
    assert sorted(engine._select(error, cost, fps, random.Random(0)).tolist()) == [0, 3]
    # under the target every error is one (accuracy first): the newest, as before
    under = np.array([0.9, 3.0, 0.5, 3.0, 0.7])
    assert sorted(engine._select(under, cost, fps, random.Random(0)).tolist()) == [3, 4]
    under[4] = 1.2  # over the target: the lowest error objective of "a" is the target's
    assert sorted(engine._select(under, cost, fps, random.Random(0)).tolist()) == [2, 3]


def test_polished_literals_are_never_worse_on_the_fitting_points():
    engine = Engine(load_problem("exp2"), dataclasses.replace(PARAMS, fit_polish="cma"))
    problem = engine.problem
    texts = [b["program"] for b in problem.baselines if b.get("program")]
    batch = engine.batch([parse_program(t) for t in texts])

    def errors(b):
        stats = engine.evaluator.errors(b, engine.x_fit, engine.y_fit, engine.s_fit)
        return np.asarray(problem.error_value(stats))[: len(texts)]

    const = engine._polish(batch, np.random.default_rng(0))
    polished = batch._replace(const=const)
    assert np.all(errors(polished) <= errors(batch))
    literal = batch.op == CONST
    assert np.array_equal(const[~literal], np.asarray(batch.const)[~literal])
    state = engine.init(2)  # a whole generation runs with it
    assert engine.step(state).state.generation == 1
