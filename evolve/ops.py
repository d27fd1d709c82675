"""The ops table: every operation a program may use, in one place.

Each op lists its arity, its JAX function, its numpy reference, a cost weight and its
sympy and C spellings. Every other part of the engine (interpreter, variation, export,
LLM prompts) reads ops from here and refers to them by name or by opcode (the index in
``OPS``).
"""

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
    # the same on both paths (documented in the README).
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
    """One operation: ``dst = name(args...)``, or a literal when ``arity == 0``."""

    name: str
    arity: int
    jax_fn: Callable
    np_fn: Callable
    cost: float
    sympy: str  # format string over {0} {1} {2}, names from the sympy module
    c: str  # format string in C99 over float operands; may call a helper of C_HELPERS
    exact: bool  # exactly rounded in IEEE arithmetic: JAX and numpy agree bit for bit
    doc: str


def _np(fn: Callable) -> Callable:
    def wrapped(*args):
        with np.errstate(all="ignore"):
            return fn(*args)

    return wrapped


OPS: tuple[Op, ...] = (
    Op("const", 0, None, None, 0.0, "{k}", "{k}f", True, "a literal constant"),
    Op("add", 2, jnp.add, _np(np.add), 1.0, "({0} + {1})", "({0} + {1})", True, "a + b"),
    Op("sub", 2, jnp.subtract, _np(np.subtract), 1.0, "({0} - {1})", "({0} - {1})", True, "a - b"),
    Op("mul", 2, jnp.multiply, _np(np.multiply), 1.0, "({0}*{1})", "({0} * {1})", True, "a * b"),
    Op("div", 2, jnp.divide, _np(np.divide), 4.0, "({0}/{1})", "({0} / {1})", True, "a / b (IEEE)"),
    Op("fma", 3, _fma_jax, _np(_fma_np), 1.0, "({0}*{1} + {2})", "fmaf({0}, {1}, {2})", True,
       "a * b + c with a single rounding"),
    Op("neg", 1, jnp.negative, _np(np.negative), 1.0, "(-{0})", "(-{0})", True, "-a"),
    Op("abs", 1, jnp.abs, _np(np.abs), 1.0, "Abs({0})", "fabsf({0})", True, "|a|"),
    Op("min", 2, _min(jnp), _np(_min(np)), 1.0, "Min({0}, {1})", "evolve_minimumf({0}, {1})",
       True, "min(a, b), NaN if either is NaN"),
    Op("max", 2, _max(jnp), _np(_max(np)), 1.0, "Max({0}, {1})", "evolve_maximumf({0}, {1})",
       True, "max(a, b), NaN if either is NaN"),
    Op("sqrt", 1, jnp.sqrt, _np(np.sqrt), 4.0, "sqrt({0})", "sqrtf({0})", True, "square root"),
    Op("exp2", 1, jnp.exp2, _np(np.exp2), 10.0, "2**({0})", "exp2f({0})", False, "2^a"),
    Op("exp", 1, jnp.exp, _np(np.exp), 10.0, "exp({0})", "expf({0})", False, "e^a"),
    Op("log", 1, jnp.log, _np(np.log), 10.0, "log({0})", "logf({0})", False, "natural log"),
    Op("sin", 1, jnp.sin, _np(np.sin), 10.0, "sin({0})", "sinf({0})", False, "sine"),
    Op("cos", 1, jnp.cos, _np(np.cos), 10.0, "cos({0})", "cosf({0})", False, "cosine"),
    Op("tanh", 1, jnp.tanh, _np(np.tanh), 10.0, "tanh({0})", "tanhf({0})", False,
       "hyperbolic tangent"),
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


def sympy_functions() -> dict[str, Callable]:
    """Each op (but const) as a function of sympy expressions: the exact real operation
    (``fma`` is ``a*b + c``), for export and for trees read as formulas."""
    import operator

    import sympy

    return {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
            "div": operator.truediv, "fma": lambda a, b, c: a * b + c, "neg": operator.neg,
            "abs": sympy.Abs, "min": sympy.Min, "max": sympy.Max, "sqrt": sympy.sqrt,
            "exp2": lambda a: sympy.Integer(2) ** a, "exp": sympy.exp, "log": sympy.log,
            "sin": sympy.sin, "cos": sympy.cos, "tanh": sympy.tanh}
