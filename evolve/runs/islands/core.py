"""Islands: several searches of one problem side by side, exchanging their best programs.

An island run has N islands, each a full engine state (population, keys, counters) with
its own randomness: island i's key comes from the run's root key ``jax.random.key(seed)``
by ``fold_in``. The probe set is drawn from the root key, so fingerprints mean the same on
every island, and by default the islands share one equivalence cache and one cache of
fitted structures (``evolve.search.shared_cache``: each island sees the shared cache as it was at
the start of the generation plus its own inserts; the islands' changes are applied in
island order at the generation boundary).

At the boundary after generation g, in this order:

  1. the islands' cache logs are applied to the shared caches, island 0 first;
  2. stagnation: an island whose best error has not improved for
     ``reset_stagnant_after`` generations (and which is not the best island) is reset
     from the best island: its population is replaced by the best island's ``migrants``
     best programs (FunSearch's reset of weak islands, founded from a strong one);
  3. migration, when g is a multiple of ``migrate_every``: every island sends copies of
     its ``migrants`` best programs (by Pareto rank, then error, then cost) to one other
     island, the next one on a ring or one drawn from the key of generation g; the
     receiving island adds them to its population and selects back to its size.

Everything there is decided from data and keys, never from timing, so a run of islands
in one process, the same run with islands as Ray actors (``evolve.runs.islands.ray_actors``), and a
run stopped and resumed, give the same result.

Runs on disk: the checkpoint holds every island's state and the shared caches
(``evolve.runs.checkpoint``); metrics.csv has an ``island`` column, with one row per island
and then a row ``all`` for the run per generation (sums of counts, minima of errors, the
front over all islands, the generation's wall time); front.csv is the Pareto front over
all islands.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace

import jax
import numpy as np

from evolve.errors import UserError
from evolve.runs.checkpoint import states_data
from evolve.search.engine import Children, Engine, Step
from evolve.search.fec import FECache
from evolve.search.selection import front_indices, pareto_ranks
from evolve.search.shared_cache import SharedCacheView, apply_log
from evolve.search.state import IslandsState, Members, State, front
from evolve.search.variation import rng_from_key

SHARED = ("cache", "structures")  # the State fields that islands share
TOTAL = "all"  # the island column of the rows for the whole run

# Purposes of keys folded into the root key (far from the engine's own small purposes).
_ISLAND, _MIGRATE = 1_000_001, 1_000_002


@dataclass(frozen=True)
class IslandParams:
    """Islands and where they run (the ``islands`` part of the run configuration)."""

    count: int = 1
    migrate_every: int = 10
    migrants: int = 2
    topology: str = "ring"  # "ring" or "random"
    reset_stagnant_after: int | None = None
    shared_cache: bool = True
    ray_address: str | None = None  # None: in this process; "local", "auto" or an address


def uses_islands(params: IslandParams) -> bool:
    """Whether a run with ``params`` is an island run (else a plain single search)."""
    return params.count > 1 or params.ray_address is not None


def island_seed(seed: int, island: int) -> int:
    """The seed of island ``island``'s engine state, derived from the run's seed."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _ISLAND), island)
    return int(rng_from_key(key).integers(2**62))


def elite(engine: Engine, state: State, k: int) -> Members:
    """The ``k`` best programs of ``state``: by Pareto rank, then error, then cost."""
    obj = engine._objectives(state.error, state.cost)
    ranks = pareto_ranks(obj)
    order = np.lexsort((np.arange(len(ranks)), obj[:, 1], obj[:, 0], ranks))
    return Members.of(state, order[:k])


# -- one island ---------------------------------------------------------------------------
@dataclass
class Plan:
    """What happens to one island at a generation boundary."""

    founders: Members | None = None  # reset: the population becomes these
    arrivals: list[Members] = field(default_factory=list)  # migrants, by source island
    seed: int = 0  # of the selection after arrivals


