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
from dataclasses import dataclass
from typing import overload

import numpy as np

from evolve.ops import CONST, MAX_ARITY, OPS
from evolve.problem import Problem
from evolve.program import Program, ProgramBatch, from_arrays, to_arrays

ARITY = np.array([op.arity for op in OPS], np.int32)  # int32[n_ops]
COST = np.array([op.cost for op in OPS], np.float64)  # float64[n_ops]: the ops' weights
_CHUNK_CELLS = 1 << 20  # booleans per register-set array of a chunk of rows
_CHUNK_ROWS = 1 << 12  # rows per chunk at most (small chunks stay in cache)


def _registers(batch: ProgramBatch, at_least: int = 1) -> int:
    """R: one more than the highest register the batch names (``at_least`` at least)."""
    top = max(int(np.max(a, initial=0)) for a in (batch.args, batch.dst, batch.output))
    return max(top + 1, at_least)


@dataclass(frozen=True)
class _Chunk:
    """Some rows of a batch, position-major, as flat indices into an [n, W] register set
    (W = R + 2): register R is a sink that unused argument slots read (never written,
    so False), register R + 1 one that padding positions write (never read)."""

    rows: slice  # the rows of the batch
    width: int  # W
    base: np.ndarray  # intp[n]: the flat offset of each row's registers
    output: np.ndarray  # intp[n]: flat index of each row's returned register
    op: np.ndarray  # int32[S, n]: opcodes (S: the longest length among the rows)
    arity: np.ndarray  # int32[S, n]
    args: np.ndarray  # intp[S, MAX_ARITY, n]: flat argument indices (unused slots: R)
    dst: np.ndarray  # intp[S, n]: flat destination indices (padding positions: R + 1)
    present: np.ndarray  # bool[S, n]: position before the row's length

    def registers(self, fill: int = 0) -> np.ndarray:
        """bool[n * W], all False but the first ``fill`` registers of each row."""
        regs = np.zeros((len(self.base), self.width), bool)
        regs[:, :fill] = True
        return regs.reshape(-1)


