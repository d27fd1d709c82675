"""Functional-equivalence caching: a bounded cache of records keyed by fingerprints.

Two programs that compute the same function should be evaluated once. Each child is run
on a small fixed probe set; its outputs are quantized and hashed into a 16-byte
fingerprint (``evolve.search.fingerprints``). Equal fingerprints are taken as the same
function, and the cached record (the error, a structure's "fitted" mark) is reused
(``FECache``).

Storage: arrays, one row an entry, kept sorted by key. A key is the fingerprint as a
16-byte string (numpy ``S16``: byte-wise order), with its first 8 bytes as a big-endian
uint64 beside it, so a batch is looked up with one ``np.searchsorted`` on integers (the
rare batch key whose first 8 bytes equal a cached key's but not the rest is searched
again on the strings). Each entry has a last-use tick (a counter that advances by one per
fingerprint looked up or inserted; LRU order is tick order) and a hit count; a record is
float64 columns by field name, each with a presence mask. Lookups and inserts take whole
batches: new keys are merged into the sorted rows in one pass, evictions take the
smallest ticks (``np.argpartition``). The keys of one cache are never written in place,
so ``copy`` shares them.

Semantics are those of inserting and looking up one fingerprint at a time, in the
batch's order (LRU order, hit counts, ``max_hits`` forgetting, a key repeated in a batch
is looked up or inserted each time), with one documented difference: ``evictions``
counts the entries a batch of inserts pushed out, i.e. those present before it or
inserted by it that are gone after it. One at a time, a key pushed out and inserted
again within one batch counted twice; the entries left are the same.

Records hold float fields only (``Value``): the engine's are "error" and "fitted".

One concept, functional-equivalence caching: the cache the fingerprints key.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, Mapping

import numpy as np

from evolve.search.fingerprints import FINGERPRINT_BYTES

Value = dict[str, float]
"""A cached record: field name -> float."""

KEY = np.dtype(f"S{FINGERPRINT_BYTES}")
"""The cache's key: a fingerprint as a fixed-width byte string (``as_keys``)."""

_STAT_NAMES = ("hits", "misses", "evictions", "forgotten", "audits", "false_hits")


# -- keys --------------------------------------------------------------------------------
def as_keys(fps: Sequence[bytes] | np.ndarray) -> np.ndarray:
    """Fingerprints as the cache's keys, ``KEY`` [n]: from 16-byte strings, a uint8
    [n, 16] array (``evolve.search.fingerprints.fingerprint_array``) or keys already."""
    if isinstance(fps, np.ndarray):
        if fps.dtype == KEY and fps.ndim == 1:
            return np.ascontiguousarray(fps)
        if fps.dtype == np.uint8 and fps.ndim == 2 and fps.shape[1] == FINGERPRINT_BYTES:
            return np.ascontiguousarray(fps).view(KEY).reshape(-1)
        if fps.dtype == np.dtype(f"V{FINGERPRINT_BYTES}"):
            return np.ascontiguousarray(fps).view(KEY).reshape(-1)
        raise ValueError(f"fingerprints as an array must be uint8 [n, {FINGERPRINT_BYTES}], "
                         f"got {fps.dtype} {fps.shape}")
    fps = fps if isinstance(fps, (list, tuple)) else list(fps)
    joined = b"".join(fps)
    # all 16 bytes: 16 on average and none shorter
    if fps and (len(joined) != FINGERPRINT_BYTES * len(fps)
                or min(map(len, fps)) != FINGERPRINT_BYTES):
        bad = next(len(fp) for fp in fps if len(fp) != FINGERPRINT_BYTES)
        raise ValueError(f"fingerprints are {FINGERPRINT_BYTES} bytes, got {bad}")
    return np.frombuffer(joined, KEY)


