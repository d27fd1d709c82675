"""Selection over objective arrays: NSGA-II, Pareto ranks and fronts, staged objectives.

Every objective is minimized. Selection functions are pure functions of explicit arrays
and an explicit random state; they return indices into the arrays they were given.

Non-finite objectives: NaN counts as +Inf, the worst value. Before DEAP sees them, each
objective column is mapped by an order-preserving substitution (+Inf and NaN -> the
column's largest finite value plus its finite span (at least 1); -Inf -> the smallest
minus the span) before sorting, so dominance and fronts are exactly those of the original
values and crowding distances are numbers instead of NaN (unless differences overflow
float64).

Two objectives (the engine's (error, cost)) run on arrays: Jensen's sort-and-sweep for
the fronts (O(n log n)), crowding distance by sorting within the cut front. Other numbers
of objectives use DEAP (``sortLogNondominated``/``sortNondominated``,
``assignCrowdingDist``, the survivor rule of ``selNSGA2``) on throwaway individuals built
here; ``deap.creator`` is never touched. The array path returns exactly what the DEAP
path (``_deap_nsga2``, ``_deap_ranks``) returns for the same input and ``rng`` state, and
leaves ``rng`` in the same state, so runs are unchanged by the switch.

DEAP's NSGA-II draws no random numbers itself: ties (equal crowding distances at the cut,
equal values when sorting for crowding) fall to the input order, so ``nsga2`` first
permutes that order at random; the front that is cut is permuted again before it is
sorted by distance. Both permutations come from one numpy generator seeded with 64 bits
of the caller's ``random.Random`` (``_permutations``: ``rng`` advances by those bits
alone), drawn as arrays: ``random.shuffle``, used before, took about 0.05 s a call at
200,000 individuals (2-core AMD EPYC). The DEAP path runs on ``rng``'s stream (``private_random``) in case a DEAP
version starts drawing, and hands ``rng`` back the state it had after the seed was drawn.
The global ``random`` state is left as it was.
"""

from __future__ import annotations

import bisect
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


