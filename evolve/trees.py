"""The DEAP bridge: expression trees from DEAP, compiled into our straight-line programs.

DEAP is walled off here (see STYLE.md). This module builds a ``gp.PrimitiveSet`` from our
ops table, generates random ``gp.PrimitiveTree`` objects from a private, seeded
``random.Random`` (never the global stream), and compiles a tree into a ``Program``.

- ``primitive_set(op_names, n_inputs)``: DEAP primitives named after our ops, computing
  in float32 with numpy, IEEE semantics (no protected division or log). Arguments are
  ``ARG0..``; literals are an ephemeral constant drawn as float32 values.
- ``random_trees(rng, pset, n, min_depth, max_depth)``: DEAP's ramped half-and-half,
  drawing from ``rng`` only.
- ``compile_tree(tree, pset)``: the DEAP-compiled function (``gp.compile``), run with
  floating-point warnings silenced: the usual DEAP evaluation, used as a reference.
- ``tree_to_program(tree, n_inputs, n_registers)``: the same function as one of our
  programs, with registers allocated by Sethi-Ullman numbering.

No ``creator.create`` here: trees are plain ``gp.PrimitiveTree`` objects.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, Sequence

import numpy as np
from deap import gp

from evolve.ops import CONST, OPCODE, OPS, opcode
from evolve.program import Instruction, Program

LITERAL = "literal"  # the name of the ephemeral constant in our primitive sets

# Ops that are a single numpy ufunc: called with dtype=float32 so that literals (Python
# floats in DEAP's compiled code) are rounded to float32 as our const instructions are.
# tests/test_trees.py checks each against the ops table's numpy reference.
_UFUNCS: dict[str, np.ufunc] = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "neg": np.negative, "abs": np.absolute, "min": np.minimum, "max": np.maximum,
    "sqrt": np.sqrt, "exp2": np.exp2, "exp": np.exp, "log": np.log, "sin": np.sin,
    "cos": np.cos, "tanh": np.tanh,
}


# -- randomness -------------------------------------------------------------------------
@contextmanager
def private_random(rng: random.Random) -> Iterator[None]:
    """Run a block that uses the global ``random`` module on ``rng``'s stream instead.

    DEAP's generators and variation operators draw from the global ``random`` module.
    Inside the block the global state is ``rng``'s; on exit ``rng`` takes the advanced
    state and the global state is restored exactly, so the caller's global stream is
    untouched and ``rng`` alone decides what DEAP draws. Not thread-safe: another thread
    using ``random`` meanwhile would draw from (and advance) ``rng``'s stream.
    """
    saved = random.getstate()
    random.setstate(rng.getstate())
    try:
        yield
    finally:
        rng.setstate(random.getstate())
        random.setstate(saved)


def _draw_literal(low: float, high: float) -> float:
    # Called by DEAP when it creates a literal, under private_random: the global module
    # holds the private stream then. A Python float that is exactly a float32 value, so
    # DEAP's repr round-trips it and our const instruction holds the same bits.
    return float(np.float32(random.uniform(low, high)))


# -- the primitive set ----------------------------------------------------------------
def _primitive(name: str) -> Callable:
    ufunc = _UFUNCS.get(name)
    if ufunc is not None:
        return partial(ufunc, dtype=np.float32)
    fn = OPS[OPCODE[name]].np_fn

    def prim(*args):
        return fn(*(np.asarray(a, np.float32) for a in args))

    prim.__name__ = name
    return prim


def primitive_set(op_names: Sequence[str], n_inputs: int = 1,
                  literal_range: tuple[float, float] | None = (-1.0, 1.0)) -> gp.PrimitiveSet:
    """A DEAP primitive set over our ops ``op_names`` with inputs ``ARG0..``.

    Each primitive is named after its op, takes the op's arity and computes it with
    numpy in float32. Literals, when ``literal_range`` is given, are float32 values drawn
    uniformly from it (ephemeral constant ``"literal"``); ``None`` leaves them out.
    """
    names = list(op_names)
    if not names:
        raise ValueError("op_names is empty; give at least one op, e.g. ['add', 'mul']")
    if n_inputs < 1:
        raise ValueError(f"n_inputs must be at least 1, got {n_inputs}")
    pset = gp.PrimitiveSet("MAIN", n_inputs)
    for name in dict.fromkeys(names):
        op = OPS[opcode(name)]
        if op.arity == 0:
            raise ValueError(f"op {name!r} is a literal, not a primitive; literals come from "
                             "literal_range, e.g. primitive_set(ops, literal_range=(-1, 1))")
        pset.addPrimitive(_primitive(name), op.arity, name=name)
    if literal_range is not None:
        low, high = (float(v) for v in literal_range)
        if not (np.isfinite(np.float32(low)) and np.isfinite(np.float32(high)) and low <= high):
            raise ValueError(f"literal_range must be finite float32 bounds low <= high, "
                             f"got {literal_range}")
        pset.addEphemeralConstant(LITERAL, partial(_draw_literal, low, high))
    return pset


def random_trees(rng: random.Random, pset: gp.PrimitiveSet, n: int, min_depth: int,
                 max_depth: int) -> list[gp.PrimitiveTree]:
    """``n`` trees from DEAP's ramped half-and-half (``genHalfAndHalf``), drawn from ``rng``.

    The same ``rng`` state gives the same trees; the global ``random`` state is untouched.
    """
    if not 0 <= min_depth <= max_depth:
        raise ValueError(f"need 0 <= min_depth <= max_depth, got {min_depth}, {max_depth}")
    with private_random(rng):
        return [gp.PrimitiveTree(gp.genHalfAndHalf(pset, min_depth, max_depth))
                for _ in range(n)]


def compile_tree(tree: gp.PrimitiveTree, pset: gp.PrimitiveSet) -> Callable[..., np.ndarray]:
    """The tree as a function of its inputs (``gp.compile``), warnings silenced.

    Division by zero and the like give IEEE infinities and NaNs, as in our programs.
    np.errstate wraps the whole call, not each primitive: per call it costs more than
    a primitive on a thousand points.
    """
    fn = gp.compile(tree, pset)

    def run(*inputs: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return fn(*inputs)

    return run


# -- compiling into a program ---------------------------------------------------------
def _node_kind(node, n_inputs: int) -> tuple[str, int | float]:
    """("arg", index), ("const", value) or ("op", opcode), or a ValueError."""
    if isinstance(node, gp.Primitive):
        if node.name not in OPCODE or OPS[OPCODE[node.name]].arity != node.arity:
            raise ValueError(f"primitive {node.name!r}/{node.arity} is not an op of ours; "
                             "build trees with evolve.trees.primitive_set")
        return "op", OPCODE[node.name]
    value = node.value
    if isinstance(value, str):
        index = value[3:]
        if value.startswith("ARG") and index.isdigit() and int(index) < n_inputs:
            return "arg", int(index)
        raise ValueError(f"terminal {value!r} is not an input ARG0..ARG{n_inputs - 1}; "
                         "name inputs ARG<i> (DEAP's default) and pass n_inputs")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"terminal {value!r} is neither an input nor a number")
    if not np.isfinite(np.float32(value)):
        raise ValueError(f"literal {value!r} is not a finite float32")
    return "const", float(np.float32(value))


def _children(tree: Sequence) -> list[list[int]]:
    """The children (node indices, in argument order) of every node of a prefix tree."""
    children: list[list[int]] = [[] for _ in tree]
    stack: list[int] = []  # nodes still waiting for arguments
    for i, node in enumerate(tree):
        if stack:
            children[stack[-1]].append(i)
            if len(children[stack[-1]]) == tree[stack[-1]].arity:
                stack.pop()
        if node.arity:
            stack.append(i)
    if stack:
        raise ValueError("the tree is incomplete: a primitive lacks arguments")
    return children


def registers_needed(tree: gp.PrimitiveTree, n_inputs: int) -> int:
    """Registers ``tree_to_program`` needs for ``tree``: inputs plus its Sethi-Ullman number."""
    kinds = [_node_kind(node, n_inputs) for node in tree]
    return n_inputs + _need(kinds, _children(tree))[0]


def _need(kinds, children) -> list[int]:
    """Scratch registers each subtree needs when children run in decreasing need."""
    need = [0] * len(kinds)
    for i in range(len(kinds) - 1, -1, -1):  # children come after their parent
        kind = kinds[i][0]
        if kind == "arg":
            need[i] = 0  # read in place from its input register
        elif kind == "const":
            need[i] = 1
        else:
            peak, held = 1, 0
            for c in sorted(children[i], key=lambda c: -need[c]):
                peak = max(peak, held + need[c])
                held += kinds[c][0] != "arg"
            need[i] = peak
    return need


def tree_to_program(tree: gp.PrimitiveTree, n_inputs: int, n_registers: int) -> Program:
    """The tree as a straight-line program computing the same ops on the same operands.

    Inputs ``ARG<i>`` are read from register ``r<i>`` and never written; literals become
    ``const`` instructions; every primitive becomes one instruction. Subtrees run in
    post-order, the child needing most registers first (Sethi-Ullman), so a tree of
    ``n`` nodes needs about ``log2(n)`` scratch registers past the inputs. A tree that is
    a bare input compiles to no instructions, returning that input's register.

    Raises ValueError if ``n_registers`` is too few (the message gives the number needed)
    or if the tree holds something that is not one of our ops, an input or a number.
    """
    kinds = [_node_kind(node, n_inputs) for node in tree]
    if not kinds:
        raise ValueError("the tree is empty")
    children = _children(tree)
    need = _need(kinds, children)
    required = n_inputs + need[0]
    if required > n_registers:
        raise ValueError(
            f"the tree ({len(tree)} nodes, height {tree.height}) needs {required} registers "
            f"({n_inputs} inputs + {need[0]} scratch), but n_registers={n_registers}; "
            f"raise n_registers to {required} or generate shallower trees")

    free = list(range(n_registers - 1, n_inputs - 1, -1))  # pop() gives the lowest
    instructions: list[Instruction] = []

    def emit(i: int) -> int:
        kind, what = kinds[i]
        if kind == "arg":
            return what
        if kind == "const":
            dst = free.pop()
            instructions.append(Instruction(CONST, dst, (), what))
            return dst
        regs = [0] * len(children[i])
        order = sorted(range(len(children[i])), key=lambda j: -need[children[i][j]])
        for j in order:
            regs[j] = emit(children[i][j])
        scratch = {r for r in regs if r >= n_inputs}
        free.extend(scratch)
        free.sort(reverse=True)
        dst = free.pop()  # the lowest free register: a child's, if any child held one
        instructions.append(Instruction(what, dst, tuple(regs)))
        return dst

    output = emit(0)
    return Program(tuple(instructions), output)
