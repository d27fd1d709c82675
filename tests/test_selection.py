"""Selection: NSGA-II (arrays for two objectives, DEAP otherwise), Pareto ranks and fronts,
staged objectives."""

from __future__ import annotations

import random

import numpy as np
import pytest
from deap import tools
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from evolve.search.selection import (
    _deap_nsga2,
    _deap_ranks,
    _finite,
    _individuals,
    accuracy_first,
    front_indices,
    nsga2,
    pareto_ranks,
)

# Three known fronts (minimize both): each row of F1 is dominated by some row of F0, each
# row of F2 by some row of F1, and no row dominates another of its own front.
F0 = [(1, 5), (2, 3), (4, 1)]
F1 = [(2, 6), (3, 4), (5, 2)]
F2 = [(4, 7), (6, 5)]
THREE_FRONTS = np.array(F0 + F1 + F2, np.float64)


def _brute_ranks(obj: np.ndarray) -> np.ndarray:
    """Non-domination ranks by peeling fronts, in plain numpy (NaN as +Inf)."""
    obj = np.where(np.isnan(obj), np.inf, obj)
    n = obj.shape[0]
    dom = np.array([[bool(np.all(obj[i] <= obj[j]) and np.any(obj[i] < obj[j]))
                     for j in range(n)] for i in range(n)]).reshape(n, n)
    ranks = np.full(n, -1)
    rank = 0
    while np.any(ranks < 0):
        left = ranks < 0
        front = left & ~np.any(dom & left[:, None], axis=0)
        ranks[front] = rank
        rank += 1
    return ranks


# -- NSGA-II ----------------------------------------------------------------------------
def test_pareto_ranks_on_known_fronts():
    assert pareto_ranks(THREE_FRONTS).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert front_indices(THREE_FRONTS).tolist() == [0, 1, 2]
    shuffled = THREE_FRONTS[::-1]
    assert pareto_ranks(shuffled).tolist() == [2, 2, 1, 1, 1, 0, 0, 0]
    assert front_indices(shuffled).tolist() == [5, 6, 7]


def test_nsga2_takes_whole_fronts_then_crowding():
    rng = random.Random(0)
    assert nsga2(THREE_FRONTS, 3, rng).tolist() == [0, 1, 2]
    assert nsga2(THREE_FRONTS, 6, rng).tolist() == [0, 1, 2, 3, 4, 5]
    assert nsga2(THREE_FRONTS, 8, rng).tolist() == list(range(8))
    # F1 is cut: its boundary points (2, 6), (5, 2) have infinite crowding distance
    assert nsga2(THREE_FRONTS, 5, rng).tolist() == [0, 1, 2, 3, 5]
    assert nsga2(THREE_FRONTS, 0, rng).tolist() == []


def test_nsga2_prefers_less_crowded_points():
    # one front; (1.1, 8.9) sits close to (1, 9), (5, 5) is far from everything
    obj = np.array([(0, 10), (1, 9), (1.1, 8.9), (5, 5), (10, 0)], np.float64)
    # crowding distances: inf, 0.11, 0.4, 0.89, inf
    assert nsga2(obj, 4, random.Random(3)).tolist() == [0, 2, 3, 4]
    assert nsga2(obj, 3, random.Random(3)).tolist() == [0, 3, 4]


def test_nsga2_ties_are_broken_by_the_rng():
    # F1's two boundary points tie (infinite distance) for the one place left
    picks = {tuple(nsga2(THREE_FRONTS, 4, random.Random(seed))) for seed in range(20)}
    assert picks == {(0, 1, 2, 3), (0, 1, 2, 5)}
    same = np.ones((6, 2))
    chosen = {tuple(nsga2(same, 2, random.Random(seed))) for seed in range(20)}
    assert all(len(set(c)) == 2 for c in chosen) and len(chosen) > 1
    assert pareto_ranks(same).tolist() == [0] * 6


def test_nsga2_is_deterministic_given_the_rng_state():
    obj = np.random.default_rng(0).integers(0, 5, (40, 3)).astype(np.float64)
    a = random.Random(42)
    b = random.Random(42)
    for _ in range(3):
        assert nsga2(obj, 17, a).tolist() == nsga2(obj, 17, b).tolist()
    assert a.getstate() == b.getstate()


def test_global_random_state_is_untouched():
    random.seed(1234)
    before = random.getstate()
    obj = np.random.default_rng(1).random((30, 2))
    nsga2(obj, 10, random.Random(5))
    pareto_ranks(obj)
    front_indices(obj)
    assert random.getstate() == before


