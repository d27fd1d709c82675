"""Variation on arrays: mutation and crossover of a whole batch of padded programs at once.

The array counterpart of ``variation.make_children``: one jitted JAX function turns a
``ProgramBatch`` of parents and an int32[C, 2] array of pairs into a ``ProgramBatch`` of C
children, with the same operators, the same rules at the limits and the same
distributions as ``variation.py`` (its module docstring and ``_apply`` say what each kind
does). Randomness comes from the JAX key passed in; the same key gives the same children.

Every child is valid by construction: lengths in 1..max_length (for non-empty parents),
argument registers read registers defined before them, destinations are writable,
literals are finite float32, and padding (positions at or past ``length``, argument slots
past an op's arity, the literal of a non-literal row) holds 0.

A mutation that cannot apply or leaves the child unchanged is drawn again, up to
``params.max_retries`` times, as in ``variation.mutate``: each round draws one candidate
kind for children still unresolved and keeps it where it applies and changes the
program; later rounds work on a compacted subset, in a ``lax.while_loop`` that stops
once every child is resolved or out of draws.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from evolve.ops import CONST, MAX_ARITY, OPS
from evolve.program import ProgramBatch
from evolve.search.variation import CROSSOVERS, MUTATIONS, Space, VariationParams

_ARITY = np.array([op.arity for op in OPS], np.int32)
_K = {name: i for i, name in enumerate(MUTATIONS)}
_F32_MAX_ORDERED = 0x7F7FFFFF  # the ordered integer of float32's largest finite value


class _Static(NamedTuple):
    """The hashable settings the jitted function is compiled for."""

    ops: tuple[int, ...]
    n_registers: int
    n_inputs: int
    max_length: int
    output: int
    max_retries: int


class _Rates(NamedTuple):
    """The rates of ``VariationParams`` as arrays: arguments of the jitted function, so
    changing them does not compile again (``VariationParams`` holds dicts, and is not
    hashable)."""

    mutation_weights: jax.Array  # float64[8], in MUTATIONS order
    crossover_rate: jax.Array  # float64[]
    crossover_weights: jax.Array  # float64[3], in CROSSOVERS order
    const_sigma: jax.Array  # float64[]


def _weights(weights: dict, names: tuple[str, ...], what: str) -> np.ndarray:
    unknown = set(weights) - set(names)
    if unknown:
        raise ValueError(f"unknown {what} kind(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(names)}")
    return np.array([float(weights.get(name, 0.0)) for name in names], np.float64)


def _settings(space: Space, params: VariationParams) -> tuple[_Static, _Rates]:
    static = _Static(tuple(int(o) for o in space.ops), space.n_registers, space.n_inputs,
                     space.max_length, space.output, int(params.max_retries))
    rates = _Rates(_weights(params.mutation_weights, MUTATIONS, "mutation"),
                   np.float64(params.crossover_rate),
                   _weights(params.crossover_weights, CROSSOVERS, "crossover"),
                   np.float64(params.const_sigma))
    return static, rates


class _Rows(NamedTuple):
    """A batch of C programs as jax arrays (the fields of ``ProgramBatch``)."""

    op: jax.Array  # int32[C, L]
    args: jax.Array  # int32[C, L, 3]
    dst: jax.Array  # int32[C, L]
    const: jax.Array  # float32[C, L]
    length: jax.Array  # int32[C]


# ---------------------------------------------------------------------------------------
# drawing


def _randint(key: jax.Array, high: jax.Array) -> jax.Array:
    """Uniform int32 in [0, high) per row (0 where high <= 0)."""
    high = jnp.maximum(high, 1)
    return jax.random.randint(key, high.shape, 0, high, dtype=jnp.int32)


def _pick(key: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One index drawn uniformly among the True entries of each row of ``mask`` [C, N]:
    int32[C] (0 where the row is empty) and bool[C], whether the row had any."""
    count = mask.sum(axis=-1, dtype=jnp.int32)
    k = _randint(key, count)
    rank = jnp.cumsum(mask, axis=-1, dtype=jnp.int32)
    index = jnp.argmax(mask & (rank == (k + 1)[..., None]), axis=-1).astype(jnp.int32)
    return index, count > 0


