"""Functional-equivalence cache: LRU, forgetting, audits, batches, state (the fingerprints
themselves: tests/test_fingerprints.py). The array cache is checked against a reference
model, an ordered dict updated one fingerprint at a time (``Reference``)."""

from __future__ import annotations

import io
import json
import math
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from evolve.search.fec import FECache, as_keys, first_occurrences, key_bytes


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
    assert not cache.record_audit({"e": 1.0, "c": 2.0}, {"e": 1.0 + 1e-9, "c": 2.0})
    assert cache.record_audit({"e": 1.0}, {"e": 1.1})
    assert cache.record_audit({"e": 1.0}, {"e": 1.0, "c": 2.0})  # a field missing
    assert not cache.record_audit({"e": math.nan}, {"e": math.nan})
    assert cache.false_hit_rate == 0.5
    stats = cache.take_stats()
    assert (stats["audits"], stats["false_hits"]) == (4, 2)
    assert cache.false_hit_rate == 0.5  # run-level, kept across generations
    false = cache.record_audit_column(np.array([1.0, 1.0, math.nan, math.inf, 0.0]),
                                      np.array([1.0 + 1e-9, 1.1, math.nan, math.inf, 1e-300]))
    assert false.tolist() == [False, True, False, False, True]
    assert cache.take_stats()["false_hits"] == 2 and cache.false_hit_rate == 4 / 9


def test_value_types():
    cache = FECache(capacity=2)
    cache.insert(_key(0), {"error": np.float32(0.25), "cost": 3})
    value = cache.lookup(_key(0))
    assert value == {"error": 0.25, "cost": 3.0} and type(value["error"]) is float
    # records hold floats only (nothing cached arrays: the engine's fields are floats)
    with pytest.raises(TypeError, match="floats"):
        cache.insert(_key(1), {"consts": np.zeros(2)})
    with pytest.raises(TypeError, match="floats"):
        cache.insert(_key(1), {"consts": [1.0, 2.0]})
    with pytest.raises(TypeError, match="floats"):
        cache.insert(_key(1), {"ok": True})
    with pytest.raises(ValueError, match="16 bytes"):
        cache.insert(b"short", {"e": 1.0})
    with pytest.raises(ValueError, match="16 bytes"):
        cache.lookup_many([_key(1), b"x" * 17])
    with pytest.raises(ValueError, match="capacity"):
        FECache(capacity=0)


def test_keys_and_first_occurrences():
    fps = [_key(3), _key(1), _key(3), bytes(16), _key(1), _key(2)]
    keys = as_keys(fps)
    assert key_bytes(keys) == fps  # trailing zero bytes kept
    assert key_bytes(as_keys(np.frombuffer(b"".join(fps), np.uint8).reshape(-1, 16))) == fps
    first, group = first_occurrences(fps)
    assert first.tolist() == [0, 1, 3, 5] and group.tolist() == [0, 1, 0, 2, 1, 3]
    with pytest.raises(ValueError, match="uint8"):
        as_keys(np.zeros((2, 8), np.uint8))


def test_column_calls():
    cache = FECache(capacity=4, max_hits=2)
    cache.insert_column([_key(1), _key(2)], "error", np.array([0.5, -0.0]))
    found, error = cache.lookup_column([_key(2), _key(9), _key(2), _key(2)], "error")
    assert found.tolist() == [True, False, True, False]  # the 2nd hit forgets it
    assert np.signbit(error[0]) and np.isnan(error[1:][~found[1:]]).all()
    assert cache.contains_many([_key(1), _key(2)]).tolist() == [True, False]
    cache.insert(_key(3), {"cost": 1.0})
    with pytest.raises(KeyError, match="error"):
        cache.lookup_column([_key(3)], "error")
    assert cache.take_stats()["hits"] == 2  # the refused lookup counted nothing
    assert cache.peek_column([_key(1)], "error")[1].tolist() == [0.5]
    assert cache.peek_many([_key(3), _key(7)]) == [{"cost": 1.0}, None]


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
    return set(a) == set(b) and all(
        type(b[k]) is float and np.float64(a[k]).tobytes() == np.float64(b[k]).tobytes()
        for k in a)


def _value(i: int, kind: int) -> dict:
    """Records of a few shapes: one field, two, another field, none."""
    return [{"error": i / 7.0}, {"error": -i / 3.0, "cost": float(i)},
            {"cost": math.nan if i % 2 else -0.0}, {}][kind]


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