# -- two objectives: arrays ----------------------------------------------------------
def _lex_groups(obj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``obj`` [n, 2] in lexicographic order (stable), and which start a new point.

    Returns ``order`` int64[n] (a stable lexicographic argsort: equal rows keep their
    order) and ``new`` bool[n], True where ``obj[order]`` differs from the row before.
    """
    order = np.lexsort((obj[:, 1], obj[:, 0]))
    s = obj[order]
    new = np.ones(len(order), bool)
    new[1:] = (s[1:, 0] != s[:-1, 0]) | (s[1:, 1] != s[:-1, 1])
    return order, new


def _sweep_ranks(second: np.ndarray) -> np.ndarray:
    """Front index (int64) of each of the distinct points, given in lexicographic order.

    ``second`` float64[m] is the second objective of m distinct points sorted by (first,
    second). A point's front is the first whose smallest second objective so far
    exceeds its own (Jensen's sweep; binary search over the fronts' minima). Where the
    second objective takes few values (a cost in whole operations), ``_level_ranks``
    computes the same with array operations.
    """
    levels = np.unique(second)
    if len(levels) * len(second) <= _LEVEL_WORK:
        return _level_ranks(second, levels)
    return _bisect_ranks(second)


_LEVEL_WORK = 1 << 25  # distinct values x points up to which _level_ranks is used


def _level_ranks(second: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``_sweep_ranks`` by value levels of ``second``, lowest first: O(m) array work each.

    The points earlier in the order that dominate point i are those with a second
    objective <= its own. Of a level's points (in order, k = 0, 1, ...), point k's rank
    is one more than the highest rank b_k of an earlier point of a lower level, or than
    the rank of the level's point k - 1 (which dominates it): r_k = max(b_k + 1,
    r_(k-1) + 1), that is r_k = k + max over j <= k of (b_j + 1 - j), a running maximum.
    """
    m = len(second)
    ranks = np.full(m, -1, np.int64)
    below = np.full(m + 1, -1, np.int64)  # below[p]: the highest rank at positions < p
    for value in levels:
        pos = np.flatnonzero(second == value)
        k = np.arange(len(pos))
        ranks[pos] = k + np.maximum.accumulate(below[pos] + 1 - k)
        below[1:] = np.maximum.accumulate(ranks)
    return ranks


def _bisect_ranks(second: np.ndarray) -> np.ndarray:
    """``_sweep_ranks`` point by point (any number of distinct values)."""
    minima: list[float] = []
    ranks = [0] * len(second)
    for i, x in enumerate(second.tolist()):
        f = bisect.bisect_right(minima, x)
        if f == len(minima):
            minima.append(x)
        else:
            minima[f] = x
        ranks[i] = f
    return np.array(ranks, np.int64)


def _ranks_2d(obj: np.ndarray) -> np.ndarray:
    """Non-domination ranks int64[n] of finite ``obj`` [n, 2] (equal rows share a rank)."""
    order, new = _lex_groups(obj)
    point = np.cumsum(new) - 1
    ranks = np.empty(len(order), np.int64)
    ranks[order] = _sweep_ranks(obj[order[new], 1])[point]
    return ranks


def _crowding_2d(front: np.ndarray) -> np.ndarray:
    """DEAP's ``assignCrowdingDist`` of ``front`` [L, 2], rows in DEAP's order: float64[L].

    Per objective, the rows are stably sorted by it (the second sort starts from the
    first's order), the first and last get +Inf, and, unless the objective is constant,
    each middle row adds (next - previous) / (2 * (last - first)).
    """
    dist = np.zeros(len(front))
    perm = np.arange(len(front))
    for j in range(2):
        perm = perm[np.argsort(front[perm, j], kind="stable")]
        dist[perm[0]] = dist[perm[-1]] = np.inf
        v = front[perm, j]
        if v[-1] == v[0]:
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # as in Python floats
            dist[perm[1:-1]] += (v[2:] - v[:-2]) / (2.0 * (v[-1] - v[0]))
    return dist


def _nsga2_2d(obj: np.ndarray, mu: int, rng: random.Random) -> np.ndarray | None:
    """``nsga2`` for finite ``obj`` [n, 2], 0 < mu <= n; ``None`` where DEAP's crowding
    distance would be NaN (objective differences overflowing float64): the caller then
    restores ``rng`` and runs DEAP."""
    n = len(obj)
    gen = _permutations(rng)
    shuffled = gen.permutation(n)  # shuffled[p]: the row at position p
    sobj = obj[shuffled]
    ranks = _ranks_2d(sobj)
    filled = np.cumsum(np.bincount(ranks))
    cut = int(np.searchsorted(filled, mu))  # the first front that reaches mu
    if filled[cut] == mu:
        return np.sort(shuffled[ranks <= cut])
    taken = np.flatnonzero(ranks < cut)
    members = np.flatnonzero(ranks == cut)  # positions, ascending
    # DEAP's front order: by point (lexicographic), equal rows in shuffled order
    members = members[np.lexsort((sobj[members, 1], sobj[members, 0]))]
    dist = _crowding_2d(sobj[members])
    if np.isnan(dist).any():
        return None
    mixed = gen.permutation(len(members))  # the cut front's order before the sort by distance
    best = mixed[np.argsort(-dist[mixed], kind="stable")[: mu - len(taken)]]
    return np.sort(shuffled[np.concatenate([taken, members[best]])])


# -- public ------------------------------------------------------------------------------
def nsga2(objectives: np.ndarray, mu: int, rng: random.Random) -> np.ndarray:
    """The ``mu`` NSGA-II survivors of ``objectives`` [n, k]: indices (int64), ascending.

    Whole fronts are taken in rank order; the front that does not fit is cut by crowding
    distance, largest first. ``rng`` breaks ties and is advanced; the same ``rng`` state
    and the same input give the same survivors. Two objectives run on arrays, with the
    same survivors and the same ``rng`` draws as DEAP's path (``_deap_nsga2``), which
    other k use.
    """
    obj = _as_objectives(objectives)
    n = obj.shape[0]
    if not 0 <= mu <= n:
        raise ValueError(f"mu must be in 0..{n} (the number of individuals), got {mu}")
    if mu == 0:
        return np.zeros(0, np.int64)
    if obj.shape[1] == 2:
        state = rng.getstate()
        chosen = _nsga2_2d(_finite(obj), mu, rng)
        if chosen is not None:
            return chosen
        rng.setstate(state)
    return _deap_nsga2(obj, mu, rng)


def _permutations(rng: random.Random) -> np.random.Generator:
    """The generator of ``nsga2``'s two permutations (the input order, then the cut front),
    seeded with 64 bits of ``rng``."""
    return np.random.default_rng(rng.getrandbits(64))


def _deap_nsga2(obj: np.ndarray, mu: int, rng: random.Random) -> np.ndarray:
    """``nsga2`` through DEAP for ``obj`` [n, k], 0 < mu <= n (any k)."""
    gen = _permutations(rng)
    individuals = _individuals(_finite(obj), gen.permutation(obj.shape[0]).tolist())
    with private_random(rng):
        fronts = _fronts(individuals, mu)
        chosen = []
        for front in fronts:
            assignCrowdingDist(front)
            if len(chosen) + len(front) <= mu:
                chosen.extend(front)
                continue
            front = [front[i] for i in gen.permutation(len(front))]  # ties: at random
            front.sort(key=lambda ind: ind.fitness.crowding_dist, reverse=True)
            chosen.extend(front[: mu - len(chosen)])
            break
    return np.sort(np.array([ind.index for ind in chosen], np.int64))


def _fronts(individuals: list, k: int) -> list[list]:
    """Non-dominated fronts covering at least ``k`` individuals, best first (DEAP).

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
    """The non-domination rank (int64[n]) of each row of ``objectives`` [n, k]: 0 is the
    first front. Equal rows share a rank (neither dominates the other)."""
    obj = _as_objectives(objectives)
    n, k = obj.shape
    if n == 0:
        return np.zeros(0, np.int64)
    if k == 1:
        return np.unique(_finite(obj)[:, 0], return_inverse=True)[1].astype(np.int64)
    if k == 2:
        return _ranks_2d(_finite(obj))
    return _deap_ranks(obj)


def _deap_ranks(obj: np.ndarray) -> np.ndarray:
    """``pareto_ranks`` through DEAP's sort, for ``obj`` [n, k], n > 0 (any k)."""
    ranks = np.zeros(obj.shape[0], np.int64)
    fronts = _fronts(_individuals(_finite(obj), range(obj.shape[0])), obj.shape[0])
    for rank, front in enumerate(fronts):
        for ind in front:
            ranks[ind.index] = rank
    return ranks


def front_indices(objectives: np.ndarray) -> np.ndarray:
    """Indices (int64, ascending) of the non-dominated rows of ``objectives`` [n, k]."""
    obj = _as_objectives(objectives)
    n, k = obj.shape
    if n == 0:
        return np.zeros(0, np.int64)
    if k == 1:
        return np.flatnonzero(pareto_ranks(obj) == 0).astype(np.int64)
    if k == 2:  # in lexicographic order, a point is on the front iff its second objective
        #         is below every earlier distinct point's (equal rows share their fate)
        obj = _finite(obj)
        order, new = _lex_groups(obj)
        second = obj[order[new], 1]
        earlier = np.concatenate([[np.inf], np.minimum.accumulate(second)[:-1]])
        on = (second < earlier)[np.cumsum(new) - 1]
        return np.sort(order[on]).astype(np.int64)
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
