"""Progress of a running search, for the person watching it.

On a terminal, one live line on stderr, rewritten in place (``\\r``): generation, best
error and best cost at the target (both on the run's sampled points: never a certificate),
evaluations per second, cache hit rate, time left. When
stderr is not a terminal (a log file, a pipe), the same fields as plain lines every few
generations. ``quiet`` silences both.
"""

from __future__ import annotations

import math
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _num(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"


class Progress:
    """Reports each generation's metrics row; ``close`` ends the live line."""

    def __init__(self, stream: TextIO, total: int, start: int, quiet: bool = False,
                 tty: bool | None = None, every: int | None = None):
        self.stream = stream
        self.total = total
        self.start = start
        self.quiet = quiet
        self.tty = stream.isatty() if tty is None else tty
        self.every = every or min(10, max(1, (total - start) // 10))
        self.t0 = time.perf_counter()
        self.evaluations0: int | None = None
        self.hits = 0
        self.lookups = 0
        self._last_draw = 0.0
        self._last_log = self.t0
        self._width = 0

    def line(self, row: dict) -> str:
        """The progress fields after ``row`` (a metrics row of ``Engine.step``)."""
        g = int(row["generation"])
        now = time.perf_counter()
        elapsed = now - self.t0
        evaluations = int(row.get("evaluations", 0))
        if self.evaluations0 is None:
            self.evaluations0 = evaluations - int(row.get("evaluated", 0))
        rate = (evaluations - self.evaluations0) / elapsed if elapsed > 0 else math.nan
        done = g - self.start
        eta = (self.total - g) * elapsed / done if done > 0 else math.nan
        hit_rate = self.hits / self.lookups if self.lookups else math.nan
        return (f"gen {g}/{self.total}  best sampled error {_num(row.get('best_error'))}  "
                f"best cost at target (sampled) {_num(row.get('best_cost_at_target'))}  "
                f"{_num(rate)} evals/s  cache hits "
                f"{'-' if math.isnan(hit_rate) else f'{hit_rate:.0%}'}  "
                f"ETA {_duration(eta)}")

    def update(self, row: dict) -> None:
        self.hits += int(row.get("cache_hits", 0))
        self.lookups += int(row.get("cache_hits", 0)) + int(row.get("cache_misses", 0))
        if self.quiet:
            return
        text = self.line(row)
        g = int(row["generation"])
        now = time.perf_counter()
        last = g >= self.total
        if self.tty:
            if last or now - self._last_draw >= 0.1:
                pad = max(0, self._width - len(text))
                self.stream.write("\r" + text + " " * pad)
                self.stream.flush()
                self._width = len(text)
                self._last_draw = now
        elif last or g % self.every == 0 or now - self._last_log >= 30:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_log = now

    def message(self, text: str) -> None:
        """A line of its own (e.g. a warning), not overwritten by the live line."""
        self.close()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()
        self._width = 0
