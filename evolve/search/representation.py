"""Representations: what a genome is, how a population starts and how children are made.

The engine works on ``Program``s throughout (fingerprints, constant fitting, evaluation,
selection); a representation says where they come from (``SearchParams.representation``):

- ``linear``: the genome is the straight-line program itself; children are made on
  arrays, a whole generation in one jitted call (``evolve.search.batch_variation``);
- ``tree``: the genome is a DEAP ``PrimitiveTree`` (``evolve.search.trees``), compiled into a
  program (Sethi-Ullman registers) for everything else, so trees and linear programs
  share one evaluator, one fingerprint and one cache. The state keeps each tree as text
  (``State.genomes``, read back by our own parser), and the private ``random.Random``
  that DEAP's generators and operators draw from (``State.tree_random``); both go into
  checkpoints, so a tree run resumes exactly. Limits against bloat: a child with more
  than ``max_size`` nodes, higher than ``max_height``, or needing more registers than the
  problem has is made again (``max_tries`` times, then the first parent is copied, as
  DEAP's ``staticLimit`` does). Fitted literals are written back into the trees.

A representation holds no run state: everything that changes is in the ``State`` it is
given (its ``tree_random`` is advanced in place, like the caches).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import jax
import numpy as np
from deap import gp

from evolve.batch import Programs, padded
from evolve.problem import REPRESENTATIONS
from evolve.program import Program, ProgramBatch, bucket, from_rows, to_arrays
from evolve.search.batch_variation import kinds_text, make_children
from evolve.search.trees import (
    TREE_MUTATIONS,
    Code,
    compile_tree,
    crossover,
    mutate,
    parse_tree,
    primitive_set,
    random_trees,
    tree_text,
    with_literals,
    within_limits,
)
from evolve.search.variation import CROSSOVERS, Space, random_program, rng_from_key

CROSSOVER_KINDS = frozenset(CROSSOVERS) | {"one_point"}


@dataclass(frozen=True)
class TreeParams:
    """How trees are made and varied (the ``search.tree`` part of the configuration)."""

    init_depth: tuple[int, int] = (1, 4)  # ramped half-and-half depths of generation 0
    max_height: int = 12
    max_size: int | None = None  # nodes; None: the problem's max_length
    crossover_rate: float = 0.5  # else one mutation
    mutation_weights: dict = field(default_factory=lambda: {
        "uniform": 1.0, "node_replacement": 1.0, "shrink": 0.5, "ephemeral": 0.5,
        "insert": 0.5})
    subtree_depth: tuple[int, int] = (0, 2)  # depths of the subtrees uniform mutation grows
    literal_range: tuple[float, float] = (-1.0, 1.0)
    max_tries: int = 8


def crossed(kinds: list[str]) -> np.ndarray:
    """Which children (by their kinds, e.g. "two_point+rewire") came from crossover."""
    return np.array([any(k in CROSSOVER_KINDS for k in kind.split("+")) for kind in kinds],
                    bool)


class LinearRepresentation:
    """Straight-line programs as their own genomes (``evolve.search.variation``)."""

    name = "linear"

    def __init__(self, problem, params):
        self.space = Space.from_problem(problem)
        self.params = params
        self.length = bucket(problem.max_length)

    def new_random(self, key: jax.Array) -> None:
        return None

    def initial(self, rng: np.random.Generator, state, n: int
                ) -> tuple[list[Program], list[str]]:
        lo, hi = self.params.init_length
        programs = [random_program(rng, self.space, int(rng.integers(lo, hi + 1)))
                    for _ in range(n)]
        return programs, []

    def children(self, rng: np.random.Generator, state, pairs: np.ndarray, key: jax.Array
                 ) -> tuple[ProgramBatch, list[str], list[str]]:
        """One child per row of ``pairs``, made on arrays in one jitted call
        (``evolve.search.batch_variation``), and how each was made."""
        parents = state.programs.batch if isinstance(state.programs, Programs) else \
            to_arrays(list(state.programs), length=self.length)
        # parents padded to a power of two of rows: one compile for a run's generations
        rows = bucket(len(parents.length), minimum=32)
        children, crossed_kind, mutated_kind = make_children(
            key, padded(parents, rows, self.length), np.asarray(pairs, np.int32), self.space,
            self.params.variation)
        return (ProgramBatch(*(np.asarray(a) for a in children)), [],
                kinds_text(crossed_kind, mutated_kind))

    def absorb(self, genomes: list[str], programs: Programs,
               changed: np.ndarray | None = None) -> list[str]:
        return genomes


class TreeRepresentation:
    """DEAP expression trees over the problem's ops, compiled into programs."""

    name = "tree"

    def __init__(self, problem, params):
        self.problem = problem
        self.params = params.tree
        ops = [o for o in problem.ops if o != "const"]
        self.pset = primitive_set(ops, problem.n_inputs, self.params.literal_range)
        self.max_size = min(self.params.max_size or problem.max_length, problem.max_length)
        names = [k for k in TREE_MUTATIONS if self.params.mutation_weights.get(k, 0) > 0]
        if not names:
            raise ValueError("search.tree.mutation_weights are all 0; give one a weight > 0")
        self._mutations = names
        self._weights = [float(self.params.mutation_weights[k]) for k in names]
        # text -> (tree, its code): parsed and compiled once, a cache of pure functions
        self._known: dict[str, tuple[gp.PrimitiveTree, Code]] = {}
        self.length = bucket(problem.max_length)

    # -- genomes -------------------------------------------------------------------
    def _entry(self, text: str) -> tuple[gp.PrimitiveTree, Code]:
        entry = self._known.get(text)
        if entry is None:
            tree = parse_tree(text, self.pset)
            entry = self._remember(tree, self._code(tree))[1]
        return entry

    def tree(self, text: str) -> gp.PrimitiveTree:
        """The tree a genome's text describes (parsed once, then cached)."""
        return self._entry(text)[0]

    def compile(self, tree: gp.PrimitiveTree) -> Program:
        """The tree's program."""
        return self._code(tree).program()

    def _code(self, tree: gp.PrimitiveTree) -> Code:
        return compile_tree(tree, self.problem.n_inputs, self.problem.n_registers)

    def _ok(self, tree: gp.PrimitiveTree) -> bool:
        return within_limits(tree, self.problem.n_inputs, self.max_size, self.params.max_height,
                             self.problem.n_registers)

    def _compiled(self, tree: gp.PrimitiveTree) -> Code | None:
        """The tree's code if the tree keeps the limits, else None."""
        if len(tree) > self.max_size or tree.height > self.params.max_height:
            return None
        try:
            return self._code(tree)
        except ValueError:  # more registers than the problem has
            return None

    def _remember(self, tree: gp.PrimitiveTree, code: Code
                  ) -> tuple[str, tuple[gp.PrimitiveTree, Code]]:
        text = tree_text(tree)
        entry = self._known.setdefault(text, (tree, code))
        return text, entry

    def _batch(self, codes: list[Code]) -> ProgramBatch:
        """The programs of ``codes`` as one batch, stacked from their rows."""
        return from_rows([c.ints for c in codes], [c.values for c in codes],
                         [c.output for c in codes], self.length)

    # -- the engine's interface -----------------------------------------------------
    def new_random(self, key: jax.Array) -> random.Random:
        """The run's private stream for DEAP, seeded from ``key``."""
        return random.Random(int(rng_from_key(key).integers(2**63)))

    def initial(self, rng: np.random.Generator, state, n: int
                ) -> tuple[ProgramBatch, list[str]]:
        lo, hi = self.params.init_depth
        trees: list[gp.PrimitiveTree] = []
        for _ in range(100 * n):
            if len(trees) == n:
                break
            (tree,) = random_trees(state.tree_random, self.pset, 1, lo, hi)
            if self._ok(tree):
                trees.append(tree)
        else:
            raise ValueError(f"ramped half-and-half trees of depth {lo}..{hi} keep breaking "
                             f"the limits (max_size {self.max_size}, max_height "
                             f"{self.params.max_height}); lower search.tree.init_depth")
        entries = [self._remember(t, self._code(t)) for t in trees]
        return self._batch([code for _, (_, code) in entries]), [text for text, _ in entries]

    def children(self, rng: np.random.Generator, state, pairs: np.ndarray,
                 key: jax.Array | None = None) -> tuple[ProgramBatch, list[str], list[str]]:
        r = state.tree_random
        # Forget trees no longer in the population: the cache stays the size of a
        # generation (a large one makes Python's garbage collector slow).
        self._known = {t: self._known[t] for t in state.genomes if t in self._known}
        codes, genomes, kinds = [], [], []
        for ia, ib in pairs:
            a, b = self.tree(state.genomes[int(ia)]), self.tree(state.genomes[int(ib)])
            for _ in range(self.params.max_tries):
                if r.random() < self.params.crossover_rate:
                    child, kind = crossover(r, a, b), "one_point"
                else:
                    kind = r.choices(self._mutations, self._weights)[0]
                    child = mutate(r, a, self.pset, kind, self.params.subtree_depth)
                text = tree_text(child)
                known = self._known.get(text)  # e.g. a parent again: compiled already
                code = known[1] if known is not None else self._compiled(child)
                if code is not None:
                    break
            else:
                child, kind, text = a, "none", state.genomes[int(ia)]
                code = self._entry(text)[1]
            code = self._known.setdefault(text, (child, code))[1]
            codes.append(code)
            genomes.append(text)
            kinds.append(kind)
        return self._batch(codes), genomes, kinds

    def absorb(self, genomes: list[str], programs: Programs,
               changed: np.ndarray | None = None) -> list[str]:
        """The genomes with the (fitted) literals of their programs (row i compiled from
        genome i) written back. ``changed``: the rows whose literals may differ from their
        genome's (the rows the engine fitted); None: every row is compared."""
        const = np.asarray(programs.batch.const, np.float32)
        rows = range(len(genomes)) if changed is None else np.asarray(changed, np.int64).tolist()
        out = list(genomes)
        for i in rows:
            tree, code = self._entry(genomes[i])
            values = const[i, : len(code.values)]
            if np.array_equal(values.view(np.uint32), code.values.view(np.uint32)):
                continue  # the genome's own literals, bit for bit
            fitted = with_literals(tree, code, values, self.pset)
            out[i] = self._remember(fitted, code._replace(values=values.copy()))[0]
        return out


def make_representation(problem, params):
    """The representation ``params.representation`` names (None: the problem's own,
    ``Problem.representation``), for ``problem``."""
    name = params.representation or problem.representation
    if name == "tree":
        return TreeRepresentation(problem, params)
    if name == "linear":
        return LinearRepresentation(problem, params)
    raise ValueError(f"unknown representation {name!r}; choose from: "
                     f"{', '.join(REPRESENTATIONS)}")
