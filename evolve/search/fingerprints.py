"""Fingerprints of program behaviour: a program's outputs on the probe points, quantized
and hashed into 16 bytes (``fingerprints``, ``fingerprint_array``). Equal fingerprints are
taken as the same function (``evolve.search.fec`` caches records by them).

Quantization (``quantize``), per output value:

- the value is rounded to float32 (a float64 evaluator's outputs hash like float32 ones);
- the float32 significand is rounded to ``mantissa_bits`` explicit bits (of 23) by
  round-to-nearest, ties away from zero, on the magnitude (so ``x`` and ``-x`` quantize
  symmetrically); a carry moves into the exponent as in float rounding, and a value
  within half a quantum of 2**128 rounds to +-Inf;
- -0 (and anything that rounds to -0) becomes +0; every NaN (any sign, any payload)
  becomes the one token ``0x7FC00000``; +Inf and -Inf keep their own fixed patterns.

Rounding, unlike truncation, puts values that differ by less than half a quantum
together unless they straddle a rounding boundary; no quantization avoids boundaries.

The hash is MurmurHash3's x86 128-bit function (seed 0) over a 16-byte prefix followed
by the little-endian quantized words of the row. The prefix is the blake2b digest (16
bytes) of the salt's length and bytes, ``mantissa_bits`` and the number of probe points,
so the salt, the quantization and the width are part of every hash. MurmurHash3 is
integer arithmetic only: it runs as one jitted array call on the device that computed the
outputs, bit-identical on CPU and GPU, stable across processes, platforms and Python
versions (never Python's salted ``hash``); it is not a cryptographic hash, and need not
be (programs are not adversaries). Fingerprints made by earlier versions (blake2b of the
words, ``FINGERPRINT_HASH`` names the current rule) never equal these. The salt should
name the problem and the evaluation budget (``make_salt``), as AutoML-Zero's does, so that
fingerprints from different problems or probe sets never meet.

One concept, the fingerprint: quantization, the hash and the salt.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

FINGERPRINT_BYTES = 16
FINGERPRINT_HASH = "murmur3-x86-128"  # the rule of ``fingerprints`` (see the module docstring)
NAN_TOKEN = 0x7FC0_0000
POS_INF_TOKEN = 0x7F80_0000
NEG_INF_TOKEN = 0xFF80_0000
_SIGN = 0x8000_0000
_MAG = 0x7FFF_FFFF


# -- fingerprints ------------------------------------------------------------------------
def quantize(outputs: np.ndarray, mantissa_bits: int = 12) -> np.ndarray:
    """The quantized float32 bit patterns of ``outputs`` (uint32, same shape).

    See the module docstring for the rule. ``mantissa_bits`` is 0..23; 23 keeps every
    float32 bit (only the -0, NaN tokens apply).
    """
    _check_bits(mantissa_bits)
    return np.asarray(_quantize(jnp.asarray(_as_float32(outputs)), mantissa_bits))


def _check_bits(mantissa_bits: int) -> None:
    if not 0 <= mantissa_bits <= 23:
        raise ValueError(f"mantissa_bits must be in 0..23 (float32 has 23), got {mantissa_bits}")


def _as_float32(outputs: Any) -> Any:
    """Outputs as float32 (float64 values round to float32 here: out of range -> +-Inf)."""
    if isinstance(outputs, jax.Array):
        return outputs.astype(jnp.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(outputs).astype(np.float32)


def _quantize(x: jax.Array, mantissa_bits: int) -> jax.Array:
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    sign = bits & jnp.uint32(_SIGN)
    mag = bits & jnp.uint32(_MAG)
    drop = 23 - mantissa_bits
    if drop:
        # Finite magnitudes are <= 0x7F7FFFFF, so adding half a quantum cannot overflow
        # uint32 and lands at most on the Inf pattern 0x7F800000.
        half = jnp.uint32(1 << (drop - 1))
        keep = jnp.uint32(~((1 << drop) - 1) & 0xFFFF_FFFF)
        mag = jnp.where(jnp.isfinite(x), (mag + half) & keep, mag)
    q = jnp.where(mag == 0, jnp.uint32(0), sign | mag)  # -0 -> +0; +-Inf are their tokens
    return jnp.where(jnp.isnan(x), jnp.uint32(NAN_TOKEN), q)


# MurmurHash3_x86_128's constants (Austin Appleby's public-domain MurmurHash3).
_C = (0x239B961B, 0xAB0E9789, 0x38B34AE5, 0xA1E38B93)
_N = (0x561CCD1B, 0x0BCAA747, 0x96CD1C35, 0x32AC3B17)
_ROT_K = (15, 16, 17, 18)  # the rotation of lane i's word
_ROT_H = (19, 17, 15, 13)  # the rotation of lane i's state


def _rotl(x: jax.Array, r: int) -> jax.Array:
    return (x << jnp.uint32(r)) | (x >> jnp.uint32(32 - r))


def _mix_word(k: jax.Array, lane: int) -> jax.Array:
    k = k * jnp.uint32(_C[lane])
    return _rotl(k, _ROT_K[lane]) * jnp.uint32(_C[(lane + 1) % 4])


def _fmix(h: jax.Array) -> jax.Array:
    h = h ^ (h >> jnp.uint32(16))
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> jnp.uint32(13))
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> jnp.uint32(16))


@functools.partial(jax.jit, static_argnums=(2,))
def _murmur_rows(prefix: jax.Array, x: jax.Array, mantissa_bits: int) -> jax.Array:
    """MurmurHash3_x86_128 (seed 0) of each row's bytes: the 4 prefix words, then the
    quantized words of ``x`` [P, M]. Returns uint32 [P, 4] (h1..h4)."""
    words = _quantize(x, mantissa_bits)
    P, M = words.shape
    words = jnp.concatenate([jnp.broadcast_to(prefix, (P, 4)), words], axis=1)
    n_words = M + 4
    n_blocks, tail = divmod(n_words, 4)
    blocks = words[:, : 4 * n_blocks].reshape(P, n_blocks, 4).transpose(1, 0, 2)

    def block(h, k):
        h = list(h)
        for i in range(4):
            h[i] = h[i] ^ _mix_word(k[:, i], i)
            h[i] = _rotl(h[i], _ROT_H[i]) + h[(i + 1) % 4]
            h[i] = h[i] * jnp.uint32(5) + jnp.uint32(_N[i])
        return tuple(h), None

    zero = jnp.zeros(P, jnp.uint32)
    h, _ = jax.lax.scan(block, (zero, zero, zero, zero), blocks)
    h = list(h)
    for i in range(tail):  # the last 1..3 words: mixed in without the state's rounds
        h[i] = h[i] ^ _mix_word(words[:, 4 * n_blocks + i], i)
    length = jnp.uint32(4 * n_words)
    h = [v ^ length for v in h]
    h[0] = h[0] + h[1] + h[2] + h[3]
    h[1], h[2], h[3] = h[1] + h[0], h[2] + h[0], h[3] + h[0]
    h = [_fmix(v) for v in h]
    h[0] = h[0] + h[1] + h[2] + h[3]
    h[1], h[2], h[3] = h[1] + h[0], h[2] + h[0], h[3] + h[0]
    return jnp.stack(h, axis=1)


def _prefix(salt: bytes, mantissa_bits: int, m: int) -> np.ndarray:
    """The 16-byte prefix of every row's hash, as 4 little-endian uint32 words."""
    h = hashlib.blake2b(digest_size=16)
    h.update(len(salt).to_bytes(8, "little"))
    h.update(bytes(salt))
    h.update(int(mantissa_bits).to_bytes(1, "little"))
    h.update(int(m).to_bytes(8, "little"))
    return np.frombuffer(h.digest(), "<u4").astype(np.uint32)


