"""Functional-equivalence caching: a bounded cache of records keyed by fingerprints.

Two programs that compute the same function should be evaluated once. Each child is run
on a small fixed probe set; its outputs are quantized and hashed into a 16-byte
fingerprint (``evolve.search.fingerprints``). Equal fingerprints are taken as the same
function, and the cached record (objectives, fitted constants) is reused (``FECache``).

One concept, functional-equivalence caching: the cache the fingerprints key.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Sequence
from itertools import repeat
from typing import Any, Mapping

import numpy as np

from evolve.search.fingerprints import FINGERPRINT_BYTES

Value = dict[str, float | np.ndarray]
"""A cached record: field name -> a float or a 1-D float32/float64 array."""

_STAT_NAMES = ("hits", "misses", "evictions", "forgotten", "audits", "false_hits")


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
        return self.lookup_many((fp,))[0]

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
        self.insert_many((fp,), (value,))

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
