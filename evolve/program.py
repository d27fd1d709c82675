"""Programs: straight-line register code, and its padded array form for batches.

A program is a tuple of instructions ``dst = op(a, b, c)`` over ``R`` float registers,
plus the register it returns. Inputs are loaded into the first registers, the others
start at zero. Literals are float32 values (``op == const``), compared by bit pattern.

The array form stacks P programs padded to length L (see ``ProgramBatch``); rows at or
past a program's ``length`` are padding and never run.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from evolve.ops import CONST, MAX_ARITY, OPS

F32_MAX = float(np.finfo(np.float32).max)
_F32, _U32 = struct.Struct("f"), struct.Struct("I")


def f32(x: float) -> float:
    """``float(np.float32(x))``: ``x`` rounded to float32, as a Python float (through
    ``struct``, which rounds as numpy and is faster, for a Python float in range)."""
    if type(x) is float and -F32_MAX <= x <= F32_MAX:
        return _F32.unpack(_F32.pack(x))[0]
    return float(np.float32(x))


def f32_bits(x: float) -> int:
    """The float32 bit pattern of ``x`` as an unsigned int."""
    if type(x) is float and -F32_MAX <= x <= F32_MAX:
        return _U32.unpack(_F32.pack(x))[0]
    return int(np.array(x, dtype=np.float32).view(np.uint32))


@dataclass(frozen=True)
class Instruction:
    """``dst = OPS[op](*args)``; for ``const``, ``dst = value`` (a float32)."""

    op: int
    dst: int
    args: tuple[int, ...] = ()
    value: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "value", f32(self.value))
        object.__setattr__(self, "args", tuple(int(a) for a in self.args))

    def _key(self):
        return (self.op, self.dst, self.args, f32_bits(self.value))

    def __eq__(self, other):
        return isinstance(other, Instruction) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    @property
    def name(self) -> str:
        return OPS[self.op].name


@dataclass(frozen=True)
class Program:
    """A straight-line program: its instructions and the register it returns."""

    instructions: tuple[Instruction, ...]
    output: int

    def __post_init__(self):
        object.__setattr__(self, "instructions", tuple(self.instructions))

    def __len__(self) -> int:
        return len(self.instructions)


class ProgramError(ValueError):
    """A program that breaks a rule (bad register, arity, length)."""


def validate(program: Program, n_registers: int, max_length: int | None = None,
             allowed_ops: Sequence[int] | None = None) -> None:
    """Raise ProgramError naming the instruction and the rule it breaks."""
    if max_length is not None and len(program) > max_length:
        raise ProgramError(
            f"program has {len(program)} instructions, more than max_length={max_length}; "
            "shorten it or raise max_length")
    if not 0 <= program.output < n_registers:
        raise ProgramError(f"returns r{program.output}, but registers are r0..r{n_registers - 1}")
    for i, ins in enumerate(program.instructions):
        where = f"instruction {i + 1}"
        if not 0 <= ins.op < len(OPS):
            raise ProgramError(f"{where}: opcode {ins.op} is not in the ops table")
        op = OPS[ins.op]
        if allowed_ops is not None and ins.op not in allowed_ops:
            names = ", ".join(OPS[o].name for o in allowed_ops)
            raise ProgramError(f"{where}: op {op.name!r} is not allowed here; allowed: {names}")
        if len(ins.args) != op.arity:
            raise ProgramError(f"{where}: {op.name} takes {op.arity} arguments, got {len(ins.args)}")
        for r in (ins.dst, *ins.args):
            if not 0 <= r < n_registers:
                raise ProgramError(f"{where}: register r{r} out of range r0..r{n_registers - 1}")
        if ins.op == CONST and not np.isfinite(np.float32(ins.value)):
            raise ProgramError(f"{where}: literal {ins.value} is not a finite float32")


class ProgramBatch(NamedTuple):
    """P programs padded to L instructions: what the evaluator runs."""

    op: np.ndarray  # int32[P, L]   opcode; padding rows hold 0 and are never run
    args: np.ndarray  # int32[P, L, 3] argument registers; unused slots hold 0
    dst: np.ndarray  # int32[P, L]   destination register
    const: np.ndarray  # float32[P, L] literal of const rows, 0 elsewhere
    length: np.ndarray  # int32[P]      instructions actually present
    output: np.ndarray  # int32[P]      register returned

    @property
    def shape(self) -> tuple[int, int]:
        return self.op.shape


def bucket(n: int, minimum: int = 8) -> int:
    """The padded size for ``n``: the next power of two, at least ``minimum``.

    Padding to a few sizes keeps the number of compiled evaluators small.
    """
    size = minimum
    while size < n:
        size *= 2
    return size


def _rows(program: Program) -> tuple[np.ndarray, np.ndarray]:
    """The program's instructions as arrays: int32 [n, 2 + MAX_ARITY] (op, dst, args
    padded with 0) and float32 [n] (values); computed once per program object and kept
    on it (programs are immutable)."""
    rows = program.__dict__.get("_rows")
    if rows is None:
        ins = program.instructions
        pad = (0,) * MAX_ARITY
        ints = np.array([(i.op, i.dst, *(i.args + pad)[:MAX_ARITY]) for i in ins],
                        np.int32).reshape(len(ins), 2 + MAX_ARITY)
        rows = (ints, np.array([i.value for i in ins], np.float32))
        object.__setattr__(program, "_rows", rows)
    return rows


def to_arrays(programs: Sequence[Program], length: int | None = None,
              size: int | None = None) -> ProgramBatch:
    """Stack programs into a ProgramBatch of ``size`` rows and ``length`` columns.

    Rows past ``len(programs)`` are empty programs (length 0) returning r0.
    """
    rows = [_rows(prog) for prog in programs]
    return from_rows([r[0] for r in rows], [r[1] for r in rows],
                     [prog.output for prog in programs], length, size)


def from_rows(ints: Sequence[np.ndarray], values: Sequence[np.ndarray], outputs: Sequence[int],
              length: int | None = None, size: int | None = None) -> ProgramBatch:
    """A ProgramBatch of ``size`` rows and ``length`` columns from programs given as rows:
    each program's int32 [n, 2 + MAX_ARITY] (op, dst, args padded with 0), its float32
    [n] literals (0 where not ``const``) and the register it returns (``_rows``' form,
    which compiled trees produce directly). Rows past the programs are empty (length 0,
    returning r0)."""
    n = len(ints)
    counts = np.fromiter((len(v) for v in values), np.int64, n)
    longest = int(counts.max()) if n else 0
    L = length if length is not None else bucket(longest)
    P = size if size is not None else n
    if longest > L:
        raise ValueError(f"a program has {longest} instructions, more than the padded length {L}")
    if n > P:
        raise ValueError(f"{n} programs do not fit in a batch of {P}")
    op = np.zeros((P, L), np.int32)
    args = np.zeros((P, L, MAX_ARITY), np.int32)
    dst = np.zeros((P, L), np.int32)
    const = np.zeros((P, L), np.float32)
    lengths = np.zeros(P, np.int32)
    output = np.zeros(P, np.int32)
    if n:
        lengths[:n] = counts
        output[:n] = outputs
        total = int(counts.sum())
        if total:
            # every instruction at once: (program, position) of each, then one assignment
            # per array instead of four per instruction
            where = np.repeat(np.arange(n), counts)
            pos = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
            flat = np.concatenate(ints)
            op[where, pos] = flat[:, 0]
            dst[where, pos] = flat[:, 1]
            args[where, pos] = flat[:, 2:]
            const[where, pos] = np.concatenate(values)
    return ProgramBatch(op, args, dst, const, lengths, output)


def from_arrays(batch: ProgramBatch) -> list[Program]:
    """The programs of a batch (inverse of ``to_arrays`` for its non-padding rows)."""
    out = []
    for p in range(len(batch.length)):
        instructions = []
        for i in range(int(batch.length[p])):
            op = int(batch.op[p, i])
            arity = OPS[op].arity
            instructions.append(Instruction(
                op, int(batch.dst[p, i]), tuple(int(a) for a in batch.args[p, i, :arity]),
                float(batch.const[p, i]) if op == CONST else 0.0))
        out.append(Program(tuple(instructions), int(batch.output[p])))
    return out


def input_dependent(program: Program, n_inputs: int) -> list[bool]:
    """For each instruction, whether its result depends on an input register.

    Registers past the inputs start at zero, so instructions that only combine literals
    and zeros compute constants (cost models count only input-dependent ones).
    """
    live = {r: r < n_inputs for r in range(max([program.output, n_inputs - 1] + [
        max((i.dst, *i.args)) for i in program.instructions]) + 1)}
    flags = []
    for ins in program.instructions:
        dep = any(live.get(a, False) for a in ins.args)
        live[ins.dst] = dep
        flags.append(dep)
    return flags


def live(program: Program) -> list[Instruction]:
    """The instructions that can affect the returned register, in order."""
    return [ins for ins, u in zip(program.instructions, used(program)) if u]


def used(program: Program) -> list[bool]:
    """For each instruction, whether it can affect the returned register (not dead code)."""
    needed = {program.output}
    flags = [False] * len(program)
    for i in range(len(program) - 1, -1, -1):
        ins = program.instructions[i]
        if ins.dst in needed:
            flags[i] = True
            needed.discard(ins.dst)
            needed.update(ins.args)
    return flags


def pruned(program: Program) -> Program:
    """The program without its dead instructions: what people read (the summary,
    front.csv, the report, exported code). It computes the same function; checkpoints keep
    the full genome, dead code included, since evolution works on it."""
    return Program(tuple(live(program)), program.output)
