"""The search state as data: what a checkpoint writes and a resume reads back.

``State`` is one search (the population with its objectives and fingerprints, the caches,
the keys and counters); ``Members`` a few programs with their objectives (an elite, a
front, migrants); ``IslandsState`` a run of islands at a generation boundary. Nothing
here runs a search: the engine (``evolve.search.engine``) and the islands
(``evolve.runs.islands.core``) make these, and checkpoints (``evolve.runs.checkpoint``)
read and write them without importing either.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import numpy as np

from evolve.program import Program
from evolve.search.fec import FECache
from evolve.search.selection import front_indices


@dataclass
class State:
    """Everything a search needs to continue: written by checkpoints, read on resume."""

    generation: int
    key: jax.Array
    programs: list[Program]
    error: np.ndarray  # float64 [n]
    cost: np.ndarray  # float64 [n]
    fingerprints: list[bytes]
    cache: FECache  # fingerprint -> objectives
    structures: FECache  # structure fingerprint -> fitted literals
    evaluations: int = 0
    fits: int = 0
    probe_key: jax.Array | None = None  # the probe set's key, if not ``key`` (islands share one)
    genomes: list[str] = field(default_factory=list)  # trees as text, one per program (tree
    #                                                    representation; empty for linear)
    tree_random: random.Random | None = None  # DEAP's private stream (tree representation)
    ideals: np.ndarray | None = None  # float64 [n, d]: ideal mates (mating "ideal")
    # The rule that made ``fingerprints`` and the caches' keys (evolve.search.fingerprints.FINGERPRINT_HASH).
    # Checkpoints written before the rule was recorded used blake2b: the engine fingerprints
    # their population again on resume (their cached entries never match again).
    fingerprint_hash: str = "blake2b-128"


@dataclass
class Members:
    """Programs with their objectives and fingerprints (an elite, a front, founders)."""

    programs: list[Program]
    error: np.ndarray  # float64 [n]
    cost: np.ndarray  # float64 [n]
    fingerprints: list[bytes]
    genomes: list[str] = field(default_factory=list)  # trees' text (tree representation)

    @classmethod
    def of(cls, state: State, idx) -> Members:
        idx = [int(i) for i in idx]
        genomes = getattr(state, "genomes", None) or []
        return cls([state.programs[i] for i in idx], state.error[idx].copy(),
                   state.cost[idx].copy(), [state.fingerprints[i] for i in idx],
                   [genomes[i] for i in idx] if genomes else [])

    @classmethod
    def union(cls, parts: list[Members]) -> Members:
        """The members of ``parts`` in order, one per fingerprint (the first seen)."""
        seen, keep = set(), []
        for part in parts:
            for i, fp in enumerate(part.fingerprints):
                if fp not in seen:
                    seen.add(fp)
                    keep.append((part, i))
        return cls([p.programs[i] for p, i in keep],
                   np.array([p.error[i] for p, i in keep], np.float64),
                   np.array([p.cost[i] for p, i in keep], np.float64),
                   [p.fingerprints[i] for p, i in keep])


def front(state: State) -> Members:
    """The Pareto front of (error, cost) of ``state``."""
    if not state.programs:
        return Members([], np.zeros(0), np.zeros(0), [])
    return Members.of(state, front_indices(np.stack([state.error, state.cost], axis=1)))


@dataclass
class IslandsState:
    """A run of islands at a generation boundary, as the driver sees it.

    ``programs``, ``error`` and ``cost`` are the Pareto front over all islands (what
    front.csv and the summary show). ``islands`` and ``shared`` hold the islands' states
    when they live in this process (or were read from a checkpoint); ``data`` gives the
    islands' checkpoint data wherever they live (``evolve.runs.checkpoint.islands_to_data``).
    """

    generation: int
    key: jax.Array  # the run's root key
    best: list[float]  # each island's best error so far
    stagnant: list[int]  # generations since each island's best improved
    evaluations: int
    front: Members
    islands: list[State] | None = None
    shared: dict[str, FECache] | None = None
    data: Callable[[], tuple[list, dict]] | None = field(default=None, repr=False)

    @property
    def count(self) -> int:
        return len(self.best)

    @property
    def programs(self) -> list[Program]:
        return self.front.programs

    @property
    def error(self) -> np.ndarray:
        return self.front.error

    @property
    def cost(self) -> np.ndarray:
        return self.front.cost

    def run_scalars(self) -> dict:
        """The run-level fields (besides generation and key) as JSON data."""
        return {"best": [_json_float(b) for b in self.best], "stagnant": list(self.stagnant)}

    @staticmethod
    def from_islands(generation: int, key: jax.Array, run: dict, states: list[State],
                     shared: dict[str, FECache] | None,
                     data: Callable[[], tuple[list, dict]]) -> IslandsState:
        """The state of islands read back (``run`` as ``run_scalars`` wrote it); ``data``
        gives their checkpoint data."""
        return IslandsState(generation, key, [float(b) for b in run["best"]],
                            [int(s) for s in run["stagnant"]],
                            sum(s.evaluations for s in states),
                            Members.union([front(s) for s in states]), states, shared, data)


def _json_float(x: float) -> float | str:
    return x if math.isfinite(x) else repr(float(x))