@dataclass
class Stepped:
    """What an island reports after a generation (small: it travels to the driver)."""

    row: dict | None  # the engine's metrics row (None after generation 0)
    elite: Members
    best_error: float
    children: Children | None = None  # the generation's children (None after generation 0)


@dataclass
class After:
    """What an island reports after a boundary: its front and fingerprints."""

    front: Members
    fingerprints: list[bytes]
    evaluations: int


class Island:
    """One island: an engine state stepped by ``engine`` and changed at boundaries.

    ``shared`` maps "cache" and "structures" to the caches the islands share (None: the
    island has caches of its own). The caches' logs (``step``'s second result) must be
    applied to ``shared`` in island order, with every other island's, before the next step.
    """

    def __init__(self, engine: Engine, index: int, params: IslandParams,
                 shared: dict[str, FECache] | None):
        self.engine, self.index, self.params, self.shared = engine, index, params, shared
        self.state: State | None = None

    def init(self, seed: int) -> tuple[Stepped, dict | None]:
        """Generation 0 of this island of the run of ``seed``."""
        caches = None
        if self.shared is not None:
            caches = tuple(SharedCacheView(self.shared[name], name) for name in SHARED)
        self.state = self.engine.init(island_seed(seed, self.index),
                                      probe_key=jax.random.key(seed), caches=caches)
        return self._stepped(None), self._log()

    def step(self) -> tuple[Stepped, dict | None]:
        """One generation; returns its report and the shared caches' log."""
        self.state, children, row = self.engine.step(self.state)
        return self._stepped(row, children), self._log()

    def _stepped(self, row: dict | None, children: Children | None = None) -> Stepped:
        error = self.state.error
        best = float(np.min(error)) if len(error) else math.inf
        return Stepped(row, elite(self.engine, self.state, max(self.params.migrants, 1)), best,
                       children)

    def _log(self) -> dict | None:
        if self.shared is None:
            return None
        return {name: getattr(self.state, name).take_log() for name in SHARED}

    def receive(self, plan: Plan) -> After:
        """Apply ``plan`` (reset, arrivals) to this island's population."""
        if plan.founders is None and not plan.arrivals:
            return After(front(self.state), list(self.state.fingerprints),
                         self.state.evaluations)
        m = plan.founders or Members.of(self.state, range(len(self.state.programs)))
        for a in plan.arrivals:
            m = Members(m.programs + a.programs, np.concatenate([m.error, a.error]),
                        np.concatenate([m.cost, a.cost]), m.fingerprints + a.fingerprints,
                        m.genomes + a.genomes)
        if plan.arrivals:
            keep = self.engine._select(m.error, m.cost, m.fingerprints, random.Random(plan.seed))
            m = Members([m.programs[i] for i in keep], m.error[keep], m.cost[keep],
                        [m.fingerprints[i] for i in keep],
                        [m.genomes[i] for i in keep] if m.genomes else [])
        changes = {"programs": list(m.programs), "error": np.array(m.error, np.float64),
                   "cost": np.array(m.cost, np.float64), "fingerprints": list(m.fingerprints)}
        if hasattr(self.state, "genomes"):
            changes["genomes"] = list(m.genomes)
        if getattr(self.state, "ideals", None) is not None:
            changes["ideals"] = None  # ideal mates belong to the old population: drawn afresh
        self.state = replace(self.state, **changes)
        return After(front(self.state), list(self.state.fingerprints), self.state.evaluations)


def apply_logs(shared: dict[str, FECache], logs: list[dict | None]) -> None:
    """Apply the islands' cache ``logs`` to ``shared``, island 0 first."""
    for log in logs:
        if log is not None:
            for name in SHARED:
                apply_log(shared[name], log[name])


def new_shared(engine: Engine) -> dict[str, FECache]:
    """Empty shared caches sized by the engine's parameters."""
    p = engine.params
    return {"cache": FECache(p.fec_capacity, p.fec_max_hits, p.audit_rate),
            "structures": FECache(p.fec_capacity)}