def _chunks(batch: ProgramBatch, R: int) -> Iterator[_Chunk]:
    """The batch in chunks of rows (see ``_Chunk``)."""
    op, args, dst = np.asarray(batch.op), np.asarray(batch.args), np.asarray(batch.dst)
    length, output = np.asarray(batch.length), np.asarray(batch.output)
    P = op.shape[0]
    W = R + 2
    step = max(1, min(_CHUNK_ROWS, _CHUNK_CELLS // W))
    for start in range(0, P, step):
        rows = slice(start, min(P, start + step))
        n = rows.stop - rows.start
        S = int(np.max(length[rows], initial=0))
        base = np.arange(n, dtype=np.intp) * W
        o = np.ascontiguousarray(op[rows, :S].T)
        arity = ARITY[o]
        present = np.arange(S)[:, None] < length[None, rows]
        slots = np.arange(MAX_ARITY)[None, :, None] < arity[:, None, :]
        a = np.where(slots, args[rows, :S].transpose(1, 2, 0), R) + base
        d = np.where(present, dst[rows, :S].T, R + 1) + base
        yield _Chunk(rows, W, base, base + output[rows], o, arity, a, d, present)


def _used(c: _Chunk) -> np.ndarray:
    """bool[S, n]: the live positions of a chunk (a backward pass over the positions)."""
    needed = c.registers()
    needed[c.output] = True
    out = np.zeros(c.dst.shape, bool)
    for i in range(c.dst.shape[0] - 1, -1, -1):
        d = c.dst[i]
        hit = np.take(needed, d)  # padding positions read R + 1: never set
        out[i] = hit
        needed[d] = False  # read now if it was needed
        a = c.args[i]  # [MAX_ARITY, n]; a row's repeated registers get one value
        needed[a] = np.take(needed, a) | hit
    return out


def _dependent(c: _Chunk, n_inputs: int) -> np.ndarray:
    """bool[S, n]: the input-dependent positions of a chunk (a forward pass)."""
    dep = c.registers(n_inputs)
    out = np.zeros(c.dst.shape, bool)
    for i in range(c.dst.shape[0]):
        d = np.take(dep, c.args[i]).any(axis=0)
        dep[c.dst[i]] = d  # padding positions write R + 1: never read
        out[i] = d & c.present[i]
    return out


def _sizes(c: _Chunk, used: np.ndarray) -> np.ndarray:
    """float64[n]: the "size" cost of a chunk's rows, ``used`` its live positions
    bool[S, n]: each live instruction is a node, plus a leaf for each argument no
    earlier live instruction wrote; 1 when no live instruction writes the returned
    register (a bare input or zero)."""
    written = c.registers()
    size = np.zeros(len(c.base), np.int64)
    for i in range(c.dst.shape[0]):
        u = used[i]
        seen = np.take(written, c.args[i]).sum(axis=0)
        size += u * (1 + c.arity[i] - seen)
        written[c.dst[i]] = np.take(written, c.dst[i]) | u
    return np.where(written[c.output], size, 1).astype(np.float64)


def used_mask(batch: ProgramBatch) -> np.ndarray:
    """bool[P, L]: whether each instruction can affect its program's returned register
    (``program.used`` of each program); padding positions are False."""
    out = np.zeros(batch.op.shape, bool)
    for c in _chunks(batch, _registers(batch)):
        out[c.rows, :c.dst.shape[0]] = _used(c).T
    return out


def input_dependent_mask(batch: ProgramBatch, n_inputs: int) -> np.ndarray:
    """bool[P, L]: whether each instruction's result depends on an input register (the
    first ``n_inputs``; the others start at zero), as ``program.input_dependent``;
    padding positions are False."""
    out = np.zeros(batch.op.shape, bool)
    for c in _chunks(batch, _registers(batch, n_inputs)):
        out[c.rows, :c.dst.shape[0]] = _dependent(c, n_inputs).T
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
    of the expression returned. ``used``: ``used_mask(batch)`` bool[P, L], if already
    computed.
    """
    out = np.zeros(batch.op.shape[0], np.float64)
    for c in _chunks(batch, _registers(batch, problem.n_inputs)):
        S = c.dst.shape[0]
        u = _used(c) if used is None else np.ascontiguousarray(used[c.rows, :S].T)
        if problem.cost_model == "size":
            out[c.rows] = _sizes(c, u)
            continue
        weights = np.where(u & _dependent(c, problem.n_inputs), COST[c.op], 0.0)
        total = np.zeros(len(c.base), np.float64)
        for i in range(S):  # in order, as the per-program sum adds them
            total += weights[i]
        out[c.rows] = total
    return out


# -- rows ------------------------------------------------------------------------------
_CODE_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: a bijection of the 64-bit words


def row_codes(batch: ProgramBatch) -> np.ndarray:
    """uint64[P]: a hash of each program's code (its instructions before its length: op,
    destination, the arguments it reads, a literal's bits; its returned register): equal
    programs have equal codes, and different ones equal codes with probability about
    2^-64. What the text form does not show (padding, unread argument slots, the literal
    slot of other ops) does not count. One pass over the columns, not the rows."""
    op, args, dst = np.asarray(batch.op), np.asarray(batch.args), np.asarray(batch.dst)
    const = np.asarray(batch.const, np.float32)
    length, output = np.asarray(batch.length), np.asarray(batch.output)
    P, L = op.shape
    present = np.arange(L)[None, :] < length[:, None]
    literal = np.where(present & (op == CONST), const.view(np.uint32), 0)
    reads = np.arange(MAX_ARITY)[None, None, :] < ARITY[np.where(present, op, CONST)][..., None]
    cols = [length.astype(np.uint64), output.astype(np.uint64)]
    for a in (np.where(present, op, 0), np.where(present, dst, 0), literal,
              *np.moveaxis(np.where(reads & present[..., None], args, 0), 2, 0)):
        cols += list(np.asarray(a).astype(np.int64).astype(np.uint64).T)
    h = np.full(P, 0xCBF29CE484222325, np.uint64)
    with np.errstate(over="ignore"):
        for c in cols:
            h = (h ^ c) * _CODE_MULTIPLIER
            h ^= h >> np.uint64(29)
    return h


def take(batch: ProgramBatch, rows) -> ProgramBatch:
    """The rows ``rows`` of ``batch`` (an index array or a boolean mask), as numpy arrays."""
    return ProgramBatch(*(np.asarray(a)[rows] for a in batch))


def concat(a: ProgramBatch, b: ProgramBatch) -> ProgramBatch:
    """The rows of ``a`` then those of ``b`` (of one padded length)."""
    return ProgramBatch(*(np.concatenate([np.asarray(x), np.asarray(y)]) for x, y in zip(a, b)))


def padded(batch: ProgramBatch, rows: int, length: int) -> ProgramBatch:
    """``batch`` with ``rows`` rows (extra rows: empty programs) and ``length`` columns
    (extra columns: padding), as numpy arrays; ``batch`` itself where it has that shape."""
    P, L = np.asarray(batch.op).shape
    if length < L or rows < P:
        raise ValueError(f"{P} programs padded to {L} instructions do not fit "
                         f"{rows} rows of {length}")
    if (P, L) == (rows, length):
        return ProgramBatch(*(np.asarray(a) for a in batch))

    def grow(a, fill_shape):
        out = np.zeros(fill_shape, np.asarray(a).dtype)
        out[tuple(slice(0, s) for s in np.shape(a))] = a
        return out

    return ProgramBatch(grow(batch.op, (rows, length)), grow(batch.args, (rows, length, MAX_ARITY)),
                        grow(batch.dst, (rows, length)), grow(batch.const, (rows, length)),
                        grow(batch.length, (rows,)), grow(batch.output, (rows,)))


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
        rows = {a.shape[0] if a.ndim else None for a in batch}
        if len(rows) != 1 or None in rows:
            raise ValueError(f"the batch's arrays disagree in their rows: shapes "
                             f"{[a.shape for a in batch]} (op, args, dst, const, length, output)")
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
