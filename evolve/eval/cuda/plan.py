"""The plan of the CUDA kernel's "acc" mode (``evolve.eval.cuda.acc``): for each program of a
batch, the words the kernel runs and the registers a tile must set, computed in JAX
before the kernel runs (so it is checked on the CPU, ``tests/test_cuda_acc.py``).

A word is an instruction's byte offsets and its case: the op and its *variant*, which
says where each argument is (shared memory, the accumulator holding the previous
result, or the program's table of constants) and whether the result is stored (a later
instruction other than the next reads it from shared memory). With folding only the
instructions that depend on an input and reach the output have a word; the constant ones
are computed once a program by the fold kernel (``cuda_acc.fold``) into the table.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from evolve.ops import CONST, MAX_ARITY, OPS

# an instruction's variant: STORE + 2 * (source of a + 3 * source of b + 9 * source of c)
STORE = 1  # write the result to shared memory (a later instruction reads it there)
SMEM, ACC, KONST = 0, 1, 2  # where an argument is: shared memory, the accumulator (the
# previous result), or the program's table of constants: a register that holds the same
# value at every point (zero, for one past the inputs no instruction has written yet)
OUT_FROM_ACC = 1 << 31  # bits of ``init``: the output is the last result, in the accumulator
OUT_KONST = 1 << 30  # the output is a constant: the table's last entry
MAX_REGISTERS = 30  # registers a bit each in ``init``, below OUT_KONST
MAX_LENGTH = (0xFFFF // 4 + 1) // 3  # instructions: the table's byte offsets fit 16 bits


def sources(variant: int, arity: int) -> list[int]:
    """Where each argument of an instruction of this variant is (SMEM, ACC or KONST)."""
    s = variant >> 1
    return [s // 3 ** j % 3 for j in range(arity)]


def layout(ops: list[int]) -> tuple[list[int], int]:
    """(BASE, STOP): the first case of each op of ``ops`` (indexed by opcode, -1 for ops
    outside the set, which have no word) and the case that ends the program, after the
    last op's. An op of arity k has 2 * 3 ** k variants."""
    base = [-1] * len(OPS)
    n = 0
    for o in sorted(set(ops) | {CONST}):
        base[o] = n
        n += 2 * 3 ** OPS[o].arity
    return base, n


def _bit(r):
    return jnp.uint32(1) << r.astype(jnp.uint32)