def key_bytes(keys: np.ndarray) -> list[bytes]:
    """Keys back as 16-byte strings (``KEY.tolist`` would drop trailing zero bytes)."""
    return np.ascontiguousarray(keys).view(f"V{FINGERPRINT_BYTES}").tolist()


def _high(keys: np.ndarray) -> np.ndarray:
    """The first 8 bytes of each key as a uint64 (big-endian: sorts as the keys do)."""
    return keys.view(">u8")[0::2].astype(np.uint64)


def _runs(keys: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, starts): ``keys[order]`` sorted (equal keys side by side, in no particular
    order), ``starts[j]`` whether sorted element j is the first of its key."""
    order = np.argsort(high)
    h = high[order]
    same = h[1:] == h[:-1]
    if same.any():
        k = keys[order]
        if not (k[1:][same] == k[:-1][same]).all():  # different keys, one first word
            order = np.argsort(keys)
            k = keys[order]
            same = k[1:] == k[:-1]
    return order, np.r_[True, ~same]


def first_occurrences(fps: Sequence[bytes] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, group) of a batch of fingerprints: ``first``, the index of each distinct
    fingerprint's first occurrence, ascending (the order of first appearance);
    ``group[i]``, the position in ``first`` of fingerprint i's."""
    keys = as_keys(fps)
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order, starts = _runs(keys, _high(keys))
    run_first = np.minimum.reduceat(order, np.flatnonzero(starts))
    by_first = np.argsort(run_first)
    rank = np.empty_like(by_first)
    rank[by_first] = np.arange(len(by_first))
    group = np.empty(len(keys), np.int64)
    group[order] = rank[np.cumsum(starts) - 1]
    return run_first[by_first], group


# -- values ------------------------------------------------------------------------------
def _check_value(value: Mapping[str, Any]) -> Value:
    if type(value) is dict and all(type(k) is str and type(v) is float  # noqa: E721
                                   for k, v in value.items()):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"a cache value must be a dict of str -> float, "
                        f"got {type(value).__name__}")
    out: Value = {}
    for name, v in value.items():
        if not isinstance(name, str):
            raise TypeError(f"cache value field names must be str, got {name!r}")
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and np.ndim(v) == 0:
            out[name] = float(v)
        else:
            raise TypeError(f"field {name!r}: cached fields are floats, got "
                            f"{type(v).__name__} (arrays are not cached: keep them elsewhere, "
                            "keyed by the fingerprint)")
    return out


def _same(a: float, b: float, rtol: float, atol: float) -> bool:
    a_arr, b_arr = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a_arr.shape != b_arr.shape:
        return False
    return bool(np.allclose(a_arr, b_arr, rtol=rtol, atol=atol, equal_nan=True))


