"""Model choice from a regression front (evolve.model_choice): the four rules, their
invariants (hypothesis) and the cases the benchmark's records were judged with."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.model_choice import LOSS_FLOOR, RULES, choose_model


def test_exact_fits_compete_on_size():
    errors = np.array([0.5, 1e-3, 2e-14, 1e-15, 3e-16])
    sizes = np.array([1, 3, 7, 12, 20])
    for rule in RULES:  # below the floor all are exact: the smallest of them
        assert choose_model(errors, sizes, rule, n=20) == 2, rule
    assert choose_model(np.array([0.5, 1e-3, 1e-4]), np.array([1, 3, 9]), "accurate") == 2


def test_the_rules_differ_where_a_near_fit_costs_nodes():
    near, sizes = np.array([0.5, 1e-3, 5e-4]), np.array([1, 3, 40])
    assert choose_model(near, sizes, "accurate") == 2  # within 1.5x of the lowest
    assert choose_model(near, sizes, "lowest") == 2
    # 20 log(1e-3) + 3 log 20 < 20 log(5e-4) + 40 log 20: BIC keeps the small model
    assert choose_model(near, sizes, "bic", n=20) == 1
    # with 10,000 points the halved loss pays for the nodes
    assert choose_model(near, sizes, "bic", n=10_000) == 2
    # PySR's score: the largest drop of log-loss per node among the accurate ones
    errors, sizes = np.array([1.0, 0.1, 0.011, 0.01]), np.array([1, 2, 5, 30])
    assert choose_model(errors, sizes, "accurate") == 2
    assert choose_model(errors, sizes, "best") == 2
    errors, sizes = np.array([1.0, 0.014, 0.0101, 0.01]), np.array([1, 20, 21, 40])
    assert choose_model(errors, sizes, "accurate") == 1
    assert choose_model(errors, sizes, "best") == 2  # one node for a 28 % drop


def test_bad_input_says_what_to_give():
    with pytest.raises(ValueError, match="choose from accurate, best, lowest, bic"):
        choose_model([1.0], [1], "smallest")
    with pytest.raises(ValueError, match="needs n"):
        choose_model([1.0], [1], "bic")
    with pytest.raises(ValueError, match="1-d arrays of one nonzero length"):
        choose_model([1.0, 2.0], [1], "accurate")
    with pytest.raises(ValueError, match="1-d arrays"):
        choose_model([], [], "accurate")


fronts = st.integers(1, 12).flatmap(lambda k: st.tuples(
    st.lists(st.one_of(st.floats(0, 10, allow_nan=False), st.just(np.inf), st.just(np.nan)),
             min_size=k, max_size=k),
    st.lists(st.integers(1, 60), min_size=k, max_size=k)))


@settings(max_examples=300, deadline=None)
@given(fronts, st.sampled_from(RULES), st.randoms(use_true_random=False))
def test_picks_are_finite_and_do_not_depend_on_the_order(front, rule, rnd):
    errors, sizes = (np.array(v, np.float64) for v in front)
    i = choose_model(errors, sizes, rule, n=20)
    assert 0 <= i < len(errors)
    loss = np.where(np.isnan(errors), np.inf, np.maximum(errors, LOSS_FLOOR))
    if np.isfinite(loss).any():
        assert np.isfinite(loss[i])
        if rule != "bic":
            assert loss[i] <= 1.5 * loss.min()
        if rule in ("accurate", "lowest"):  # nothing smaller qualifies
            bound = 1.5 * loss.min() if rule == "accurate" else loss.min()
            assert not ((sizes < sizes[i]) & (loss <= bound)).any()
    perm = list(range(len(errors)))
    rnd.shuffle(perm)
    j = choose_model(errors[perm], sizes[perm], rule, n=20)
    assert (sizes[perm][j], loss[perm][j]) == (sizes[i], loss[i])


def test_the_benchmark_judges_with_the_same_rules():
    import bench_sr

    assert bench_sr.SELECT_RULES == RULES
    errors, sizes = np.array([0.5, 1e-3, 5e-4]), np.array([1, 3, 40])
    for rule in RULES:
        assert bench_sr.select_model(errors, sizes, rule, 20) == choose_model(
            errors, sizes, rule, 20)
