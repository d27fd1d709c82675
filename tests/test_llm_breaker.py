"""The circuit breaker of LLM endpoints (evolve/search/llm/breaker.py), with a clock given."""

import math

from hypothesis import given
from hypothesis import strategies as st

from evolve.search.llm.breaker import TRIPS, BreakerParams, Breakers

URL = "http://127.0.0.1:9/v1"


def _breakers(failures=3, cooldown=5.0, max_cooldown=20.0, log=None):
    return Breakers(BreakerParams(failures, cooldown, max_cooldown), [URL], log=log)


def test_pauses_after_consecutive_failures_then_probes_with_growing_cooldown():
    events = []
    b = _breakers(log=events.append)
    b.outcome(URL, "a", "network", "refused", 1, now=0.0)
    b.outcome(URL, "b", None, "", 1, now=0.0)  # a success resets the count
    for key in "cd":
        b.outcome(URL, key, "network", "refused", 2, now=0.0)
    assert b.allows(URL, set()) and b.paused() == 0
    b.outcome(URL, "e", "timeout", "slow", 2, now=1.0)
    assert not b.allows(URL, set()) and b.paused() == 1 and b.worst() == 3
    assert "paused at generation 2 after 3 consecutive failures" in events[-1]
    assert b.next_probe(2.0) == 4.0 and b.due(5.9) == [] and b.due(6.0) == [URL]
    assert b.allows(URL, {URL})
    b.sent(URL, 3, "p1")  # the probe: no second one while it is out
    assert not b.allows(URL, {URL}) and math.isnan(b.next_probe(7.0))
    b.outcome(URL, "f", "timeout", "sent before the pause", 4, now=7.0)
    assert b.endpoints[URL].state == "probing"
    b.outcome(URL, "p1", "http", "HTTP 503", 4, now=7.0)
    assert "paused for 10 s more" in events[-1] and b.next_probe(7.0) == 10.0
    for cooldown in (20.0, 20.0):  # doubled, up to max_cooldown
        b.sent(URL, 5, "p2")
        b.outcome(URL, "p2", "network", "refused", 5, now=7.0)
        assert b.next_probe(7.0) == cooldown
    b.sent(URL, 6, "p3")
    b.outcome(URL, "p3", None, "", 6, now=30.0)
    assert "back at generation 6 after 29.0 s paused" in events[-1]
    assert b.allows(URL, set()) and b.paused() == 0 and b.worst() == 0


def test_a_model_failure_is_a_success_of_the_endpoint():
    b = _breakers(failures=1)
    for kind in ("parse", "edit", "bad_response", "too_long"):
        b.outcome(URL, kind, kind, "the model", 1, now=0.0)
    assert b.paused() == 0


def test_state_survives_a_checkpoint_and_a_paused_endpoint_is_probed_on_resume():
    b = _breakers(failures=1)
    b.outcome(URL, "a", "network", "refused", 1, now=0.0)
    again = Breakers(b.params, [URL], b.state_dict(), now=100.0)
    assert again.state_dict() == b.state_dict()
    assert again.due(100.0) == [URL]


@given(st.lists(st.tuples(st.sampled_from([None, "parse", *TRIPS]), st.integers(0, 3),
                          st.floats(0, 50)), max_size=60))
def test_never_two_probes_and_pauses_exactly_at_the_threshold(steps):
    """Any sequence of sends (a probe when one is due) and replies to requests out: a
    paused endpoint has at most one probe out; a closed one pauses at the threshold'th
    consecutive failure; any answer closes it."""
    b = _breakers(failures=3)
    now, run, out, n = 0.0, 0, [], 0
    e = b.endpoints[URL]
    for kind, which, dt in steps:
        now += dt
        if which == 0 or not out:  # send one request, if allowed
            if b.allows(URL, set(b.due(now))):
                n += 1
                probing = e.state == "open"
                b.sent(URL, 1, f"k{n}")
                out.append((f"k{n}", probing))
                assert sum(p for _, p in out) <= 1
            continue
        key, probe = out.pop(which % len(out))
        closed = e.state == "closed"
        b.outcome(URL, key, kind, "", 1, now)
        if probe or kind not in TRIPS:
            out = [(k, False) for k, _ in out]  # the pause ended or grew: no probe out
        run = run + 1 if kind in TRIPS else 0
        if closed and kind in TRIPS:
            assert (e.state == "open") == (run >= 3)
        if kind not in TRIPS:
            assert e.state == "closed" and e.failures == 0
        if probe and kind in TRIPS:
            assert e.state == "open"
