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

from typing import Any, Mapping

from evolve.search.fec import FECache, Value

_STAT_NAMES = ("hits", "misses", "evictions", "forgotten", "audits", "false_hits")

Log = list[tuple]
"""What an island did to a shared cache in one generation, in order: ("hit", fp),
("insert", fp, value) and ("audit", cached, fresh) entries (plain data: bytes, dicts of
floats and arrays)."""


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
        stats so far (the base is not copied: a view never changes it)."""
        other = SharedCacheView(self.base, self.name)
        other._own, other._log, other._stats = dict(self._own), list(self._log), dict(self._stats)
        return other

    @property
    def audit_rate(self) -> float:
        return self.base.audit_rate

    def __len__(self) -> int:
        return len(self.base) + sum(fp not in self.base for fp in self._own)

    def __contains__(self, fp: bytes) -> bool:
        return fp in self._own or fp in self.base

    def lookup(self, fp: bytes) -> Value | None:
        value = self._own.get(fp)
        if value is None:
            value = self.base.peek(fp)
        if value is None:
            self._stats["misses"] += 1
            return None
        self._stats["hits"] += 1
        self._log.append(("hit", bytes(fp)))
        return value

    def insert(self, fp: bytes, value: Mapping[str, Any]) -> None:
        self._own[bytes(fp)] = dict(value)
        self._log.append(("insert", bytes(fp), dict(value)))

    def lookup_many(self, fps) -> list[Value | None]:
        return [self.lookup(fp) for fp in fps]

    def insert_many(self, fps, values, checked: bool = False) -> None:
        for fp, value in zip(fps, values, strict=True):
            self.insert(fp, value)

    def insert_column(self, fps, name: str, values) -> None:
        self.insert_many(fps, [{name: float(v)} for v in values])

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
    inserts insert, audits count. The cache's per-generation stats are reset: the
    islands' views report them.
    """
    for entry in log:
        if entry[0] == "hit":
            cache.lookup(entry[1])
        elif entry[0] == "insert":
            cache.insert(entry[1], entry[2])
        elif entry[0] == "audit":
            cache.record_audit(entry[1], entry[2])
        else:
            raise ValueError(f"unknown shared-cache log entry {entry[0]!r}")
    cache.take_stats()