def test_nan_and_inf_objectives_count_as_worst():
    obj = np.array([(np.nan, np.nan), (1, 1), (2, 2), (np.inf, 0.5)], np.float64)
    assert pareto_ranks(obj).tolist() == [2, 0, 1, 0]
    assert nsga2(obj, 2, random.Random(0)).tolist() == [1, 3]
    assert nsga2(obj, 3, random.Random(0)).tolist() == [1, 2, 3]
    # a NaN row never beats a finite one
    bad = np.array([(np.nan, 0.0), (0.0, 0.0)])
    assert nsga2(bad, 1, random.Random(0)).tolist() == [1]
    # all non-finite: still a valid selection, no crash
    inf = np.array([(np.inf, np.nan), (np.nan, np.inf), (-np.inf, 1.0)])
    assert nsga2(inf, 1, random.Random(0)).tolist() == [2]


def test_input_errors():
    with pytest.raises(ValueError, match=r"\[n, k\]"):
        nsga2(np.zeros(4), 2, random.Random(0))
    with pytest.raises(ValueError, match="mu"):
        nsga2(np.zeros((4, 2)), 5, random.Random(0))
    assert pareto_ranks(np.zeros((0, 2))).tolist() == []
    assert front_indices(np.zeros((0, 2))).tolist() == []


objective_arrays = hnp.arrays(
    np.float64, st.tuples(st.integers(1, 25), st.integers(1, 3)),
    elements=st.one_of(st.integers(0, 4).map(float), st.just(np.nan), st.just(np.inf)))


@given(objective_arrays, st.data())
def test_nsga2_properties(obj, data):
    n = obj.shape[0]
    mu = data.draw(st.integers(0, n))
    seed = data.draw(st.integers(0, 2**32 - 1))
    ranks = _brute_ranks(obj)
    assert pareto_ranks(obj).tolist() == ranks.tolist()
    assert front_indices(obj).tolist() == np.flatnonzero(ranks == 0).tolist()
    chosen = nsga2(obj, mu, random.Random(seed))
    assert len(chosen) == mu == len(set(chosen.tolist()))
    assert chosen.tolist() == sorted(chosen.tolist())
    if 0 < mu < n:
        # every row of a better front than the worst chosen one is chosen
        cut = ranks[chosen].max()
        assert set(np.flatnonzero(ranks < cut)) <= set(chosen.tolist())
    assert chosen.tolist() == nsga2(obj, mu, random.Random(seed)).tolist()


# -- staged objectives ---------------------------------------------------------------
def test_accuracy_first():
    target = 1.0
    error = np.array([0.2, 0.9, 1.0, 3.0, 5.0, np.nan])
    cost = np.array([9.0, 4.0, 6.0, 1.0, 0.5, 0.0])
    obj = accuracy_first(error, cost, target)
    assert obj.tolist() == [[1.0, 9.0], [1.0, 4.0], [1.0, 6.0], [3.0, 1.0], [5.0, 0.5],
                            [np.inf, np.inf]]
    # among programs that meet the target only cost counts: index 1 dominates 0 and 2,
    # though 0 is more accurate; programs that miss it compete on (error, cost); a NaN
    # error is worst in both, however cheap the program
    assert pareto_ranks(obj).tolist() == [2, 0, 1, 0, 0, 3]
    assert np.isinf(accuracy_first(np.array([0.0]), np.array([np.nan]), 1.0)[0, 1])
    assert accuracy_first(np.array([np.inf]), np.array([2.0]), 1.0).tolist() == [[np.inf] * 2]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40))
def test_front_indices_is_the_first_front_of_the_full_sort(rows):
    """The first front by Jensen's sort equals the first front of DEAP's plain sort (ties
    and repeated points included)."""
    obj = np.array(rows, np.float64)
    assert front_indices(obj).tolist() == np.flatnonzero(pareto_ranks(obj) == 0).tolist()
    inds = _individuals(_finite(obj), range(len(obj)))
    plain = tools.sortNondominated(inds, len(obj), first_front_only=True)[0]
    assert front_indices(obj).tolist() == sorted(ind.index for ind in plain)


# -- the array path (two objectives) against DEAP's ------------------------------------
def _non_finite(obj: np.ndarray, draw) -> np.ndarray:
    """``obj`` with NaN, +Inf and -Inf at drawn places."""
    n = obj.shape[0]
    for value in (np.nan, np.inf, -np.inf):
        for i, j in draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, 1)),
                                  max_size=3 if n else 0)):
            obj[i, j] = value
    return obj


