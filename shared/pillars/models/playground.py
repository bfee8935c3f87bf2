"""The developer's model playground: a chat call through the models pipeline — the same governance as the data
plane (guardrails, cache, quotas, failover, request log) — acting as one of the developer's OWN virtual keys
(its scopes, its quotas, its log rows), returning the answer plus the governance trace: policies run and their
verdicts, cache status, backend, tokens and cost. Streamed as server-sent events (`answer` deltas, then one
`trace`), or one JSON object. Like the tools playground (shared/pillars/tools/playground.py), a refusal is a
trace with `ok: false`, not an HTTP error: showing why a call would be refused is the playground's job."""
from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from pydantic import Field
from starlette.responses import Response, StreamingResponse

from ...domain.base import AppModel
from shared.auth.owned_keys import acting_as
from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.domain.keys import VirtualKey
from shared.errors import GatewayError
from shared.flags.service import FlagService
from shared.pipeline.exchange import Exchange
from shared.storage.repository import Repository

from .contracts import ChatMessage, exchange


class ModelPlaygroundChat(AppModel):
    key_id: str = Field(min_length=1, max_length=128, description="One of your own virtual keys in this project.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=100)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    stream: bool = True


class ModelPlaygroundTrace(AppModel):
    ok: bool
    status: int
    error_code: str | None = None
    error_message: str | None = None
    request_id: str
    model: str
    key_id: str
    backend: str | None = None
    retries: int = 0
    cache: str | None = None  # hit | miss | bypass; None: the model has no cache
    guardrails: list[dict[str, Any]] = Field(default_factory=list)  # policy, check, action, stage, hits, latency
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_prompt_tokens: int | None = None
    reasoning_tokens: int | None = None
    usage_estimated: bool | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0


class ModelPlaygroundResult(AppModel):
    answer: str
    trace: ModelPlaygroundTrace


class ModelPlayground:
    def __init__(self, pipeline: Callable[[], Any], keys: Repository[VirtualKey], flags: FlagService) -> None:
        self._pipeline, self._keys, self._flags = pipeline, keys, flags

    async def acting_as(self, developer: Principal, project_id: str, key_id: str) -> Principal:
        """The developer's own active key as a data-plane principal (an admin may act as any key)."""
        return await acting_as(self._keys, self._flags, developer, project_id, key_id, Pillar.models)

    async def run(self, developer: Principal, project_id: str, model: str, chat: ModelPlaygroundChat,
                  request_id: str) -> Response:
        principal = await self.acting_as(developer, project_id, chat.key_id)
        body = {"model": model, "messages": [m.model_dump(exclude_none=True) for m in chat.messages],
                "stream": chat.stream, **({"max_tokens": chat.max_tokens} if chat.max_tokens else {}),
                **({"temperature": chat.temperature} if chat.temperature is not None else {})}
        x = exchange("chat", orjson.dumps(body), None, principal=principal, request_id=request_id, headers={},
                     started=time.perf_counter())
        pipeline = self._pipeline()
        try:
            response = await pipeline.run(x)
        except GatewayError as exc:
            trace = self._trace(pipeline, x, chat.key_id, error=exc)
            return _json(ModelPlaygroundResult(answer="", trace=trace))
        if isinstance(response, StreamingResponse):
            events = self._events(pipeline, x, chat.key_id, response.body_iterator)
            return StreamingResponse(events, media_type="text/event-stream", headers={"cache-control": "no-cache"})
        answer = _answer(response.body)
        return _json(ModelPlaygroundResult(answer=answer, trace=self._trace(pipeline, x, chat.key_id)))

    async def _events(self, pipeline: Any, x: Exchange, key_id: str,
                      chunks: AsyncIterator[Any]) -> AsyncIterator[bytes]:
        buf = b""
        try:
            async for chunk in chunks:
                buf += chunk if isinstance(chunk, bytes) else str(chunk).encode()
                *events, buf = buf.replace(b"\r\n", b"\n").split(b"\n\n")
                for event in events:
                    text, error = _delta(event)
                    if text:
                        yield b"event: answer\ndata: " + orjson.dumps({"delta": text}) + b"\n\n"
                    if error is not None:
                        x.scratch["playground.error"] = error
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()  # the pipeline's stream logs and releases in its own finally
        trace = self._trace(pipeline, x, key_id)
        yield b"event: trace\ndata: " + trace.model_dump_json().encode() + b"\n\n"

    @staticmethod
    def _trace(pipeline: Any, x: Exchange, key_id: str, error: GatewayError | None = None) -> ModelPlaygroundTrace:
        streamed_error = x.scratch.get("playground.error") or {}
        t = ModelPlaygroundTrace(
            ok=error is None and x.status < 300 and x.error_code is None, status=error.status if error else x.status,
            error_code=error.code if error else x.error_code, request_id=x.request_id, model=x.resource,
            key_id=key_id, error_message=error.message if error else streamed_error.get("message"),
            guardrails=list(x.guardrails), latency_ms=round((time.perf_counter() - x.started) * 1000, 2),
            cache=x.attributes.get("cache"))
        if x.outcome is not None:
            t.backend, t.retries = x.outcome.target.id, x.outcome.retries
            usage = pipeline.spec.usage(x)
            t.cost_usd = usage.cost_micros / 1e6
            _tokens(t, usage.attributes)
        elif t.cache == "hit":
            t.cost_usd = 0.0
            _tokens(t, x.attributes)
        return t


def _tokens(t: ModelPlaygroundTrace, attrs: dict[str, Any]) -> None:
    for name in ("prompt_tokens", "completion_tokens", "cached_prompt_tokens", "reasoning_tokens",
                 "usage_estimated"):
        if name in attrs:
            setattr(t, name, attrs[name])


def _delta(event: bytes) -> tuple[str, dict[str, Any] | None]:
    data = b"".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
    try:
        obj = orjson.loads(data) if data and data != b"[DONE]" else None
    except orjson.JSONDecodeError:
        return "", None
    if not isinstance(obj, dict):
        return "", None
    if isinstance(obj.get("error"), dict):
        return "", obj["error"]
    parts = [c.get("delta", {}).get("content") for c in obj.get("choices") or [] if isinstance(c, dict)]
    return "".join(p for p in parts if isinstance(p, str)), None


def _answer(body: bytes) -> str:
    try:
        choices = orjson.loads(body).get("choices") or []
        content = choices[0]["message"]["content"]
        return content if isinstance(content, str) else ""
    except (orjson.JSONDecodeError, AttributeError, IndexError, KeyError, TypeError):
        return ""


def _json(result: ModelPlaygroundResult) -> Response:
    return Response(result.model_dump_json(), media_type="application/json")