@partial(jax.jit, static_argnames=("opset", "stride", "fold"))
def plan(op, args, dst, const, length, output, opset: tuple[int, ...], n_inputs: int,
         stride: int, fold: bool):
    """The words the kernel runs, [P, L + 1, 4] int32, and init, [P] int32, for a batch
    of programs. init: bit r, register r is read from shared memory before it is written
    (a tile starts by setting it to its input); OUT_FROM_ACC; OUT_KONST.

    A word is an instruction to run, in order, then the stop (case STOP): the byte offset
    of argument a (in the register file, ``stride`` bytes a register, or in the table of
    constants; a literal's bits, for CONST), b's and c's (the low and high 16 bits), the
    destination's, and the case (``layout``'s base of the op plus the variant). An op
    outside ``opset`` does nothing and has no word.

    fold: the words are only the instructions that depend on an input and that the
    output depends on. An instruction whose arguments are all constants computes a
    constant; the kernel's fold (a thread a program, with the ops' own code) computes it
    once and puts it in the table wherever a kept instruction, or the output, reads it.
    Without ``fold`` every instruction runs and the constants are the registers never
    written."""
    base, stop = layout(list(opset))
    runs = jnp.asarray([o == CONST or o in opset for o in range(len(OPS))], bool)
    arity = jnp.asarray([o.arity for o in OPS], jnp.int32)
    op, args, dst = (jnp.asarray(a, jnp.int32) for a in (op, args, dst))
    length, output = jnp.asarray(length, jnp.int32), jnp.asarray(output, jnp.int32)
    P, L = op.shape
    none = jnp.uint32(0)
    steps = jnp.arange(L, dtype=jnp.int32)
    writes = runs[op] & (steps[None, :] < length[:, None])  # the instruction runs
    has = writes[..., None] & (arity[op][..., None] > jnp.arange(MAX_ARITY, dtype=jnp.int32)[None, None])
    reads = jnp.zeros((P, L), jnp.uint32)
    for j in range(MAX_ARITY):
        reads = reads | jnp.where(has[..., j], _bit(args[..., j]), none)
    d_bits = _bit(dst)
    inputs = _bit(jnp.asarray(n_inputs, jnp.int32)) - jnp.uint32(1)
    unroll = max(1, min(L, 32))  # the passes unrolled: a few fused kernels on a GPU

    def forward(carry, xs):  # registers written, and registers holding constants
        written, konst = carry
        w, d, r = xs
        constant = (konst & r) == r  # its arguments all constants (a literal has none)
        after = jnp.where(constant, konst | d, konst & ~d)
        return ((jnp.where(w, written | d, written), jnp.where(w, after, konst)),
                (written, konst, constant))

    (written_end, konst_end), (written, konst, constant) = jax.lax.scan(
        forward, (jnp.full(P, inputs), jnp.full(P, ~inputs)), (writes.T, d_bits.T, reads.T),
        unroll=unroll)

    out_bit = _bit(output)
    if fold:
        def backward(needed, xs):  # what the output depends on
            w, d, r = xs
            use = w & ((needed & d) != 0)
            return jnp.where(use, (needed & ~d) | r, needed), use

        _, used = jax.lax.scan(backward, out_bit, (writes.T, d_bits.T, reads.T),
                               reverse=True, unroll=unroll)
        keep = writes & used.T & ~constant.T
        konst, out_konst = konst.T, (konst_end & out_bit) != 0
    else:
        keep, konst, out_konst = writes, ~written.T, (~written_end & out_bit) != 0
    # the previous kept instruction's destination: its result is in the accumulator
    kept_at = jnp.where(keep, steps[None, :], -1)
    before = jnp.concatenate([jnp.full((P, 1), -1, jnp.int32), kept_at[:, :-1]], axis=1)
    prev = jax.lax.cummax(before, axis=1)[:, :L] if L else before[:, :0]
    prev_dst = jnp.where(prev >= 0, jnp.take_along_axis(dst, jnp.maximum(prev, 0), 1), -1)
    final = jnp.max(kept_at, axis=1, initial=-1)
    final_dst = (jnp.take_along_axis(dst, jnp.maximum(final, 0)[:, None], 1)[:, 0] if L
                 else final)
    out_acc = ~out_konst & (final >= 0) & (final_dst == output)

    def step(need, xs):  # stores, and registers read from shared memory before written
        kp, d, kb, pd, a3, h3 = xs
        store = kp & ((need & d) != 0)
        need = jnp.where(kp, need & ~d, need)
        variant, srcs = store.astype(jnp.int32), []
        for j in range(MAX_ARITY):
            r = a3[:, j]
            bit = _bit(r)
            src = jnp.where((kb & bit) != 0, KONST, jnp.where(r == pd, ACC, SMEM))
            h = kp & h3[:, j]
            variant = variant + jnp.where(h, 2 * 3 ** j * src, 0)
            need = jnp.where(h & (src == SMEM), need | bit, need)
            srcs.append(src)
        return need, (variant, jnp.stack(srcs, axis=1))

    need0 = jnp.where(out_acc | out_konst, none, out_bit)
    xs = (keep.T, d_bits.T, konst.T, prev_dst.T, jnp.transpose(args, (1, 0, 2)),
          jnp.transpose(has, (1, 0, 2)))
    need, (variants, srcs) = jax.lax.scan(step, need0, xs, reverse=True, unroll=unroll)
    variants, srcs = variants.T, jnp.transpose(srcs, (1, 0, 2))  # [P, L], [P, L, 3]
    # the words: byte offsets of the arguments where they are read, of the destination
    slot = jnp.arange(MAX_ARITY, dtype=jnp.int32)
    offsets = jnp.where(srcs == SMEM, args * stride,
                        jnp.where(srcs == KONST, (3 * steps[None, :, None] + slot[None, None]) * 4, 0))
    offsets = jnp.where(has, offsets, 0)
    literal = jax.lax.bitcast_convert_type(jnp.asarray(const, jnp.float32), jnp.int32)
    words = jnp.stack([jnp.where(op == CONST, literal, offsets[..., 0]),
                       offsets[..., 1] | offsets[..., 2] << 16, dst * stride,
                       jnp.asarray(base, jnp.int32)[op] + variants], axis=2)
    # kept instructions in order, then the stop; the others go past the end
    at = jnp.where(keep, jnp.cumsum(keep, axis=1, dtype=jnp.int32) - 1, L + 1)
    rows = jnp.arange(P)[:, None]
    out = jnp.zeros((P, L + 2, 4), jnp.int32).at[rows, at].set(words)
    out = out.at[jnp.arange(P), keep.sum(axis=1)].set(jnp.asarray([0, 0, 0, stop], jnp.int32))
    init = (need | jnp.where(out_acc, jnp.uint32(OUT_FROM_ACC), none)
            | jnp.where(out_konst, jnp.uint32(OUT_KONST), none))
    return out[:, :L + 1], jax.lax.bitcast_convert_type(init, jnp.int32)
