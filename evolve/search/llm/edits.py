"""LLM edits as variation operators: mutation and crossover proposed by a language model.

With ``llm.rate > 0``, a model that speaks the OpenAI-compatible chat-completions protocol
(``evolve.search.llm.chat``) proposes children, prompted with the problem, the ops table,
the grammar, the current front, the parents and the outcomes of this run's recent LLM
edits (``evolve.search.llm.prompts``). Requests are asynchronous: the search never waits
for a reply. At each generation boundary:

  1. Absorb. The replies that have arrived since the last boundary (in the order their
     requests were made) are parsed, never run; those that give a program take the first
     child slots of this generation, in place of ordinary children, and are assessed with
     them in one batch. Their outcomes (improved on their first parent, not better, same
     function, failed and why) join the history that later prompts show, and the
     endpoint's circuit breaker (``evolve.search.llm.breaker``) learns of them.
  2. Send. From the generation's key (its own purpose), each child slot is a candidate
     with probability ``rate``: a crossover of its tournament winners A, B (and, with
     ``inspirations: 3``, a random third) with probability ``crossover_rate``, else a
     mutation of A; its model drawn by ``model_weights``. Candidates are sent in slot
     order while fewer than ``max_in_flight`` requests are out, their endpoint is not
     paused by its breaker, and the budget covers them; the rest are skipped (counted).
     So with generations in milliseconds, a new request goes out as soon as a reply frees
     a place, its prompt built from the population of that moment.
  3. Record. The generation's boundary line (what it absorbed, which paused endpoints it
     let a probe through to) goes to ``llm-replies.jsonl`` before its metrics row.

Exact resume. Every reply, failures included, is appended to ``llm-replies.jsonl`` when it
arrives, keyed by the SHA-256 of its request (generation, slot, URL, and the body: model,
messages, sampling settings: ``evolve.search.llm.requests``); the requests still out, the
counters, the budget, the breakers and the history are saved in each checkpoint. A resumed run builds the same
requests, answers those in the log from it (never sending them again), sends again those
that were out when the run stopped, and absorbs exactly what the logged boundaries say up
to the last of them (``evolve.search.llm.replies``): the run is a function of its
configuration and its log, so it repeats the run it resumes, whatever the server does now.

Budget. ``budget_tokens`` and ``budget_cost`` bound the whole run: a request is sent only
if the budget left, less the worst case of the requests out, covers its own worst case, so
the budget is never passed (``evolve.search.llm.budget``); once nothing fits and nothing is
out, LLM variation stops and the run goes on.

One concept, the LLM operator of a run: its requests are planned, sent, absorbed,
assessed and accounted for in one generation's call and ``finish``; the request type and
its saved forms, the budget's arithmetic, the chat client, the prompts, the breakers and
the reply log live apart.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from evolve.batch import concat, take
from evolve.errors import UserError
from evolve.problem import Problem
from evolve.search.llm import chat
from evolve.search.llm.breaker import Breakers
from evolve.search.llm.budget import Spent
from evolve.search.llm.params import LLMParams, api_key
from evolve.search.llm.prompts import ReplyError, messages, parse_reply
from evolve.search.llm.replies import REPLIES, ReplyLog
from evolve.search.llm.requests import Request, logged_reply, request_key
from evolve.search.selection import front_indices
from evolve.search.variation import rng_from_key
from evolve.text import format_program

__all__ = ["REPLIES", "FAILURES", "LLMParams", "LLMVariation", "ReplyLog", "open_llm"]

FAILURES = (*chat.FAILURES, "edit", "parse")
_PURPOSE = 0x11D  # the generation key's purpose for LLM decisions (the engine uses 0..4)
_GRACE = 5.0  # seconds past a request's deadline before it is settled as a timeout
_FRONT = 8  # points of the current front a prompt shows, at most


def _float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True)
class Pending:
    """What an ``LLMVariation`` call hands to its ``finish``: the replies absorbed, their
    outcomes and the children as assessed (before selection), and what was sent."""

    generation: int
    absorbed: list[Request]
    outcomes: list[tuple[str | None, str]]  # per absorbed reply: (failure kind or None, detail)
    at: dict[str, int]  # key of an absorbed reply that gave a program -> its child slot
    error: np.ndarray
    cost: np.ndarray
    fps: list[bytes]
    children: Any  # the children as assessed (a ``Programs`` view)
    sent: int
    skipped: dict[str, int]  # "budget", "busy", "paused" -> candidates not sent
    seconds: float  # spent on LLM work (prompts, parsing, the log), not waiting


class LLMVariation:
    """The LLM operator of one run: an engine hook (``Engine.step(state, vary=...)``).

    ``saved`` is what ``state_dict`` returned at the checkpoint being resumed; ``log``
    writes a line to the run's event log; ``clock`` gives seconds (``time.monotonic``).
    """

    def __init__(self, params: LLMParams, problem: Problem, run_dir: Path,
                 saved: dict | None = None, log: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.params, self.problem = params, problem
        self.replies = ReplyLog(Path(run_dir) / REPLIES)
        self.log = log or (lambda message: None)
        self.clock = clock
        if self.replies.skipped:
            self.log(f"warning: {self.replies.skipped} unreadable lines in {REPLIES} skipped")
        self.api_key = api_key(params)
        self.models = [(m.partition("@")[0], m.partition("@")[2] or params.base_url)
                       for m in params.models]
        weights = np.array(params.model_weights or [1.0] * len(self.models), float)
        self.weights = weights / weights.sum()
        saved = saved or {}
        self.limits = params.limits
        self.spent = Spent.from_dict(saved)
        self.requests = int(saved.get("requests", 0))
        self.history: list[dict] = list(saved.get("history", []))
        self.breakers = Breakers(params.breaker, sorted({u for _, u in self.models}),
                                 saved.get("breakers"), clock(), self.log)
        self.pending = [Request.from_dict(d, problem) for d in saved.get("pending", [])]
        self._unsent = []  # requests out when the run stopped, not in the log: sent again
        for r in self.pending:
            entry = self.replies.get(r.key)
            if entry is not None:
                r.reply, r.replayed = logged_reply(entry), True
            else:
                self._unsent.append(r)
        self._closed = False

    def state_dict(self) -> dict:
        """What a checkpoint keeps (JSON): counters, budget, breakers, history and the
        requests still out."""
        spent = self.spent
        return {"tokens_in": spent.tokens_in, "tokens_out": spent.tokens_out,
                "cost": spent.cost, "requests": self.requests, "exhausted": spent.exhausted,
                "history": self.history, "breakers": self.breakers.state_dict(),
                "pending": [r.to_dict() for r in self.pending]}

    def close(self) -> None:
        """Stop logging replies: those still out are kept by the checkpoint, sent again on
        resume. Their threads end by their deadlines (daemons: they never hold up exit)."""
        self._closed = True

    # -- sending ------------------------------------------------------------------------------
    def _settle(self, r: Request, reply: chat.Reply) -> None:
        """The request's reply: the first one settled wins and is logged (then seen by the
        search: a reply is absorbed only once it is in the log)."""
        with r.lock:
            if r.reply is not None or self._closed:
                return
            self.replies.append(r.log_entry(reply))
            r.reply = reply

    def _ask(self, r: Request) -> None:
        p = self.params
        try:
            reply = chat.complete(r.url, r.body, api_key=self.api_key, timeout=p.timeout,
                                  retries=p.retries, backoff=p.backoff,
                                  max_bytes=max(1 << 16, 64 * p.max_tokens),
                                  jitter=random.Random(r.key))
        except Exception as e:  # a bug, not the server: count it, go on
            reply = chat.Reply(None, "network", f"client error: {e!r}")
        self._settle(r, reply)

    def _send(self, r: Request) -> None:
        entry = self.replies.get(r.key)
        if entry is not None:  # answered before: never asked again
            r.reply, r.replayed = logged_reply(entry), True
            return
        r.started = self.clock()
        threading.Thread(target=self._ask, args=(r,), name="evolve-llm", daemon=True).start()

    def _expire(self, now: float) -> None:
        """Requests past their deadline (and a grace) are settled as timeouts (the watchdog
        in ``evolve.search.llm.chat`` should have ended them already)."""
        for r in self.pending:
            if r.reply is None and r.started is not None and \
                    now > r.started + self.params.timeout + _GRACE:
                self._settle(r, chat.Reply(None, "timeout", "the request did not end; "
                                           "abandoned", seconds=now - r.started))

    # -- absorbing ----------------------------------------------------------------------------
    def _absorb(self, g: int, cap: int) -> list[Request]:
        """The requests whose replies generation ``g`` absorbs, taken off ``pending``: as the
        log's boundary says up to its last one, else those that have arrived (at most
        ``cap``, the oldest first)."""
        if g <= self.replies.horizon:
            keys = self.replies.boundaries.get(g, {}).get("absorbed", [])
            by_key = {r.key: r for r in self.pending}
            chosen = []
            for key in keys:
                r, entry = by_key.get(key), self.replies.get(key)
                if r is None or entry is None:
                    raise UserError(f"{REPLIES} says generation {g} absorbed request "
                                    f"{key[:12]}..., which this run {'never made' if r is None else 'has no reply of'}; "
                                    "the log does not belong to this run's checkpoints. "
                                    f"Move {REPLIES} aside to resume without replaying it "
                                    "(the run then differs from the one that stopped)")
                if r.reply is None:
                    r.reply, r.replayed = logged_reply(entry), True
                chosen.append(r)
        else:
            chosen = [r for r in self.pending if r.reply is not None][:cap]
        taken = {r.key for r in chosen}
        self.pending = [r for r in self.pending if r.key not in taken]
        return chosen

    # -- planning -----------------------------------------------------------------------------
    def plan(self, key_g: jax.Array, state, pick: np.ndarray, probes: set[str]
             ) -> tuple[list[Request], dict[str, int]]:
        """The requests generation ``state.generation + 1`` sends, and the candidates it
        skips by reason ("busy": ``max_in_flight`` out, "paused": the endpoint's breaker,
        "budget")."""
        p = self.params
        g = state.generation + 1
        rng = rng_from_key(jax.random.fold_in(key_g, _PURPOSE))
        n = len(pick)
        chosen = rng.random(n) < p.rate
        crossover = rng.random(n) < p.crossover_rate
        third = rng.integers(0, len(state.programs), n)
        model = rng.choice(len(self.models), n, p=self.weights)
        seeds = rng.integers(0, 2**31, n)
        skipped = {"budget": 0, "busy": 0, "paused": 0}
        new: list[Request] = []
        left_tokens, left_cost = self.limits.left(self.spent,
                                                  (r.worst for r in self.pending))
        front = None
        broke = False
        for i in np.flatnonzero(chosen):
            name, url = self.models[int(model[i])]
            if broke:
                skipped["budget"] += 1
                continue
            if len(self.pending) + len(new) >= p.max_in_flight:
                skipped["busy"] += 1
                continue
            if not self.breakers.allows(url, probes):
                skipped["paused"] += 1
                continue
            kind = "crossover" if crossover[i] else "mutation"
            parents = [int(pick[i, 0])]
            if kind == "crossover":
                more = [int(pick[i, 1])] + ([int(third[i])] if p.inspirations == 3 else [])
                for j in more:  # programs of one function add nothing: shown once
                    if all(state.fingerprints[j] != state.fingerprints[k] for k in parents):
                        parents.append(j)
                kind = "crossover" if len(parents) > 1 else "mutation"
            if front is None:
                front = _front(state)
            shown = [(state.programs[j], _float(state.error[j]), _float(state.cost[j]))
                     for j in parents]
            body = {"model": name, "messages": messages(self.problem, kind, shown,
                                                        self.history, p.answer, front),
                    "temperature": p.temperature, "max_tokens": p.max_tokens,
                    "seed": int(seeds[i]), "stream": False}
            tokens, cost = self.limits.worst("".join(m["content"] for m in body["messages"]))
            if tokens > left_tokens or cost > left_cost:
                broke = True
                skipped["budget"] += 1
                spent = self.spent
                if not self.pending and not new and spent.exhausted is None:
                    spent.exhausted = g
                    self.log(f"LLM budget spent at generation {g} ({spent.tokens_in} tokens "
                             f"in, {spent.tokens_out} out, cost {spent.cost:.6g}): LLM "
                             "variation stops, the run goes on")
                continue
            left_tokens -= tokens
            left_cost -= cost
            key = request_key(g, int(i), url, body)
            a = parents[0]
            new.append(Request(g, int(i), kind, state.programs[a], float(state.error[a]),
                               float(state.cost[a]), [state.fingerprints[j] for j in parents],
                               name, url, body, key, (tokens, cost)))
            self.breakers.sent(url, g, key)
        return new, skipped

    # -- the engine hook ----------------------------------------------------------------------
    def __call__(self, engine, state, key_g, pick, children, kinds, probe, rng):
        """Absorb the replies due, put their programs in place of the first children, assess
        all children (as ``Engine.assess`` does) and send this generation's requests;
        returns (children, kinds, error, cost, fingerprints, info, pending), ``pending``
        being what ``finish`` needs once selection is done."""
        t0 = time.perf_counter()
        g = state.generation + 1
        now = self.clock()
        replay = g <= self.replies.horizon
        for r in self._unsent:
            self._send(r)
        self._unsent = []
        self._expire(now)
        absorbed = self._absorb(g, len(children))
        outcomes, programs, at = [], [], {}
        for r in absorbed:
            reply = r.reply
            self.breakers.outcome(r.url, r.key, reply.error, reply.detail, g, now)
            if reply.error is not None:
                outcomes.append((reply.error, reply.detail))
                continue
            try:
                program = parse_reply(reply.content, r.parent, self.problem)
            except ReplyError as e:
                outcomes.append((e.kind, str(e)))
                continue
            at[r.key] = len(programs)
            programs.append(program)
            outcomes.append((None, ""))
        kinds = list(kinds)
        if programs:  # the LLM children take the first slots
            m = len(programs)
            children = concat(engine.batch(programs),
                              take(engine.batch(children), np.arange(m, len(kinds))))
            for r in absorbed:
                if r.key in at:
                    kinds[at[r.key]] = f"llm_{r.kind}"
        if replay:
            probes = set(self.replies.boundaries.get(g, {}).get("probes", []))
        else:
            probes = set(self.breakers.due(now))
        new, skipped = self.plan(key_g, state, pick, probes)
        for r in new:
            self._send(r)
        self.pending += new
        self.requests += len(new)
        if not replay and (absorbed or self.pending or probes or self.breakers.paused()):
            self.replies.boundary(g, [r.key for r in absorbed], sorted(probes))
        if replay and any(r.replayed for r in absorbed):
            self.log(f"generation {g}: {len(absorbed)} LLM replies absorbed as {REPLIES} "
                     "records (replayed)")
        seconds = time.perf_counter() - t0
        children, error, cost, fps, info = engine.assess(state, children, probe, rng)
        pending = Pending(g, absorbed, outcomes, at, error, cost, list(fps), children,
                          len(new), skipped, seconds)
        return children, kinds, error, cost, fps, info, pending

    def finish(self, new, pend: Pending) -> dict:
        """The generation's ``llm_*`` metrics, once selection made ``new`` from the
        children that ``pend`` (returned by the call) describes; also records the outcomes
        in the history."""
        p = self.params
        counts = dict.fromkeys(FAILURES, 0)
        t_in = t_out = 0
        cost = 0.0
        programs = same = improved = accepted = 0
        survivors = set(new.fingerprints)
        for r, (kind, why) in zip(pend.absorbed, pend.outcomes):
            a, b = self.limits.usage(r.reply, r.prompt)
            t_in, t_out = t_in + a, t_out + b
            cost += self.limits.price(a, b)
            entry = {"generation": r.generation, "kind": r.kind, "model": r.model,
                     "parent": [_float(r.parent_error), _float(r.parent_cost)]}
            if kind is not None:
                counts[kind] += 1
                entry.update(result="failed", why=f"{kind}: {why}"[:400])
            else:
                programs += 1
                i = pend.at[r.key]
                e, c, fp = pend.error[i], pend.cost[i], pend.fps[i]
                entry["child"] = [_float(e), _float(c)]
                accepted += fp in survivors
                pe, pc = r.parent_error, r.parent_cost
                if fp in r.parent_fps:
                    same += 1
                    entry.update(result="same", why="it computes the same function as a parent")
                elif e <= pe and c <= pc and (e < pe or c < pc):
                    improved += 1
                    entry.update(result="improved",
                                 program=format_program(pend.children[i]))
                else:
                    entry["result"] = "worse"
            self.history.append(entry)
        self.history = self.history[-p.history:] if p.history else []
        self.spent.charge(t_in, t_out, cost)
        n = len(pend.absorbed)
        lag = [pend.generation - r.generation for r in pend.absorbed]
        return {"llm_requests": pend.sent, "llm_replies": n, "llm_in_flight": len(self.pending),
                "llm_programs": programs,
                **{f"llm_fail_{k}": v for k, v in counts.items()},
                "llm_skipped_budget": pend.skipped["budget"],
                "llm_skipped_busy": pend.skipped["busy"],
                "llm_skipped_paused": pend.skipped["paused"],
                "llm_tokens_in": t_in, "llm_tokens_out": t_out, "llm_cost": cost,
                "llm_cost_total": self.spent.cost, "llm_same": same, "llm_improved": improved,
                "llm_accepted": accepted,
                "llm_acceptance": accepted / n if n else float("nan"),
                "llm_lag": float(np.mean(lag)) if lag else float("nan"),
                "llm_paused": self.breakers.paused(),
                "llm_breaker_failures": self.breakers.worst(),
                "llm_next_probe_seconds": self.breakers.next_probe(self.clock()),
                "llm_wait_seconds": pend.seconds}


def _front(state) -> list[tuple[float | None, float | None]]:
    """The (error, cost) points of the population's Pareto front, most accurate first, at
    most ``_FRONT`` of them (spread along it)."""
    finite = np.flatnonzero(np.isfinite(state.error))
    if not len(finite):
        return []
    idx = finite[front_indices(np.stack([state.error[finite], state.cost[finite]], 1))]
    points = sorted({(float(state.error[i]), float(state.cost[i])) for i in idx})
    if len(points) > _FRONT:
        points = [points[round(k * (len(points) - 1) / (_FRONT - 1))] for k in range(_FRONT)]
    return points


def open_llm(params: LLMParams, problem: Problem, run_dir: Path, saved: dict | None = None,
             log: Callable[[str], None] | None = None) -> LLMVariation | None:
    """The run's LLM operator, or None when LLM edits are off (``llm.rate`` is 0)."""
    if not params.enabled:
        return None
    return LLMVariation(params, problem, run_dir, saved, log)
