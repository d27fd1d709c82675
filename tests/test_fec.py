"""Functional-equivalence cache: quantization, stable fingerprints, LRU, forgetting, state."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evolve.search.fec import (
    FINGERPRINT_BYTES,
    NAN_TOKEN,
    FECache,
    _prefix,
    as_bytes,
    fingerprint_array,
    fingerprints,
    make_salt,
    quantize,
)

ROOT = Path(__file__).resolve().parents[1]


def _f32(bits: int) -> np.float32:
    return np.array(bits, np.uint32).view(np.float32)[()]


def _fp(bits_row: list[int], mantissa_bits: int = 12, salt: bytes = b"") -> bytes:
    row = np.array(bits_row, np.uint32).view(np.float32)[None, :]
    return fingerprints(row, mantissa_bits, salt)[0]


def _key(i: int) -> bytes:
    return i.to_bytes(16, "little")


# -- quantization ----------------------------------------------------------------------
finite_bits = st.integers(0, 2**32 - 1).filter(lambda b: (b >> 23) & 0xFF != 0xFF)


@given(finite_bits, st.integers(0, 22), st.integers(0, 2**23 - 1), st.integers(0, 2**23 - 1))
def test_outputs_differing_only_in_dropped_bits_share_a_fingerprint(bits, m, r1, r2):
    drop = 23 - m
    half = 1 << (drop - 1)
    keep = bits & ~((1 << drop) - 1) & 0xFFFFFFFF
    # same kept bits and the same top dropped bit: both round the same way
    top = bits & half
    low1, low2 = r1 % half, r2 % half
    a, b = keep | top | low1, keep | top | low2
    assert quantize(np.array([_f32(a)]), m)[0] == quantize(np.array([_f32(b)]), m)[0]
    assert _fp([a, bits], m) == _fp([b, bits], m)


@given(finite_bits, st.integers(0, 23))
def test_real_differences_change_the_fingerprint(bits, m):
    drop = 23 - m
    x = bits & ~((1 << drop) - 1) & 0xFFFFFFFF  # already on the quantization grid
    y = x ^ (1 << drop)  # flip the lowest kept bit
    if (y >> 23) & 0xFF == 0xFF:  # flipped into Inf/NaN: not a finite value
        return
    if x & 0x7FFFFFFF == 0 and y & 0x7FFFFFFF == 0:
        return
    assert _fp([x], m) != _fp([y], m)


def test_rounds_to_nearest_not_truncates():
    one = 0x3F800000
    m = 12  # quantum 2**-12 at 1.0; the dropped bits are the low 11
    up = one | (1 << 10)  # 1 + 2**-13: exactly half a quantum, ties away from zero
    down = one | ((1 << 10) - 1)  # just under half a quantum
    assert quantize(np.array([_f32(up)]), m)[0] == one + (1 << 11)
    assert quantize(np.array([_f32(down)]), m)[0] == one
    neg = quantize(np.array([-_f32(up)]), m)[0]
    assert neg == (one + (1 << 11)) | 0x80000000  # symmetric in the sign


def test_carry_into_the_exponent_and_overflow_to_inf():
    below_two = 0x3FFFFFFF  # the largest float32 under 2.0
    assert quantize(np.array([_f32(below_two)]), 12)[0] == 0x40000000
    f32_max = np.finfo(np.float32).max
    assert quantize(np.array([f32_max, -f32_max]), 12).tolist() == [0x7F800000, 0xFF800000]


def test_zero_signs_and_nan_payloads_collapse():
    zeros = [0x00000000, 0x80000000, 0x80000001]  # +0, -0, the smallest negative subnormal
    nans = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FC12345, 0xFFFFFFFF]
    q = quantize(np.array(zeros + nans, np.uint32).view(np.float32), 12)
    assert q.tolist() == [0] * 3 + [NAN_TOKEN] * 5
    assert len({_fp([z, 0x3F800000]) for z in zeros}) == 1
    assert len({_fp([n, 0x3F800000]) for n in nans}) == 1


def test_inf_nan_and_finite_tokens_are_distinct():
    rows = [[0x7F800000], [0xFF800000], [0x7FC00000], [0x7F7FF000], [0]]
    assert len({_fp(r) for r in rows}) == len(rows)


def test_float64_outputs_hash_as_float32():
    x = np.array([[1.5, -2.25, np.nan, np.inf, -0.0, 1e300]])
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)  # 1e300 -> inf, as fingerprints rounds it
    assert fingerprints(x) == fingerprints(x32)


def test_salt_and_mantissa_bits_change_the_hash():
    x = np.linspace(-1, 1, 16, dtype=np.float32)[None]
    salt = make_salt("exp2", {"probes": 16, "seed": 0})
    assert fingerprints(x, salt=salt) != fingerprints(x)
    assert fingerprints(x, salt=salt) != fingerprints(x, salt=make_salt("exp2", {"probes": 17}))
    assert fingerprints(x, 12) != fingerprints(x, 13)
    assert make_salt("p", {"a": 1, "b": 2}) == make_salt("p", {"b": 2, "a": 1})


def test_fingerprint_shape_and_input_checks():
    fps = fingerprints(np.zeros((3, 5), np.float32))
    assert len(fps) == 3 and all(isinstance(f, bytes) and len(f) == 16 for f in fps)
    assert fingerprints(np.zeros((0, 5), np.float32)) == []
    with pytest.raises(ValueError, match=r"\[P, M\]"):
        fingerprints(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="mantissa_bits"):
        quantize(np.zeros(2, np.float32), 24)


@settings(max_examples=20, deadline=None)  # each width compiles once
@given(st.integers(1, 9), st.integers(1, 70), st.integers(0, 23), st.binary(max_size=40),
       st.integers(0, 2**32 - 1))
def test_fingerprints_are_murmur3_x86_128_of_prefix_and_quantized_words(p, m, bits, salt, seed):
    # The reference: the MurmurHash3 package (C), over the bytes the docstring names.
    mmh3 = pytest.importorskip("mmh3")
    x = np.random.default_rng(seed).standard_normal((p, m)).astype(np.float32) * 1e3
    x[0, 0] = np.nan
    words = quantize(x, bits).astype("<u4")
    prefix = _prefix(salt, bits, m).astype("<u4").tobytes()
    expected = [mmh3.hash_bytes(prefix + row.tobytes(), 0, x64arch=False) for row in words]
    assert fingerprints(x, bits, salt) == expected


def test_fingerprint_array_rows_do_not_depend_on_the_batch():
    import jax.numpy as jnp

    x = np.random.default_rng(1).standard_normal((300, 17)).astype(np.float32)
    whole = fingerprint_array(x, 23, b"s")
    assert whole.shape == (300, FINGERPRINT_BYTES) and whole.dtype == np.uint8
    assert (fingerprint_array(x[:1], 23, b"s") == whole[:1]).all()  # padded differently
    assert (fingerprint_array(jnp.asarray(x), 23, b"s") == whole).all()  # a device array
    assert as_bytes(whole) == fingerprints(x, 23, b"s")


_STABILITY_VALUES = [[0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, 3.14159],
                     [1e-3, 2e-3, -5.0, 7.5, 0.1, 0.2, 0.3]]
_STABILITY_SALT = {"problem": "exp2", "budget": {"probes": 64}}
_STABILITY_SCRIPT = """
import json, sys
import numpy as np
from evolve.search.fec import fingerprints, make_salt
values, salt = json.loads(sys.argv[1]), json.loads(sys.argv[2])
fps = fingerprints(np.array(values, np.float32), 12, make_salt(salt["problem"], salt["budget"]))
print(",".join(f.hex() for f in fps))
"""
# The fingerprints of _STABILITY_VALUES: if this changes, old checkpoints' caches are void.
_KNOWN = "23536e47d7782489beacea918f89b36d,cb161e72af6956edeb7f063dd881f345"


def _stability_fps() -> str:
    x = np.array(_STABILITY_VALUES, np.float32)
    salt = make_salt(_STABILITY_SALT["problem"], _STABILITY_SALT["budget"])
    return ",".join(f.hex() for f in fingerprints(x, 12, salt))


def test_fingerprints_match_known_values():
    assert _stability_fps() == _KNOWN


@pytest.mark.parametrize("hashseed", ["0", "12345"])
def test_fingerprints_are_stable_across_processes(hashseed):
    env = dict(os.environ, PYTHONHASHSEED=hashseed, EVOLVE_NO_XLA_FLAGS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _STABILITY_SCRIPT,
                          json.dumps(_STABILITY_VALUES), json.dumps(_STABILITY_SALT)],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=120)
    assert out.stdout.strip() == _stability_fps()


# -- the cache -----------------------------------------------------------------------
def test_lru_eviction_order():
    cache = FECache(capacity=3)
    for i in range(3):
        cache.insert(_key(i), {"error": float(i)})
    assert cache.lookup(_key(0)) == {"error": 0.0}  # 0 is now the most recent
    cache.insert(_key(3), {"error": 3.0})  # evicts 1, the least recently used
    assert _key(1) not in cache and all(_key(i) in cache for i in (0, 2, 3))
    cache.insert(_key(4), {"error": 4.0})  # evicts 2
    assert _key(2) not in cache
    assert [fp for fp in cache.to_state()["fingerprints"].tolist()] == [
        list(_key(i)) for i in (0, 3, 4)]
    assert cache.take_stats() == {"hits": 1, "misses": 0, "evictions": 2, "forgotten": 0,
                                  "audits": 0, "false_hits": 0}


def test_reinsert_replaces_value_and_refreshes_recency():
    cache = FECache(capacity=2, max_hits=2)
    cache.insert(_key(0), {"error": 1.0})
    cache.insert(_key(1), {"error": 1.0})
    cache.lookup(_key(0))
    cache.insert(_key(0), {"error": 2.0})  # hit count back to 0
    cache.insert(_key(1), {"error": 3.0})
    cache.insert(_key(2), {"error": 4.0})  # evicts 0
    assert _key(0) not in cache
    cache.insert(_key(1), {"error": 5.0})
    assert cache.lookup(_key(1)) == {"error": 5.0}
    assert _key(1) in cache


def test_forced_forgetting_after_max_hits():
    cache = FECache(capacity=4, max_hits=2)
    cache.insert(_key(7), {"error": 0.5})
    assert cache.lookup(_key(7)) == {"error": 0.5}
    assert cache.lookup(_key(7)) == {"error": 0.5}  # the 2nd hit is served, then dropped
    assert _key(7) not in cache
    assert cache.lookup(_key(7)) is None  # re-measure
    assert (cache.hits, cache.misses, cache.forgotten, cache.evictions) == (2, 1, 1, 0)


def test_take_stats_returns_and_resets():
    cache = FECache(capacity=1)
    cache.lookup(_key(0))
    cache.insert(_key(0), {"e": 1.0})
    cache.lookup(_key(0))
    cache.insert(_key(1), {"e": 1.0})
    assert cache.take_stats() == {"hits": 1, "misses": 1, "evictions": 1, "forgotten": 0,
                                  "audits": 0, "false_hits": 0}
    assert cache.take_stats() == dict.fromkeys(
        ["hits", "misses", "evictions", "forgotten", "audits", "false_hits"], 0)
    assert len(cache) == 1  # entries survive a stats reset


def test_audits():
    cache = FECache(capacity=4, audit_rate=0.25)
    assert cache.should_audit(0.1) and not cache.should_audit(0.25)
    assert not FECache(capacity=1).should_audit(0.0)
    assert math.isnan(cache.false_hit_rate)
    consts = np.array([1.0, 2.0], np.float32)
    assert not cache.record_audit({"e": 1.0, "c": consts}, {"e": 1.0 + 1e-9, "c": consts})
    assert cache.record_audit({"e": 1.0}, {"e": 1.1})
    assert cache.record_audit({"e": 1.0}, {"e": 1.0, "c": consts})  # a field missing
    assert not cache.record_audit({"e": math.nan}, {"e": math.nan})
    assert cache.false_hit_rate == 0.5
    stats = cache.take_stats()
    assert (stats["audits"], stats["false_hits"]) == (4, 2)
    assert cache.false_hit_rate == 0.5  # run-level, kept across generations


def test_value_types():
    cache = FECache(capacity=2)
    consts = np.array([0.5, 1.5], np.float32)
    cache.insert(_key(0), {"error": np.float32(0.25), "cost": 3, "consts": consts})
    value = cache.lookup(_key(0))
    assert value["error"] == 0.25 and type(value["error"]) is float
    assert value["cost"] == 3.0 and value["consts"].dtype == np.float32
    consts[0] = 9.0  # the cache holds a copy
    assert cache.lookup(_key(0))["consts"][0] == 0.5
    with pytest.raises(TypeError, match="1-D"):
        cache.insert(_key(1), {"consts": np.zeros((2, 2))})
    with pytest.raises(TypeError, match="float"):
        cache.insert(_key(1), {"consts": [1.0, 2.0]})
    with pytest.raises(ValueError, match="16 bytes"):
        cache.insert(b"short", {"e": 1.0})
    with pytest.raises(ValueError, match="capacity"):
        FECache(capacity=0)


# -- state -------------------------------------------------------------------------------
def _through_disk(state: dict) -> dict:
    """What a checkpoint does: arrays to .npz, the rest to JSON, no pickle."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    rest = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as npz:
        loaded = {k: npz[k] for k in npz.files}
    return {**json.loads(json.dumps(rest)), **loaded}