@st.composite
def tied_objectives(draw, max_n: int = 40) -> np.ndarray:
    """[n, 2] objectives on a small grid (many ties and repeated rows), sometimes scaled
    or jittered, with some non-finite values."""
    n = draw(st.integers(0, max_n))
    grid = draw(st.integers(1, 6))
    obj = np.array(draw(st.lists(st.tuples(st.integers(0, grid - 1), st.integers(0, grid - 1)),
                                 min_size=n, max_size=n)), np.float64).reshape(n, 2)
    obj = obj * draw(st.sampled_from([1.0, 0.1, -1.0, 1e-300]))
    if draw(st.booleans()):
        obj[:, draw(st.integers(0, 1))] += np.random.default_rng(
            draw(st.integers(0, 99))).random(n) * 1e-3
    return _non_finite(obj, draw)


@settings(max_examples=300, deadline=None)
@given(tied_objectives(), st.data())
def test_nsga2_on_arrays_is_deaps(obj, data):
    n = obj.shape[0]
    mu = data.draw(st.integers(0, n))
    seed = data.draw(st.integers(0, 2**32 - 1))
    a, b = random.Random(seed), random.Random(seed)
    chosen = nsga2(obj, mu, a)
    assert chosen.dtype == np.int64
    if mu == 0:
        assert chosen.tolist() == [] and a.getstate() == b.getstate()
    else:
        assert chosen.tolist() == _deap_nsga2(obj, mu, b).tolist()
        assert a.getstate() == b.getstate()  # the same draws: later selections agree too
    assert nsga2(obj, n, random.Random(seed)).tolist() == list(range(n))


@settings(max_examples=300, deadline=None)
@given(tied_objectives())
def test_pareto_ranks_on_arrays_are_deaps(obj):
    if obj.shape[0] == 0:
        assert pareto_ranks(obj).tolist() == [] and front_indices(obj).tolist() == []
        return
    ranks = pareto_ranks(obj)
    assert ranks.dtype == np.int64
    assert ranks.tolist() == _deap_ranks(obj).tolist()
    assert front_indices(obj).tolist() == np.flatnonzero(ranks == 0).tolist()
    one = obj[:, :1]
    assert pareto_ranks(one).tolist() == _deap_ranks(one).tolist()


@settings(max_examples=25, deadline=None)
@given(st.integers(50, 400), st.sampled_from(["random", "engine", "grid"]), st.data())
def test_nsga2_on_arrays_is_deaps_on_larger_populations(n, kind, data):
    g = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        obj = g.random((n, 2))
    elif kind == "engine":  # accuracy-first: errors clipped at a target, integer costs
        obj = np.stack([np.maximum(10 ** g.uniform(-8, 1, n), 1e-3),
                        g.integers(1, 40, n)], 1).astype(np.float64)
    else:
        obj = np.round(g.random((n, 2)) * 7)
    mu = data.draw(st.integers(1, n))
    seed = data.draw(st.integers(0, 2**32 - 1))
    a, b = random.Random(seed), random.Random(seed)
    assert nsga2(obj, mu, a).tolist() == _deap_nsga2(obj, mu, b).tolist()
    assert a.getstate() == b.getstate()
    assert pareto_ranks(obj).tolist() == _deap_ranks(obj).tolist()


def test_nsga2_on_arrays_when_crowding_overflows():
    # differences of +-1e308 overflow: DEAP's distances are NaN, and its path is used
    obj = np.array([(-1e308, 0.0), (0.0, -1e308), (1e308, -1.7e308), (1.7e308, -1.7e308),
                    (-1.7e308, 1e308), (0.0, 1e308), (-np.inf, np.inf), (np.nan, -np.inf)])
    for seed in range(20):
        for mu in range(1, len(obj) + 1):
            a, b = random.Random(seed), random.Random(seed)
            assert nsga2(obj, mu, a).tolist() == _deap_nsga2(obj, mu, b).tolist()
            assert a.getstate() == b.getstate()


def test_nsga2_small_cases():
    one = np.array([[3.0, 4.0]])
    rng = random.Random(0)
    assert nsga2(one, 1, rng).tolist() == [0]
    assert pareto_ranks(one).tolist() == [0] and front_indices(one).tolist() == [0]
    assert nsga2(np.zeros((0, 2)), 0, rng).tolist() == []
    with pytest.raises(ValueError, match="mu"):
        nsga2(one, 2, rng)


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 40), st.just(2)),
                  elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, np.inf, np.nan, -1.0])))
def test_the_two_objective_front_is_the_rank_zero_rows(obj):
    assert front_indices(obj).tolist() == np.flatnonzero(pareto_ranks(obj) == 0).tolist()


@given(hnp.arrays(np.float64, st.integers(1, 60),
                  elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0, np.inf])))
def test_ranks_by_levels_equal_the_point_by_point_sweep(second):
    from evolve.search.selection import _bisect_ranks, _level_ranks

    assert (_level_ranks(second, np.unique(second)) == _bisect_ranks(second)).all()
