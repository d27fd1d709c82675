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
messages, sampling settings); the requests still out, the counters, the budget, the
breakers and the history are saved in each checkpoint. A resumed run builds the same
requests, answers those in the log from it (never sending them again), sends again those
that were out when the run stopped, and absorbs exactly what the logged boundaries say up
to the last of them (``evolve.search.llm.replies``): the run is a function of its
configuration and its log, so it repeats the run it resumes, whatever the server does now.

Budget. ``budget_tokens`` and ``budget_cost`` (with ``price_in`` and ``price_out`` per
million tokens) bound the whole run. A request is sent only if the budget left, less the
worst case of the requests out, covers its own worst case (the prompt's bytes, an upper
bound on its tokens, plus ``max_tokens``), so the budget is never passed; once nothing
fits and nothing is out, LLM variation stops and the run goes on. Tokens are the server's
``usage`` counts, or estimates (bytes / 4) when it gives none; charged when absorbed.

One concept, the LLM operator of a run: its requests are planned, sent, absorbed,
assessed and accounted for in one generation's call and ``finish``; the chat client, the
prompts, the breakers and the reply log live apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import jax
import numpy as np

from evolve.batch import concat, take
from evolve.errors import UserError
from evolve.problem import Problem
from evolve.program import Program
from evolve.search.llm import chat
from evolve.search.llm.breaker import BreakerParams, Breakers
from evolve.search.llm.prompts import ReplyError, messages, parse_reply
from evolve.search.llm.replies import REPLIES, ReplyLog
from evolve.search.selection import front_indices
from evolve.search.variation import rng_from_key
from evolve.text import format_program, parse_program

__all__ = ["REPLIES", "FAILURES", "LLMParams", "LLMVariation", "ReplyLog", "open_llm"]

FAILURES = (*chat.FAILURES, "edit", "parse")
_PURPOSE = 0x11D  # the generation key's purpose for LLM decisions (the engine uses 0..4)
_GRACE = 5.0  # seconds past a request's deadline before it is settled as a timeout
_FRONT = 8  # points of the current front a prompt shows, at most


@dataclass(frozen=True)
class LLMParams:
    """LLM edits (the ``llm`` part of the run configuration); off while ``rate`` is 0."""

    rate: float = 0.0
    models: tuple[str, ...] = ()
    model_weights: tuple[float, ...] = ()
    base_url: str = "http://localhost:8000/v1"
    api_key_env: str = ""
    temperature: float = 0.8
    max_tokens: int = 1024
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0
    max_in_flight: int = 4
    crossover_rate: float = 0.3
    inspirations: int = 2
    history: int = 8
    answer: str = "either"
    budget_tokens: int | None = None
    budget_cost: float | None = None
    price_in: float = 0.0
    price_out: float = 0.0
    breaker: BreakerParams = field(default_factory=BreakerParams)

    def __post_init__(self):
        if self.rate > 0 and not self.models:
            raise UserError("config field 'llm.rate' is above 0 but 'llm.models' is empty; "
                            "name the model(s) to ask, e.g. llm.models: [qwen2.5-coder:7b]")
        if self.model_weights and len(self.model_weights) != len(self.models):
            raise UserError(f"config field 'llm.model_weights' has {len(self.model_weights)} "
                            f"weights for {len(self.models)} models; give one per model, "
                            "or [] for equal weights")
        if self.model_weights and (min(self.model_weights) < 0 or sum(self.model_weights) <= 0):
            raise UserError("config field 'llm.model_weights' must be >= 0 and not all 0")
        for name, url in [("llm.base_url", self.base_url)] + [
                (f"llm.models ({m!r})", m.partition("@")[2]) for m in self.models if "@" in m]:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UserError(f"config field {name}: {url!r} is not an http(s) URL; "
                                "give one like http://localhost:8000/v1")

    @property
    def enabled(self) -> bool:
        return self.rate > 0


def worst_tokens(text: str) -> int:
    """An upper bound on the tokens of ``text`` (tokenizers do not beat one per byte)."""
    return len(text.encode())


def estimate_tokens(text: str) -> int:
    """A typical token count of ``text``, for servers that report no usage."""
    return math.ceil(len(text.encode()) / 4)


