"""Mate choice: who a parent's partner is, and the evolving preferences that decide it.

Three ways to pick the partner of a parent (``SearchParams.mating``):

- ``tournament``: the partner wins a binary tournament on Pareto rank, as the parent did
  (the engine's default; the draws are exactly those of the engine before mate choice
  existed, so linear runs are unchanged);
- ``random``: the partner is drawn uniformly from the population;
- ``ideal``: mate choice by an evolving ideal (after Simões, Lourenço and Machado, "All
  You Need Is Sex for Diversity", EuroGP 2023, whose PIMP method gives every individual
  an ideal-mate representation). Every individual carries an ideal: a point of the
  behaviour space described below. The parent looks at ``mate_candidates`` individuals
  drawn at random and takes the one whose behaviour is closest (Euclidean) to its ideal.
  A child inherits the chooser's ideal (mixed coordinate by coordinate with the partner's
  ideal when the child was made by crossover) plus Gaussian noise of ``mate_sigma``, so
  preferences evolve with the programs that carry them and are selected with them.

Behaviour space. PIMP's ideals are trees compared with candidates by their outputs; ours
are vectors in the space of outputs directly, so one mechanism serves linear programs and
trees alike: a program's features are its outputs on the first ``N_FEATURES`` probe
points, centred and scaled by the training targets' mean and standard deviation and
squashed by tanh into (-1, 1) (NaN: 2, outside every ideal). Ideals live in [-1, 1].

Everything here is a pure function of explicit arrays and a numpy Generator.
"""

from __future__ import annotations

import numpy as np

MATINGS = ("tournament", "random", "ideal")
N_FEATURES = 8
_NAN_FEATURE = 2.0


def features(outputs: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Behaviour features [n, d] of programs from their outputs [n, d] on the probe points:
    tanh((out - mean) / std), NaN mapped to 2 (infinities to +-1)."""
    with np.errstate(all="ignore"):
        z = np.tanh((np.asarray(outputs, np.float64) - mean) / (std if std > 0 else 1.0))
    return np.where(np.isnan(z), _NAN_FEATURE, z)


def diversity(feats: np.ndarray) -> float:
    """The population's behavioural spread: the mean, over feature coordinates, of the
    standard deviation across individuals (0 when every program behaves alike)."""
    if len(feats) < 2:
        return 0.0
    return float(np.mean(np.std(feats, axis=0)))


def initial_ideals(rng: np.random.Generator, n: int, d: int = N_FEATURES) -> np.ndarray:
    """Ideals of a random population: uniform in [-1, 1]^d."""
    return rng.uniform(-1.0, 1.0, (n, d))


def choose_pairs(rng: np.random.Generator, ranks: np.ndarray, n_children: int, mode: str,
                 ideals: np.ndarray | None = None, feats: np.ndarray | None = None,
                 candidates: int = 7) -> np.ndarray:
    """[n_children, 2] indices: each row a parent (binary tournament on ``ranks``, lower
    wins) and its partner chosen by ``mode`` (see the module docstring).

    ``ideal`` needs ``ideals`` [n, d] and ``feats`` [n, d] of the population.
    """
    n = len(ranks)
    a = rng.integers(0, n, (n_children, 2))
    b = rng.integers(0, n, (n_children, 2))
    pick = np.where(ranks[a] <= ranks[b], a, b)  # binary tournaments on Pareto rank
    if mode == "tournament":
        return pick
    if mode == "random":
        pick[:, 1] = rng.integers(0, n, n_children)
        return pick
    if mode == "ideal":
        if ideals is None or feats is None:
            raise ValueError("mating 'ideal' needs the population's ideals and features")
        cand = rng.integers(0, n, (n_children, max(int(candidates), 1)))
        wish = ideals[pick[:, 0]]  # [c, d]
        dist = np.sum((feats[cand] - wish[:, None, :]) ** 2, axis=2)  # [c, k]
        pick[:, 1] = cand[np.arange(n_children), np.argmin(dist, axis=1)]
        return pick
    raise ValueError(f"unknown mating {mode!r}; choose from: {', '.join(MATINGS)}")


def child_ideals(rng: np.random.Generator, ideals: np.ndarray, pairs: np.ndarray,
                 crossed: np.ndarray, sigma: float) -> np.ndarray:
    """The ideals of the children of ``pairs``: the chooser's (row's first) ideal, each
    coordinate taken from the partner's with probability 1/2 where ``crossed``, plus
    N(0, sigma) noise, clipped to [-1, 1]."""
    mine, theirs = ideals[pairs[:, 0]], ideals[pairs[:, 1]]
    swap = (rng.random(mine.shape) < 0.5) & np.asarray(crossed, bool)[:, None]
    child = np.where(swap, theirs, mine) + rng.normal(0.0, sigma, mine.shape)
    return np.clip(child, -1.0, 1.0)