def plan_boundary(params: IslandParams, key: jax.Array, generation: int, state: IslandsState,
                  stepped: list[Stepped]) -> tuple[list[Plan], list[float], list[int]]:
    """The boundary after ``generation``: each island's plan, and the new best errors
    and stagnation counts (module docstring, steps 2 and 3)."""
    n = len(stepped)
    best, stagnant = list(state.best), list(state.stagnant)
    for i, s in enumerate(stepped):
        if s.best_error < best[i]:
            best[i], stagnant[i] = s.best_error, 0
        else:
            stagnant[i] += 1
    plans = [Plan() for _ in range(n)]
    after = params.reset_stagnant_after
    if after is not None and n > 1:
        top = min(range(n), key=lambda i: (stepped[i].best_error, i))
        for i in range(n):
            if i != top and stagnant[i] >= after:
                plans[i].founders = founders = stepped[top].elite
                best[i], stagnant[i] = float(np.min(founders.error)), 0
    if n > 1 and params.migrants > 0 and generation % params.migrate_every == 0:
        rng = rng_from_key(jax.random.fold_in(jax.random.fold_in(key, _MIGRATE), generation))
        if params.topology == "ring":
            dest = [(i + 1) % n for i in range(n)]
        else:
            dest = [(i + 1 + int(rng.integers(0, n - 1))) % n for i in range(n)]
        seeds = rng.integers(0, 2**62, n)
        for i in range(n):
            plans[dest[i]].arrivals.append(stepped[i].elite)
        for i in range(n):
            plans[i].seed = int(seeds[i])
    return plans, best, stagnant


# -- rows ---------------------------------------------------------------------------------
_MIN = ("best_error", "best_cost_at_target")
_MEAN = {"diversity"}  # per-island measures of spread: averaged over the islands


def island_row(row: dict, island: int, plan: Plan) -> dict:
    """An island's metrics row: the engine's, with the island and its boundary."""
    out = {"generation": row["generation"], "island": island}
    out.update((k, v) for k, v in row.items() if k != "generation")
    out["immigrants"] = sum(len(m.programs) for m in plan.arrivals)
    out["reset"] = int(plan.founders is not None)
    lookups = row.get("cache_hits", 0) + row.get("cache_misses", 0)
    out["cache_hit_rate"] = row.get("cache_hits", 0) / lookups if lookups else math.nan
    return out


def total_row(rows: list[dict], state: IslandsState, fingerprints: int,
              wall_seconds: float) -> dict:
    """The run's row of a generation from its islands' rows: counts summed, errors
    minimised, diversity averaged, the front over all islands, the generation's wall
    time."""
    out = {}
    for k in rows[0]:
        values = [r[k] for r in rows]
        if k == "island":
            out[k] = TOTAL
        elif k == "generation":
            out[k] = values[0]
        elif k in _MIN:
            finite = [v for v in values if not math.isnan(v)]
            out[k] = min(finite) if finite else math.nan
        elif k == "front_size":
            out[k] = len(front_indices(np.stack([state.error, state.cost], 1))) \
                if len(state.error) else 0
        elif k == "unique_fingerprints":
            out[k] = fingerprints
        elif k.endswith("_seconds"):
            out[k] = wall_seconds
        elif k in _MEAN:
            finite = [v for v in values if not math.isnan(v)]
            out[k] = sum(finite) / len(finite) if finite else math.nan
        elif k == "cache_hit_rate":
            hits = sum(r.get("cache_hits", 0) for r in rows)
            lookups = hits + sum(r.get("cache_misses", 0) for r in rows)
            out[k] = hits / lookups if lookups else math.nan
        else:
            out[k] = sum(values)
    return out


