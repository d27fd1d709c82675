"""The ``llm`` part of a run's configuration: its fields, their checks, and the API key.

``LLMParams`` is what ``llm:`` in config.yaml (or ``--set llm.FIELD=VALUE``) gives; its
checks name the field and the fix. ``api_key`` reads the key from the environment
variable ``llm.api_key_env`` names: a key is never written to the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from evolve.errors import UserError
from evolve.search.llm.breaker import BreakerParams
from evolve.search.llm.budget import Limits

__all__ = ["LLMParams", "api_key"]


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

    @property
    def limits(self) -> Limits:
        """The budget fields (``budget_*``, ``price_*``, ``max_tokens``)."""
        return Limits(self.budget_tokens, self.budget_cost, self.price_in, self.price_out,
                      self.max_tokens)


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
