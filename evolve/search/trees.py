"""The DEAP bridge: expression trees from DEAP, compiled into our straight-line programs.

DEAP is walled off here (docs/architecture.md). This module builds a ``gp.PrimitiveSet`` from our
ops table, generates random ``gp.PrimitiveTree`` objects from a private, seeded
``random.Random`` (never the global stream), and compiles a tree into a ``Program``.

- ``primitive_set(op_names, n_inputs)``: DEAP primitives named after our ops, computing
  in float32 with numpy, IEEE semantics (no protected division or log). Arguments are
  ``ARG0..``; literals are an ephemeral constant drawn as float32 values.
- ``random_trees(rng, pset, n, min_depth, max_depth)``: DEAP's ramped half-and-half,
  drawing from ``rng`` only.
- ``tree_to_program(tree, n_inputs, n_registers)``: the same function as one of our
  programs, with registers allocated by Sethi-Ullman numbering; ``program_nodes`` maps
  its instructions back to tree nodes and ``set_literals`` writes fitted literals back.
- ``tree_text`` / ``parse_tree``: trees as text and back, by our own parser (DEAP's
  ``PrimitiveTree.from_string`` evaluates tokens; ours never evaluates anything).
- ``crossover``, ``mutate``, ``within_limits``: DEAP's one-point crossover and its
  uniform, node-replacement, shrink, ephemeral and insert mutations on copies, drawing
  from a private ``random.Random``; the size, height and register limits against bloat.

No ``creator.create`` here: trees are plain ``gp.PrimitiveTree`` objects. One concept
over 400 lines: the DEAP bridge (everything that touches DEAP's trees).
"""

from __future__ import annotations

import random
import re
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
from deap import gp

from evolve.ops import CONST, MAX_ARITY, OPCODE, OPS, opcode
from evolve.program import F32_MAX, Instruction, Program, f32

LITERAL = "literal"  # the name of the ephemeral constant in our primitive sets

# our opcode of each DEAP primitive, by its name (``Op.deap``)
_DEAP_OPCODE: dict[str, int] = {op.deap: i for i, op in enumerate(OPS) if op.arity}


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


_STREAMS: list[random.Random] = []  # the innermost is the one DEAP's gp module draws from


@contextmanager
def _gp_draws_from(rng: random.Random) -> Iterator[None]:
    """Run a block in which DEAP's ``gp`` module (and literals) draw from ``rng``.

    The same draws as ``private_random`` (the global ``random`` functions are the
    methods of one ``random.Random``, so ``rng``'s methods give the same values from the
    same state), without copying two Mersenne Twister states in and out per call: the
    module's ``random`` name is pointed at ``rng`` for the block. Only ``deap.gp`` is
    redirected, so use it for ``gp`` generators and operators only; not thread-safe.
    """
    saved = gp.random
    gp.random = rng
    _STREAMS.append(rng)
    try:
        yield
    finally:
        _STREAMS.pop()
        gp.random = saved


def _draw_literal(low: float, high: float) -> float:
    # Called by DEAP when it creates a literal, under _gp_draws_from (the innermost
    # stream) or private_random (the global module holds the private stream then). A
    # Python float that is exactly a float32 value, so DEAP's repr round-trips it and our
    # const instruction holds the same bits.
    stream = _STREAMS[-1] if _STREAMS else random
    return f32(stream.uniform(low, high))


# -- the primitive set ----------------------------------------------------------------
def _primitive(name: str) -> Callable:
    op = OPS[OPCODE[name]]
    # a single numpy ufunc: called with dtype=float32 so that literals (Python floats in
    # DEAP's compiled code) are rounded to float32 as our const instructions are
    # (tests/test_trees.py checks each against the ops table's numpy reference)
    if op.ufunc is not None:
        return partial(op.ufunc, dtype=np.float32)
    fn = op.np_fn

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
        pset.addPrimitive(_primitive(name), op.arity, name=op.deap)
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
    with _gp_draws_from(rng):
        return [gp.PrimitiveTree(gp.genHalfAndHalf(pset, min_depth, max_depth))
                for _ in range(n)]


