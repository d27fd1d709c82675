"""LLM edits as variation operators: mutation and crossover proposed by a language model.

With ``llm.rate > 0``, each generation some children are made by a model that speaks the
OpenAI-compatible chat-completions protocol (``evolve.search.llm.chat``), prompted with the problem,
the ops table, the grammar, the parents and the outcomes of this run's recent LLM edits
(``evolve.search.llm.prompts``). A generation:

  1. The ordinary children are made as always. From the generation's key (its own
     purpose), each child slot becomes an LLM slot with probability ``rate``: a
     crossover (program A, B and, with ``inspirations: 3``, a random third; those of
     one function shown once, and a crossover left with one program is a mutation)
     with probability ``crossover_rate``, else a mutation of A; A and B are the slot's
     tournament winners. The model of the slot is drawn by ``model_weights``.
  2. The requests go out, at most ``max_in_flight`` at once, each with its own deadline,
     while the ordinary children are fingerprinted and evaluated on the device.
  3. The generation waits for every request to end (reply or failure), parses the replies
     (never runs them), and assesses the LLM children. A slot whose request failed, or
     whose reply gives no program, keeps its ordinary child, so results never depend on
     timing: only on the replies.
  4. After selection, each LLM slot's outcome (improved on A, not better, same function,
     failed and why) joins the history shown in later prompts, and the generation's
     metrics row gets the ``llm_*`` columns.

Exact resume. Every reply, failures included (a timeout is stored as a timeout), is
appended to ``llm-replies.jsonl`` in the run directory, keyed by the SHA-256 of the
request (generation, slot, URL, and the body: model, messages, sampling settings). A
request whose key is in the log is answered from it and never sent. The counters, the
budget and the history are saved in each checkpoint, so a resumed run builds the same
prompts, hence the same keys, and replays what the first run was told.

Budget. ``budget_tokens`` and ``budget_cost`` (with ``price_in`` and ``price_out`` per
million tokens) bound the whole run. A request is sent only if the budget left covers its
worst case (the prompt's bytes, an upper bound on its tokens, plus ``max_tokens``), so the
budget is never passed; once nothing fits, LLM variation stops and the run goes on.
Tokens are the server's ``usage`` counts, or estimates (bytes / 4) when it gives none.

One concept, the LLM operator of a run: its slots are planned, sent, settled, parsed,
assessed and accounted for in one generation's call and ``finish``; the chat client
(``evolve.search.llm.chat``) and the prompts (``evolve.search.llm.prompts``) live apart.
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

from evolve.errors import UserError
from evolve.problem import Problem
from evolve.program import Program
from evolve.search.llm import chat
from evolve.search.llm.prompts import ReplyError, messages, parse_reply
from evolve.search.variation import rng_from_key
from evolve.text import format_program

REPLIES = "llm-replies.jsonl"
FAILURES = (*chat.FAILURES, "edit", "parse")
_PURPOSE = 0x11D  # the generation key's purpose for LLM decisions (the engine uses 0..4)
_GRACE = 5.0  # seconds past a request's deadline before the generation stops waiting


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


class ReplyLog:
    """``llm-replies.jsonl``: one JSON object per line, appended, looked up by request key.

    A line cut short by a kill is dropped when the log is opened; lines that do not parse
    are skipped. Appends are flushed and fsynced one by one.
    """

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = {}
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
                    entry = json.loads(line)
                    self.entries.setdefault(entry["key"], entry)
                except (ValueError, KeyError, TypeError):
                    self.skipped += 1

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def append(self, entry: dict) -> None:
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.entries.setdefault(entry["key"], entry)


@dataclass
class _Slot:
    """One LLM child to be: where it goes, from whom, and the request that makes it."""

    slot: int
    kind: str  # "mutation" or "crossover"
    parents: list[int]
    model: str
    url: str
    body: dict
    key: str
    reply: chat.Reply | None = None
    replayed: bool = False
    started: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


@dataclass(frozen=True)
class Pending:
    """What an ``LLMVariation`` call hands to its ``finish``: the generation's LLM slots
    and their outcomes, and the children as assessed (before selection)."""

    generation: int
    slots: list[_Slot]
    outcomes: dict[int, tuple[str | None, str]]  # slot -> (failure kind or None, detail)
    cut: int  # slots the budget cut
    state: Any  # the state the children were made from (``evolve.search.state.State``)
    children: list[Program]
    error: np.ndarray
    cost: np.ndarray
    fps: list[bytes]
    seconds: float  # waited for replies


class LLMVariation:
    """The LLM operator of one run: an engine hook (``Engine.step(state, vary=...)``).

    ``saved`` is what ``state_dict`` returned at the checkpoint being resumed; ``log``
    writes a line to the run's event log.
    """

    def __init__(self, params: LLMParams, problem: Problem, run_dir: Path,
                 saved: dict | None = None, log: Callable[[str], None] | None = None):
        self.params, self.problem = params, problem
        self.replies = ReplyLog(Path(run_dir) / REPLIES)
        self.log = log or (lambda message: None)
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
        self._pool = None  # a ThreadPoolExecutor, from the first request on

    def state_dict(self) -> dict:
        """What a checkpoint keeps (JSON): counters, budget state and the recent history."""
        return {"tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "cost": self.cost,
                "requests": self.requests, "exhausted": self.exhausted,
                "history": self.history}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- planning ---------------------------------------------------------------------------
    def plan(self, key_g: jax.Array, state, pick: np.ndarray) -> tuple[list[_Slot], int]:
        """The LLM slots of the generation after ``state`` and the number the budget cut."""
        p = self.params
        g = state.generation + 1
        rng = rng_from_key(jax.random.fold_in(key_g, _PURPOSE))
        n = len(pick)
        chosen = rng.random(n) < p.rate
        crossover = rng.random(n) < p.crossover_rate
        third = rng.integers(0, len(state.programs), n)
        model = rng.choice(len(self.models), n, p=self.weights)
        seeds = rng.integers(0, 2**31, n)
        slots = []
        for i in np.flatnonzero(chosen):
            kind = "crossover" if crossover[i] else "mutation"
            parents = [int(pick[i, 0])]
            if kind == "crossover":
                more = [int(pick[i, 1])] + ([int(third[i])] if p.inspirations == 3 else [])
                for j in more:  # programs of one function add nothing: shown once
                    if all(state.fingerprints[j] != state.fingerprints[k] for k in parents):
                        parents.append(j)
                kind = "crossover" if len(parents) > 1 else "mutation"
            name, url = self.models[int(model[i])]
            shown = [(state.programs[j], _float(state.error[j]), _float(state.cost[j]))
                     for j in parents]
            body = {"model": name, "messages": messages(self.problem, kind, shown,
                                                        self.history, p.answer),
                    "temperature": p.temperature, "max_tokens": p.max_tokens,
                    "seed": int(seeds[i]), "stream": False}
            ident = json.dumps({"generation": g, "slot": int(i), "url": chat.endpoint(url),
                                "body": body}, sort_keys=True)
            key = hashlib.sha256(ident.encode()).hexdigest()
            slots.append(_Slot(int(i), kind, parents, name, url, body, key))
        return self._afford(slots, g)

    def _afford(self, slots: list[_Slot], g: int) -> tuple[list[_Slot], int]:
        p = self.params
        left_tokens = math.inf if p.budget_tokens is None else \
            p.budget_tokens - self.tokens_in - self.tokens_out
        left_cost = math.inf if p.budget_cost is None else p.budget_cost - self.cost
        for n, s in enumerate(slots):
            prompt = worst_tokens("".join(m["content"] for m in s.body["messages"]))
            tokens = prompt + p.max_tokens
            cost = (prompt * p.price_in + p.max_tokens * p.price_out) / 1e6
            if tokens > left_tokens or cost > left_cost:
                if n == 0 and self.exhausted is None:
                    self.exhausted = g
                    self.log(f"LLM budget spent at generation {g} ({self.tokens_in} tokens in, "
                             f"{self.tokens_out} out, cost {self.cost:.6g}): LLM variation "
                             "stops, the run goes on")
                return slots[:n], len(slots) - n
            left_tokens -= tokens
            left_cost -= cost
        return slots, 0

    # -- requests ---------------------------------------------------------------------------
    def _settle(self, s: _Slot, reply: chat.Reply, g: int) -> chat.Reply:
        """The slot's reply: the first one settled wins and is logged."""
        with s.lock:
            if s.reply is None:
                s.reply = reply
                self.replies.append({
                    "key": s.key, "generation": g, "slot": s.slot, "model": s.model,
                    "kind": s.kind, "content": reply.content, "error": reply.error,
                    "detail": reply.detail, "tokens_in": reply.tokens_in,
                    "tokens_out": reply.tokens_out, "attempts": reply.attempts,
                    "seconds": round(reply.seconds, 3)})
            return s.reply

    def _ask(self, s: _Slot, g: int) -> chat.Reply:
        s.started = time.monotonic()
        p = self.params
        reply = chat.complete(s.url, s.body, api_key=self.api_key, timeout=p.timeout,
                              retries=p.retries, backoff=p.backoff,
                              max_bytes=max(1 << 16, 64 * p.max_tokens),
                              jitter=random.Random(s.key))
        return self._settle(s, reply, g)

    def _send(self, slots: list[_Slot], g: int) -> dict:
        futures = {}
        for s in slots:
            entry = self.replies.get(s.key)
            if entry is not None:
                s.replayed = True
                s.reply = chat.Reply(entry["content"], entry["error"], entry["detail"],
                                     entry["tokens_in"], entry["tokens_out"],
                                     entry["attempts"], entry["seconds"])
                continue
            if self._pool is None:
                import concurrent.futures

                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self.params.max_in_flight, thread_name_prefix="evolve-llm")
            futures[self._pool.submit(self._ask, s, g)] = s
        return futures

    def _wait(self, futures: dict, g: int) -> None:
        """Until every request has ended; one running past its deadline is settled as a
        timeout (the watchdog in ``evolve.search.llm.chat`` should have ended it already)."""
        import concurrent.futures

        waiting = set(futures)
        while waiting:
            done, waiting = concurrent.futures.wait(waiting, timeout=0.25)
            for f in done:
                if f.exception() is not None:  # a bug, not the server: count it, go on
                    self._settle(futures[f], chat.Reply(None, "network",
                                                        f"client error: {f.exception()!r}"), g)
            now = time.monotonic()
            for f in list(waiting):
                s = futures[f]
                if s.started is not None and now > s.started + self.params.timeout + _GRACE:
                    self._settle(s, chat.Reply(None, "timeout", "the request did not end; "
                                               "abandoned", seconds=now - s.started), g)
                    waiting.discard(f)

    # -- the engine hook --------------------------------------------------------------------
    def __call__(self, engine, state, key_g, pick, children, kinds, probe, rng):
        """Replace some of ``children`` by LLM children and assess them all, as
        ``Engine.assess`` does; returns (children, kinds, error, cost, fingerprints, info,
        pending), ``pending`` being what ``finish`` needs once selection is done."""
        g = state.generation + 1
        slots, cut = self.plan(key_g, state, pick)
        t0 = time.perf_counter()
        futures = self._send(slots, g)
        at = {s.slot: s for s in slots}
        children, kinds = list(children), list(kinds)
        n = len(children)
        error, cost, fps = np.zeros(n), np.zeros(n), [b""] * n
        info = {"fits": 0, "evaluated": 0}

        def assess(idx: list[int]) -> None:
            if not idx:
                return
            progs, e, c, f, inf = engine.assess(state, [children[i] for i in idx], probe, rng)
            for j, i in enumerate(idx):
                children[i], error[i], cost[i], fps[i] = progs[j], e[j], c[j], f[j]
            info["fits"] += inf["fits"]
            info["evaluated"] += inf["evaluated"]

        assess([i for i in range(n) if i not in at])  # while the requests are out
        self._wait(futures, g)
        waited = time.perf_counter() - t0
        outcomes = {}
        for s in slots:
            reply, parent = s.reply, state.programs[s.parents[0]]
            if reply.error is not None:
                outcomes[s.slot] = (reply.error, reply.detail)
                continue
            try:
                children[s.slot] = parse_reply(reply.content, parent, self.problem)
                kinds[s.slot] = f"llm_{s.kind}"
                outcomes[s.slot] = (None, "")
            except ReplyError as e:
                outcomes[s.slot] = (e.kind, str(e))
        assess(sorted(at))
        replayed = sum(s.replayed for s in slots)
        if replayed:
            self.log(f"generation {g}: {replayed} of {len(slots)} LLM replies replayed "
                     f"from {REPLIES}")
        pending = Pending(g, slots, outcomes, cut, state, list(children), error.copy(),
                          cost.copy(), list(fps), waited)
        return children, kinds, error, cost, fps, info, pending

    def _usage(self, s: _Slot) -> tuple[int, int]:
        """Tokens (in, out) charged for a slot: the server's counts, else estimates."""
        r = s.reply
        prompt = "".join(m["content"] for m in s.body["messages"])
        reached = r.error in (None, "timeout", "too_long", "bad_response")
        t_in = r.tokens_in if r.tokens_in is not None else (
            estimate_tokens(prompt) if reached else 0)
        t_out = r.tokens_out if r.tokens_out is not None else (
            estimate_tokens(r.content) if r.content else
            self.params.max_tokens if r.error == "too_long" else 0)
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
        old = pend.state
        for s in pend.slots:
            a, b = self._usage(s)
            t_in, t_out = t_in + a, t_out + b
            cost += (a * p.price_in + b * p.price_out) / 1e6
            kind, why = pend.outcomes[s.slot]
            i, j = s.slot, s.parents[0]
            entry = {"generation": pend.generation, "kind": s.kind, "model": s.model,
                     "parent": [_float(old.error[j]), _float(old.cost[j])]}
            if kind is not None:
                counts[kind] += 1
                entry.update(result="failed", why=f"{kind}: {why}"[:400])
            else:
                programs += 1
                e, c, fp = pend.error[i], pend.cost[i], pend.fps[i]
                entry["child"] = [_float(e), _float(c)]
                accepted += fp in survivors
                if fp in {old.fingerprints[k] for k in s.parents}:
                    same += 1
                    entry.update(result="same", why="it computes the same function as a parent")
                elif e <= old.error[j] and c <= old.cost[j] and (e < old.error[j] or
                                                                 c < old.cost[j]):
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
        n = len(pend.slots)
        self.requests += n
        return {"llm_requests": n, "llm_programs": programs,
                **{f"llm_fail_{k}": v for k, v in counts.items()},
                "llm_skipped_budget": pend.cut, "llm_tokens_in": t_in,
                "llm_tokens_out": t_out, "llm_cost": cost, "llm_cost_total": self.cost,
                "llm_same": same, "llm_improved": improved, "llm_accepted": accepted,
                "llm_acceptance": accepted / n if n else float("nan"),
                "llm_wait_seconds": pend.seconds}


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