def _choose(key: jax.Array, values: tuple[int, ...], shape: tuple[int, ...]) -> jax.Array:
    """int32 values drawn uniformly from ``values`` (a static tuple)."""
    table = jnp.asarray(values, jnp.int32)
    return table[jax.random.randint(key, shape, 0, len(values), dtype=jnp.int32)]


def _draw_const(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """float32 literals as ``variation._draw_const``: 10**U(-3, 1), negative with
    probability 0.3, drawn in float64 and rounded to float32."""
    k_mag, k_sign = jax.random.split(key)
    magnitude = 10.0 ** jax.random.uniform(k_mag, shape, jnp.float64, -3.0, 1.0)
    positive = jax.random.uniform(k_sign, shape, jnp.float64) < 0.7
    return jnp.where(positive, magnitude, -magnitude).astype(jnp.float32)


def _ordered(v: jax.Array) -> jax.Array:
    """float32 -> int32 increasing with the value (+0 and -0 both 0): one step is one ULP."""
    bits = lax.bitcast_convert_type(v, jnp.int32)
    return jnp.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))


def _from_ordered(k: jax.Array) -> jax.Array:
    bits = jnp.where(k >= 0, k, (-k) | jnp.int32(-0x80000000))
    return lax.bitcast_convert_type(bits.astype(jnp.int32), jnp.float32)


def _perturb(key: jax.Array, value: jax.Array, sigma: jax.Array) -> jax.Array:
    """float32 literals nudged as ``variation._perturb``: half the time a geometric(0.3)
    number of ULP steps either way, else a relative normal step of size ``sigma`` (an
    absolute one from 0); a non-finite result keeps the value."""
    k_way, k_steps, k_sign, k_normal = jax.random.split(key, 4)
    shape = value.shape
    by_ulps = jax.random.uniform(k_way, shape, jnp.float64) < 0.5
    u = 1.0 - jax.random.uniform(k_steps, shape, jnp.float64)  # in (0, 1]
    steps = jnp.floor(jnp.log(u) / np.log1p(-0.3)).astype(jnp.int32) + 1
    steps = jnp.where(jax.random.uniform(k_sign, shape, jnp.float64) < 0.5, steps, -steps)
    moved = _ordered(value) + steps
    ulps = jnp.where(jnp.abs(moved) <= _F32_MAX_ORDERED, _from_ordered(moved), jnp.inf)
    normal = jax.random.normal(k_normal, shape, jnp.float64)
    factor = (1.0 + sigma * normal).astype(jnp.float32)
    relative = jnp.where(value != 0, value * factor, (sigma * normal).astype(jnp.float32))
    out = jnp.where(by_ulps, ulps, relative)
    return jnp.where(jnp.isfinite(out), out, value)


# ---------------------------------------------------------------------------------------
# crossover


def _gather_rows(rows: _Rows, source: jax.Array) -> tuple[jax.Array, ...]:
    """The rows ``source`` [C, L] (clipped into range) of each program."""
    L = rows.op.shape[1]
    s = jnp.clip(source, 0, L - 1)
    return (jnp.take_along_axis(rows.op, s, 1),
            jnp.take_along_axis(rows.args, s[..., None], 1),
            jnp.take_along_axis(rows.dst, s, 1),
            jnp.take_along_axis(rows.const, s, 1))


def _clean(op, args, dst, const, length) -> _Rows:
    """Zero the padding: positions at or past ``length``, argument slots past the arity,
    the literal of non-literal rows."""
    L = op.shape[1]
    live = jnp.arange(L, dtype=jnp.int32)[None, :] < length[:, None]
    arity = jnp.asarray(_ARITY)[op]
    slot_ok = jnp.arange(MAX_ARITY, dtype=jnp.int32)[None, None, :] < arity[..., None]
    op = jnp.where(live, op, 0)
    return _Rows(op, jnp.where(live[..., None] & slot_ok, args, 0), jnp.where(live, dst, 0),
                 jnp.where(live & (op == CONST), const, 0.0).astype(jnp.float32), length)


