"""``llm-replies.jsonl``: the record of a run's LLM requests that makes resume exact.

Two kinds of line, one JSON object each, appended:

  a reply     ``{"key": ..., "content": ..., "error": ..., ...}``: what the request with
              that key (the SHA-256 of its generation, slot, URL and body) came to,
              failures included; written by the thread that made the request, when the
              reply arrives;
  a boundary  ``{"boundary": g, "absorbed": [keys], "probes": [urls]}``: what generation
              g absorbed (the replies whose children join it, in order) and which paused
              endpoints it let a probe through to; written by the search before the
              generation's metrics row, for every generation with requests out or an
              endpoint paused.

Replies arrive while the search goes on, so which generation absorbs one depends on
timing; the boundary lines make it part of the record. A resumed run answers every
request whose key is here from the log (it is never sent again), and up to the last
boundary it absorbs exactly what the boundaries say, so it repeats the run it resumes.

A line cut short by a kill is dropped when the log is opened; lines that do not parse are
skipped. Replies are flushed and fsynced one by one; boundaries are flushed (a kill keeps
them, the OS writes them out).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

REPLIES = "llm-replies.jsonl"


class ReplyLog:
    """The log of one run directory: replies by key, boundaries by generation."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = {}
        self.boundaries: dict[int, dict] = {}
        self.skipped = 0
        self._lock = threading.Lock()
        if path.exists():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # a kill in the middle of a line
                data = data[: data.rfind(b"\n") + 1]
                with open(path, "r+b") as f:
                    f.truncate(len(data))
            for line in data.decode("utf-8", "replace").splitlines():
                try:
                    self._read(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    self.skipped += 1

    def _read(self, entry: dict) -> None:
        if "boundary" in entry:
            g = entry["boundary"]
            if not isinstance(g, int) or not all(isinstance(k, str) for k in entry["absorbed"]) \
                    or not all(isinstance(u, str) for u in entry["probes"]):
                raise TypeError("not a boundary line")
            self.boundaries.setdefault(g, entry)
        else:
            self.entries.setdefault(entry["key"], entry)

    @property
    def horizon(self) -> int:
        """The last generation whose absorptions are recorded (0 if none)."""
        return max(self.boundaries, default=0)

    def get(self, key: str) -> dict | None:
        """The logged reply of the request with ``key``, or None."""
        with self._lock:
            return self.entries.get(key)

    def append(self, entry: dict) -> None:
        """Log a reply (fsynced)."""
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.entries.setdefault(entry["key"], entry)

    def boundary(self, generation: int, absorbed: list[str], probes: list[str]) -> None:
        """Log what ``generation`` absorbed and the endpoints it probed."""
        entry = {"boundary": generation, "absorbed": absorbed, "probes": probes}
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")
            self.boundaries.setdefault(generation, entry)
