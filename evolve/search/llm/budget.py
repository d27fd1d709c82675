"""The token and money budget of a run's LLM edits: what a request may cost, what is left.

``budget_tokens`` and ``budget_cost`` (with ``price_in`` and ``price_out`` per million
tokens) bound the whole run. A request is sent only if the budget left, less the worst
case of the requests out, covers its own worst case (the prompt's bytes, an upper bound on
its tokens, plus ``max_tokens``), so the budget is never passed; once nothing fits and
nothing is out, LLM variation stops and the run goes on. Tokens are the server's ``usage``
counts, or estimates (bytes / 4) when it gives none; charged when absorbed.

``Limits`` is the configured part (frozen), ``Spent`` what the run has been charged (saved
in each checkpoint); the functions here compute from them and change nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from evolve.search.llm import chat

__all__ = ["Limits", "Spent", "estimate_tokens", "worst_tokens"]


def worst_tokens(text: str) -> int:
    """An upper bound on the tokens of ``text`` (tokenizers do not beat one per byte)."""
    return len(text.encode())


def estimate_tokens(text: str) -> int:
    """A typical token count of ``text``, for servers that report no usage."""
    return math.ceil(len(text.encode()) / 4)


@dataclass
class Spent:
    """What the run's LLM requests have been charged, and the generation at which the
    budget ran out (None while it lasts)."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    exhausted: int | None = None

    @classmethod
    def from_dict(cls, saved: dict) -> Spent:
        """The counters a checkpoint's ``llm`` state keeps (zero where it has none)."""
        return cls(int(saved.get("tokens_in", 0)), int(saved.get("tokens_out", 0)),
                   float(saved.get("cost", 0.0)), saved.get("exhausted"))

    def charge(self, tokens_in: int, tokens_out: int, cost: float) -> None:
        """Add a generation's absorbed replies to the counters."""
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out
        self.cost += cost


@dataclass(frozen=True)
class Limits:
    """The budget fields of ``llm``: the caps (None: no cap), the prices per million
    tokens, and ``max_tokens``, the most tokens a reply may have."""

    tokens: int | None
    cost: float | None
    price_in: float
    price_out: float
    max_tokens: int

    def price(self, tokens_in: int, tokens_out: int) -> float:
        """The money ``tokens_in`` tokens of prompt and ``tokens_out`` of reply cost."""
        return (tokens_in * self.price_in + tokens_out * self.price_out) / 1e6

    def worst(self, prompt: str) -> tuple[int, float]:
        """The most tokens and money a request with ``prompt`` can cost: reserved while it
        is out."""
        tokens = worst_tokens(prompt)
        return tokens + self.max_tokens, self.price(tokens, self.max_tokens)

    def left(self, spent: Spent, reserved: Iterable[tuple[int, float]]) -> tuple[float, float]:
        """Tokens and money left after ``spent``, less the worst cases ``reserved`` for the
        requests out (``math.inf`` where there is no cap)."""
        reserved = list(reserved)
        out_tokens = sum(w[0] for w in reserved)
        out_cost = sum(w[1] for w in reserved)
        tokens = math.inf if self.tokens is None else \
            self.tokens - spent.tokens_in - spent.tokens_out - out_tokens
        cost = math.inf if self.cost is None else self.cost - spent.cost - out_cost
        return tokens, cost

    def usage(self, reply: chat.Reply, prompt: str) -> tuple[int, int]:
        """Tokens (in, out) charged for ``reply`` to a request with ``prompt``: the server's
        counts, else estimates (nothing in where the request never reached the model;
        ``max_tokens`` out for a reply cut short without content)."""
        reached = reply.error in (None, "timeout", "too_long", "bad_response")
        t_in = reply.tokens_in if reply.tokens_in is not None else (
            estimate_tokens(prompt) if reached else 0)
        t_out = reply.tokens_out if reply.tokens_out is not None else (
            estimate_tokens(reply.content) if reply.content else
            self.max_tokens if reply.error == "too_long" else 0)
        return t_in, t_out