def test_states_written_before_the_arrays_load():
    # FECache.to_state wrote this format when it held an ordered dict of records (with
    # room for array fields, which nothing used): it loads, and a cache holding one
    # cannot (its arrays would be lost), nor one listing a fingerprint twice
    state = {"capacity": 4, "max_hits": 2, "audit_rate": 0.5,
             "stats": {"hits": 3, "misses": 1, "evictions": 0, "forgotten": 0,
                       "audits": 1, "false_hits": 0},
             "audits_total": 1, "false_hits_total": 0,
             "fingerprints": np.array([list(_key(2)), list(_key(1))], np.uint8),
             "hit_counts": np.array([1, 0], np.int64), "scalar_names": ["error"],
             "scalars": np.array([[0.5], [0.25]]), "scalar_present": np.ones((2, 1), bool),
             "array_names": ["consts"], "array_lengths": np.full((2, 1), -1, np.int64),
             "array_float32": np.zeros((2, 1), bool), "array_data": np.zeros(0)}
    cache = FECache.from_state(_through_disk(state))
    assert cache.take_stats()["hits"] == 3 and cache.false_hit_rate == 0.0
    again = cache.to_state()
    for k in ("fingerprints", "hit_counts", "scalars", "scalar_present"):
        assert again[k].tobytes() == state[k].tobytes(), k
    assert cache.lookup(_key(2)) == {"error": 0.5} and _key(2) not in cache  # 2nd hit
    cache.insert(_key(3), {"error": 1.0})
    assert [bytes(k) for k in cache.to_state()["fingerprints"]] == [_key(1), _key(3)]
    with_array = {**state, "array_lengths": np.array([[2], [-1]]), "array_data": np.ones(2)}
    with pytest.raises(ValueError, match="float fields only"):
        FECache.from_state(with_array)
    twice = {**state, "fingerprints": np.array([list(_key(2))] * 2, np.uint8)}
    with pytest.raises(ValueError, match="twice"):
        FECache.from_state(twice)


# -- the array cache against the reference model ------------------------------------------
class Reference:
    """The cache's semantics one fingerprint at a time, on an ordered dict (least recently
    used first), as FECache was before it held arrays; ``evictions`` counted per batch of
    inserts as the array cache documents (entries present before the batch or inserted
    by it that are gone after it)."""

    def __init__(self, capacity: int, max_hits: int | None):
        self.capacity, self.max_hits = capacity, max_hits
        self.entries: OrderedDict[bytes, tuple[dict, int]] = OrderedDict()
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        self.audits = [0, 0]

    def peek_many(self, fps):
        return [self.entries[fp][0] if fp in self.entries else None for fp in fps]

    def lookup_many(self, fps):
        out = []
        for fp in fps:
            entry = self.entries.get(fp)
            if entry is None:
                self.stats["misses"] += 1
                out.append(None)
                continue
            value, count = entry[0], entry[1] + 1
            self.stats["hits"] += 1
            if self.max_hits is not None and count >= self.max_hits:
                del self.entries[fp]
                self.stats["forgotten"] += 1
            else:
                self.entries[fp] = (value, count)
                self.entries.move_to_end(fp)
            out.append(value)
        return out

    def lookup_column(self, fps, name):
        if any(name not in v for v in self.peek_many(fps) if v is not None):
            raise KeyError(name)
        values = self.lookup_many(fps)
        return ([v is not None for v in values],
                [math.nan if v is None else v[name] for v in values])

    def insert_many(self, fps, values):
        before = set(self.entries) | set(fps)
        for fp, value in zip(fps, values):
            self.entries.pop(fp, None)
            self.entries[fp] = (dict(value), 0)
            if len(self.entries) > self.capacity:
                self.entries.popitem(last=False)
        self.stats["evictions"] += len(before - set(self.entries))

    def record_audits(self, false: list[bool]):
        self.stats["audits"] += len(false)
        self.stats["false_hits"] += sum(false)

    def take_stats(self):
        stats, self.stats = self.stats, dict.fromkeys(STAT_NAMES, 0)
        return stats

    def entries_as_state(self) -> dict:
        fps = list(self.entries)
        records = [v for v, _ in self.entries.values()]
        names = sorted({k for v in records for k in v})
        return {"fingerprints": [list(fp) for fp in fps],
                "hit_counts": [h for _, h in self.entries.values()], "scalar_names": names,
                "scalars": [[np.float64(v.get(k, 0.0)).tobytes() for k in names]
                            for v in records],
                "scalar_present": [[k in v for k in names] for v in records]}


STAT_NAMES = ("hits", "misses", "evictions", "forgotten", "audits", "false_hits")
# keys whose first 8 bytes are shared (the cache searches those again on all 16), keys
# with trailing zero bytes, the extremes
KEYS = [bytes(16), b"\x01" * 8 + bytes(8), b"\x01" * 9 + bytes(7), b"\x01" * 8 + bytes(7) + b"\x02",
        _key(5), _key(6), bytes([7]) * 16, bytes(15) + b"\x08", b"\xff" * 16, _key(300)]
