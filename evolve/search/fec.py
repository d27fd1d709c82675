"""Functional-equivalence caching: fingerprints of program behaviour, and a bounded cache.

Two programs that compute the same function should be evaluated once. Each child is run
on a small fixed probe set; its outputs are quantized and hashed into a 16-byte
fingerprint (``fingerprints``). Equal fingerprints are taken as the same function, and
the cached record (objectives, fitted constants) is reused (``FECache``).

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

One concept, functional-equivalence caching: the fingerprint and the cache it keys.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
from collections import OrderedDict
from collections.abc import Sequence
from itertools import repeat
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

Value = dict[str, float | np.ndarray]
"""A cached record: field name -> a float or a 1-D float32/float64 array."""

_STAT_NAMES = ("hits", "misses", "evictions", "forgotten", "audits", "false_hits")


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


# -- values ------------------------------------------------------------------------------
def _check_value(value: Mapping[str, Any]) -> Value:
    if type(value) is dict and all(type(k) is str and type(v) is float  # noqa: E721
                                   for k, v in value.items()):
        return dict(value)  # the engine's own values: plain floats (the ABC checks below
        #                     cost more than the rest of an insert)
    if not isinstance(value, Mapping):
        raise TypeError(f"a cache value must be a dict of str -> float or 1-D float array, "
                        f"got {type(value).__name__}")
    out: Value = {}
    for name, v in value.items():
        if not isinstance(name, str):
            raise TypeError(f"cache value field names must be str, got {name!r}")
        if isinstance(v, np.ndarray):
            if v.ndim != 1 or v.dtype not in (np.float32, np.float64):
                raise TypeError(f"field {name!r}: arrays must be 1-D float32 or float64, "
                                f"got shape {v.shape} dtype {v.dtype}")
            out[name] = v.copy()
        elif isinstance(v, numbers.Real) and not isinstance(v, bool):
            out[name] = float(v)
        else:
            raise TypeError(f"field {name!r}: must be a float or a 1-D float array, "
                            f"got {type(v).__name__}")
    return out


def _same(a: float | np.ndarray, b: float | np.ndarray, rtol: float, atol: float) -> bool:
    a_arr, b_arr = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a_arr.shape != b_arr.shape:
        return False
    return bool(np.allclose(a_arr, b_arr, rtol=rtol, atol=atol, equal_nan=True))


# -- the cache ---------------------------------------------------------------------------
class FECache:
    """A bounded LRU cache from fingerprint to a record, with forced forgetting and audits.

    capacity: entries kept; inserting past it evicts the least recently used entry.
    max_hits: an entry is dropped after serving this many hits (the next lookup misses,
        so a noisy fitness is measured again); None never forgets.
    audit_rate: the fraction of hits to re-evaluate to measure the false-hit rate
        (``should_audit``, ``record_audit``); 0 disables audits.

    Values are dicts mapping str to a float or a 1-D float32/float64 numpy array (e.g.
    objectives and fitted constants); they are copied in and returned as stored.

    Stats for the current generation (``hits``, ``misses``, ``evictions``, ``forgotten``,
    ``audits``, ``false_hits``) are returned and reset by ``take_stats``; the audit
    totals behind ``false_hit_rate`` are kept for the whole run.
    """

    def __init__(self, capacity: int, max_hits: int | None = None, audit_rate: float = 0.0):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        if max_hits is not None and max_hits < 1:
            raise ValueError(f"max_hits must be at least 1 (or None to never forget), "
                             f"got {max_hits}")
        if not 0.0 <= audit_rate <= 1.0:
            raise ValueError(f"audit_rate must be in [0, 1], got {audit_rate}")
        self.capacity = int(capacity)
        self.max_hits = None if max_hits is None else int(max_hits)
        self.audit_rate = float(audit_rate)
        self._entries: OrderedDict[bytes, tuple[Value, int]] = OrderedDict()  # LRU first
        self._stats = dict.fromkeys(_STAT_NAMES, 0)
        self._audits_total = 0
        self._false_hits_total = 0

    def copy(self) -> FECache:
        """An independent cache with the same entries, LRU order, hit counts and stats.

        Records are shared, not copied: a cache never changes a record it holds (``insert``
        stores a copy of what it is given, ``lookup`` replaces an entry's hit count, not
        its record). Costs one ordered-dict copy (about 10 ms per 100,000 entries).
        """
        other = FECache.__new__(FECache)
        other.capacity, other.max_hits, other.audit_rate = (self.capacity, self.max_hits,
                                                            self.audit_rate)
        other._entries = self._entries.copy()
        other._stats = dict(self._stats)
        other._audits_total = self._audits_total
        other._false_hits_total = self._false_hits_total
        return other

    # -- lookups -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, fp: bytes) -> bool:
        """Whether ``fp`` is cached; counts nothing and leaves the LRU order alone."""
        return fp in self._entries

    def peek(self, fp: bytes) -> Value | None:
        """The record cached for ``fp``, or None; counts nothing and leaves the LRU order
        alone (islands read a shared cache this way during a generation)."""
        entry = self._entries.get(fp)
        return None if entry is None else entry[0]

    def lookup(self, fp: bytes) -> Value | None:
        """The record cached for ``fp`` (a hit), or None (a miss).

        A hit makes the entry the most recently used; its ``max_hits``-th hit also drops
        it (counted in ``forgotten``).
        """
        entry = self._entries.get(fp)
        if entry is None:
            self._stats["misses"] += 1
            return None
        value, hits = entry
        self._stats["hits"] += 1
        hits += 1
        if self.max_hits is not None and hits >= self.max_hits:
            del self._entries[fp]
            self._stats["forgotten"] += 1
        else:
            self._entries[fp] = (value, hits)
            self._entries.move_to_end(fp)
        return value

    def lookup_many(self, fps: Sequence[bytes]) -> list[Value | None]:
        """``[self.lookup(fp) for fp in fps]`` in one call: the same records, counts, LRU
        order and forgetting (a fingerprint repeated in ``fps`` is looked up each time)."""
        entries = self._entries
        get, move = entries.get, entries.move_to_end
        max_hits = self.max_hits
        out: list[Value | None] = []
        hits = forgotten = 0
        for fp in fps:
            entry = get(fp)
            if entry is None:
                out.append(None)
                continue
            value, count = entry
            count += 1
            hits += 1
            if max_hits is not None and count >= max_hits:
                del entries[fp]
                forgotten += 1
            else:
                entries[fp] = (value, count)
                move(fp)
            out.append(value)
        self._stats["hits"] += hits
        self._stats["misses"] += len(out) - hits
        self._stats["forgotten"] += forgotten
        return out

    def insert_many(self, fps: Sequence[bytes], values: Sequence[Mapping[str, Any]],
                    checked: bool = False) -> None:
        """``insert(fp, value)`` for each pair in order, in one call: the same entries, LRU
        order and evictions. ``checked``: the values are dicts of str -> float made by the
        caller for this call (not checked or copied again)."""
        if len(fps) != len(values):
            raise ValueError(f"{len(fps)} fingerprints for {len(values)} values")
        entries, capacity = self._entries, self.capacity
        if (checked and len(entries) <= capacity and set(map(len, fps)) <= {FINGERPRINT_BYTES}
                and entries.keys().isdisjoint(fps) and len(set(fps)) == len(fps)):
            # new, distinct keys (the engine's misses): added at the recent end in order,
            # then the oldest dropped, which is what inserting one at a time drops
            entries.update(zip(map(bytes, fps), zip(values, repeat(0))))
            excess = max(len(entries) - capacity, 0)
            for _ in range(excess):
                entries.popitem(last=False)
            self._stats["evictions"] += excess
            return
        evictions = 0
        for fp, value in zip(fps, values):
            if len(fp) != FINGERPRINT_BYTES:
                raise ValueError(f"fingerprints are {FINGERPRINT_BYTES} bytes, got {len(fp)}")
            if not checked:
                value = _check_value(value)
            if fp in entries:
                del entries[fp]
            entries[bytes(fp)] = (value, 0)
            if len(entries) > capacity:
                entries.popitem(last=False)
                evictions += 1
        self._stats["evictions"] += evictions

    def insert_column(self, fps: Sequence[bytes], name: str, values: np.ndarray) -> None:
        """``insert_many(fps, [{name: v} for v in values])``: one float field a record (the
        engine's errors), from a float array, without checking each record."""
        values = np.asarray(values, np.float64).reshape(-1)
        self.insert_many(fps, [{name: v} for v in values.tolist()], checked=True)

    def insert(self, fp: bytes, value: Mapping[str, Any]) -> None:
        """Cache ``value`` for ``fp`` as the most recently used entry, with no hits.

        Replaces an existing entry for ``fp``; evicts the least recently used entry when
        the cache is full.
        """
        if len(fp) != FINGERPRINT_BYTES:
            raise ValueError(f"fingerprints are {FINGERPRINT_BYTES} bytes, got {len(fp)}")
        value = _check_value(value)
        fp = bytes(fp)
        if fp in self._entries:
            del self._entries[fp]
        self._entries[fp] = (value, 0)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self._stats["evictions"] += 1

    # -- stats -----------------------------------------------------------------------
    @property
    def hits(self) -> int:
        return self._stats["hits"]

    @property
    def misses(self) -> int:
        return self._stats["misses"]

    @property
    def evictions(self) -> int:
        return self._stats["evictions"]

    @property
    def forgotten(self) -> int:
        return self._stats["forgotten"]

    def take_stats(self) -> dict[str, int]:
        """This generation's counts (hits, misses, evictions, forgotten, audits,
        false_hits), and reset them to zero."""
        stats = dict(self._stats)
        self._stats = dict.fromkeys(_STAT_NAMES, 0)
        return stats

    # -- audits ------------------------------------------------------------------------
    def should_audit(self, u: float) -> bool:
        """Whether to re-evaluate a hit, given a uniform draw ``u`` in [0, 1) from the
        caller's own key (the cache holds no randomness)."""
        return u < self.audit_rate

    def record_audit(self, cached: Mapping[str, Any], fresh: Mapping[str, Any],
                     rtol: float = 1e-6, atol: float = 0.0) -> bool:
        """Count an audited hit; return whether it was a false hit.

        A false hit is a cached record that disagrees with the fresh evaluation: a field
        present in only one of them, or values not ``np.allclose(cached, fresh, rtol,
        atol, equal_nan=True)``.
        """
        false = set(cached) != set(fresh) or not all(
            _same(cached[k], fresh[k], rtol, atol) for k in cached)
        self._stats["audits"] += 1
        self._audits_total += 1
        if false:
            self._stats["false_hits"] += 1
            self._false_hits_total += 1
        return false

    @property
    def false_hit_rate(self) -> float:
        """False hits per audited hit over the whole run (NaN before the first audit)."""
        if self._audits_total == 0:
            return math.nan
        return self._false_hits_total / self._audits_total

    # -- state -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """The whole cache as data: numpy arrays and JSON-able values, no pickle.

        Entries are listed least recently used first. Arrays: ``fingerprints`` uint8
        [n, 16], ``hit_counts`` int64 [n], ``scalars`` float64 [n, S] with
        ``scalar_present`` bool [n, S] (fields ``scalar_names``), and for array fields
        (``array_names``, A of them) ``array_lengths`` int64 [n, A] (-1: absent),
        ``array_float32`` bool [n, A] and ``array_data`` float64, the segments
        concatenated entry by entry, field by field.
        """
        fps = list(self._entries)
        values = [v for v, _ in self._entries.values()]
        scalar_names = sorted({k for v in values for k, x in v.items() if isinstance(x, float)})
        array_names = sorted({k for v in values for k, x in v.items() if isinstance(x, np.ndarray)})
        n = len(fps)
        scalars = np.zeros((n, len(scalar_names)), np.float64)
        present = np.zeros((n, len(scalar_names)), bool)
        lengths = np.full((n, len(array_names)), -1, np.int64)
        is_f32 = np.zeros((n, len(array_names)), bool)
        data = []
        for i, v in enumerate(values):
            for j, name in enumerate(scalar_names):
                if isinstance(v.get(name), float):
                    scalars[i, j] = v[name]
                    present[i, j] = True
            for j, name in enumerate(array_names):
                a = v.get(name)
                if isinstance(a, np.ndarray):
                    lengths[i, j] = a.shape[0]
                    is_f32[i, j] = a.dtype == np.float32
                    data.append(a.astype(np.float64))
        return {
            "capacity": self.capacity,
            "max_hits": self.max_hits,
            "audit_rate": self.audit_rate,
            "stats": dict(self._stats),
            "audits_total": self._audits_total,
            "false_hits_total": self._false_hits_total,
            "fingerprints": np.frombuffer(b"".join(fps), np.uint8).reshape(n, FINGERPRINT_BYTES),
            "hit_counts": np.array([h for _, h in self._entries.values()], np.int64),
            "scalar_names": scalar_names,
            "scalars": scalars,
            "scalar_present": present,
            "array_names": array_names,
            "array_lengths": lengths,
            "array_float32": is_f32,
            "array_data": np.concatenate(data) if data else np.zeros(0, np.float64),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FECache:
        """The cache ``to_state`` described: same entries, LRU order, hit counts, stats."""
        missing = [k for k in ("capacity", "max_hits", "audit_rate", "stats", "audits_total",
                               "false_hits_total", "fingerprints", "hit_counts", "scalar_names",
                               "scalars", "scalar_present", "array_names", "array_lengths",
                               "array_float32", "array_data") if k not in state]
        if missing:
            raise ValueError(f"cache state lacks {missing}: it was not written by "
                             "FECache.to_state, or is damaged")
        max_hits = state["max_hits"]
        cache = cls(int(state["capacity"]), None if max_hits is None else int(max_hits),
                    float(state["audit_rate"]))
        fps = _integers(state["fingerprints"], np.uint8, "fingerprints")
        n = fps.shape[0] if fps.ndim == 2 else -1
        if fps.ndim != 2 or fps.shape[1] != FINGERPRINT_BYTES or n > cache.capacity:
            raise ValueError(f"cache state: fingerprints must be uint8 [n, {FINGERPRINT_BYTES}] "
                             f"with n <= capacity={cache.capacity}, got shape {fps.shape}")
        hit_counts = _integers(state["hit_counts"], np.int64, "hit_counts")
        scalars = np.asarray(state["scalars"], np.float64)
        present = np.asarray(state["scalar_present"], bool)
        lengths = _integers(state["array_lengths"], np.int64, "array_lengths")
        is_f32 = np.asarray(state["array_float32"], bool)
        data = np.asarray(state["array_data"], np.float64)
        scalar_names = list(state["scalar_names"])
        array_names = list(state["array_names"])
        if (hit_counts.shape != (n,) or scalars.shape != (n, len(scalar_names))
                or present.shape != scalars.shape or lengths.shape != (n, len(array_names))
                or is_f32.shape != lengths.shape or data.shape != (int(lengths.clip(0).sum()),)):
            raise ValueError("cache state: array shapes disagree with each other; "
                             "the checkpoint is damaged")
        offset = 0
        for i in range(n):
            value: Value = {}
            for j, name in enumerate(scalar_names):
                if present[i, j]:
                    value[name] = float(scalars[i, j])
            for j, name in enumerate(array_names):
                m = int(lengths[i, j])
                if m >= 0:
                    seg = data[offset: offset + m]
                    value[name] = seg.astype(np.float32 if is_f32[i, j] else np.float64)
                    offset += m
            cache._entries[fps[i].tobytes()] = (value, int(hit_counts[i]))
        cache._stats = {k: int(state["stats"].get(k, 0)) for k in _STAT_NAMES}
        cache._audits_total = int(state["audits_total"])
        cache._false_hits_total = int(state["false_hits_total"])
        return cache


def _integers(values: Any, dtype: Any, what: str) -> np.ndarray:
    """``values`` as ``dtype``, or ValueError when they are not integers in its range (a
    damaged checkpoint: a cast would turn NaN or 1e300 into some number silently)."""
    a = np.asarray(values)
    info = np.iinfo(dtype)
    if a.size and (a.dtype.kind not in "iu" or a.min() < info.min or a.max() > info.max):
        raise ValueError(f"cache state: {what} must be integers in [{info.min}, {info.max}], "
                         f"got {a.dtype} values; the checkpoint is damaged")
    return a.astype(dtype)
