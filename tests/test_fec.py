"""Functional-equivalence cache: LRU, forgetting, audits, batches, state (the fingerprints
themselves: tests/test_fingerprints.py)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evolve.search.fec import FECache


def _key(i: int) -> bytes:
    return i.to_bytes(16, "little")


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