def _same_value(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if set(a) != set(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray):
            if not (isinstance(y, np.ndarray) and x.dtype == y.dtype
                    and x.tobytes() == y.tobytes()):
                return False
        elif not (type(y) is float and np.float64(x).tobytes() == np.float64(y).tobytes()):
            return False
    return True


def _value(i: int, kind: int) -> dict:
    v: dict = {"error": i / 7.0} if kind != 3 else {}
    if kind == 1:
        v["consts"] = np.arange(i % 4, dtype=np.float32) / 3
    if kind == 2:
        v["cost"] = float(i)
        v["consts64"] = np.array([i / 3.0, math.nan])
    if kind == 3:
        v["consts"] = np.zeros(0, np.float64)
    return v


ops = st.lists(st.tuples(st.sampled_from(["insert", "lookup", "audit", "stats"]),
                         st.integers(0, 7), st.integers(0, 3)), max_size=40)


def _apply(cache: FECache, script) -> list:
    trace = []
    for op, key, kind in script:
        if op == "insert":
            cache.insert(_key(key), _value(key, kind))
        elif op == "lookup":
            trace.append(cache.lookup(_key(key)))
        elif op == "audit":
            trace.append(cache.record_audit({"e": 1.0}, {"e": 1.0 + kind}))
        else:
            trace.append(cache.take_stats())
    trace.append(cache.take_stats())
    return trace


@given(ops, ops, st.integers(1, 5), st.sampled_from([None, 1, 2, 3]))
def test_state_round_trip_reproduces_behaviour(before, after, capacity, max_hits):
    cache = FECache(capacity, max_hits, audit_rate=0.5)
    _apply(cache, before)
    restored = FECache.from_state(_through_disk(cache.to_state()))
    assert restored.capacity == capacity and restored.max_hits == max_hits
    assert restored.audit_rate == 0.5
    a, b = _apply(cache, after), _apply(restored, after)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, dict) and set(x) == {"hits", "misses", "evictions", "forgotten",
                                               "audits", "false_hits"}:
            assert x == y
        elif isinstance(x, bool):
            assert x == y
        else:
            assert _same_value(x, y)
    assert (cache.false_hit_rate == restored.false_hit_rate
            or (math.isnan(cache.false_hit_rate) and math.isnan(restored.false_hit_rate)))
    sa, sb = cache.to_state(), restored.to_state()
    assert set(sa) == set(sb)
    for k in sa:
        if isinstance(sa[k], np.ndarray):
            assert sa[k].dtype == sb[k].dtype and sa[k].tobytes() == sb[k].tobytes(), k
        else:
            assert sa[k] == sb[k], k


