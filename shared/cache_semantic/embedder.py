"""Prompt embeddings for the semantic cache, from a registered embeddings model, through the gateway's own
upstream layer: the model's backends, credentials, egress-checked transport, breakers and failover — the same
path a client's `/v1/embeddings` call takes (without the client's quota: the cache's embedding call is the
gateway's own cost, logged on the request's usage record as `cache_embedding_tokens`)."""
from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ..errors import DependencyUnavailable, NotFound
from ..routing.breaker import Breakers
from ..routing.failover import call_with_failover


@dataclass(frozen=True)
class Embedding:
    vector: list[float]
    tokens: int


class Embedder(Protocol):
    async def embed(self, project_id: str, model: str, text: str) -> Embedding: ...


class UpstreamHttp(Protocol):
    """The models pillar's upstream client (shared/pillars/models/openai_http.py)."""

    async def send(self, backend: Any, op: Any, body: dict[str, Any], client_headers: dict[str, str], *,
                   stream: bool) -> Any: ...


class UpstreamEmbedder:
    def __init__(self, *, find_model: Callable[[str, str], Awaitable[Any]], http: UpstreamHttp, breakers: Breakers,
                 rng: random.Random | None = None) -> None:
        self._find = find_model  # (project, name) → Model | None: the cached catalog
        self._http, self._breakers = http, breakers
        self._rng = rng or random.Random()

    async def embed(self, project_id: str, model: str, text: str) -> Embedding:
        found = await self._find(project_id, model)
        if found is None or "embeddings" not in found.spec.capabilities or found.spec.lifecycle == "retired":
            raise NotFound(f"The cache's embeddings model '{model}' is not an embeddings model of this project.",
                           code="cache_embeddings_model_not_found")
        body = {"model": model, "input": text}
        outcome = await call_with_failover(
            found.spec.backends, lambda b: self._http.send(b, "embeddings", body, {}, stream=False),
            breakers=self._breakers, key=lambda b: f"{project_id}/{model}/{b.id}", routing=found.spec.routing,
            rng=self._rng)
        return parse_embedding(outcome.response.status_code, outcome.response.content)


def parse_embedding(status: int, content: bytes) -> Embedding:
    try:
        data = orjson.loads(content) if status < 300 else None
        vector = [float(x) for x in data["data"][0]["embedding"]]  # type: ignore[index]
        tokens = int(((data or {}).get("usage") or {}).get("prompt_tokens") or 0)
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError):
        raise DependencyUnavailable("The cache's embeddings model returned no embedding.",
                                    details={"dependency": "cache_embeddings", "status": status}) from None
    if not vector or len(vector) > 8192:
        raise DependencyUnavailable("The cache's embeddings model returned an unusable embedding.",
                                    details={"dependency": "cache_embeddings", "dimensions": len(vector)})
    return Embedding(vector, tokens)
