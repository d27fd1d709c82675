"""A cache shared by islands: each island's view of it for one generation, and the log
that brings every copy of it up to date.

Islands run a generation side by side (in one process, one after another, or in Ray
actors at once), and each must see the same cache whichever way they run, or a run of
islands would depend on where it ran. So during generation g every island reads the
shared cache as it was when g began, plus its own inserts of g (``SharedCacheView``);
nothing an island does changes the shared cache until the generation boundary. The view
records what the island did (hits, inserts, audits) in a log; at the boundary the logs
of all islands are applied to the shared cache in island order (``apply_log``). In one
process there is one shared cache; with Ray, each actor holds a copy and applies every
island's log to it, so the copies stay equal to each other and to the in-process one.

Differences from one ``FECache`` used by one search: an entry inserted by island 0 in
generation g is seen by island 1 from generation g + 1 on, and ``max_hits`` forgetting
takes effect at the boundary (an entry stays readable for the rest of the generation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Mapping

import numpy as np

from evolve.search.fec import FECache, Value, as_keys, key_bytes

_STAT_NAMES = ("hits", "misses", "evictions", "forgotten", "audits", "false_hits")

Fingerprints = Sequence[bytes] | np.ndarray

Log = list[tuple]
"""What an island did to a shared cache in one generation, in order, as plain data (keys
are ``evolve.search.fec.as_keys`` arrays): ("hit", keys) for the hits of one batch of
lookups, ("insert", keys, records) for a batch of inserts (a list of dicts of floats),
("insert_column", keys, name, values) for one of one field (a float64 array),
("audit", cached, fresh) for an audited hit and ("audit_column", cached, fresh) for a
batch of them (float64 arrays)."""


class SharedCacheView:
    """One island's window on the shared cache ``base`` (named ``name`` in checkpoints).

    Has the methods of ``FECache`` that the engine uses. Reads see ``base`` as it was at
    the start of the generation and this island's own inserts since; changes go to the
    log (``take_log``), not to ``base``. Stats are this island's own.
    """

    def __init__(self, base: FECache, name: str):
        self.base = base
        self.name = name
        self._own: dict[bytes, Value] = {}
        self._log: Log = []
        self._stats = dict.fromkeys(_STAT_NAMES, 0)

    def copy(self) -> SharedCacheView:
        """An independent view of the same ``base``, with this view's inserts, log and
        stats so far (the base is not copied: a view never changes it; nor are the log's
        arrays, which nothing changes)."""
        other = SharedCacheView(self.base, self.name)
        other._own, other._log, other._stats = dict(self._own), list(self._log), dict(self._stats)
        return other

    @property
    def audit_rate(self) -> float:
        return self.base.audit_rate

    def __len__(self) -> int:
        own = list(self._own)
        return len(self.base) + int((~self.base.contains_many(own)).sum())

    def contains_many(self, fps: Fingerprints) -> np.ndarray:
        keys = as_keys(fps)
        found = self.base.contains_many(keys)
        if self._own:
            found |= np.array([fp in self._own for fp in key_bytes(keys)], bool)
        return found

    def __contains__(self, fp: bytes) -> bool:
        return fp in self._own or fp in self.base

    def _count(self, keys: np.ndarray, found: np.ndarray) -> None:
        hits = int(found.sum())
        self._stats["hits"] += hits
        self._stats["misses"] += len(found) - hits
        if hits:
            self._log.append(("hit", keys[found]))

    def lookup_many(self, fps: Fingerprints) -> list[Value | None]:
        keys = as_keys(fps)
        out = self.base.peek_many(keys)
        if self._own:
            for i, fp in enumerate(key_bytes(keys)):
                out[i] = self._own.get(fp, out[i])
        self._count(keys, np.array([v is not None for v in out], bool))
        return out

    def lookup_column(self, fps: Fingerprints, name: str) -> tuple[np.ndarray, np.ndarray]:
        keys = as_keys(fps)
        found, values = self.base.peek_column(keys, name)
        if self._own:
            for i, fp in enumerate(key_bytes(keys)):
                value = self._own.get(fp)
                if value is not None:
                    found[i], values[i] = True, value[name]
        self._count(keys, found)
        return found, values

    def lookup(self, fp: bytes) -> Value | None:
        return self.lookup_many((fp,))[0]

    def insert_many(self, fps: Fingerprints, values: Sequence[Mapping[str, Any]],
                    checked: bool = False) -> None:
        keys = as_keys(fps)
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} fingerprints for {len(values)} values")
        if not len(keys):
            return
        records = [dict(v) for v in values]
        self._own.update(zip(key_bytes(keys), records))
        self._log.append(("insert", keys.copy(), records))

    def insert_column(self, fps: Fingerprints, name: str, values: np.ndarray) -> None:
        keys = as_keys(fps)
        values = np.array(values, np.float64).reshape(-1)
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} fingerprints for {len(values)} values")
        if not len(keys):
            return
        self._own.update((fp, {name: v}) for fp, v in zip(key_bytes(keys), values.tolist()))
        self._log.append(("insert_column", keys.copy(), name, values))

    def insert(self, fp: bytes, value: Mapping[str, Any]) -> None:
        self.insert_many((fp,), (value,))

    def should_audit(self, u: float) -> bool:
        return self.base.should_audit(u)

    def record_audit(self, cached: Mapping[str, Any], fresh: Mapping[str, Any]) -> bool:
        # A scratch cache counts the audit and says whether it was a false hit, by the
        # same rule the shared cache applies when the log reaches it.
        false = FECache(1).record_audit(cached, fresh)
        self._stats["audits"] += 1
        self._stats["false_hits"] += int(false)
        self._log.append(("audit", dict(cached), dict(fresh)))
        return false

    def record_audit_column(self, cached: np.ndarray, fresh: np.ndarray) -> np.ndarray:
        cached, fresh = np.array(cached, np.float64), np.array(fresh, np.float64)
        false = FECache(1).record_audit_column(cached, fresh)
        self._stats["audits"] += len(false)
        self._stats["false_hits"] += int(false.sum())
        self._log.append(("audit_column", cached, fresh))
        return false

    def take_stats(self) -> dict[str, int]:
        stats, self._stats = self._stats, dict.fromkeys(_STAT_NAMES, 0)
        return stats

    def take_log(self) -> Log:
        """This generation's log; the view starts afresh (call once the generation ends)."""
        log, self._log, self._own = self._log, [], {}
        return log


def apply_log(cache: FECache, log: Log) -> None:
    """Replay one island's ``log`` on ``cache`` (a shared cache or a copy of it).

    Hits move entries to the most recently used end (and count towards ``max_hits``),
    inserts insert, audits count, each batch as one call. The cache's per-generation
    stats are reset: the islands' views report them.
    """
    for entry in log:
        if entry[0] == "hit":
            cache.lookup_mask(entry[1])
        elif entry[0] == "insert":
            cache.insert_many(entry[1], entry[2])
        elif entry[0] == "insert_column":
            cache.insert_column(entry[1], entry[2], entry[3])
        elif entry[0] == "audit":
            cache.record_audit(entry[1], entry[2])
        elif entry[0] == "audit_column":
            cache.record_audit_column(entry[1], entry[2])
        else:
            raise ValueError(f"unknown shared-cache log entry {entry[0]!r}")
    cache.take_stats()
