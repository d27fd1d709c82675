"""A circuit breaker per model endpoint: a server that keeps failing is left alone for a while.

An endpoint (a chat-completions URL) is

  closed    requests go out as usual;
  open      after ``failures`` consecutive transport failures (connection refused or
            reset, timeouts, HTTP errors once retries are spent): nothing is sent until
            the cool-down ends; then one probe request may go;
  probing   that one probe is out; its reply closes the breaker (the endpoint is back) or
            opens it again with the cool-down doubled, up to ``max_cooldown``.

A reply that reached the model (a program, a parse or edit failure, a bad or too long
response) counts as a success: the server answers, the model is another matter.

The breaker learns outcomes when the run absorbs replies (at generation boundaries, in a
fixed order), so its counts and states are a function of the run's record. Only "has the
cool-down ended?" reads the clock; the caller records that decision (the reply log's
``probes``) and replays it on resume. The clock is passed in (``now``), never read here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TRIPS = ("network", "timeout", "http")  # failure kinds that count against an endpoint


@dataclass(frozen=True)
class BreakerParams:
    """When an endpoint is paused and for how long (``llm.breaker_*``)."""

    failures: int = 3  # consecutive transport failures that open the breaker
    cooldown: float = 5.0  # seconds of the first pause; doubled after each failed probe
    max_cooldown: float = 300.0  # the longest pause


@dataclass
class Endpoint:
    """The breaker of one endpoint."""

    url: str
    state: str = "closed"  # "closed", "open" or "probing"
    failures: int = 0  # consecutive transport failures
    cooldown: float = 0.0  # seconds of the current pause (0 while closed)
    next_probe: float = 0.0  # clock time the pause ends (while open)
    paused_at: float = 0.0  # clock time the breaker opened
    last: str = ""  # the last failure, "kind: detail"
    probe: str = ""  # the key of the probe request out (while probing)

    def to_dict(self) -> dict:
        """What a checkpoint keeps (the clock times are this process's: not kept)."""
        return {"url": self.url, "state": self.state, "failures": self.failures,
                "cooldown": self.cooldown, "last": self.last, "probe": self.probe}

    @classmethod
    def from_dict(cls, data: dict, now: float) -> Endpoint:
        """An endpoint as saved; a paused one may be probed at once (a resumed run asks
        whether the server is back), one that was probing waits for its probe's reply."""
        return cls(str(data["url"]), str(data["state"]), int(data["failures"]),
                   float(data["cooldown"]), now, now, str(data.get("last", "")),
                   str(data.get("probe", "")))


class Breakers:
    """The breakers of a run's endpoints; ``log`` writes a line to the run's event log."""

    def __init__(self, params: BreakerParams, urls, saved: list[dict] | None = None,
                 now: float = 0.0, log=None):
        self.params = params
        self.log = log or (lambda message: None)
        self.endpoints = {url: Endpoint(url) for url in urls}
        for data in saved or []:
            if data.get("url") in self.endpoints:
                self.endpoints[data["url"]] = Endpoint.from_dict(data, now)

    def state_dict(self) -> list[dict]:
        return [e.to_dict() for e in self.endpoints.values()]

    def due(self, now: float) -> list[str]:
        """Endpoints whose pause has ended at ``now``: each may send one probe."""
        return sorted(u for u, e in self.endpoints.items()
                      if e.state == "open" and now >= e.next_probe)

    def allows(self, url: str, probes: set[str]) -> bool:
        """Whether a request may go to ``url`` now; ``probes``: the endpoints ``due``."""
        e = self.endpoints[url]
        return e.state == "closed" or (e.state == "open" and url in probes)

    def sent(self, url: str, generation: int, key: str) -> None:
        """The request ``key`` went to ``url``: if the breaker is open, it is the probe."""
        e = self.endpoints[url]
        if e.state == "open":
            e.state, e.probe = "probing", key
            self.log(f"LLM endpoint {url}: probe sent at generation {generation}")

    def outcome(self, url: str, key: str, kind: str | None, detail: str, generation: int,
                now: float) -> None:
        """The reply to request ``key`` from ``url`` was absorbed: ``kind`` is its failure
        kind, or None. A failure of a request sent before the pause leaves the pause as
        it is; any answer from the server ends it."""
        e = self.endpoints[url]
        if kind not in TRIPS:
            if e.state != "closed":
                self.log(f"LLM endpoint {url}: back at generation {generation} after "
                         f"{now - e.paused_at:.1f} s paused; LLM edits resume")
            e.state, e.failures, e.cooldown, e.last, e.probe = "closed", 0, 0.0, "", ""
            return
        e.failures += 1
        e.last = f"{kind}: {detail}"[:200]
        if e.state == "probing" and key == e.probe:
            e.probe = ""
            e.cooldown = min(2 * e.cooldown, self.params.max_cooldown)
            e.state, e.next_probe = "open", now + e.cooldown
            self.log(f"LLM endpoint {url}: the probe failed ({e.last}); paused for "
                     f"{e.cooldown:g} s more (next probe in {e.cooldown:g} s)")
        elif e.state == "closed" and e.failures >= self.params.failures:
            e.cooldown = min(self.params.cooldown, self.params.max_cooldown)
            e.state, e.next_probe, e.paused_at = "open", now + e.cooldown, now
            self.log(f"LLM endpoint {url}: paused at generation {generation} after "
                     f"{e.failures} consecutive failures (last: {e.last}); ordinary "
                     f"children fill its slots; next probe in {e.cooldown:g} s")

    def paused(self) -> int:
        """Endpoints not closed (open or probing)."""
        return sum(e.state != "closed" for e in self.endpoints.values())

    def worst(self) -> int:
        """The most consecutive failures of an endpoint."""
        return max((e.failures for e in self.endpoints.values()), default=0)

    def next_probe(self, now: float) -> float:
        """Seconds until the next probe of a paused endpoint (NaN if none is open)."""
        waits = [max(e.next_probe - now, 0.0) for e in self.endpoints.values()
                 if e.state == "open"]
        return min(waits) if waits else math.nan