def _rows_bucket(n: int) -> int:
    """Rows are padded to 8 sizes an octave (at least 64; at most 1/8 of them padding), so a
    run compiles a few shapes."""
    step = 1 << max(6, n.bit_length() - 3)
    return -(-n // step) * step


def fingerprint_array(outputs: Any, mantissa_bits: int = 12, salt: bytes = b"") -> np.ndarray:
    """One 16-byte fingerprint per program from its outputs on the probe points, as a
    uint8 array [P, 16] (row ``i`` is ``fingerprints(...)[i]``).

    outputs: [P, M], program p's values on the M probe points (any float dtype; a numpy
        array, or a JAX array on the device that computed it).
    mantissa_bits: significand bits kept (rounded to nearest), 0..23.
    salt: bytes naming the problem and budget (``make_salt``); part of every hash.
    """
    _check_bits(mantissa_bits)
    if len(getattr(outputs, "shape", ())) != 2:
        outputs = np.asarray(outputs)
        raise ValueError(f"outputs must have shape [P, M] (programs x probe points), "
                         f"got {outputs.shape}")
    P, M = outputs.shape
    if P == 0:
        return np.zeros((0, FINGERPRINT_BYTES), np.uint8)
    x = _as_float32(outputs)
    rows = _rows_bucket(P)
    if rows != P:
        x = (jnp.pad(x, ((0, rows - P), (0, 0))) if isinstance(x, jax.Array)
             else np.pad(x, ((0, rows - P), (0, 0))))
    h = _murmur_rows(jnp.asarray(_prefix(salt, mantissa_bits, M)), jnp.asarray(x),
                     int(mantissa_bits))
    return np.asarray(h)[:P].astype("<u4").view(np.uint8)


def fingerprints(outputs: Any, mantissa_bits: int = 12, salt: bytes = b"") -> list[bytes]:
    """One 16-byte fingerprint per program from its outputs on the probe points
    (``fingerprint_array``'s rows as bytes)."""
    return as_bytes(fingerprint_array(outputs, mantissa_bits, salt))


def as_bytes(fps: np.ndarray) -> list[bytes]:
    """The rows of a uint8 [P, 16] fingerprint array as ``bytes`` objects."""
    fps = np.ascontiguousarray(fps, np.uint8)
    return fps.view(f"V{FINGERPRINT_BYTES}").reshape(-1).tolist()


def make_salt(problem: str, budget: Mapping[str, Any] | None = None) -> bytes:
    """A salt naming the problem and the evaluation budget (probe set, sizes, dtype...).

    ``budget`` must be JSON-serializable; its keys are sorted, so the salt does not
    depend on their order.
    """
    text = json.dumps({"problem": problem, "budget": dict(budget or {})}, sort_keys=True,
                      separators=(",", ":"))
    return text.encode("utf-8")