# -- the cache ---------------------------------------------------------------------------
class FECache:
    """A bounded LRU cache from fingerprint to a record, with forced forgetting and audits.

    capacity: entries kept; inserting past it evicts the least recently used entries.
    max_hits: an entry is dropped after serving this many hits (the next lookup misses,
        so a noisy fitness is measured again); None never forgets.
    audit_rate: the fraction of hits to re-evaluate to measure the false-hit rate
        (``should_audit``, ``record_audit``); 0 disables audits.

    Records are dicts of str -> float (``insert``, ``lookup``), or one field of a batch
    as a float64 column (``insert_column``, ``lookup_column``: the engine's calls).
    Fingerprints are 16-byte strings or arrays (``as_keys``). The module docstring
    describes the storage and the batch semantics.

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
        # one row an entry, sorted by key; ``_keys`` and ``_high`` are never written in place
        self._keys = np.zeros(0, KEY)
        self._high = np.zeros(0, np.uint64)
        self._tick = np.zeros(0, np.int64)  # last use: LRU order is tick order
        self._hits = np.zeros(0, np.int64)
        self._cols: dict[str, np.ndarray] = {}  # field -> float64 values
        self._has: dict[str, np.ndarray] = {}  # field -> bool: the entry has the field
        self._clock = 0  # the next tick
        self._stats = dict.fromkeys(_STAT_NAMES, 0)
        self._audits_total = 0
        self._false_hits_total = 0

    def copy(self) -> FECache:
        """An independent cache with the same entries, LRU order, hit counts and stats
        (copies the per-entry arrays but the keys, which no call changes in place)."""
        other = FECache.__new__(FECache)
        other.__dict__.update(self.__dict__)
        other._tick, other._hits = self._tick.copy(), self._hits.copy()
        other._cols = {k: v.copy() for k, v in self._cols.items()}
        other._has = {k: v.copy() for k, v in self._has.items()}
        other._stats = dict(self._stats)
        return other

    # -- finding keys ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._keys)

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position, found) of each key: its row, or where it would be inserted."""
        high = _high(keys)
        n = len(self._keys)
        if (high[1:] >= high[:-1]).all():
            pos = np.searchsorted(self._high, high)
        else:  # sorted needles: each search starts where the last ended (5x faster)
            pos = np.empty(len(keys), np.int64)
            order = np.argsort(high)
            pos[order] = np.searchsorted(self._high, high[order])
        if n == 0:
            return pos, np.zeros(len(keys), bool)
        at = np.minimum(pos, n - 1)
        same_high = (pos < n) & (self._high[at] == high)
        found = same_high & (self._keys[at] == keys)
        again = np.flatnonzero(same_high & ~found)  # first words shared with another key
        if len(again):
            sub = np.searchsorted(self._keys, keys[again])
            pos[again] = sub
            found[again] = (sub < n) & (self._keys[np.minimum(sub, n - 1)] == keys[again])
        return pos, found

    def contains_many(self, fps: Sequence[bytes] | np.ndarray) -> np.ndarray:
        """Whether each fingerprint is cached (bool [n]); counts nothing, leaves the LRU
        order alone."""
        return self._find(as_keys(fps))[1]

    def __contains__(self, fp: bytes) -> bool:
        """Whether ``fp`` is cached; counts nothing and leaves the LRU order alone."""
        return bool(self.contains_many((fp,))[0])

    def _record(self, row: int) -> Value:
        return {name: float(col[row]) for name, col in self._cols.items()
                if self._has[name][row]}

    def _column(self, pos: np.ndarray, found: np.ndarray, name: str) -> np.ndarray:
        """Field ``name`` of the found rows (NaN elsewhere); KeyError if one lacks it."""
        values = np.full(len(pos), np.nan)
        rows = pos[found]
        if len(rows):
            if name not in self._cols or not self._has[name][rows].all():
                raise KeyError(f"cached records lack the field {name!r}: look up the "
                               "fields that were inserted")
            values[found] = self._cols[name][rows]
        return values

    def peek(self, fp: bytes) -> Value | None:
        """The record cached for ``fp``, or None; counts nothing and leaves the LRU order
        alone (islands read a shared cache this way during a generation)."""
        return self.peek_many((fp,))[0]

    def peek_many(self, fps: Sequence[bytes] | np.ndarray) -> list[Value | None]:
        """``[self.peek(fp) for fp in fps]`` in one call."""
        pos, found = self._find(as_keys(fps))
        return [self._record(p) if f else None for p, f in zip(pos.tolist(), found.tolist())]

    def peek_column(self, fps: Sequence[bytes] | np.ndarray, name: str
                    ) -> tuple[np.ndarray, np.ndarray]:
        """(found bool [n], field ``name`` float64 [n], NaN where not found), counting
        nothing; KeyError if a found record lacks the field."""
        pos, found = self._find(as_keys(fps))
        return found, self._column(pos, found, name)

    # -- lookups -------------------------------------------------------------------
    def _serve(self, pos: np.ndarray, found: np.ndarray) -> np.ndarray:
        """Count a batch of lookups (rows ``pos`` where ``found``), in order: the hits
        served (bool [n]), entries made most recent, ``max_hits`` forgetting."""
        m = len(pos)
        served = found.copy()
        hit_at = np.flatnonzero(found)
        if len(hit_at):
            rows = pos[hit_at]
            order = np.argsort(rows * m + hit_at)  # by row, then batch order (all distinct)
            r = rows[order]
            starts = np.r_[True, r[1:] != r[:-1]]
            first = np.flatnonzero(starts)
            length = np.diff(np.r_[first, len(r)])
            urows = r[first]
            count = length  # hits each entry serves in this batch
            if self.max_hits is not None:
                count = np.minimum(length, self.max_hits - self._hits[urows])
                if (count < length).any():  # an entry forgotten mid-batch: the rest miss
                    occurrence = np.arange(len(r)) - np.repeat(first, length)
                    late = np.repeat(count, length) <= occurrence
                    served[hit_at[order[late]]] = False
            last = hit_at[order[first + count - 1]]  # the last served lookup of each entry
            self._tick[urows] = self._clock + last
            self._hits[urows] += count
            if self.max_hits is not None:
                gone = urows[self._hits[urows] >= self.max_hits]
                if len(gone):
                    self._drop(gone)
                    self._stats["forgotten"] += len(gone)
        self._clock += m
        hits = int(served.sum())
        self._stats["hits"] += hits
        self._stats["misses"] += m - hits
        return served

    def lookup_mask(self, fps: Sequence[bytes] | np.ndarray) -> np.ndarray:
        """``lookup_many`` without the records: which lookups were hits (bool [n])."""
        pos, found = self._find(as_keys(fps))
        return self._serve(pos, found)

    def lookup_column(self, fps: Sequence[bytes] | np.ndarray, name: str
                      ) -> tuple[np.ndarray, np.ndarray]:
        """``lookup_many`` as arrays: (hit bool [n], field ``name`` of each hit, float64
        [n], NaN for misses). KeyError (before counting anything) if a cached record
        lacks the field."""
        pos, found = self._find(as_keys(fps))
        values = self._column(pos, found, name)
        served = self._serve(pos, found)
        values[~served] = np.nan
        return served, values

    def lookup_many(self, fps: Sequence[bytes] | np.ndarray) -> list[Value | None]:
        """``[self.lookup(fp) for fp in fps]`` in one call: the same records, counts, LRU
        order and forgetting (a fingerprint repeated in ``fps`` is looked up each time)."""
        keys = as_keys(fps)
        records = self.peek_many(keys)
        served = self._serve(*self._find(keys))
        return [r if s else None for r, s in zip(records, served.tolist())]

    def lookup(self, fp: bytes) -> Value | None:
        """The record cached for ``fp`` (a hit), or None (a miss).

        A hit makes the entry the most recently used; its ``max_hits``-th hit also drops
        it (counted in ``forgotten``).
        """
        return self.lookup_many((fp,))[0]

    # -- inserts -------------------------------------------------------------------
    def _rows(self) -> list[np.ndarray]:
        return [self._keys, self._high, self._tick, self._hits, *self._cols.values(),
                *self._has.values()]

    def _set_rows(self, arrays: list[np.ndarray]) -> None:
        self._keys, self._high, self._tick, self._hits = arrays[:4]
        k = len(self._cols)
        self._cols = dict(zip(self._cols, arrays[4: 4 + k]))
        self._has = dict(zip(self._has, arrays[4 + k:]))

    def _drop(self, rows: np.ndarray) -> None:
        keep = np.ones(len(self._keys), bool)
        keep[rows] = False
        self._set_rows([a[keep] for a in self._rows()])

    def _insert(self, keys: np.ndarray, cols: dict[str, np.ndarray],
                has: dict[str, np.ndarray]) -> None:
        """Insert a batch in order: ``cols``/``has`` give each record's fields (a field
        missing from ``has``: every record of the batch has it)."""
        m = len(keys)
        if not m:
            return
        for name in cols:
            if name not in self._cols:  # a new field: no cached record has it
                self._cols[name] = np.zeros(len(self._keys))
                self._has[name] = np.zeros(len(self._keys), bool)
        order, starts = _runs(keys, _high(keys))
        last = np.maximum.reduceat(order, np.flatnonzero(starts))  # each key's last insert
        pos, found = self._find(keys[last])
        ticks = self._clock + last
        self._clock += m
        # keys cached already: their records replaced, hit counts back to 0
        rows, src = pos[found], last[found]
        if len(rows):
            self._tick[rows] = ticks[found]
            self._hits[rows] = 0
            for name, col in self._cols.items():
                if name in cols:
                    col[rows] = cols[name][src]
                    self._has[name][rows] = has[name][src] if name in has else True
                else:
                    col[rows] = 0.0
                    self._has[name][rows] = False
        new = ~found
        k = int(new.sum())
        n = len(self._keys)
        excess = n + k - self.capacity
        keep = None  # old rows kept, when the least recently used are old rows
        if 0 < excess <= n - len(rows):  # rows this batch left alone: older than the rest
            keep = np.ones(n, bool)
            keep[np.argpartition(self._tick, excess - 1)[:excess]] = False
            self._stats["evictions"] += excess
        if k:  # merged into the sorted rows: new key j goes before old row pos[j]
            before = pos[new] if keep is None else np.r_[0, np.cumsum(keep)][pos[new]]
            size = n + k - (0 if keep is None else excess)
            at = before + np.arange(k)
            old = np.ones(size, bool)
            old[at] = False
            src = last[new]
            added = [keys[src], _high(keys[src]), ticks[new], np.zeros(k, np.int64)]
            added += [cols[name][src] if name in cols else np.zeros(k) for name in self._cols]
            added += [(has[name][src] if name in has else np.ones(k, bool)) if name in cols
                      else np.zeros(k, bool) for name in self._has]
            merged = []
            for a, b in zip(self._rows(), added, strict=True):
                out = np.empty(size, a.dtype)
                out[old] = a if keep is None else a[keep]
                out[at] = b
                merged.append(out)
            self._set_rows(merged)
        excess = len(self._keys) - self.capacity
        if excess > 0:  # a batch larger than the rows it left alone: after merging
            self._drop(np.argpartition(self._tick, excess - 1)[:excess])
            self._stats["evictions"] += excess

    def insert_column(self, fps: Sequence[bytes] | np.ndarray, name: str,
                      values: np.ndarray) -> None:
        """``insert_many(fps, [{name: v} for v in values])``: one float field a record
        (the engine's errors), from a float array."""
        keys = as_keys(fps)
        values = np.asarray(values, np.float64).reshape(-1)
        if len(values) != len(keys):
            raise ValueError(f"{len(keys)} fingerprints for {len(values)} values")
        self._insert(keys, {name: values}, {})

    def insert_many(self, fps: Sequence[bytes] | np.ndarray,
                    values: Sequence[Mapping[str, Any]], checked: bool = False) -> None:
        """``insert(fp, value)`` for each pair in order, in one call: the same entries, LRU
        order and evictions (but see ``evictions`` in the module docstring). ``checked``:
        the values are dicts of str -> float (not checked again)."""
        keys = as_keys(fps)
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} fingerprints for {len(values)} values")
        m = len(keys)
        cols: dict[str, np.ndarray] = {}
        has: dict[str, np.ndarray] = {}
        for i, value in enumerate(values):
            for name, v in (value if checked else _check_value(value)).items():
                if name not in cols:
                    cols[name], has[name] = np.zeros(m), np.zeros(m, bool)
                cols[name][i] = v
                has[name][i] = True
        self._insert(keys, cols, has)

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

    def _count_audits(self, false: int, audits: int) -> None:
        self._stats["audits"] += audits
        self._audits_total += audits
        self._stats["false_hits"] += false
        self._false_hits_total += false

    def record_audit(self, cached: Mapping[str, Any], fresh: Mapping[str, Any],
                     rtol: float = 1e-6, atol: float = 0.0) -> bool:
        """Count an audited hit; return whether it was a false hit.

        A false hit is a cached record that disagrees with the fresh evaluation: a field
        present in only one of them, or values not ``np.allclose(cached, fresh, rtol,
        atol, equal_nan=True)``.
        """
        false = set(cached) != set(fresh) or not all(
            _same(cached[k], fresh[k], rtol, atol) for k in cached)
        self._count_audits(int(false), 1)
        return false

    def record_audit_column(self, cached: np.ndarray, fresh: np.ndarray,
                            rtol: float = 1e-6, atol: float = 0.0) -> np.ndarray:
        """``record_audit`` of a batch of one-field records, as two float arrays; returns
        which were false hits (bool [n])."""
        cached, fresh = np.asarray(cached, np.float64), np.asarray(fresh, np.float64)
        false = ~np.isclose(cached, fresh, rtol=rtol, atol=atol, equal_nan=True)
        self._count_audits(int(false.sum()), len(false))
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
        [n, 16], ``hit_counts`` int64 [n], ``scalars`` float64 [n, S] (0 where absent)
        with ``scalar_present`` bool [n, S] (fields ``scalar_names``, sorted). The array
        fields of earlier versions (``array_names``, ``array_lengths`` int64 [n, A],
        ``array_float32`` bool [n, A], ``array_data`` float64) are written empty, so the
        format is the one those versions wrote and read.
        """
        lru = np.argsort(self._tick)
        n = len(lru)
        names = sorted(name for name, has in self._has.items() if has.any())
        scalars = np.zeros((n, len(names)), np.float64)
        present = np.zeros((n, len(names)), bool)
        for j, name in enumerate(names):
            present[:, j] = self._has[name][lru]
            scalars[:, j] = np.where(present[:, j], self._cols[name][lru], 0.0)
        return {
            "capacity": self.capacity,
            "max_hits": self.max_hits,
            "audit_rate": self.audit_rate,
            "stats": dict(self._stats),
            "audits_total": self._audits_total,
            "false_hits_total": self._false_hits_total,
            "fingerprints": self._keys[lru].view(np.uint8).reshape(n, FINGERPRINT_BYTES),
            "hit_counts": self._hits[lru].copy(),
            "scalar_names": names,
            "scalars": scalars,
            "scalar_present": present,
            "array_names": [],
            "array_lengths": np.zeros((n, 0), np.int64),
            "array_float32": np.zeros((n, 0), bool),
            "array_data": np.zeros(0, np.float64),
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
                or is_f32.shape != lengths.shape or data.shape != (int(lengths.clip(0).sum()),)
                or len(set(scalar_names)) != len(scalar_names)
                or not all(isinstance(s, str) for s in scalar_names)):
            raise ValueError("cache state: array shapes disagree with each other; "
                             "the checkpoint is damaged")
        if (lengths >= 0).any():
            raise ValueError(f"cache state: entries hold array fields {array_names}; the "
                             "cache holds float fields only (the engine never cached arrays)")
        keys = np.ascontiguousarray(fps).view(KEY).reshape(-1)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        if n > 1 and (keys[1:] == keys[:-1]).any():
            raise ValueError("cache state: a fingerprint is listed twice; the checkpoint is "
                             "damaged")
        cache._keys, cache._high = keys, _high(keys)
        cache._tick = order.astype(np.int64)  # the listed order is the LRU order
        cache._hits = hit_counts[order]
        for j, name in enumerate(scalar_names):
            cache._cols[name] = np.where(present[order, j], scalars[order, j], 0.0)
            cache._has[name] = present[order, j].copy()
        cache._clock = n
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
