"""evolve/search/cmaes.py: the polish never makes a program worse, finds what a smooth
objective hides, and leaves the slots that are not literals alone."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.search.cmaes import CMAParams, polish


def test_polish_moves_each_program_toward_its_own_optimum():
    rng = np.random.default_rng(0)
    target = np.array([[1.00001, -3.0002, 0.0], [250.01, 7.0, 0.0]])
    c0 = np.array([[1.0, -3.0, 0.0], [250.0, 7.0, 5.0]], np.float32)
    active = np.array([[True, True, False], [True, False, True]])

    def evaluate(c):  # max relative distance to the target over the active literals
        d = np.abs(c.astype(np.float64) - target[:, None, :]) / np.maximum(
            np.abs(target[:, None, :]), 1.0)
        return np.max(np.where(active[:, None, :], d, 0.0), axis=2)

    start = evaluate(c0[:, None, :])[:, 0]
    best, err = polish(evaluate, c0, active, rng, CMAParams(iterations=60, popsize=12,
                                                             sigma=1e-5))
    assert best.dtype == np.float32 and err.shape == (2,)
    assert np.all(err < 0.5 * start)
    np.testing.assert_array_equal(err, evaluate(best[:, None, :])[:, 0])
    assert best[0, 2] == 0.0 and best[1, 1] == 7.0  # slots that are not literals: kept


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_polish_is_never_worse_than_its_start(P, K, seed):
    rng = np.random.default_rng(seed)
    c0 = rng.normal(size=(P, K)).astype(np.float32)
    active = rng.random((P, K)) < 0.7
    noise = rng.random()

    def evaluate(c):  # rugged: rounding-like noise on top of a smooth bowl; NaN sometimes
        base = np.sum((c.astype(np.float64) - 0.3) ** 2, axis=2)
        bits = c.view(np.uint32).astype(np.int64).sum(axis=2) % 7
        e = base + noise * bits
        return np.where(bits == 5, np.nan, e)

    start = evaluate(c0[:, None, :])[:, 0]
    start = np.where(np.isnan(start), np.inf, start)
    best, err = polish(evaluate, c0, active, np.random.default_rng(seed),
                       CMAParams(iterations=5, popsize=6))
    assert np.all(err <= start)
    assert np.all(best[~active] == c0[~active])
    again = evaluate(best[:, None, :])[:, 0]
    np.testing.assert_array_equal(np.where(np.isnan(again), np.inf, again), err)