def test_state_keeps_lru_order_hit_counts_and_stats():
    cache = FECache(capacity=3, max_hits=3)
    for i in range(3):
        cache.insert(_key(i), {"e": float(i)})
    cache.lookup(_key(0))
    cache.lookup(_key(0))
    cache.lookup(_key(1))
    state = cache.to_state()
    assert state["fingerprints"].dtype == np.uint8 and state["fingerprints"].shape == (3, 16)
    assert state["hit_counts"].tolist() == [0, 2, 1]  # order: 2, 0, 1 (LRU first)
    restored = FECache.from_state(state)
    assert restored.take_stats()["hits"] == 3
    assert restored.lookup(_key(0)) == {"e": 0.0}
    assert _key(0) not in restored  # its third hit: forgotten, as the original would
    restored.insert(_key(5), {"e": 5.0})
    restored.insert(_key(6), {"e": 6.0})  # evicts 2 (least recent), not 1
    assert _key(2) not in restored and _key(1) in restored


def test_from_state_rejects_damaged_state():
    state = FECache(capacity=2).to_state()
    del state["hit_counts"]
    with pytest.raises(ValueError, match="hit_counts"):
        FECache.from_state(state)
    state = FECache(capacity=2).to_state()
    state["hit_counts"] = np.zeros(3, np.int64)
    with pytest.raises(ValueError, match="damaged"):
        FECache.from_state(state)
    cache = FECache(capacity=2)
    cache.insert(_key(1), {"e": 1.0})
    for name, bad in (("fingerprints", cache.to_state()["fingerprints"] * 1e300),
                      ("fingerprints", np.full((1, 16), 300)),
                      ("hit_counts", np.array([np.nan]))):
        state = cache.to_state()
        state[name] = bad
        with pytest.raises(ValueError, match=f"{name} must be integers"):
            FECache.from_state(state)


