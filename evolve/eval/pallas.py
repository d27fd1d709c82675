"""The fused evaluator kernel: JAX Pallas, lowered through Triton on GPUs.

One kernel block runs one program on one tile of points (grid = programs x point tiles).
The program's ``R`` registers are a tuple of ``[tile]`` vectors that stay in the chip's
registers; the block loops over the program's instructions (``lax.fori_loop`` to its
length) and branches on the opcode, which is the same for the whole block, so the
branches are uniform and each instruction costs one vector operation over the tile.
Registers are read and written by branching on their index as well (binary trees of
``lax.cond``: log2 of the number of cases deep, instead of Pallas' linear chain of ifs).

Two entry points, with the signature of the evaluator's ``_outputs_impl`` and
``_errors_impl`` (the program rows of a ProgramBatch, then the tiled points):

- ``outputs``: every program's value at every point, [P, n_tiles * T].
- ``errors``: per (program, tile) the max |out - y| * scale, max |out - y| and the sum of
  squared errors in float64 (NaN -> inf, masked points ignored), reduced in the kernel;
  a small jnp reduction over tiles gives [P, 3]. P x N values are never stored.

Semantics are those of ``OPS[i].jax_fn``, bit for bit, except where Triton's lowering of a
jnp function is not the IEEE operation (checked on an H200, see scripts/check_gpu.py):

- float32 ``div``: Triton lowers an f32 ``divf`` to an approximate division (1403 of 5000
  quotients differed from numpy on an H200). Dividing in float64 and rounding to float32
  would be exact (53 >= 2 * 24 + 2 bits: double rounding is innocuous, Figueroa 1995), but
  LLVM narrows ``fptrunc(fdiv(fpext a, fpext b))`` back to the f32 division (the same 1403
  differed). On the GPU the kernel therefore issues PTX ``div.rn.f32`` (IEEE, subnormals
  kept) as inline assembly (``_div_asm``); in interpret mode it uses ``jnp.divide``, which
  XLA's CPU backend rounds correctly. (XLA's own GPU code for ``jnp.divide`` and
  ``jnp.sqrt`` is not correctly rounded either: the lax path on an H200 differed from numpy
  on 898 and 235 of 3000 values, so on GPUs only this kernel matches the reference.)
- float32 ``sqrt``: through float64 (same theorem; libdevice's ``__nv_sqrt`` is not
  narrowed): 394 of 5000 differed with the plain ``jnp.sqrt``, none this way.
- ``neg``: Pallas lowers ``-x`` as ``0 - x``, which gives +0 for +0; we flip the sign bit.

``fma`` is the ops table's float64 round-to-odd emulation as it stands (Triton accepts
float64 and the int64 bitcasts). Its float64 product of two float32 values is exact, so
the backend contracting it into an FMA does not change a bit.

On other platforms (CPU) the same kernel runs in Pallas interpret mode, for tests.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from evolve.ops import CONST, MAX_ARITY, OPCODE, OPS

try:  # the Triton backend's parameters (present in jaxlib builds with GPU lowering)
    from jax.experimental.pallas import triton as _pltriton
except ImportError:  # pragma: no cover
    _pltriton = None

_SQ = getattr(pl, "squeezed", None)  # a squeezed block dimension (None in older JAX)

# Points per block and warps per block (4 points a thread), the defaults of the kernels'
# ``tile`` and ``num_warps``. Measured on an H200 at P=1e4, L=32, N=1e5 (GPops/s): 512/4
# 733, 256/2 706, 2048/16 697, 128/1 685, 1024/8 673, 1024/4 577, 256/4 557, 512/8 548.
TILE = 512
NUM_WARPS = 4
MAX_REGISTERS = 64  # 6 bits per register index in the instruction word

# Instruction word: arity group (2 bits) | index within the group (4) | dst (6) | a, b, c (6 each).
# The groups are those of an op set: the kernel is specialised to the ops a problem uses
# (fewer branches, smaller code); ``None`` means every op of the table.
def groups(opset: tuple[int, ...] | None = None) -> tuple[tuple[int, ...], ...]:
    """The opcodes of ``opset`` (with CONST) by arity, for arities 0..MAX_ARITY."""
    chosen = set(range(len(OPS)) if opset is None else opset) | {CONST}
    out = tuple(tuple(i for i in sorted(chosen) if OPS[i].arity == k)
                for k in range(MAX_ARITY + 1))
    if any(len(g) > 16 for g in out):  # pragma: no cover - the table is small
        raise ValueError("more than 16 ops of one arity do not fit the instruction word")
    return out


def _tables(opset):
    """Per opcode: its group (index among the non-empty arity groups) and index in it."""
    gs = [g for g in groups(opset) if g]
    group_of = np.zeros(len(OPS), np.int32)
    sub_of = np.zeros(len(OPS), np.int32)
    for gi, g in enumerate(gs):
        for si, i in enumerate(g):
            group_of[i], sub_of[i] = gi, si
    return group_of, sub_of


assert groups()[0] == (CONST,)


def encode(op, args, dst, opset=None):
    """Pack a batch's instruction rows into int32 words (see the layout above). Opcodes
    outside ``opset`` must not occur (they would run as another op)."""
    group_of, sub_of = _tables(opset)
    group = jnp.asarray(group_of)[op]
    sub = jnp.asarray(sub_of)[op]
    return (group | (sub << 2) | (dst << 6) | (args[..., 0] << 12) | (args[..., 1] << 18)
            | (args[..., 2] << 24)).astype(jnp.int32)


# -- op semantics inside the kernel -------------------------------------------------------
def _neg(a):
    ibits = jnp.int32 if a.dtype == jnp.float32 else jnp.int64
    sign = jnp.array(np.iinfo(ibits).min, ibits)
    return lax.bitcast_convert_type(lax.bitcast_convert_type(a, ibits) ^ sign, a.dtype)


# Float32 division on the GPU: PTX div.rn.f32, IEEE by definition (556 GPops/s on a
# division-only workload on an H200 at P=1e4, L=32, N=1e5, against 863 for the plain
# lowering, which got ~28 % of quotients wrong). Interpret mode (no inline PTX) divides
# with jnp, which XLA's CPU backend rounds correctly. Other variants were no faster; the
# last commit with them is tagged ``comparison-tables``.
def _div_asm(a, b):
    if _pltriton is None:  # pragma: no cover
        return a / b
    (q,) = _pltriton.elementwise_inline_asm(
        "div.rn.f32 $0, $1, $2;", args=[a, b], constraints="=f,f,f", pack=1,
        result_shape_dtypes=[jax.ShapeDtypeStruct(a.shape, jnp.float32)])
    return q


def _div(a, b, ptx=False):
    if a.dtype == jnp.float64 or not ptx:
        return a / b
    return _div_asm(a, b)


def _sqrt(a):
    if a.dtype == jnp.float64:
        return jnp.sqrt(a)
    return jnp.sqrt(a.astype(jnp.float64)).astype(a.dtype)


_OVERRIDES = {OPCODE["neg"]: _neg, OPCODE["div"]: _div, OPCODE["sqrt"]: _sqrt}


def op_fn(index: int, exact_lowering: bool = True, ptx_div: bool = False):
    """The kernel's function for opcode ``index`` (``OPS[index].jax_fn`` or its override).

    ``ptx_div``: float32 division by PTX ``div.rn.f32`` (on GPUs; see ``_div_asm``).
    ``exact_lowering=False`` gives the plain ``jax_fn`` (used to show why the overrides
    exist)."""
    fn = _OVERRIDES.get(index) if exact_lowering else None
    fn = fn or OPS[index].jax_fn
    if exact_lowering and index == OPCODE["div"]:
        fn = partial(_div, ptx=ptx_div)

    def apply(*xs):
        return fn(*xs).astype(xs[0].dtype)

    return apply


# -- branching ----------------------------------------------------------------------------
def _switch(index, branches, *operands):
    """``lax.switch`` as a balanced tree of two-way conds (an index past the end takes the
    last branch). Pallas' Triton lowering makes a switch a linear chain of ifs."""
    if len(branches) == 1:
        return branches[0](*operands)
    mid = 1 << ((len(branches) - 1).bit_length() - 1)  # a power of two: cheap compares

    def lo(i, *ops):
        return _switch(i, branches[:mid], *ops)

    def hi(i, *ops):
        return _switch(i - mid, branches[mid:], *ops)

    return lax.cond(index < mid, lo, hi, index, *operands)


