"""Program analysis on arrays: dead code, input dependence and cost for a whole batch.

The functions here take a ``ProgramBatch`` (P programs padded to L instructions) and
answer, for every program at once, what ``evolve.program`` and ``Problem.cost`` answer
for one ``Program``: they loop over the L positions, never over the programs. Positions
at or past a program's ``length`` are padding: never used, never input-dependent.

``Programs`` is a read-only ``Sequence[Program]`` over a batch: code that reads a list of
programs can take it, and ``Program`` objects are built only for the rows it reads.

Register sets are boolean arrays [P, R] (R: the highest register the batch names, plus
one), processed in chunks of rows so that memory stays bounded for any R.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np

from evolve.ops import CONST, MAX_ARITY, OPS
from evolve.problem import Problem
from evolve.program import Program, ProgramBatch, from_arrays, to_arrays

ARITY = np.array([op.arity for op in OPS], np.int32)  # int32[n_ops]
COST = np.array([op.cost for op in OPS], np.float64)  # float64[n_ops]: the ops' weights
_CHUNK_CELLS = 1 << 22  # booleans per register-set array of a chunk (4 MiB)


def _registers(batch: ProgramBatch, at_least: int = 1) -> int:
    """R: one more than the highest register the batch names (``at_least`` at least)."""
    top = max(int(np.max(a, initial=0)) for a in (batch.args, batch.dst, batch.output))
    return max(top + 1, at_least)


def _chunks(batch: ProgramBatch, R: int) -> Iterator[tuple[slice, tuple]]:
    """The batch in chunks of rows, each as (rows, (op, args, dst, length, output, base,
    steps)): numpy arrays of those rows, ``base`` int64[n] the flat offset of each row in
    an [n, R] array and ``steps`` the longest length among them."""
    op, args, dst = np.asarray(batch.op), np.asarray(batch.args), np.asarray(batch.dst)
    length, output = np.asarray(batch.length), np.asarray(batch.output)
    P = op.shape[0]
    step = max(1, _CHUNK_CELLS // R)
    for start in range(0, P, step):
        rows = slice(start, min(P, start + step))
        n = rows.stop - rows.start
        ln = length[rows]
        yield rows, (op[rows], args[rows], dst[rows], ln, output[rows],
                     np.arange(n, dtype=np.int64) * R, int(np.max(ln, initial=0)))


def used_mask(batch: ProgramBatch) -> np.ndarray:
    """bool[P, L]: whether each instruction can affect its program's returned register
    (``program.used`` of each program); padding positions are False."""
    P, L = batch.op.shape
    R = _registers(batch)
    out = np.zeros((P, L), bool)
    for rows, (op, args, dst, length, output, base, steps) in _chunks(batch, R):
        needed = np.zeros(len(base) * R, bool)  # [n, R] flat: registers still to be read
        needed[base + output] = True
        for i in range(steps - 1, -1, -1):
            d = base + dst[:, i]
            hit = needed[d] & (i < length)
            h = np.flatnonzero(hit)
            if not len(h):
                continue
            out[rows.start + h, i] = True
            needed[d[h]] = False
            arity = ARITY[op[h, i]]
            for j in range(MAX_ARITY):
                k = h[arity > j]
                needed[base[k] + args[k, i, j]] = True
    return out


def input_dependent_mask(batch: ProgramBatch, n_inputs: int) -> np.ndarray:
    """bool[P, L]: whether each instruction's result depends on an input register (the
    first ``n_inputs``; the others start at zero), as ``program.input_dependent``;
    padding positions are False."""
    P, L = batch.op.shape
    R = _registers(batch, n_inputs)
    out = np.zeros((P, L), bool)
    for rows, (op, args, dst, length, _, base, steps) in _chunks(batch, R):
        dep = np.zeros((len(base), R), bool)
        dep[:, :n_inputs] = True
        dep = dep.reshape(-1)
        for i in range(steps):
            arity = ARITY[op[:, i]]
            d = np.zeros(len(base), bool)
            for j in range(MAX_ARITY):
                d |= (arity > j) & dep[base + args[:, i, j]]
            v = np.flatnonzero(i < length)
            dep[base[v] + dst[v, i]] = d[v]
            out[rows.start + v, i] = d[v]
    return out


def has_literal(batch: ProgramBatch) -> np.ndarray:
    """bool[P]: whether each program holds a literal (a ``const`` instruction)."""
    return ((np.asarray(batch.op) == CONST) & _present(batch)).any(axis=1)


def lengths_live(batch: ProgramBatch) -> np.ndarray:
    """int32[P]: the number of live instructions (those ``used_mask`` marks)."""
    return used_mask(batch).sum(axis=1, dtype=np.int32)


def costs(batch: ProgramBatch, problem: Problem, used: np.ndarray | None = None) -> np.ndarray:
    """float64[P]: ``problem.cost`` of each program, for both cost models.

    "weighted": the ops' weights summed over the live, input-dependent instructions, in
    program order (equal bit for bit to the per-program sum; exactly so whenever the
    partial sums are exact, as with the table's integer weights). "size": the node count
    of the expression returned. ``used``: ``used_mask(batch)`` if already computed.
    """
    if used is None:
        used = used_mask(batch)
    if problem.cost_model == "size":
        return _sizes(batch, used)
    counted = used & input_dependent_mask(batch, problem.n_inputs)
    weights = np.where(counted, COST[np.asarray(batch.op)], 0.0)
    total = np.zeros(weights.shape[0], np.float64)
    for i in range(weights.shape[1]):  # in order, as the per-program sum adds them
        total += weights[:, i]
    return total


def _sizes(batch: ProgramBatch, used: np.ndarray) -> np.ndarray:
    """float64[P]: the "size" cost: each live instruction is a node, plus a leaf for each
    argument no earlier live instruction wrote; 1 when no live instruction writes the
    returned register (a bare input or zero)."""
    R = _registers(batch)
    out = np.zeros(used.shape[0], np.float64)
    for rows, (op, args, dst, _, output, base, steps) in _chunks(batch, R):
        written = np.zeros(len(base) * R, bool)
        size = np.zeros(len(base), np.int64)
        u_rows = used[rows]
        for i in range(steps):
            u = np.flatnonzero(u_rows[:, i])
            if not len(u):
                continue
            arity = ARITY[op[u, i]]
            leaves = np.zeros(len(u), np.int64)
            for j in range(MAX_ARITY):
                leaves += (arity > j) & ~written[base[u] + args[u, i, j]]
            size[u] += 1 + leaves
            written[base[u] + dst[u, i]] = True
        out[rows] = np.where(written[base + output], size, 1)
    return out


def _present(batch: ProgramBatch) -> np.ndarray:
    """bool[P, L]: the positions before each program's length."""
    L = batch.op.shape[1]
    return np.arange(L)[None, :] < np.asarray(batch.length)[:, None]


def program_at(batch: ProgramBatch, p: int) -> Program:
    """Row ``p`` of the batch as a ``Program`` (what ``from_arrays`` gives for it)."""
    row = ProgramBatch(*(np.asarray(a)[p:p + 1] for a in batch))
    return from_arrays(row)[0]


class Programs(Sequence[Program]):
    """A read-only sequence of the programs in the first ``n`` rows of a ``ProgramBatch``.

    Reads like a ``list[Program]``: ``len``, indexing (negative too), slices (a
    ``Programs`` of the rows chosen), iteration, ``==`` with a list or another
    ``Programs`` (elementwise), ``+`` with either (a list). ``Program`` objects are built
    from the arrays on first access and kept. ``batch`` is the ``ProgramBatch`` it views
    (rows past ``len(self)``, if any, are padding).
    """

    __slots__ = ("_batch", "_n", "_cache")
    __hash__ = None  # equal to lists, which are unhashable

    def __init__(self, batch: ProgramBatch, n: int | None = None,
                 _cache: list[Program | None] | None = None):
        batch = ProgramBatch(*(np.asarray(a) for a in batch))
        P = batch.op.shape[0]
        n = P if n is None else int(n)
        if not 0 <= n <= P:
            raise ValueError(f"n={n} outside a batch of {P} rows")
        self._batch = batch
        self._n = n
        self._cache = _cache if _cache is not None else [None] * n

    @classmethod
    def from_list(cls, programs: Sequence[Program], length: int | None = None,
                  size: int | None = None) -> Programs:
        """The programs stacked by ``to_arrays(programs, length, size)``; the objects given
        are kept, so reading them back builds nothing."""
        programs = list(programs)
        return cls(to_arrays(programs, length, size), len(programs), programs)

    @property
    def batch(self) -> ProgramBatch:
        return self._batch

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> Program: ...

    @overload
    def __getitem__(self, index: slice) -> Programs: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            chosen = np.arange(self._n)[index]
            return Programs(ProgramBatch(*(a[chosen] for a in self._batch)), len(chosen),
                            [self._cache[i] for i in chosen])
        i = operator.index(index)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("Programs index out of range")
        program = self._cache[i]
        if program is None:
            program = self._cache[i] = program_at(self._batch, i)
        return program

    def __iter__(self) -> Iterator[Program]:
        for i in range(self._n):
            yield self[i]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (Programs, list)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    def __add__(self, other: Iterable[Program]) -> list[Program]:
        if not isinstance(other, (Programs, list)):
            return NotImplemented
        return [*self, *other]

    def __radd__(self, other: Iterable[Program]) -> list[Program]:
        if not isinstance(other, list):
            return NotImplemented
        return [*other, *self]

    def __repr__(self) -> str:
        P, L = self._batch.shape
        return f"Programs(n={self._n}, batch of {P}x{L})"