# -- compiling into a program ---------------------------------------------------------
# id(node) -> (node, n_inputs, kind) for primitives and inputs, the nodes a primitive set
# shares between its trees (the node is kept, so its id is not reused while cached)
_KINDS: dict[int, tuple] = {}


def _node_kind(node, n_inputs: int) -> tuple[str, int | float]:
    """("arg", index), ("const", value) or ("op", opcode), or a ValueError."""
    hit = _KINDS.get(id(node))
    if hit is not None and hit[0] is node and hit[1] == n_inputs:
        return hit[2]
    value = getattr(node, "value", None)
    if type(value) is float and -F32_MAX <= value <= F32_MAX:  # a literal: the common case
        return "const", f32(value)
    kind = _node_kind_slow(node, n_inputs)
    if kind[0] != "const":
        _KINDS[id(node)] = (node, n_inputs, kind)
    return kind


def _node_kind_slow(node, n_inputs: int) -> tuple[str, int | float]:
    if isinstance(node, gp.Primitive):
        if node.name not in _DEAP_OPCODE or OPS[_DEAP_OPCODE[node.name]].arity != node.arity:
            raise ValueError(f"primitive {node.name!r}/{node.arity} is not an op of ours; "
                             "build trees with evolve.search.trees.primitive_set")
        return "op", _DEAP_OPCODE[node.name]
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
            ch = children[i]
            peak, held = 1, 0
            for j in _by_need(ch, need):
                peak = max(peak, held + need[ch[j]])
                held += kinds[ch[j]][0] != "arg"
            need[i] = peak
    return need


def _by_need(children, need) -> list[int]:
    """The positions of ``children`` by decreasing ``need``, ties in argument order (a
    stable sort; one and two children, nearly every node, without sorting)."""
    if len(children) == 1:
        return [0]
    if len(children) == 2:
        return [1, 0] if need[children[1]] > need[children[0]] else [0, 1]
    return sorted(range(len(children)), key=lambda j: -need[children[j]])


class Code(NamedTuple):
    """A tree compiled (``compile_tree``): the rows of its program (``evolve.program``'s
    array form of one program), and where each instruction came from."""

    ints: np.ndarray  # int32 [n, 2 + MAX_ARITY]: op, dst, argument registers padded with 0
    values: np.ndarray  # float32 [n]: the literal of const rows, 0 elsewhere
    output: int  # the register returned
    nodes: tuple[int, ...]  # the tree node each instruction computes

    def program(self) -> Program:
        """The straight-line program (``Instruction`` objects: for the edges, text and
        export; the search stacks ``Code`` rows into batches with ``from_rows``)."""
        instructions = tuple(
            Instruction(op, dst, args[: OPS[op].arity], value)
            for (op, dst, *args), value in zip(self.ints.tolist(), self.values.tolist()))
        program = Program(instructions, self.output)
        object.__setattr__(program, "_rows", (self.ints, self.values))  # already known
        return program