def _read(regs, index):
    return _switch(index, [partial(lambda r, *rs: rs[r], r) for r in range(len(regs))], *regs)


def _write(regs, index, v):
    def put(r, v, *rs):
        return rs[:r] + (v,) + rs[r + 1:]

    return _switch(index, [partial(put, r) for r in range(len(regs))], v, *regs)


def _run_tile(code_ref, const_ref, meta_ref, x_refs, *, n_registers, dtype, exact_lowering,
              ptx_div, opset=None):
    """The block's program on its tile: the returned register, [T]."""
    T = x_refs[0].shape[0]
    zeros = jnp.zeros((T,), dtype)
    regs = tuple(x_refs[r][...].astype(dtype) if r < len(x_refs) else zeros
                 for r in range(n_registers))
    used = [(k, grp) for k, grp in enumerate(groups(opset)) if grp]  # the word's group index
    fns = [[op_fn(i, exact_lowering, ptx_div) for i in grp] for _, grp in used]

    def group_branch(k, fs):
        def run(word, const, *regs):
            sub = (word >> 2) & 15
            args = [_read(regs, (word >> (12 + 6 * j)) & 63) for j in range(k)]
            return _switch(sub, [partial(lambda f, *a: f(*a), f) for f in fs], *args)

        return run

    def const_branch(word, const, *regs):
        return jnp.full((T,), const, dtype)

    branches = [const_branch if k == 0 else group_branch(k, fs) for (k, _), fs in zip(used, fns)]

    def step(i, regs):
        word = code_ref[i]
        v = _switch(word & 3, branches, word, const_ref[i], *regs)
        return _write(regs, (word >> 6) & 63, v)

    regs = lax.fori_loop(0, meta_ref[0], step, regs)
    return _read(regs, meta_ref[1])


