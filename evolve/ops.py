"""The ops table: every operation a program may use, in one place.

Each op lists its arity, its JAX function, its numpy reference, a cost weight and every
spelling of it: sympy, C99, CUDA C++, PTX, the numpy/JAX expression export writes, LaTeX
and the DEAP primitive's name. Every other part of the engine (evaluators and their
kernels, variation, the DEAP bridge, export, LLM prompts) reads ops from here and refers
to them by name or by opcode (the index in ``OPS``): adding an op is one entry here (and
its case in tests/test_ops.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax.numpy as jnp
import numpy as np
from jax import lax


def _fma_np(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a*b+c with one rounding to the input precision (numpy reference)."""
    a = np.asarray(a)
    if a.dtype == np.float64:
        return _fma64_np(a, np.asarray(b, np.float64), np.asarray(c, np.float64))
    with np.errstate(all="ignore"):
        s = _round_to_odd_np(a.astype(np.float64), np.asarray(b, np.float64), np.asarray(c, np.float64))
    return s.astype(a.dtype)


def _round_to_odd_np(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    # a, b are float32 values held in float64, so p = a*b is exact (48 bits). s = p + c
    # rounded to nearest, e its exact error (TwoSum). Rounding s to odd when inexact makes
    # the later rounding to float32 correct (Boldo & Melquiond, round-to-odd).
    p = a * b
    s = p + c
    bp = s - p
    e = (p - (s - bp)) + (c - bp)
    bits = s.view(np.int64)
    inexact = (e != 0) & np.isfinite(s)
    even = (bits & 1) == 0
    away = (e > 0) == (s > 0)  # the exact value lies further from zero than s
    step = np.where(away, 1, -1)
    bits = np.where(inexact & even & (s != 0), bits + step, bits)
    return bits.view(np.float64)


def _fma64_np(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    # float64 mode: no wider type to round through, so fma is a*b+c with two roundings,
    # the same on both paths (documented in docs/numerics.md).
    return a * b + c


def _fma_jax(a, b, c):
    """a*b+c with one rounding in float32, whatever the backend does with a*b+c."""
    if a.dtype == jnp.float64:
        return a * b + c
    a64, b64, c64 = (x.astype(jnp.float64) for x in (a, b, c))
    p = a64 * b64
    s = p + c64
    bp = s - p
    e = (p - (s - bp)) + (c64 - bp)
    bits = lax.bitcast_convert_type(s, jnp.int64)
    inexact = (e != 0) & jnp.isfinite(s) & (s != 0)
    even = (bits & 1) == 0
    away = (e > 0) == (s > 0)
    bits = jnp.where(inexact & even, bits + jnp.where(away, 1, -1).astype(jnp.int64), bits)
    return lax.bitcast_convert_type(bits, jnp.float64).astype(a.dtype)


def _min(xp):
    """IEEE 754-2019 minimum: NaN if either is NaN, and -0 < +0, on every backend."""

    def fn(a, b):
        pick_a = (a < b) | ((a == b) & xp.signbit(a))
        return xp.where(xp.isnan(a) | xp.isnan(b), a + b, xp.where(pick_a, a, b))

    return fn


def _max(xp):
    """IEEE 754-2019 maximum: NaN if either is NaN, and +0 > -0, on every backend."""

    def fn(a, b):
        pick_a = (a > b) | ((a == b) & ~xp.signbit(a))
        return xp.where(xp.isnan(a) | xp.isnan(b), a + b, xp.where(pick_a, a, b))

    return fn


@dataclass(frozen=True)
class Op:
    """One operation: ``dst = name(args...)``, or a literal when ``arity == 0``.

    Every spelling of the op lives here; the backends and exporters read them. Format
    strings take the operands as ``{0} {1} {2}`` (the literal: ``{k}``)."""

    name: str
    arity: int
    jax_fn: Callable
    np_fn: Callable
    cost: float
    exact: bool  # exactly rounded in IEEE arithmetic: JAX and numpy agree bit for bit
    doc: str
    sympy: str  # sympy code; names from the sympy module (``sympy_functions`` reads it)
    c: str  # C99 over float operands; may call a helper of C_HELPERS
    cuda: str  # CUDA C++ over float operands (exactly rounded intrinsics where IEEE is)
    ptx: tuple[str, ...] | None  # PTX lines over f32 registers {d} {a} {b} {c}; None: C++
    python: str  # what export writes for numpy and JAX, over {xp} (np or jnp)
    latex: str  # LaTeX as sympy prints the op (``sympy.latex``)
    deap: str  # the name of the DEAP primitive (``evolve.search.trees``)
    ufunc: Callable | None = None  # numpy ufunc computing it in float32 (dtype=), if any
    jax: str | None = None  # export's JAX expression where it is not ``python``


def _np(fn: Callable) -> Callable:
    def wrapped(*args):
        with np.errstate(all="ignore"):
            return fn(*args)

    return wrapped


# IEEE division in PTX: zero, infinite and NaN operands by rule, the rest by div.rn. The
# quotient for those is the product of the special operand (the divisor's reciprocal) and
# the other's sign, the division itself run on 1 / 1 for them (the division's own check
# would send them down its slow path); as ev_div in evolve.eval.cuda.kernel.
_PTX_DIV = (
    "abs.f32 x_n, {a};", "setp.geu.f32 x_pa, x_n, 0f7F800000;",  # inf, NaN
    "setp.eq.or.f32 x_pa, {a}, 0f00000000, x_pa;",  # or zero
    "abs.f32 x_n, {b};", "setp.geu.f32 x_pb, x_n, 0f7F800000;",
    "setp.eq.or.f32 x_pb, {b}, 0f00000000, x_pb;", "or.pred x_ps, x_pa, x_pb;",
    "selp.f32 x_n, 0f3F800000, {a}, x_ps;", "selp.f32 x_q, 0f3F800000, {b}, x_ps;",
    "div.rn.f32 x_q, x_n, x_q;",
    "and.b32 x_m, {a}, 0x80000000;", "or.b32 x_m, x_m, 0x3f800000;",
    "selp.b32 x_n, {a}, x_m, x_pa;",
    "rcp.approx.ftz.f32 x_r, {b};",
    "and.b32 x_m, {b}, 0x80000000;", "or.b32 x_m, x_m, 0x3f800000;",
    "selp.b32 x_r, x_r, x_m, x_pb;",
    "mul.rn.f32 x_n, x_n, x_r;", "selp.f32 {d}, x_n, x_q, x_ps;")

# Under jit, XLA's CPU backend fuses a multiply feeding an add into one FMA (one rounding
# instead of two), and no flag, optimization_barrier or reduce_precision stops it; a select
# between the product and one of its own operands does (NaN a: NaN either way).
_JAX_MUL = "jnp.where({0} != {0}, {0}, {0} * {1})"

OPS: tuple[Op, ...] = (
    Op("const", 0, None, None, 0.0, True, "a literal constant", sympy="{k}", c="{k}f",
       cuda="{k}f", ptx=None, python="{xp}.float32({k})", latex="{k}", deap="literal"),
    Op("add", 2, jnp.add, _np(np.add), 1.0, True, "a + b", sympy="({0} + {1})",
       c="({0} + {1})", cuda="__fadd_rn({0}, {1})", ptx=("add.rn.f32 {d}, {a}, {b};",),
       python="{0} + {1}", latex="{0} + {1}", deap="add", ufunc=np.add),
    Op("sub", 2, jnp.subtract, _np(np.subtract), 1.0, True, "a - b", sympy="({0} - {1})",
       c="({0} - {1})", cuda="__fsub_rn({0}, {1})", ptx=("sub.rn.f32 {d}, {a}, {b};",),
       python="{0} - {1}", latex="{0} - {1}", deap="sub", ufunc=np.subtract),
    Op("mul", 2, jnp.multiply, _np(np.multiply), 1.0, True, "a * b", sympy="({0}*{1})",
       c="({0} * {1})", cuda="__fmul_rn({0}, {1})", ptx=("mul.rn.f32 {d}, {a}, {b};",),
       python="{0} * {1}", jax=_JAX_MUL, latex="{0} {1}", deap="mul", ufunc=np.multiply),
    Op("div", 2, jnp.divide, _np(np.divide), 4.0, True, "a / b (IEEE)", sympy="({0}/{1})",
       c="({0} / {1})", cuda="ev_div({0}, {1})", ptx=_PTX_DIV, python="{0} / {1}",
       latex="\\frac{{{0}}}{{{1}}}", deap="div", ufunc=np.divide),
    Op("fma", 3, _fma_jax, _np(_fma_np), 1.0, True, "a * b + c with a single rounding",
       sympy="({0}*{1} + {2})", c="fmaf({0}, {1}, {2})", cuda="__fmaf_rn({0}, {1}, {2})",
       ptx=("fma.rn.f32 {d}, {a}, {b}, {c};",), python="_fma({0}, {1}, {2})",
       latex="{0} {1} + {2}", deap="fma"),
    Op("neg", 1, jnp.negative, _np(np.negative), 1.0, True, "-a", sympy="(-{0})", c="(-{0})",
       cuda="(-{0})", ptx=("neg.f32 {d}, {a};",), python="-{0}", latex="- {0}", deap="neg",
       ufunc=np.negative),
    Op("abs", 1, jnp.abs, _np(np.abs), 1.0, True, "|a|", sympy="Abs({0})", c="fabsf({0})",
       cuda="fabsf({0})", ptx=("abs.f32 {d}, {a};",), python="{xp}.abs({0})",
       latex="\\left|{{{0}}}\\right|", deap="abs", ufunc=np.absolute),
    Op("min", 2, _min(jnp), _np(_min(np)), 1.0, True, "min(a, b), NaN if either is NaN",
       sympy="Min({0}, {1})", c="evolve_minimumf({0}, {1})", cuda="ev_min({0}, {1})",
       ptx=None, python="_minimum({0}, {1})", latex="\\min\\left({0}, {1}\\right)",
       deap="min", ufunc=np.minimum),
    Op("max", 2, _max(jnp), _np(_max(np)), 1.0, True, "max(a, b), NaN if either is NaN",
       sympy="Max({0}, {1})", c="evolve_maximumf({0}, {1})", cuda="ev_max({0}, {1})",
       ptx=None, python="_maximum({0}, {1})", latex="\\max\\left({0}, {1}\\right)",
       deap="max", ufunc=np.maximum),
    Op("sqrt", 1, jnp.sqrt, _np(np.sqrt), 4.0, True, "square root", sympy="sqrt({0})",
       c="sqrtf({0})", cuda="__fsqrt_rn({0})", ptx=("sqrt.rn.f32 {d}, {a};",),
       python="{xp}.sqrt({0})", latex="\\sqrt{{{0}}}", deap="sqrt", ufunc=np.sqrt),
    Op("exp2", 1, jnp.exp2, _np(np.exp2), 10.0, False, "2^a", sympy="2**({0})",
       c="exp2f({0})", cuda="exp2f({0})", ptx=None, python="{xp}.exp2({0})",
       latex="2^{{{0}}}", deap="exp2", ufunc=np.exp2),
    Op("exp", 1, jnp.exp, _np(np.exp), 10.0, False, "e^a", sympy="exp({0})", c="expf({0})",
       cuda="expf({0})", ptx=None, python="{xp}.exp({0})", latex="e^{{{0}}}", deap="exp",
       ufunc=np.exp),
    Op("log", 1, jnp.log, _np(np.log), 10.0, False, "natural log", sympy="log({0})",
       c="logf({0})", cuda="logf({0})", ptx=None, python="{xp}.log({0})",
       latex="\\log{{\\left({0} \\right)}}", deap="log", ufunc=np.log),
    Op("sin", 1, jnp.sin, _np(np.sin), 10.0, False, "sine", sympy="sin({0})", c="sinf({0})",
       cuda="sinf({0})", ptx=None, python="{xp}.sin({0})",
       latex="\\sin{{\\left({0} \\right)}}", deap="sin", ufunc=np.sin),
    Op("cos", 1, jnp.cos, _np(np.cos), 10.0, False, "cosine", sympy="cos({0})",
       c="cosf({0})", cuda="cosf({0})", ptx=None, python="{xp}.cos({0})",
       latex="\\cos{{\\left({0} \\right)}}", deap="cos", ufunc=np.cos),
    Op("tanh", 1, jnp.tanh, _np(np.tanh), 10.0, False, "hyperbolic tangent",
       sympy="tanh({0})", c="tanhf({0})", cuda="tanhf({0})", ptx=None,
       python="{xp}.tanh({0})", latex="\\tanh{{\\left({0} \\right)}}", deap="tanh",
       ufunc=np.tanh),
)

# C definitions of the helpers that C spellings call, by name: code that emits C (export)
# includes those its spellings use. C99's fminf/fmaxf return the other operand for a NaN
# and may order -0 and +0 either way, unlike our min/max (IEEE 754-2019 minimum/maximum).
C_HELPERS: dict[str, str] = {
    "evolve_minimumf": """\
/* IEEE 754-2019 minimum: NaN if either is NaN, and -0 < +0. */
static inline float evolve_minimumf(float a, float b)
{
    if (isnan(a) || isnan(b))
        return a + b;
    return (a < b || (a == b && signbit(a))) ? a : b;
}
""",
    "evolve_maximumf": """\
/* IEEE 754-2019 maximum: NaN if either is NaN, and +0 > -0. */
static inline float evolve_maximumf(float a, float b)
{
    if (isnan(a) || isnan(b))
        return a + b;
    return (a > b || (a == b && !signbit(a))) ? a : b;
}
""",
}

OPCODE: dict[str, int] = {op.name: i for i, op in enumerate(OPS)}
CONST: int = OPCODE["const"]
MAX_ARITY: int = 3


def opcode(name: str) -> int:
    """The opcode of op ``name``; a KeyError that lists the known ops otherwise."""
    try:
        return OPCODE[name]
    except KeyError:
        known = ", ".join(OPCODE)
        raise KeyError(f"unknown op {name!r}; known ops: {known}") from None


def opcodes(names) -> tuple[int, ...]:
    """Opcodes for an iterable of op names, in the given order."""
    return tuple(opcode(n) for n in names)


def _sympy_call(node, args: tuple, sympy):
    """The sympy value of a parsed ``Op.sympy`` spelling (operators, integer literals,
    ``{i}`` as the names ``_i``, and calls of sympy functions), built without eval."""
    import ast
    import operator

    binary = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv, ast.Pow: operator.pow}
    if isinstance(node, ast.Expression):
        return _sympy_call(node.body, args, sympy)
    if isinstance(node, ast.BinOp) and type(node.op) in binary:
        return binary[type(node.op)](_sympy_call(node.left, args, sympy),
                                     _sympy_call(node.right, args, sympy))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_sympy_call(node.operand, args, sympy)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return sympy.Integer(node.value)
    if isinstance(node, ast.Name) and node.id.startswith("_"):
        return args[int(node.id[1:])]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return getattr(sympy, node.func.id)(*(_sympy_call(a, args, sympy) for a in node.args))
    raise ValueError(f"an op's sympy spelling has {ast.dump(node)}: use operators, integers "
                     "and sympy functions only")


def sympy_functions() -> dict[str, Callable]:
    """Each op (but const) as a function of sympy expressions, read from its ``sympy``
    spelling: the exact real operation (``fma`` is ``a*b + c``), for export and for
    formulas."""
    import ast

    import sympy

    def function(op: Op) -> Callable:
        tree = ast.parse(op.sympy.format(*(f"_{i}" for i in range(op.arity))), mode="eval")
        return lambda *args: _sympy_call(tree, args, sympy)

    return {op.name: function(op) for op in OPS if op.arity}