def compile_tree(tree: gp.PrimitiveTree, n_inputs: int, n_registers: int) -> Code:
    """The tree as the rows of a straight-line program computing the same ops on the same
    operands (``tree_to_program`` gives it as a ``Program``).

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
    rows: list[tuple[int, ...]] = []
    values: list[float] = []
    nodes: list[int] = []
    pad = (0,) * MAX_ARITY

    def emit(i: int) -> int:
        kind, what = kinds[i]
        if kind == "arg":
            return what
        if kind == "const":
            dst = free.pop()
            rows.append((CONST, dst, *pad))
            values.append(what)
            nodes.append(i)
            return dst
        ch = children[i]
        regs = [0] * len(ch)
        for j in _by_need(ch, need):
            regs[j] = emit(ch[j])
        scratch = {r for r in regs if r >= n_inputs}
        free.extend(scratch)
        free.sort(reverse=True)
        dst = free.pop()  # the lowest free register: a child's, if any child held one
        rows.append((what, dst, *(regs + [0] * (MAX_ARITY - len(regs)))))
        values.append(0.0)
        nodes.append(i)
        return dst

    output = emit(0)
    return Code(np.array(rows, np.int32).reshape(len(rows), 2 + MAX_ARITY),
                np.array(values, np.float32), output, tuple(nodes))


def tree_to_program(tree: gp.PrimitiveTree, n_inputs: int, n_registers: int) -> Program:
    """The tree as a straight-line program (``compile_tree``, which says how and raises
    what)."""
    return compile_tree(tree, n_inputs, n_registers).program()


def with_literals(tree: gp.PrimitiveTree, code: Code, values: np.ndarray,
                  pset: gp.PrimitiveSet) -> gp.PrimitiveTree:
    """``tree`` (compiled as ``code``) with the literals ``values`` (float32 [n], one a
    row of ``code``; only its const rows are read), each at the node it was compiled
    from: fitted literals written back."""
    out = gp.PrimitiveTree(list(tree))
    for k in np.flatnonzero(code.ints[:, 0] == CONST).tolist():
        out[code.nodes[k]] = literal_node(pset, float(values[k]))
    return out


def program_nodes(tree: gp.PrimitiveTree, n_inputs: int) -> list[int]:
    """For each instruction of ``tree_to_program(tree, ...)``, the index of its tree node
    (``compile_tree``'s ``Code.nodes``: the order depends on the tree's shape only, not
    on the registers, so any number of them that suffices gives it)."""
    return list(compile_tree(tree, n_inputs, n_inputs + len(tree)).nodes)


# -- text: our own format and parser (no eval) -------------------------------------------
def tree_text(tree: gp.PrimitiveTree) -> str:
    """The tree as text: ``op(arg, ...)``, inputs ``ARG<i>``, literals as the shortest
    decimal that reads back to the same float (``repr``). ``parse_tree`` reads it back."""
    out: list[str] = []
    stack: list[list[int]] = []  # [arguments still to write] of each open primitive
    for node in tree:
        if stack:
            if stack[-1][0] < stack[-1][1]:
                out.append(", ")
            stack[-1][0] -= 1
        if isinstance(node, gp.Primitive):
            out.append(node.name + "(")
            stack.append([node.arity, node.arity])
        else:
            value = node.value
            out.append(value if isinstance(value, str) else repr(float(value)))
            while stack and stack[-1][0] == 0:
                stack.pop()
                out.append(")")
    return "".join(out)


class TreeParseError(ValueError):
    """Text that is not a tree of a primitive set; the message names the column."""


_TOKEN = re.compile(r"\s*(?:(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
                    r"|(?P<name>[A-Za-z_]\w*)|(?P<punct>[(),]))")


def literal_node(pset: gp.PrimitiveSet, value: float) -> gp.Terminal:
    """A literal leaf holding ``value`` (a float32 value), as the set's ephemeral
    constant when it has one (so ephemeral mutation can redraw it), else a plain one."""
    value = float(np.float32(value))
    cls = pset.mapping.get(LITERAL)
    if cls is None:
        return gp.Terminal(value, False, object)
    node = object.__new__(cls)  # without __init__, which would draw a random value
    node.value = value
    return node


def parse_tree(text: str, pset: gp.PrimitiveSet) -> gp.PrimitiveTree:
    """The tree that ``tree_text`` wrote, over the primitive set ``pset``.

    A hand-written recursive-descent parser: names must be primitives or inputs of
    ``pset``, numbers finite float32 values; nothing is evaluated. Raises TreeParseError
    naming the column and what was expected.
    """
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise TreeParseError(f"column {pos + 1}: unexpected {text[pos]!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    prims = {p.name: p for p in pset.primitives[pset.ret]}
    terms = {t.name: t for t in pset.terminals[pset.ret] if isinstance(t, gp.Terminal)}
    nodes: list = []
    i = 0

    def expect(what: str) -> tuple[str, str, int]:
        nonlocal i
        if i >= len(tokens):
            raise TreeParseError(f"column {len(text) + 1}: expected {what}, got the end")
        tok = tokens[i]
        i += 1
        return tok

    def expr() -> None:
        kind, value, col = expect("an op, an input or a number")
        if kind == "num":
            v = float(value)
            if not abs(v) <= F32_MAX:
                raise TreeParseError(f"column {col}: {value} is not a finite float32")
            nodes.append(literal_node(pset, v))
        elif kind == "name" and value in prims:
            prim = prims[value]
            if expect("'('")[1] != "(":
                raise TreeParseError(f"column {tokens[i - 1][2]}: expected '(' after {value}")
            nodes.append(prim)
            for k in range(prim.arity):
                expr()
                sep = ")" if k == prim.arity - 1 else ","
                tok = expect(f"{sep!r}")
                if tok[1] != sep:
                    raise TreeParseError(f"column {tok[2]}: expected {sep!r} ({value} takes "
                                         f"{prim.arity} argument{'s' * (prim.arity != 1)}), "
                                         f"got {tok[1]!r}")
        elif kind == "name" and value in terms:
            nodes.append(terms[value])
        else:
            known = ", ".join([*prims, *terms])
            raise TreeParseError(f"column {col}: unknown {value!r}; expected one of {known} "
                                 "or a number")

    expr()
    if i != len(tokens):
        raise TreeParseError(f"column {tokens[i][2]}: unexpected {tokens[i][1]!r} after the "
                             "end of the tree")
    return gp.PrimitiveTree(nodes)


def set_literals(tree: gp.PrimitiveTree, program: Program, pset: gp.PrimitiveSet,
                 n_inputs: int) -> gp.PrimitiveTree:
    """``tree`` with its literals replaced by those of ``program`` (the tree compiled,
    then fitted): literal k of the program goes to the node it was compiled from
    (``with_literals``)."""
    values = np.array([ins.value for ins in program.instructions], np.float32)
    return with_literals(tree, compile_tree(tree, n_inputs, n_inputs + len(tree)), values,
                         pset)


# -- variation ------------------------------------------------------------------------
TREE_MUTATIONS = ("uniform", "node_replacement", "shrink", "ephemeral", "insert")


def crossover(rng: random.Random, a: gp.PrimitiveTree, b: gp.PrimitiveTree) -> gp.PrimitiveTree:
    """DEAP's one-point crossover (``cxOnePoint``): ``a`` with one of its subtrees
    replaced by one of ``b``'s. The parents are left unchanged."""
    child, other = gp.PrimitiveTree(list(a)), gp.PrimitiveTree(list(b))
    with _gp_draws_from(rng):
        return gp.cxOnePoint(child, other)[0]