# -- kernels ------------------------------------------------------------------------------
def _outputs_kernel(code_ref, const_ref, meta_ref, *refs, n_inputs, **kw):
    x_refs, (out_ref,) = refs[:n_inputs], refs[n_inputs:]
    out_ref[...] = _run_tile(code_ref, const_ref, meta_ref, x_refs, **kw)


def nan_max(a, axis=None):
    """The max of ``a``, NaN where any element is NaN. XLA's CPU reduction can drop a NaN
    (``jnp.max`` of 5,120 ones after a NaN gives 1.0), which made the reference path give
    inf where the other backends gave NaN for an infinite error at a zero scale."""
    nan = jnp.max(jnp.isnan(a).astype(jnp.float32), axis=axis) > 0
    return jnp.where(nan, jnp.nan, jnp.max(a, axis=axis))


def _tile_stats(out, y, s, m):
    """(max |out-y|*s, max |out-y|, sum (out-y)^2) over a tile, in float64. Only the
    scaled error can be NaN (an infinite error at a zero scale); its max is then NaN."""
    err = jnp.abs(out.astype(jnp.float64) - y)
    err = jnp.where(jnp.isnan(err), jnp.inf, err)
    err = jnp.where(m != 0, err, 0.0)
    return nan_max(err * s), jnp.max(err), jnp.sum(err * err)


def _errors_kernel(code_ref, const_ref, meta_ref, *refs, n_inputs, **kw):
    x_refs = refs[:n_inputs]
    y_ref, s_ref, m_ref, mxs_ref, mx_ref, sq_ref = refs[n_inputs:]
    out = _run_tile(code_ref, const_ref, meta_ref, x_refs, **kw)
    stats = _tile_stats(out, y_ref[...], s_ref[...], m_ref[...])
    for ref, v in zip((mxs_ref, mx_ref, sq_ref), stats):
        ref[...] = jnp.full((1,), v, jnp.float64)


def default_interpret() -> bool:
    """Interpret mode unless the default backend is a GPU."""
    return jax.default_backend() != "gpu"


