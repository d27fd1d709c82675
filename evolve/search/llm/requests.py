"""One LLM request of a run: the child it is to make, its identity, and its saved forms.

A request is made at a generation boundary for one child slot: a mutation of a parent, or
a crossover of it with others, put to one model at one endpoint. Its key, the SHA-256 of
its generation, slot, endpoint and body (model, messages, sampling settings), names it in
``llm-replies.jsonl`` (``evolve.search.llm.replies``), where its reply is logged when it
arrives (``log_entry``) and from where a resumed run answers it (``logged_reply``). The
requests still out when a checkpoint is written are saved in it as JSON (``to_dict``) and
read back on resume (``from_dict``): the parent as program text, parsed, never run; floats
that JSON cannot hold as "inf", "-inf" or "nan"; fingerprints in hex.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field

from evolve.problem import Problem
from evolve.program import Program
from evolve.search.llm import chat
from evolve.text import format_program, parse_program

__all__ = ["Request", "logged_reply", "request_key"]


def _num(value: float) -> float | str:
    """A float as JSON keeps it exactly: itself, or "inf"/"-inf"/"nan"."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def request_key(generation: int, slot: int, url: str, body: dict) -> str:
    """The key of the request that generation ``generation`` makes for child ``slot``: the
    SHA-256 of its generation, slot, endpoint (``chat.endpoint(url)``) and body."""
    ident = json.dumps({"generation": generation, "slot": slot, "url": chat.endpoint(url),
                        "body": body}, sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()


@dataclass
class Request:
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

    @property
    def prompt(self) -> str:
        """The text of the messages sent (what its tokens in are counted or estimated on)."""
        return "".join(m["content"] for m in self.body["messages"])

    def to_dict(self) -> dict:
        """The request as a checkpoint keeps it (JSON; the reply is in the reply log)."""
        return {"generation": self.generation, "slot": self.slot, "kind": self.kind,
                "parent": format_program(self.parent), "parent_error": _num(self.parent_error),
                "parent_cost": _num(self.parent_cost),
                "parent_fps": [f.hex() for f in self.parent_fps], "model": self.model,
                "url": self.url, "body": self.body, "key": self.key,
                "worst": list(self.worst)}

    @classmethod
    def from_dict(cls, d: dict, problem: Problem) -> Request:
        """The request ``to_dict`` gave, its parent parsed for ``problem``."""
        parent = parse_program(d["parent"], problem.n_registers, problem.opcodes,
                               problem.max_length)
        return cls(int(d["generation"]), int(d["slot"]), str(d["kind"]), parent,
                   float(d["parent_error"]), float(d["parent_cost"]),
                   [bytes.fromhex(f) for f in d["parent_fps"]], str(d["model"]),
                   str(d["url"]), d["body"], str(d["key"]),
                   (int(d["worst"][0]), float(d["worst"][1])))

    def log_entry(self, reply: chat.Reply) -> dict:
        """The reply log's line for ``reply`` to this request."""
        return {"key": self.key, "generation": self.generation, "slot": self.slot,
                "model": self.model, "kind": self.kind, "content": reply.content,
                "error": reply.error, "detail": reply.detail, "tokens_in": reply.tokens_in,
                "tokens_out": reply.tokens_out, "attempts": reply.attempts,
                "seconds": round(reply.seconds, 3)}


def logged_reply(entry: dict) -> chat.Reply:
    """The reply a reply-log line (``Request.log_entry``) records."""
    return chat.Reply(entry["content"], entry["error"], entry["detail"], entry["tokens_in"],
                      entry["tokens_out"], entry["attempts"], entry["seconds"])