def _crossover(key: jax.Array, a: _Rows, b: _Rows, st: _Static, rates: _Rates
               ) -> tuple[_Rows, jax.Array]:
    """Each child crossed (at ``crossover_rate``) or a copy of ``a``; int32[C] kind (-1:
    none). Every kind is a[:i] + b[j:k] + a[m:], as ``variation.crossover`` cuts."""
    C, L = a.op.shape
    k_do, k_kind, k1, k2, k3, k4 = jax.random.split(key, 6)
    do = jax.random.uniform(k_do, (C,), jnp.float64) < rates.crossover_rate
    kind = jax.random.categorical(
        k_kind, jnp.log(rates.crossover_weights), shape=(C,)
    ).astype(jnp.int32)
    na, nb = a.length, b.length
    # one_point: a[:i] + b[j:]
    i1, j1 = _randint(k1, na + 1), _randint(k2, nb + 1)
    # two_point: a[:i] + b[j:k] + a[m:], i <= m, j <= k
    u, v = _randint(k1, na + 1), _randint(k3, na + 1)
    i2, m2 = jnp.minimum(u, v), jnp.maximum(u, v)
    u, v = _randint(k2, nb + 1), _randint(k4, nb + 1)
    j2, kk2 = jnp.minimum(u, v), jnp.maximum(u, v)
    # homologous: a[:i] + b[i:j] + a[j:], cuts within the shorter parent
    short = jnp.minimum(na, nb)
    u, v = _randint(k3, short + 1), _randint(k4, short + 1)
    ih, jh = jnp.minimum(u, v), jnp.maximum(u, v)
    first = jnp.select([kind == 0, kind == 1], [i1, i2], ih)  # a[:first]
    b_from = jnp.select([kind == 0, kind == 1], [j1, j2], ih)
    b_to = jnp.select([kind == 0, kind == 1], [nb, kk2], jh)
    a_from = jnp.select([kind == 0, kind == 1], [na, m2], jh)
    l2 = b_to - b_from
    total = first + l2 + (na - a_from)
    empty = total == 0
    length = jnp.where(empty, jnp.minimum(na, 1), jnp.minimum(total, st.max_length))
    p = jnp.arange(L, dtype=jnp.int32)[None, :]
    in_b = (p >= first[:, None]) & (p < (first + l2)[:, None])
    a_src = jnp.where(p < first[:, None], p, p - (first + l2 - a_from)[:, None])
    a_src = jnp.where(empty[:, None], p, a_src)
    b_src = p - first[:, None] + b_from[:, None]
    ga, gb = _gather_rows(a, a_src), _gather_rows(b, b_src)
    fields = [jnp.where(in_b[..., None] if x.ndim == 3 else in_b, y, x) for x, y in zip(ga, gb)]
    fields = [jnp.where(do.reshape((C,) + (1,) * (x.ndim - 1)), y, x)
              for x, y in zip(a[:4], fields)]
    child = _clean(*fields, jnp.where(do, length, na))
    return child, jnp.where(do, kind, -1)


# ---------------------------------------------------------------------------------------
# mutation


class _Tables(NamedTuple):
    """What the mutation draws need to know of each (crossed) parent, computed once."""

    defined: jax.Array  # int32[C, L+1, R] writes of each register before each position
    free: jax.Array  # bool[C, L+1, R] register free at each position (``variation._free``)
    dead: jax.Array  # bool[C, L] instruction present and unable to reach the output
    literal: jax.Array  # bool[C, L] instruction present and a literal


def _reads(rows: _Rows, n_registers: int) -> jax.Array:
    """bool[C, L, R]: whether each instruction reads each register."""
    arity = jnp.asarray(_ARITY)[rows.op]
    slot_ok = jnp.arange(MAX_ARITY, dtype=jnp.int32)[None, None, :] < arity[..., None]
    regs = jnp.arange(n_registers, dtype=jnp.int32)
    return ((rows.args[..., None] == regs[None, None, None, :]) & slot_ok[..., None]).any(axis=2)