BATCH_OPS = ("insert", "insert_column", "lookup", "lookup_column", "lookup_mask",
             "contains", "peek", "audit", "stats", "copy", "restore")
batch_scripts = st.lists(st.tuples(  # inserts and lookups the most, keys often repeated
    st.sampled_from(BATCH_OPS + ("insert", "insert_column", "lookup", "lookup_column")),
    st.lists(st.one_of(st.integers(0, 3), st.integers(0, len(KEYS) - 1)), max_size=12),
    st.integers(0, 3)), max_size=25)


def _cache_entries(cache: FECache) -> dict:
    s = cache.to_state()
    return {"fingerprints": s["fingerprints"].tolist(), "hit_counts": s["hit_counts"].tolist(),
            "scalar_names": s["scalar_names"],
            "scalars": [[x.tobytes() for x in row] for row in s["scalars"]],
            "scalar_present": s["scalar_present"].tolist()}


@given(batch_scripts, st.integers(1, 6), st.sampled_from([None, 1, 2, 3]))
@example([("insert", [0], 0), ("lookup", [0], 0), ("insert", [0], 1)], 2, None)  # hits reset
@example([("insert_column", [1, 2], 0), ("lookup_column", [2, 1, 2, 2, 1], 0)], 3, 2)
@example([("insert", [1, 2, 3, 1, 4, 2, 5, 6], 0), ("lookup", [1, 2, 6], 0)], 3, None)
@example([("insert", [0, 1], 0), ("insert", [1, 2, 3, 1, 0], 1), ("stats", [], 0)], 2, 3)
def test_batches_behave_as_the_reference_model(script, capacity, max_hits):
    cache, ref = FECache(capacity, max_hits, audit_rate=0.5), Reference(capacity, max_hits)
    copies = []  # (a cache left behind by "copy", its entries then): later calls leave it
    for step, (op, ids, kind) in enumerate(script):
        fps = [KEYS[i] for i in ids]
        if op == "insert":  # records of several shapes; a repeated key's last one stays
            values = [_value(10 * step + j, (kind + j) % 4) for j in range(len(fps))]
            cache.insert_many(fps, values)
            ref.insert_many(fps, values)
        elif op == "insert_column":
            values = np.arange(len(fps)) + step / 8
            cache.insert_column(as_keys(fps), "error", values)
            ref.insert_many(fps, [{"error": v} for v in values.tolist()])
        elif op == "lookup":
            got, want = cache.lookup_many(fps), ref.lookup_many(fps)
            assert all(_same_value(a, b) for a, b in zip(want, got, strict=True))
        elif op == "lookup_column":
            try:
                want = ref.lookup_column(fps, "error")
            except KeyError:
                with pytest.raises(KeyError, match="error"):
                    cache.lookup_column(fps, "error")
            else:
                found, values = cache.lookup_column(fps, "error")
                assert found.tolist() == want[0]
                assert values.tobytes() == np.array(want[1], np.float64).tobytes()
        elif op == "lookup_mask":
            want = [v is not None for v in ref.lookup_many(fps)]
            assert cache.lookup_mask(fps).tolist() == want
        elif op == "contains":
            assert cache.contains_many(fps).tolist() == [fp in ref.entries for fp in fps]
            assert [fp in cache for fp in fps] == [fp in ref.entries for fp in fps]
        elif op == "peek":
            got, want = cache.peek_many(fps), ref.peek_many(fps)
            assert all(_same_value(a, b) for a, b in zip(want, got, strict=True))
        elif op == "audit":
            fresh = np.array([float(i % 3) for i in ids])
            cached = np.where(np.arange(len(ids)) % (kind + 1) == 0, fresh, fresh + 1)
            false = cache.record_audit_column(cached, fresh)
            assert false.tolist() == (cached != fresh).tolist()
            ref.record_audits(false.tolist())
        elif op == "stats":
            assert cache.take_stats() == ref.take_stats()
        elif op == "copy":
            copies.append((cache, _cache_entries(cache)))
            cache = cache.copy()
        else:  # "restore": through a checkpoint
            cache = FECache.from_state(_through_disk(cache.to_state()))
        assert len(cache) == len(ref.entries)
        assert _cache_entries(cache) == ref.entries_as_state()  # LRU order, hits, records
    assert cache.take_stats() == ref.take_stats()
    for left, entries in copies:
        assert _cache_entries(left) == entries


def test_insert_many_checks_its_input():
    cache = FECache(4)
    with pytest.raises(ValueError, match="2 fingerprints for 1 values"):
        cache.insert_many([_key(1), _key(2)], [{"error": 1.0}])
    with pytest.raises(ValueError, match="16 bytes"):
        cache.insert_many([b"short"], [{"error": 1.0}])
