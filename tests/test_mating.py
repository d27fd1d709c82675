"""Mate choice (evolve/search/mating.py): the three ways to pick a partner, evolving ideals, the
diversity columns in metrics.csv and their plot."""

import copy
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from evolve.catalog import load_problem
from evolve.search import mating
from evolve.search.engine import Engine, SearchParams


def _old_tournament(rng, ranks, n_children):
    n = len(ranks)
    a = rng.integers(0, n, (n_children, 2))
    b = rng.integers(0, n, (n_children, 2))
    return np.where(ranks[a] <= ranks[b], a, b)


def test_tournament_draws_exactly_what_the_engine_drew_before():
    ranks = np.random.default_rng(0).integers(0, 5, 40)
    got = mating.choose_pairs(np.random.default_rng(7), ranks, 30, "tournament")
    np.testing.assert_array_equal(got, _old_tournament(np.random.default_rng(7), ranks, 30))


def test_random_partner_keeps_the_tournament_parent():
    ranks = np.arange(50) % 7
    t = mating.choose_pairs(np.random.default_rng(3), ranks, 400, "tournament")
    r = mating.choose_pairs(np.random.default_rng(3), ranks, 400, "random")
    np.testing.assert_array_equal(t[:, 0], r[:, 0])
    assert np.mean(ranks[r[:, 1]]) > np.mean(ranks[t[:, 1]])  # no selection on partners


def test_ideal_partner_is_the_candidate_closest_to_the_ideal():
    rng = np.random.default_rng(1)
    feats = rng.uniform(-1, 1, (60, 8))
    ideals = rng.uniform(-1, 1, (60, 8))
    pairs = mating.choose_pairs(np.random.default_rng(2), np.zeros(60), 100, "ideal",
                                ideals, feats, candidates=1000)
    for parent, partner in pairs:  # 1000 draws of 60 cover all: the nearest one
        d = np.sum((feats - ideals[parent]) ** 2, axis=1)
        assert partner == int(np.argmin(d)) or d[partner] == d.min()
    with pytest.raises(ValueError, match="needs the population's ideals"):
        mating.choose_pairs(rng, np.zeros(3), 2, "ideal")
    with pytest.raises(ValueError, match="unknown mating 'sexy'"):
        mating.choose_pairs(rng, np.zeros(3), 2, "sexy")


def test_children_inherit_ideals_with_noise():
    ideals = np.array([[0.5] * 8, [-0.5] * 8])
    pairs = np.array([[0, 1]] * 200)
    crossed = np.arange(200) < 100
    kids = mating.child_ideals(np.random.default_rng(0), ideals, pairs, crossed, 0.0)
    assert np.all(kids[100:] == 0.5)  # mutation only: the chooser's ideal
    assert 0.3 < np.mean(kids[:100] == -0.5) < 0.7  # crossover: half from the partner
    noisy = mating.child_ideals(np.random.default_rng(0), ideals, pairs, crossed, 0.5)
    assert noisy.min() >= -1 and noisy.max() <= 1 and np.std(noisy[100:]) > 0.2


def test_features_and_diversity():
    out = np.array([[0.0, np.inf, np.nan], [2.0, -np.inf, 1.0]])
    f = mating.features(out, mean=0.0, std=2.0)
    np.testing.assert_allclose(f, [[0.0, 1.0, 2.0], [np.tanh(1.0), -1.0, np.tanh(0.5)]])
    assert mating.diversity(np.ones((5, 8))) == 0.0
    assert mating.diversity(np.random.default_rng(0).uniform(-1, 1, (50, 8))) > 0.4


@pytest.fixture(scope="module")
def engines():
    params = SearchParams(population=24, children=24, representation="tree", fit_iterations=3)
    first = Engine(load_problem("nguyen-5"), params)
    out = {}
    for m in ("tournament", "random", "ideal"):  # one compiled evaluator for all three
        out[m] = copy.copy(first)
        out[m].params = replace(params, mating=m)
    return out


def _run(engine, seed=0, generations=4):
    state = engine.init(seed)
    rows = []
    for _ in range(generations):
        state, _, row = engine.step(state)
        rows.append(row)
    return state, pd.DataFrame(rows)


def test_engine_reports_diversity_for_every_mating(engines):
    for mode, engine in engines.items():
        state, rows = _run(engine)
        assert {"unique_children", "diversity", "unique_fingerprints"} <= set(rows.columns)
        assert (rows["unique_children"] <= 24).all() and (rows["unique_children"] > 0).all()
        assert (rows["diversity"] >= 0).all()
        if mode == "ideal":
            assert state.ideals.shape == (len(state.programs), mating.N_FEATURES)
        else:
            assert state.ideals is None


def test_ideal_mating_is_deterministic(engines):
    a, ra = _run(engines["ideal"], seed=3)
    b, rb = _run(engines["ideal"], seed=3)
    assert a.genomes == b.genomes
    np.testing.assert_array_equal(a.ideals, b.ideals)
    pd.testing.assert_frame_equal(ra.drop(columns="wall_seconds"), rb.drop(columns="wall_seconds"))


def test_evolve_plot_draws_diversity_of_compared_runs(tmp_path):
    from evolve.results.plots import plot_runs
    from test_plots import make_run_dir

    dirs = []
    for mode, seeds in (("ideal", (0, 1)), ("random", (0, 1))):
        for s in seeds:
            d = make_run_dir(tmp_path / f"{mode}{s}", seed=s)
            cfg = (d / "config.yaml").read_text()
            (d / "config.yaml").write_text(cfg.replace("search:\n", f"search:\n  mating: {mode}\n"))
            m = pd.read_csv(d / "metrics.csv")
            m["unique_children"] = np.linspace(90, 60 if mode == "random" else 85, len(m))
            m["diversity"] = np.linspace(0.5, 0.2, len(m))
            m.to_csv(d / "metrics.csv", index=False)
            dirs.append(d)
    written = plot_runs(dirs, tmp_path / "cmp.png")
    assert [p.name for p in written][-2:] == ["cmp-diversity.png", "cmp-diversity.svg"]
    assert written[-2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