# -- the driver ---------------------------------------------------------------------------
class IslandSearch:
    """A run of islands, stepped a generation at a time (what ``evolve.runs.driver`` drives).

    ``backend`` runs the islands: ``InProcess`` here, ``evolve.runs.islands.ray_actors.RayIslands`` on
    Ray. ``init(seed)`` and ``step(state)`` mirror ``Engine``; ``step`` returns a ``Step``
    whose children are a list (one ``Children`` per island) and whose row is a list: the
    islands' rows and the run's row, last. A state returned by ``step`` is live: only the
    newest one may be checkpointed.
    """

    def __init__(self, params: IslandParams, backend):
        self.params, self.backend = params, backend
        self._current: IslandsState | None = None

    def init(self, seed: int) -> IslandsState:
        key = jax.random.key(seed)
        stepped = self.backend.init(seed)
        after = self.backend.boundary(0, [Plan() for _ in stepped])
        state = IslandsState(0, key, [s.best_error for s in stepped], [0] * len(stepped),
                             sum(a.evaluations for a in after),
                             Members.union([a.front for a in after]))
        return self._live(state)

    def step(self, state: IslandsState, vary=None) -> Step:
        if vary is not None:
            raise ValueError("islands do not take LLM edits (vary) yet")
        t0 = time.perf_counter()
        if state is not self._current:
            check_state(state, self.params)
            self.backend.load(state)
        g = state.generation + 1
        stepped = self.backend.step(g)
        plans, best, stagnant = plan_boundary(self.params, state.key, g, state, stepped)
        after = self.backend.boundary(g, plans)
        new = IslandsState(g, state.key, best, stagnant, sum(a.evaluations for a in after),
                           Members.union([a.front for a in after]))
        rows = [island_row(s.row, i, p) for i, (s, p) in enumerate(zip(stepped, plans))]
        fps = len({fp for a in after for fp in a.fingerprints})
        rows.append(total_row(rows, new, fps, time.perf_counter() - t0))
        return Step(self._live(new), [s.children for s in stepped], rows)

    def _live(self, state: IslandsState) -> IslandsState:
        state.data = self.backend.data
        state.islands, state.shared = self.backend.states()
        self._current = state
        return state

    def close(self) -> None:
        self.backend.close()


class InProcess:
    """Islands in this process, stepped one after another (no service to start)."""

    def __init__(self, engine: Engine, params: IslandParams):
        self.engine, self.params = engine, params
        self.islands: list[Island] = []
        self.shared: dict[str, FECache] | None = None
        self._logs: list = []

    def init(self, seed: int) -> list[Stepped]:
        self.shared = new_shared(self.engine) if self.params.shared_cache else None
        self.islands = [Island(self.engine, i, self.params, self.shared)
                        for i in range(self.params.count)]
        out = [island.init(seed) for island in self.islands]
        self._logs = [log for _, log in out]
        return [s for s, _ in out]

    def load(self, state: IslandsState) -> None:
        self.shared = state.shared
        self.islands = []
        for i, s in enumerate(state.islands):
            island = Island(self.engine, i, self.params, self.shared)
            island.state = s
            self.islands.append(island)
        self._logs = []

    def step(self, generation: int) -> list[Stepped]:
        out = [island.step() for island in self.islands]
        self._logs = [log for _, log in out]
        return [s for s, _ in out]

    def boundary(self, generation: int, plans: list[Plan]) -> list[After]:
        if self.shared is not None:
            apply_logs(self.shared, self._logs)
        self._logs = []
        return [island.receive(plan) for island, plan in zip(self.islands, plans)]

    def states(self) -> tuple[list[State], dict[str, FECache] | None]:
        return [island.state for island in self.islands], self.shared

    def data(self) -> tuple[list, dict]:
        return states_data([island.state for island in self.islands], self.shared)

    def close(self) -> None:
        pass


def check_state(state, params: IslandParams) -> None:
    """``UserError`` unless ``state`` (read from a checkpoint) is a state that a run with
    ``params`` continues: islands, as many, or one plain search."""
    islands = isinstance(state, IslandsState)
    if islands != uses_islands(params) or (islands and state.count != params.count):
        held = f"{state.count} islands" if islands else "one search (no islands)"
        asked = f"{params.count} islands" if uses_islands(params) else "one search"
        raise UserError(f"the run's checkpoints hold {held}, but its config.yaml asks for "
                        f"{asked}; set islands.count in config.yaml back to what the run "
                        "began with")
