"""Variation: mutation and crossover of linear programs, pure functions of a generator.

Every function takes a ``numpy.random.Generator`` made from a JAX key (``rng_from_key``)
and returns new programs; nothing reads global random state. Every child is a valid
program of the given ``Space``. A mutation that leaves a program unchanged is retried,
as in AutoNumerics-Zero.

Mutation kinds and what they do at the limits:
  change_op      a different allowed op for one instruction (arguments kept or redrawn)
  rewire         one argument (or the destination) of one instruction to another register
  perturb_const  one literal nudged: by a relative step or by a few float32 ULPs
  redraw_const   one literal drawn anew
  insert         a random instruction at a random place; at max_length a random dead
                 instruction (one that cannot reach the output) makes room, if any
  insert_literal a random instruction one of whose arguments is a new literal, loaded just
                 before it into a register that is free there (two instructions; not
                 within one of max_length). Linear programs need a load for every
                 constant; this is the tree GP's constant leaf in one move.
  delete         one instruction removed (not below one instruction)
  swap           two instructions exchanged
A kind that cannot apply (delete on one instruction, insert at max_length, a constant
kind on a program without literals) is skipped in favour of another draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import numpy as np

from evolve.ops import CONST, OPS
from evolve.program import Instruction, Program, used

MUTATIONS = ("change_op", "rewire", "perturb_const", "redraw_const", "insert", "insert_literal",
             "delete", "swap")
CROSSOVERS = ("one_point", "two_point", "homologous")


@dataclass(frozen=True)
class Space:
    """The programs a search may produce."""

    ops: tuple[int, ...]  # allowed opcodes
    n_registers: int
    n_inputs: int
    max_length: int
    output: int  # the register programs return

    @classmethod
    def from_problem(cls, problem) -> Space:
        return cls(problem.opcodes, problem.n_registers, problem.n_inputs, problem.max_length,
                   problem.output)

    @property
    def writable(self) -> range:
        """Registers an instruction may write: all but the inputs."""
        return range(self.n_inputs, self.n_registers)


@dataclass(frozen=True)
class VariationParams:
    """Rates of the variation operators (weights are normalised)."""

    mutation_weights: dict = field(default_factory=lambda: {
        "change_op": 1.0, "rewire": 1.0, "perturb_const": 1.0, "redraw_const": 0.5,
        "insert": 1.0, "insert_literal": 1.0, "delete": 0.7, "swap": 0.3})
    crossover_rate: float = 0.2
    crossover_weights: dict = field(default_factory=lambda: {
        "one_point": 1.0, "two_point": 1.0, "homologous": 1.0})
    const_sigma: float = 0.1  # relative size of a constant perturbation
    max_retries: int = 32


def rng_from_key(key: jax.Array) -> np.random.Generator:
    """A numpy Generator seeded by the bits of a JAX key (deterministic, explicit)."""
    data = np.asarray(jax.random.key_data(key)).astype(np.uint64).ravel()
    return np.random.default_rng([int(v) for v in data])


def _draw_const(rng: np.random.Generator) -> float:
    magnitude = 10.0 ** rng.uniform(-3, 1)
    return float(np.float32(magnitude if rng.random() < 0.7 else -magnitude))


def _defined(program: Program, position: int, space: Space) -> np.ndarray:
    """Registers holding a value at ``position``: the inputs and every earlier destination.

    Arguments are drawn from these, since a register never written reads as zero.
    """
    regs = set(range(space.n_inputs))
    regs.update(ins.dst for ins in program.instructions[:position])
    return np.array(sorted(regs))


def _free(program: Program, position: int, space: Space) -> list[int]:
    """Writable registers whose value at ``position`` is never read afterwards: writing
    one there changes nothing that follows."""
    free = []
    for r in space.writable:
        if r == program.output and not any(ins.dst == r
                                           for ins in program.instructions[position:]):
            continue  # the returned value
        for ins in program.instructions[position:]:
            if r in ins.args:
                break
            if ins.dst == r:
                free.append(r)
                break
        else:
            if r != program.output:
                free.append(r)
    return free


def random_instruction(rng: np.random.Generator, space: Space,
                       readable: np.ndarray | None = None, dst: int | None = None) -> Instruction:
    """One instruction with an allowed op, a writable destination (or ``dst``) and
    arguments drawn from ``readable`` (default: any register)."""
    op = int(rng.choice(space.ops))
    dst = int(rng.choice(space.writable)) if dst is None else dst
    if op == CONST:
        return Instruction(op, dst, (), _draw_const(rng))
    pool = np.arange(space.n_registers) if readable is None else readable
    args = tuple(int(a) for a in rng.choice(pool, OPS[op].arity))
    return Instruction(op, dst, args)


def random_program(rng: np.random.Generator, space: Space, length: int) -> Program:
    """A program of ``length`` random instructions (at least one) whose arguments read
    registers written before, and whose last instruction writes the output register."""
    length = int(np.clip(length, 1, space.max_length))
    body: list[Instruction] = []
    for i in range(length):
        readable = _defined(Program(tuple(body), space.output), i, space)
        body.append(random_instruction(rng, space, readable,
                                       dst=space.output if i == length - 1 else None))
    return Program(tuple(body), space.output)


def _literals(program: Program) -> list[int]:
    return [i for i, ins in enumerate(program.instructions) if ins.op == CONST]


def _replace(program: Program, i: int, ins: Instruction) -> Program:
    body = list(program.instructions)
    body[i] = ins
    return Program(tuple(body), program.output)


def _perturb(rng: np.random.Generator, value: float, sigma: float) -> float:
    v = np.float32(value)
    if rng.random() < 0.5:  # a few ULPs: fine tuning in the float32 grid
        steps = int(rng.geometric(0.3)) * (1 if rng.random() < 0.5 else -1)
        direction = np.float32(np.inf) if steps > 0 else np.float32(-np.inf)
        for _ in range(abs(steps)):
            v = np.nextafter(v, direction)
    else:
        v = np.float32(v * (1 + sigma * rng.normal()) if v != 0 else sigma * rng.normal())
    return float(v) if np.isfinite(v) else value


def _apply(rng: np.random.Generator, kind: str, program: Program, space: Space,
           params: VariationParams) -> Program | None:
    n = len(program)
    body = program.instructions
    if kind == "insert":
        if n >= space.max_length:
            # Make room by dropping a random dead instruction (one that cannot reach the
            # output); without this, bloat at the length limit blocks all growth.
            dead = [j for j, u in enumerate(used(program)) if not u]
            if not dead:
                return None
            j = int(rng.choice(dead))
            program = Program((*body[:j], *body[j + 1:]), program.output)
            body, n = program.instructions, n - 1
        i = int(rng.integers(0, n + 1))
        ins = random_instruction(rng, space, _defined(program, i, space))
        return Program((*body[:i], ins, *body[i:]), program.output)
    if kind == "insert_literal":
        if n + 2 > space.max_length:
            return None
        i = int(rng.integers(0, n + 1))
        free = _free(program, i, space)
        ops = [o for o in space.ops if o != CONST]
        if not free or not ops:
            return None
        tmp = int(rng.choice(free))
        op = int(rng.choice(ops))
        args = list(int(a) for a in rng.choice(_defined(program, i, space), OPS[op].arity))
        args[int(rng.integers(0, len(args)))] = tmp
        dst = int(rng.choice(space.writable))
        pair = (Instruction(CONST, tmp, (), _draw_const(rng)), Instruction(op, dst, tuple(args)))
        return Program((*body[:i], *pair, *body[i:]), program.output)
    if kind == "delete":
        if n <= 1:
            return None
        i = int(rng.integers(0, n))
        return Program((*body[:i], *body[i + 1:]), program.output)
    if kind == "swap":
        if n < 2:
            return None
        i, j = rng.choice(n, 2, replace=False)
        out = list(body)
        out[i], out[j] = out[j], out[i]
        return Program(tuple(out), program.output)
    if kind in ("perturb_const", "redraw_const"):
        lits = _literals(program)
        if not lits:
            return None
        i = int(rng.choice(lits))
        ins = body[i]
        value = (_perturb(rng, ins.value, params.const_sigma) if kind == "perturb_const"
                 else _draw_const(rng))
        return _replace(program, i, Instruction(CONST, ins.dst, (), value))
    if n == 0:
        return None
    i = int(rng.integers(0, n))
    ins = body[i]
    if kind == "change_op":
        op = int(rng.choice(space.ops))
        if op == CONST:
            return _replace(program, i, Instruction(op, ins.dst, (), _draw_const(rng)))
        arity = OPS[op].arity
        old = ins.args if ins.op != CONST else ()
        extra = tuple(int(a) for a in rng.choice(_defined(program, i, space),
                                                  max(arity - len(old), 0)))
        return _replace(program, i, Instruction(op, ins.dst, (old + extra)[:arity]))
    if kind == "rewire":
        slots = len(ins.args) + 1  # the arguments and the destination
        s = int(rng.integers(0, slots))
        if s == len(ins.args):
            return _replace(program, i, Instruction(ins.op, int(rng.choice(space.writable)),
                                                    ins.args, ins.value))
        args = list(ins.args)
        args[s] = int(rng.choice(_defined(program, i, space)))
        return _replace(program, i, Instruction(ins.op, ins.dst, tuple(args), ins.value))
    raise ValueError(f"unknown mutation kind {kind!r}; known: {', '.join(MUTATIONS)}")


def _pick(rng: np.random.Generator, weights: dict) -> str:
    names = list(weights)
    w = np.array([weights[k] for k in names], float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


def mutate(rng: np.random.Generator, program: Program, space: Space,
           params: VariationParams = VariationParams()) -> tuple[Program, str]:
    """A mutated copy of ``program`` that differs from it, and the kind applied.

    Returns the program unchanged with kind "none" only if ``max_retries`` draws all fail.
    """
    for _ in range(params.max_retries):
        kind = _pick(rng, params.mutation_weights)
        child = _apply(rng, kind, program, space, params)
        if child is not None and child != program:
            return child, kind
    return program, "none"


def crossover(rng: np.random.Generator, a: Program, b: Program, space: Space,
              params: VariationParams = VariationParams()) -> tuple[Program, str]:
    """A child of two programs and the kind used; its length is capped at max_length.

    one_point:  a[:i] + b[j:]
    two_point:  a[:i] + b[j:k] + a[m:]
    homologous: a[:i] + b[i:j] + a[j:] with the same cut positions in both parents
    """
    kind = _pick(rng, params.crossover_weights)
    A, B = a.instructions, b.instructions
    if kind == "one_point":
        i, j = int(rng.integers(0, len(A) + 1)), int(rng.integers(0, len(B) + 1))
        body = A[:i] + B[j:]
    elif kind == "two_point":
        i, m = sorted(int(v) for v in rng.integers(0, len(A) + 1, 2))
        j, k = sorted(int(v) for v in rng.integers(0, len(B) + 1, 2))
        body = A[:i] + B[j:k] + A[m:]
    else:
        m = min(len(A), len(B))
        i, j = sorted(int(v) for v in rng.integers(0, m + 1, 2))
        body = A[:i] + B[i:j] + A[j:]
    body = body[: space.max_length] or A[:1]
    return Program(tuple(body), a.output), kind


def make_children(rng: np.random.Generator, parents: list[Program], pairs: np.ndarray,
                  space: Space, params: VariationParams = VariationParams()
                  ) -> tuple[list[Program], list[str]]:
    """One child per row of ``pairs`` (indices into ``parents``): crossover of the pair
    at ``crossover_rate``, then always a mutation. Returns the children and, for each,
    the operators applied (e.g. "two_point+rewire")."""
    children, kinds = [], []
    for ia, ib in pairs:
        child, ops = parents[int(ia)], []
        if rng.random() < params.crossover_rate:
            child, kind = crossover(rng, child, parents[int(ib)], space, params)
            ops.append(kind)
        child, kind = mutate(rng, child, space, params)
        ops.append(kind)
        children.append(child)
        kinds.append("+".join(ops))
    return children, kinds