def mutate(rng: random.Random, tree: gp.PrimitiveTree, pset: gp.PrimitiveSet, kind: str,
           subtree_depth: tuple[int, int] = (0, 2)) -> gp.PrimitiveTree:
    """A mutated copy of ``tree`` by DEAP's operator ``kind``:

    uniform           a random subtree replaced by a new full tree (``mutUniform``,
                      depth in ``subtree_depth``)
    node_replacement  one node replaced by another of the same arity (``mutNodeReplacement``)
    shrink            a subtree replaced by one of its arguments (``mutShrink``)
    ephemeral         one literal drawn anew (``mutEphemeral``, mode "one")
    insert            a new primitive inserted above a subtree (``mutInsert``)
    """
    child = gp.PrimitiveTree(list(tree))
    lo, hi = subtree_depth
    with _gp_draws_from(rng):
        if kind == "uniform":
            return gp.mutUniform(child, partial(gp.genFull, min_=lo, max_=hi), pset)[0]
        if kind == "node_replacement":
            return gp.mutNodeReplacement(child, pset)[0]
        if kind == "shrink":
            return gp.mutShrink(child)[0]
        if kind == "ephemeral":
            return gp.mutEphemeral(child, "one")[0]
        if kind == "insert":
            return gp.mutInsert(child, pset)[0]
    raise ValueError(f"unknown tree mutation {kind!r}; known: {', '.join(TREE_MUTATIONS)}")


def within_limits(tree: gp.PrimitiveTree, n_inputs: int, max_size: int, max_height: int,
                  n_registers: int) -> bool:
    """Whether ``tree`` keeps the limits against bloat: at most ``max_size`` nodes, height
    at most ``max_height``, and compilable into ``n_registers`` registers."""
    return (len(tree) <= max_size and tree.height <= max_height
            and registers_needed(tree, n_inputs) <= n_registers)
