"""Selection over objective arrays: NSGA-II, Pareto ranks and fronts, staged objectives.

Every objective is minimized. Selection functions are pure functions of explicit arrays
and an explicit random state; they return indices into the arrays they were given.

Non-finite objectives: NaN counts as +Inf, the worst value. Before DEAP sees them, each
objective column is mapped by an order-preserving substitution (+Inf and NaN -> the
column's largest finite value plus its finite span (at least 1); -Inf -> the smallest
minus the span), so dominance and fronts are exactly those of the original values and
crowding distances stay finite numbers instead of NaN.

NSGA-II uses DEAP (``sortLogNondominated``/``sortNondominated``, ``assignCrowdingDist``,
the survivor rule of ``selNSGA2``) on
throwaway individuals built here; ``deap.creator`` is never touched. DEAP's NSGA-II draws
no random numbers itself: ties (equal crowding distances at the cut, equal values when
sorting for crowding) fall to the input order, so ``nsga2`` first shuffles that order
with the caller's ``random.Random``, and runs DEAP on that stream (``private_random``)
in case a DEAP version starts drawing. The global ``random`` state is left as it was.
"""

from __future__ import annotations

import random

import numpy as np
from deap import base, tools
from deap.tools.emo import assignCrowdingDist

from evolve.search.trees import private_random

_FITNESS_TYPES: dict[int, type[base.Fitness]] = {}


def _fitness_type(k: int) -> type[base.Fitness]:
    """A ``base.Fitness`` subclass minimizing ``k`` objectives (one class per k)."""
    cls = _FITNESS_TYPES.get(k)
    if cls is None:
        cls = type(f"_MinFitness{k}", (base.Fitness,), {"weights": (-1.0,) * k})
        _FITNESS_TYPES[k] = cls
    return cls


class _Individual:
    """What DEAP's NSGA-II needs of an individual: a ``fitness``; ``index`` is ours."""

    __slots__ = ("fitness", "index")

    def __init__(self, fitness: base.Fitness, index: int):
        self.fitness = fitness
        self.index = index


def _as_objectives(objectives: np.ndarray) -> np.ndarray:
    obj = np.asarray(objectives, np.float64)
    if obj.ndim != 2:
        raise ValueError(f"objectives must have shape [n, k] (individuals x objectives), "
                         f"got {obj.shape}; for one objective pass objectives[:, None]")
    return obj


def _finite(obj: np.ndarray) -> np.ndarray:
    """Order-preserving per column: NaN/+Inf -> above every finite value, -Inf -> below."""
    out = obj.copy()
    for j in range(obj.shape[1]):
        col = obj[:, j]
        fin = col[np.isfinite(col)]
        lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 0.0)
        span = max(hi - lo, 1.0)
        worst, best = hi + span, lo - span
        if not np.isfinite(worst):
            worst = float(np.finfo(np.float64).max)
        if not np.isfinite(best):
            best = float(-np.finfo(np.float64).max)
        out[:, j] = np.where(np.isnan(col) | (col == np.inf), worst,
                             np.where(col == -np.inf, best, col))
    return out


def _individuals(obj: np.ndarray, order: list[int] | range) -> list[_Individual]:
    fitness = _fitness_type(obj.shape[1])
    rows = obj.tolist()
    return [_Individual(fitness(tuple(rows[i])), i) for i in order]


def nsga2(objectives: np.ndarray, mu: int, rng: random.Random) -> np.ndarray:
    """The ``mu`` NSGA-II survivors of ``objectives`` [n, k]: indices, ascending.

    Whole fronts are taken in rank order; the front that does not fit is cut by crowding
    distance, largest first. ``rng`` breaks ties and is advanced; the same ``rng`` state
    and the same input give the same survivors.
    """
    obj = _as_objectives(objectives)
    n = obj.shape[0]
    if not 0 <= mu <= n:
        raise ValueError(f"mu must be in 0..{n} (the number of individuals), got {mu}")
    if mu == 0:
        return np.zeros(0, np.int64)
    order = list(range(n))
    rng.shuffle(order)
    individuals = _individuals(_finite(obj), order)
    with private_random(rng):
        fronts = _fronts(individuals, mu)
        chosen = []
        for front in fronts:
            assignCrowdingDist(front)
            if len(chosen) + len(front) <= mu:
                chosen.extend(front)
                continue
            rng.shuffle(front)  # equal crowding distances fall to the caller's rng
            front.sort(key=lambda ind: ind.fitness.crowding_dist, reverse=True)
            chosen.extend(front[: mu - len(chosen)])
            break
    return np.sort(np.array([ind.index for ind in chosen], np.int64))


def _fronts(individuals: list, k: int) -> list[list]:
    """Non-dominated fronts covering at least ``k`` individuals, best first.

    Two or more objectives use DEAP's ``sortLogNondominated`` (Jensen's O(n log^(m-1) n)
    sort, about 30x faster than ``sortNondominated`` at n = 400); one objective uses
    ``sortNondominated``, which the log sort does not handle.
    """
    if not individuals:
        return []
    if len(individuals[0].fitness.values) >= 2:
        return tools.sortLogNondominated(individuals, k)
    return tools.sortNondominated(individuals, k)


def pareto_ranks(objectives: np.ndarray) -> np.ndarray:
    """The non-domination rank of each row of ``objectives`` [n, k]: 0 is the first front."""
    obj = _as_objectives(objectives)
    n = obj.shape[0]
    ranks = np.zeros(n, np.int64)
    if n == 0:
        return ranks
    fronts = _fronts(_individuals(_finite(obj), range(n)), n)
    for rank, front in enumerate(fronts):
        for ind in front:
            ranks[ind.index] = rank
    return ranks


def front_indices(objectives: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the non-dominated rows of ``objectives`` [n, k]."""
    obj = _as_objectives(objectives)
    n = obj.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    front = _fronts(_individuals(_finite(obj), range(n)), 1)[0]  # the first front only
    return np.sort(np.array([ind.index for ind in front], np.int64))


def accuracy_first(error: np.ndarray, cost: np.ndarray, target: float) -> np.ndarray:
    """Objectives [n, 2] for the staged search of AutoNumerics-Zero: accuracy, then cost.

    Row i is ``(max(error[i], target), cost[i])``: a program that misses the target
    (error > target) competes on (error, cost); one that meets it (error <= target) has
    its error objective clipped to ``target``, so among those only cost matters, and a
    program that meets the target is never dominated by one that misses it.

    Non-finite values: NaN cost becomes +Inf; a NaN or +Inf error makes both objectives
    +Inf, so a broken program cannot hold a place on the front by being cheap.
    """
    e = np.asarray(error, np.float64)
    c = np.asarray(cost, np.float64)
    if e.ndim != 1 or e.shape != c.shape:
        raise ValueError(f"error and cost must both have shape [n], got {e.shape} and {c.shape}")
    e = np.where(np.isnan(e), np.inf, e)
    c = np.where(np.isnan(c) | (e == np.inf), np.inf, c)
    return np.stack([np.maximum(e, float(target)), c], axis=1)