def _common(op, args, dst, const, length, output, xt, n_registers, tile, dtype, opset=None):
    if n_registers > MAX_REGISTERS:
        raise ValueError(f"the Pallas kernel handles at most {MAX_REGISTERS} registers, "
                         f"got n_registers={n_registers}; use backend='lax'")
    n_tiles, n_inputs, T0 = xt.shape
    npad = n_tiles * T0
    T = min(tile, T0)
    if npad % T or T & (T - 1):
        raise ValueError(f"{npad} points do not split into power-of-two tiles of {T}")
    P, L = op.shape
    code = encode(op, args, dst, opset)
    meta = jnp.stack([length, output], axis=1).astype(jnp.int32)
    xs = [xt[:, j, :].reshape(npad) for j in range(n_inputs)]
    grid = (P, npad // T)
    in_specs = [pl.BlockSpec((_SQ, L), lambda p, t: (p, 0)),
                pl.BlockSpec((_SQ, L), lambda p, t: (p, 0)),
                pl.BlockSpec((_SQ, 2), lambda p, t: (p, 0))]
    in_specs += [pl.BlockSpec((T,), lambda p, t: (t,))] * n_inputs
    operands = [code, const.astype(dtype), meta, *xs]
    return P, npad, T, grid, in_specs, operands, n_inputs


def _options(interpret, tile, num_warps):
    """The kernel options with their defaults filled in, and whether division is PTX's."""
    interpret = default_interpret() if interpret is None else interpret
    return interpret, tile or TILE, num_warps or NUM_WARPS, not interpret  # no PTX interpreted


def _params(num_warps, interpret):
    if interpret or _pltriton is None:
        return None
    return _pltriton.CompilerParams(num_warps=num_warps, num_stages=1)


def outputs(op, args, dst, const, length, output, xt, *, n_registers, tile=None,
            num_warps=None, interpret=None, exact_lowering=True, opset=None, shape=None):
    """Every program's values at the tiled points ``xt`` [n_tiles, n_inputs, T0]: [P, n_tiles*T0].

    ``tile``, ``num_warps``: points and warps a block (default ``TILE``, ``NUM_WARPS``).
    ``opset``: the opcodes the programs may use (a tuple, static), or None for every op.
    ``shape``: the CUDA kernel's (the Evaluator passes one set of arguments), ignored."""
    interpret, tile, num_warps, ptx_div = _options(interpret, tile, num_warps)
    dtype = xt.dtype
    P, npad, T, grid, in_specs, operands, n_inputs = _common(
        op, args, dst, const, length, output, xt, n_registers, tile, dtype, opset)
    kernel = partial(_outputs_kernel, n_inputs=n_inputs, n_registers=n_registers, dtype=dtype,
                     exact_lowering=exact_lowering, ptx_div=ptx_div, opset=opset)
    return pl.pallas_call(
        kernel, grid=grid, in_specs=in_specs,
        out_specs=pl.BlockSpec((_SQ, T), lambda p, t: (p, t)),
        out_shape=jax.ShapeDtypeStruct((P, npad), dtype),
        interpret=interpret, compiler_params=_params(num_warps, interpret),
        name="evolve_outputs")(*operands)


def errors(op, args, dst, const, length, output, xt, y, scale, mask, *, n_registers,
           tile=None, num_warps=None, interpret=None, exact_lowering=True, opset=None,
           shape=None):
    """Per-program (max |out-y|*scale, max |out-y|, sum (out-y)^2): float64 [P, 3].

    ``y``, ``scale`` [n_tiles, T0] float64 and ``mask`` [n_tiles, T0] bool are tiled like
    ``xt``; NaN or infinite outputs count as infinite errors, masked points not at all.
    The other arguments are ``outputs``'s."""
    interpret, tile, num_warps, ptx_div = _options(interpret, tile, num_warps)
    dtype = xt.dtype
    P, npad, T, grid, in_specs, operands, n_inputs = _common(
        op, args, dst, const, length, output, xt, n_registers, tile, dtype, opset)
    operands += [y.reshape(npad).astype(jnp.float64), scale.reshape(npad).astype(jnp.float64),
                 mask.reshape(npad).astype(jnp.int32)]
    in_specs += [pl.BlockSpec((T,), lambda p, t: (t,))] * 3
    n_tiles = grid[1]
    kernel = partial(_errors_kernel, n_inputs=n_inputs, n_registers=n_registers, dtype=dtype,
                     exact_lowering=exact_lowering, ptx_div=ptx_div, opset=opset)
    stat = jax.ShapeDtypeStruct((P, n_tiles), jnp.float64)
    mx_s, mx, sq = pl.pallas_call(
        kernel, grid=grid, in_specs=in_specs,
        out_specs=[pl.BlockSpec((_SQ, 1), lambda p, t: (p, t))] * 3,
        out_shape=[stat] * 3,
        interpret=interpret, compiler_params=_params(num_warps, interpret),
        name="evolve_errors")(*operands)
    return jnp.stack([nan_max(mx_s, axis=1), jnp.max(mx, axis=1), jnp.sum(sq, axis=1)], axis=1)


def round_size(n: int) -> int:
    """A count of tiles or programs padded to m * 2^e with 16 <= m < 32 (at most 6.25 %
    padding): few sizes compile, without the waste of padding to a power of two."""
    if n <= 32:
        return n
    e = n.bit_length() - 5
    return -(-n // (1 << e)) << e