batches = st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 9), max_size=12)),
                   max_size=8)


@given(batches, st.integers(1, 6), st.sampled_from([None, 1, 2, 3]), st.booleans())
def test_batched_lookups_and_inserts_equal_one_at_a_time(script, capacity, max_hits, column):
    one, many = FECache(capacity, max_hits), FECache(capacity, max_hits)
    for is_insert, keys in script:
        fps = [_key(k) for k in keys]
        if is_insert:
            values = [{"error": float(k)} for k in keys]
            for fp, v in zip(fps, values):
                one.insert(fp, v)
            if column:  # new distinct keys take the bulk path, others the loop
                many.insert_column(fps, "error", np.array(keys, np.float64))
            else:
                many.insert_many(fps, values)
        else:
            assert many.lookup_many(fps) == [one.lookup(fp) for fp in fps]
        assert many.take_stats() == one.take_stats()
        assert list(many._entries.items()) == list(one._entries.items())  # LRU order, hits


def test_insert_many_checks_its_input():
    cache = FECache(4)
    with pytest.raises(ValueError, match="2 fingerprints for 1 values"):
        cache.insert_many([_key(1), _key(2)], [{"error": 1.0}])
    with pytest.raises(ValueError, match="16 bytes"):
        cache.insert_many([b"short"], [{"error": 1.0}])