def _make_tables(rows: _Rows, output: jax.Array, st: _Static) -> _Tables:
    C, L = rows.op.shape
    R = st.n_registers
    regs = jnp.arange(R, dtype=jnp.int32)
    present = jnp.arange(L, dtype=jnp.int32)[None, :] < rows.length[:, None]
    writes = (rows.dst[..., None] == regs[None, None, :]) & present[..., None]  # [C, L, R]
    reads = _reads(rows, R) & present[..., None]
    counts = jnp.cumsum(writes, axis=1, dtype=jnp.int32)
    defined = jnp.concatenate([jnp.zeros((C, 1, R), jnp.int32), counts], axis=1)
    is_out = regs[None, :] == output[:, None]  # [C, R]
    base_free = ~is_out & (regs >= st.n_inputs)[None, :]

    def back(carry, x):
        needed, free = carry
        w, r = x  # bool[C, R] each
        is_used = (needed & w).any(-1)
        needed = jnp.where(is_used[:, None], (needed & ~w) | r, needed)
        free = jnp.where(r, False, jnp.where(w, True, free))
        return (needed, free), (is_used, free)

    (_, _), (used, free) = lax.scan(back, (is_out, base_free),
                                    (writes.transpose(1, 0, 2), reads.transpose(1, 0, 2)),
                                    reverse=True)
    writable = (regs >= st.n_inputs)[None, None, :]
    free = jnp.concatenate([free.transpose(1, 0, 2), base_free[:, None, :]], axis=1) & writable
    return _Tables(defined, free, present & ~used.T, present & (rows.op == CONST))


def _at(table: jax.Array, position: jax.Array) -> jax.Array:
    """table[c, position[c]] for a [C, N, ...] table."""
    return jnp.take_along_axis(table, position.reshape((-1, 1) + (1,) * (table.ndim - 2)),
                               1)[:, 0]


class _Edit(NamedTuple):
    """A candidate child as an edit of its parent: drop row ``drop`` (-1: none), then
    insert ``n_new`` (0, 1 or 2) new rows at ``at``, then exchange rows ``si`` and ``sj``
    (original indices; equal: none)."""

    drop: jax.Array  # int32[C]
    at: jax.Array  # int32[C]
    n_new: jax.Array  # int32[C]
    si: jax.Array  # int32[C]
    sj: jax.Array  # int32[C]
    new_op: jax.Array  # int32[C, 2]
    new_args: jax.Array  # int32[C, 2, 3]
    new_dst: jax.Array  # int32[C, 2]
    new_const: jax.Array  # float32[C, 2]


def _build(rows: _Rows, e: _Edit) -> _Rows:
    """The child an edit makes, with clean padding."""
    L = rows.op.shape[1]
    p = jnp.arange(L, dtype=jnp.int32)[None, :]
    dropped = (e.drop >= 0).astype(jnp.int32)
    length = rows.length - dropped + e.n_new
    at, n_new = e.at[:, None], e.n_new[:, None]
    src = jnp.where(p < at, p, p - n_new)  # index in the parent after the drop
    src = src + ((e.drop[:, None] >= 0) & (src >= e.drop[:, None])).astype(jnp.int32)
    src = jnp.where(src == e.si[:, None], e.sj[:, None],
                    jnp.where(src == e.sj[:, None], e.si[:, None], src))
    op, args, dst, const = _gather_rows(rows, src)
    slot = p - at
    for s in range(2):
        here = (slot == s) & (s < n_new)
        op = jnp.where(here, e.new_op[:, s, None], op)
        args = jnp.where(here[..., None], e.new_args[:, s, None, :], args)
        dst = jnp.where(here, e.new_dst[:, s, None], dst)
        const = jnp.where(here, e.new_const[:, s, None], const)
    return _clean(op, args, dst, const, length)


def _differs(a: _Rows, b: _Rows) -> jax.Array:
    """bool[C]: the programs differ (clean padding on both)."""
    bits = lax.bitcast_convert_type
    row = ((a.op != b.op) | (a.dst != b.dst) | (a.args != b.args).any(-1)
           | (bits(a.const, jnp.int32) != bits(b.const, jnp.int32)))
    return (a.length != b.length) | row.any(-1)