def _float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _num(value: float) -> float | str:
    """A float as JSON keeps it exactly: itself, or "inf"/"-inf"/"nan"."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


@dataclass
class _Request:
    """One LLM request: the child it is to make, from which parents, and its reply."""

    generation: int  # the generation that made it
    slot: int
    kind: str  # "mutation" or "crossover"
    parent: Program  # program A: edits apply to it, outcomes compare with it
    parent_error: float
    parent_cost: float
    parent_fps: list[bytes]  # fingerprints of the programs shown
    model: str
    url: str
    body: dict
    key: str
    worst: tuple[int, float]  # worst-case tokens and cost, reserved while it is out
    reply: chat.Reply | None = None
    replayed: bool = False
    started: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to_dict(self) -> dict:
        return {"generation": self.generation, "slot": self.slot, "kind": self.kind,
                "parent": format_program(self.parent), "parent_error": _num(self.parent_error),
                "parent_cost": _num(self.parent_cost),
                "parent_fps": [f.hex() for f in self.parent_fps], "model": self.model,
                "url": self.url, "body": self.body, "key": self.key,
                "worst": list(self.worst)}

    @classmethod
    def from_dict(cls, d: dict, problem: Problem) -> _Request:
        parent = parse_program(d["parent"], problem.n_registers, problem.opcodes,
                               problem.max_length)
        return cls(int(d["generation"]), int(d["slot"]), str(d["kind"]), parent,
                   float(d["parent_error"]), float(d["parent_cost"]),
                   [bytes.fromhex(f) for f in d["parent_fps"]], str(d["model"]),
                   str(d["url"]), d["body"], str(d["key"]),
                   (int(d["worst"][0]), float(d["worst"][1])))


def _reply(entry: dict) -> chat.Reply:
    return chat.Reply(entry["content"], entry["error"], entry["detail"], entry["tokens_in"],
                      entry["tokens_out"], entry["attempts"], entry["seconds"])


@dataclass(frozen=True)
class Pending:
    """What an ``LLMVariation`` call hands to its ``finish``: the replies absorbed, their
    outcomes and the children as assessed (before selection), and what was sent."""

    generation: int
    absorbed: list[_Request]
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
        self.tokens_in = int(saved.get("tokens_in", 0))
        self.tokens_out = int(saved.get("tokens_out", 0))
        self.cost = float(saved.get("cost", 0.0))
        self.requests = int(saved.get("requests", 0))
        self.exhausted = saved.get("exhausted")  # the generation the budget ran out, or None
        self.history: list[dict] = list(saved.get("history", []))
        self.breakers = Breakers(params.breaker, sorted({u for _, u in self.models}),
                                 saved.get("breakers"), clock(), self.log)
        self.pending = [_Request.from_dict(d, problem) for d in saved.get("pending", [])]
        self._unsent = []  # requests out when the run stopped, not in the log: sent again
        for r in self.pending:
            entry = self.replies.get(r.key)
            if entry is not None:
                r.reply, r.replayed = _reply(entry), True
            else:
                self._unsent.append(r)
        self._closed = False

    def state_dict(self) -> dict:
        """What a checkpoint keeps (JSON): counters, budget, breakers, history and the
        requests still out."""
        return {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "cost": self.cost,
                "requests": self.requests, "exhausted": self.exhausted,
                "history": self.history, "breakers": self.breakers.state_dict(),
                "pending": [r.to_dict() for r in self.pending]}

    def close(self) -> None:
        """Stop logging replies: those still out are kept by the checkpoint, sent again on
        resume. Their threads end by their deadlines (daemons: they never hold up exit)."""
        self._closed = True

    # -- sending ------------------------------------------------------------------------------
    def _settle(self, r: _Request, reply: chat.Reply) -> None:
        """The request's reply: the first one settled wins and is logged (then seen by the
        search: a reply is absorbed only once it is in the log)."""
        with r.lock:
            if r.reply is not None or self._closed:
                return
            self.replies.append({
                "key": r.key, "generation": r.generation, "slot": r.slot, "model": r.model,
                "kind": r.kind, "content": reply.content, "error": reply.error,
                "detail": reply.detail, "tokens_in": reply.tokens_in,
                "tokens_out": reply.tokens_out, "attempts": reply.attempts,
                "seconds": round(reply.seconds, 3)})
            r.reply = reply

    def _ask(self, r: _Request) -> None:
        p = self.params
        try:
            reply = chat.complete(r.url, r.body, api_key=self.api_key, timeout=p.timeout,
                                  retries=p.retries, backoff=p.backoff,
                                  max_bytes=max(1 << 16, 64 * p.max_tokens),
                                  jitter=random.Random(r.key))
        except Exception as e:  # a bug, not the server: count it, go on
            reply = chat.Reply(None, "network", f"client error: {e!r}")
        self._settle(r, reply)

    def _send(self, r: _Request) -> None:
        entry = self.replies.get(r.key)
        if entry is not None:  # answered before: never asked again
            r.reply, r.replayed = _reply(entry), True
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
    def _absorb(self, g: int, cap: int) -> list[_Request]:
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
                    r.reply, r.replayed = _reply(entry), True
                chosen.append(r)
        else:
            chosen = [r for r in self.pending if r.reply is not None][:cap]
        taken = {r.key for r in chosen}
        self.pending = [r for r in self.pending if r.key not in taken]
        return chosen

    # -- planning -----------------------------------------------------------------------------
    def _left(self) -> tuple[float, float]:
        """Tokens and money left, less the worst case of the requests out."""
        p = self.params
        out_tokens = sum(r.worst[0] for r in self.pending)
        out_cost = sum(r.worst[1] for r in self.pending)
        tokens = math.inf if p.budget_tokens is None else \
            p.budget_tokens - self.tokens_in - self.tokens_out - out_tokens
        cost = math.inf if p.budget_cost is None else p.budget_cost - self.cost - out_cost
        return tokens, cost

    def plan(self, key_g: jax.Array, state, pick: np.ndarray, probes: set[str]
             ) -> tuple[list[_Request], dict[str, int]]:
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
        new: list[_Request] = []
        left_tokens, left_cost = self._left()
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
            prompt = worst_tokens("".join(m["content"] for m in body["messages"]))
            tokens = prompt + p.max_tokens
            cost = (prompt * p.price_in + p.max_tokens * p.price_out) / 1e6
            if tokens > left_tokens or cost > left_cost:
                broke = True
                skipped["budget"] += 1
                if not self.pending and not new and self.exhausted is None:
                    self.exhausted = g
                    self.log(f"LLM budget spent at generation {g} ({self.tokens_in} tokens "
                             f"in, {self.tokens_out} out, cost {self.cost:.6g}): LLM "
                             "variation stops, the run goes on")
                continue
            left_tokens -= tokens
            left_cost -= cost
            ident = json.dumps({"generation": g, "slot": int(i), "url": chat.endpoint(url),
                                "body": body}, sort_keys=True)
            key = hashlib.sha256(ident.encode()).hexdigest()
            a = parents[0]
            new.append(_Request(g, int(i), kind, state.programs[a], float(state.error[a]),
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

    def _usage(self, r: _Request) -> tuple[int, int]:
        """Tokens (in, out) charged for a request: the server's counts, else estimates."""
        reply = r.reply
        prompt = "".join(m["content"] for m in r.body["messages"])
        reached = reply.error in (None, "timeout", "too_long", "bad_response")
        t_in = reply.tokens_in if reply.tokens_in is not None else (
            estimate_tokens(prompt) if reached else 0)
        t_out = reply.tokens_out if reply.tokens_out is not None else (
            estimate_tokens(reply.content) if reply.content else
            self.params.max_tokens if reply.error == "too_long" else 0)
        return t_in, t_out

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
            a, b = self._usage(r)
            t_in, t_out = t_in + a, t_out + b
            cost += (a * p.price_in + b * p.price_out) / 1e6
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
        self.tokens_in += t_in
        self.tokens_out += t_out
        self.cost += cost
        n = len(pend.absorbed)
        lag = [pend.generation - r.generation for r in pend.absorbed]
        return {"llm_requests": pend.sent, "llm_replies": n, "llm_in_flight": len(self.pending),
                "llm_programs": programs,
                **{f"llm_fail_{k}": v for k, v in counts.items()},
                "llm_skipped_budget": pend.skipped["budget"],
                "llm_skipped_busy": pend.skipped["busy"],
                "llm_skipped_paused": pend.skipped["paused"],
                "llm_tokens_in": t_in, "llm_tokens_out": t_out, "llm_cost": cost,
                "llm_cost_total": self.cost, "llm_same": same, "llm_improved": improved,
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


def api_key(params: LLMParams) -> str | None:
    """The API key named by ``llm.api_key_env`` (None if none is named); ``UserError`` if
    LLM edits are on and the variable is not set."""
    if not params.api_key_env:
        return None
    key = os.environ.get(params.api_key_env)
    if not key and params.enabled:
        raise UserError(f"config field 'llm.api_key_env' names {params.api_key_env!r}, "
                        "but that environment variable is not set; export it, or set "
                        "llm.api_key_env to '' for a server that needs no key")
    return key


def open_llm(params: LLMParams, problem: Problem, run_dir: Path, saved: dict | None = None,
             log: Callable[[str], None] | None = None) -> LLMVariation | None:
    """The run's LLM operator, or None when LLM edits are off (``llm.rate`` is 0)."""
    if not params.enabled:
        return None
    return LLMVariation(params, problem, run_dir, saved, log)