def _candidate(key: jax.Array, rows: _Rows, tables: _Tables, st: _Static, rates: _Rates
               ) -> tuple[_Rows, jax.Array, jax.Array]:
    """One candidate mutation of every program: the children, int32[C] kinds, and
    bool[C] whether the kind applied."""
    C, L = rows.op.shape
    keys = iter(jax.random.split(key, 20))
    arity_of = jnp.asarray(_ARITY)
    kind = jax.random.categorical(
        next(keys), jnp.log(rates.mutation_weights), shape=(C,)
    ).astype(jnp.int32)
    is_ = {name: kind == k for name, k in _K.items()}
    n = rows.length
    full = n >= st.max_length

    row_i = _randint(next(keys), n)  # change_op, rewire, delete, swap
    lit_i, any_lit = _pick(next(keys), tables.literal)
    dead_j, any_dead = _pick(next(keys), tables.dead)
    drop_dead = is_["insert"] & full
    gap_hi = jnp.where(drop_dead, n, n + 1)  # a gap in the program after the drop
    gap = _randint(next(keys), gap_hi)
    sj = _randint(next(keys), n - 1)
    sj = sj + (sj >= row_i).astype(jnp.int32)

    # the registers defined where the new or changed instruction goes
    shifted = jnp.where(gap > dead_j, gap + 1, gap)
    def_pos = jnp.where(is_["change_op"] | is_["rewire"], row_i,
                        jnp.where(drop_dead, shifted, gap))
    count = _at(tables.defined, def_pos)  # [C, R]
    dead_dst = jax.nn.one_hot(_at(rows.dst, dead_j), st.n_registers, dtype=jnp.int32)
    count = count - jnp.where((drop_dead & (gap > dead_j))[:, None], dead_dst, 0)
    regs = jnp.arange(st.n_registers, dtype=jnp.int32)
    defined = (count > 0) | (regs < st.n_inputs)[None, :]
    reg_keys = jax.random.split(next(keys), MAX_ARITY)
    def_args = jnp.stack([_pick(k, defined)[0] for k in reg_keys], axis=1)  # [C, 3]

    op_any = _choose(next(keys), st.ops, (C,))
    non_const = tuple(o for o in st.ops if o != CONST)
    op_nc = _choose(next(keys), non_const or (0,), (C,))
    writable = tuple(range(st.n_inputs, st.n_registers))
    dst_w = _choose(next(keys), writable, (C,))
    new_lit = _draw_const(next(keys), (C,))
    slots = jnp.arange(MAX_ARITY, dtype=jnp.int32)[None, :]

    # the instruction at row_i, or at the chosen literal
    r_op, r_args, r_dst = _at(rows.op, row_i), _at(rows.args, row_i), _at(rows.dst, row_i)
    r_arity = arity_of[r_op]
    lit_val = _at(rows.const, lit_i)
    lit_dst = _at(rows.dst, lit_i)
    perturbed = _perturb(next(keys), lit_val, rates.const_sigma)

    # change_op: the new op keeps the old arguments and draws the missing ones
    a_any = arity_of[op_any]
    ch_args = jnp.where(slots < r_arity[:, None], r_args, def_args)
    ch_args = jnp.where(slots < a_any[:, None], ch_args, 0)
    # rewire: one argument or the destination
    slot = _randint(next(keys), r_arity + 1)
    rw_dst = jnp.where(slot == r_arity, dst_w, r_dst)
    rw_args = jnp.where(slots == slot[:, None], def_args[:, :1], r_args)
    # insert: a random instruction over the defined registers
    in_args = jnp.where(slots < a_any[:, None], def_args, 0)
    # insert_literal: a literal into a free register, read by a new instruction
    tmp, any_free = _pick(next(keys), _at(tables.free, gap))
    a_nc = arity_of[op_nc]
    lit_slot = _randint(next(keys), a_nc)
    il_args = jnp.where(slots == lit_slot[:, None], tmp[:, None], def_args)
    il_args = jnp.where(slots < a_nc[:, None], il_args, 0)

    zero = jnp.zeros((C,), jnp.int32)
    zargs = jnp.zeros((C, MAX_ARITY), jnp.int32)
    point = is_["change_op"] | is_["rewire"]
    const_kind = is_["perturb_const"] | is_["redraw_const"]
    i_const = jnp.where(const_kind, lit_i, row_i)
    drop = jnp.select([point | const_kind | is_["delete"], drop_dead], [i_const, dead_j], -1)
    at = jnp.where(point | const_kind, i_const, gap)
    n_new = jnp.select([is_["delete"] | is_["swap"], is_["insert_literal"]], [zero, zero + 2],
                       zero + 1)
    si = jnp.where(is_["swap"], row_i, 0)
    sj = jnp.where(is_["swap"], sj, 0)
    op0 = jnp.select([is_["change_op"] | is_["insert"], is_["rewire"], const_kind],
                     [op_any, r_op, zero + CONST], zero + CONST)
    args0 = jnp.select([is_["change_op"][:, None], is_["rewire"][:, None],
                        is_["insert"][:, None]], [ch_args, rw_args, in_args], zargs)
    dst0 = jnp.select([is_["change_op"], is_["rewire"], const_kind, is_["insert"]],
                      [r_dst, rw_dst, lit_dst, dst_w], tmp)
    const0 = jnp.select([is_["perturb_const"], is_["rewire"]],
                        [perturbed, _at(rows.const, row_i)], new_lit)
    edit = _Edit(drop, at, n_new, si, sj,
                 jnp.stack([op0, op_nc], 1), jnp.stack([args0, il_args], 1),
                 jnp.stack([dst0, dst_w], 1),
                 jnp.stack([const0, jnp.zeros((C,), jnp.float32)], 1))
    applies = jnp.select(
        [point, const_kind, is_["insert"], is_["insert_literal"], is_["delete"]],
        [n >= 1, any_lit, ~full | any_dead,
         (n + 2 <= st.max_length) & any_free & bool(non_const), n >= 2],
        n >= 2)  # swap
    return _build(rows, edit), kind, applies


def _mutate(key: jax.Array, rows: _Rows, output: jax.Array, st: _Static, rates: _Rates
            ) -> tuple[_Rows, jax.Array]:
    """Each program mutated (a kind that applies and changes it, drawn up to
    ``max_retries`` times), and int32[C] kinds (-1 where every draw failed).

    Rounds draw one candidate for each of up to K children still unresolved (fewer than
    ``max_retries`` draws, none kept): the first round takes all C, the second C/4, the
    rest C/32 until none is left, so the few children whose draws keep failing do not
    cost whole-batch rounds. Each child's draws are independent, so the round a draw
    happens in changes nothing in the distribution."""
    C = rows.op.shape[0]
    tables = _make_tables(rows, output, st)

    def one_round(state, K: int):
        t, attempts, done, child, kinds = state
        eligible = ~done & (attempts < st.max_retries)
        t_key = jax.random.fold_in(key, t)
        if K == C:  # every child: no gather, no scatter
            cand, kind, applies = _candidate(t_key, rows, tables, st, rates)
            take = eligible & applies & _differs(cand, rows)
            child = _Rows(*(jnp.where(take.reshape((C,) + (1,) * (x.ndim - 1)), y, x)
                            for x, y in zip(child, cand)))
            return (t + 1, attempts + eligible.astype(jnp.int32), done | take, child,
                    jnp.where(take, kind, kinds))
        idx = jnp.nonzero(eligible, size=K, fill_value=C)[0].astype(jnp.int32)
        at = jnp.minimum(idx, C - 1)
        sub = _Rows(*(x[at] for x in rows))
        cand, kind, applies = _candidate(t_key, sub, _Tables(*(x[at] for x in tables)),
                                         st, rates)
        take = (idx < C) & applies & _differs(cand, sub)
        put = jnp.where(take, idx, C)  # out of range: dropped
        child = _Rows(*(x.at[put].set(y, mode="drop") for x, y in zip(child, cand)))
        return (t + 1, attempts.at[idx].add(1, mode="drop"),
                done.at[put].set(True, mode="drop"), child,
                kinds.at[put].set(kind, mode="drop"))

    state = (jnp.int32(0), jnp.zeros((C,), jnp.int32), jnp.zeros((C,), bool), rows,
             jnp.full((C,), -1, jnp.int32))
    if st.max_retries > 0:
        state = one_round(state, C)
        state = one_round(state, -(-C // 4))

        def cond(state):
            _, attempts, done, _, _ = state
            return (~done & (attempts < st.max_retries)).any()

        state = lax.while_loop(cond, lambda s: one_round(s, -(-C // 32)), state)
    return state[3], state[4]


# ---------------------------------------------------------------------------------------
# the entry point


TRACES = {"make_children": 0}  # times the jitted function was traced (a compile check)


@partial(jax.jit, static_argnames=("st",))
def _make_children(key, op, args, dst, const, length, output, pairs, rates: _Rates,
                   st: _Static):
    TRACES["make_children"] += 1
    parents = _Rows(jnp.asarray(op, jnp.int32), jnp.asarray(args, jnp.int32),
                    jnp.asarray(dst, jnp.int32), jnp.asarray(const, jnp.float32),
                    jnp.asarray(length, jnp.int32))
    pairs = jnp.asarray(pairs, jnp.int32)
    a = _Rows(*(x[pairs[:, 0]] for x in parents))
    b = _Rows(*(x[pairs[:, 1]] for x in parents))
    out = jnp.asarray(output, jnp.int32)[pairs[:, 0]]
    k_cross, k_mut = jax.random.split(key)
    crossed, cross_kind = _crossover(k_cross, a, b, st, rates)
    child, mut_kind = _mutate(k_mut, crossed, out, st, rates)
    return (ProgramBatch(child.op, child.args, child.dst, child.const, child.length, out),
            cross_kind, mut_kind)


def make_children(key: jax.Array, parents: ProgramBatch, pairs, space: Space,
                  params: VariationParams | None = None
                  ) -> tuple[ProgramBatch, jax.Array, jax.Array]:
    """One child per row of ``pairs`` (int32[C, 2], indices into ``parents``), as
    ``variation.make_children`` makes them: crossover of the pair at ``crossover_rate``,
    then always a mutation.

    ``parents`` is a ``ProgramBatch`` [P, L] (numpy or JAX arrays) with L >= max_length.
    Returns the children as a ``ProgramBatch`` of JAX arrays [C, L] (outputs those of the
    first parent), int32[C] crossover kinds (-1: none, else an index into ``CROSSOVERS``)
    and int32[C] mutation kinds (-1: "none", every draw failed; else an index into
    ``MUTATIONS``). Compiled once per (P, C, L, space, max_retries); new keys, parents
    and rates (weights, crossover_rate, const_sigma) reuse it.
    """
    L = parents.op.shape[1]
    if L < space.max_length:
        raise ValueError(f"parents are padded to {L} instructions, fewer than "
                         f"max_length={space.max_length}; pad to bucket(max_length)")
    params = VariationParams() if params is None else params
    static, rates = _settings(space, params)
    return _make_children(key, *parents, pairs, rates, st=static)


def _kind_name(c: int, m: int) -> str:
    mut = MUTATIONS[m] if m >= 0 else "none"
    return f"{CROSSOVERS[c]}+{mut}" if c >= 0 else mut


# _KIND_NAMES[c + 1, m + 1]: the name of crossover kind c and mutation kind m (-1: none)
_KIND_NAMES = np.array([[_kind_name(c, m) for m in range(-1, len(MUTATIONS))]
                        for c in range(-1, len(CROSSOVERS))], dtype=object)


def kinds_text(crossover_kind, mutation_kind) -> list[str]:
    """The operators applied to each child as ``variation.make_children`` names them:
    "two_point+rewire", "swap", "none", "one_point+none"."""
    c = np.asarray(crossover_kind, np.int64) + 1
    m = np.asarray(mutation_kind, np.int64) + 1
    return _KIND_NAMES[c, m].tolist()
