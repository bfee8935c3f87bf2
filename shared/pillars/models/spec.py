"""The models pillar's spec for the governance pipeline: OpenAI / Azure OpenAI chat and embeddings.

parse (JSON, typed check of the fields we act on) → resolve (catalog, lifecycle, key scope, capability) →
estimate (tiktoken; the `stream_options` rewrite) → send (one backend) → relay (pass-through; SSE chunk by chunk,
usage read on the way) → usage (real, else our estimate)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson

from shared.domain.base import Pillar
from shared.domain.lifecycle import serves
from shared.errors import BadRequest, CapabilityNotSupported, MalformedJson, ModelNotAllowed, ModelNotFound
from shared.pipeline.exchange import Estimate, Exchange, Relayed, Usage
from shared.quotas.enforcer import QuotaEnforcer
from shared.web.inputs import validate

from .catalog import ModelCatalog
from .contracts import CONTRACTS, ModelsOperation
from .domain import Backend, Model
from .openai_http import OpenAIHttp
from .sse import SseRelay, error_event
from .tokens import TokenEstimator

# Upstream response headers worth handing to the client; everything else is the gateway's business.
_PASS_HEADERS = ("content-type", "openai-processing-ms", "openai-version", "x-ms-region", "retry-after",
                 "retry-after-ms", "apim-request-id")


def parse(op: ModelsOperation, raw: bytes, path_model: str | None) -> tuple[dict[str, Any], str]:
    """The body (kept as a dict: unknown fields pass through byte-for-byte) and the model name it calls."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_request")
    parsed = validate(CONTRACTS[op], body)
    name = path_model or getattr(parsed, "model", None)
    if not name:
        raise BadRequest("'model' is required.", code="invalid_request",
                         details=[{"field": "model", "message": "required"}])
    return body, name


class ModelsSpec:
    pillar = Pillar.models
    noun = "model backend"

    def __init__(self, *, catalog: ModelCatalog, http: OpenAIHttp, tokens: TokenEstimator,
                 enforcer: QuotaEnforcer) -> None:
        self._catalog, self._http, self._tokens = catalog, http, tokens
        self._completion_estimate = enforcer.completion_estimate

    async def resolve(self, x: Exchange) -> None:
        name, principal = x.resource, x.principal
        assert principal.project_id is not None
        model = await self._catalog.get(principal.project_id, name)
        if model is None or not serves(model.spec.lifecycle):
            raise ModelNotFound(f"The model '{name}' does not exist in this project.")
        if not principal.may_use(Pillar.models, name):
            raise ModelNotAllowed(f"This key may not call the model '{name}'.")
        x.stream = stream = x.operation == "chat" and bool(x.request.get("stream"))
        caps = model.spec.capabilities
        if x.operation not in caps or (bool(x.request.get("stream")) and "streaming" not in caps):
            raise CapabilityNotSupported(f"The model '{name}' does not support "
                                         f"{'streaming ' if x.request.get('stream') else ''}{x.operation}.")
        x.entity, x.targets, x.routing = model, model.spec.backends, model.spec.routing
        x.scratch["stream"] = stream

    async def estimate(self, x: Exchange) -> Estimate:
        model: Model = x.entity
        body, name, family = x.request, model.spec.name, _family(model)
        if not self._tokens.is_ready(name, family):
            # First use of an encoding in this worker: build it (~0.1–0.3 s) off the event loop.
            await asyncio.to_thread(self._tokens.encoding_for, name, family)
        chat = x.operation == "chat"
        prompt = (self._tokens.estimate_chat_prompt(body, name, family) if chat
                  else self._tokens.estimate_embeddings_input(body, name, family))
        completion = self._tokens.requested_completion(body, 0) if chat else 0
        # no max_tokens: also reserve the model's completion estimate where there is room (reconciled after)
        guess = self._completion_estimate(completion, model.spec.completion_estimate_tokens) if chat else 0
        x.scratch["prompt_estimate"] = prompt
        if x.log_payloads:
            x.payload_in = _clip(orjson.dumps(body.get("messages") or body.get("input")).decode())
        options = body.get("stream_options") or {}
        x.scratch["client_asked_usage"] = bool(options.get("include_usage"))
        if x.stream:
            # Ask for usage on the client's behalf so streamed calls are counted; stripped again if unasked.
            body["stream_options"] = {**options, "include_usage": True}
        return Estimate(tokens=prompt + completion, cost_micros=_cost_micros(model, prompt, completion),
                        extra_tokens=guess, extra_cost_micros=_cost_micros(model, 0, guess))

    def capacity(self, target: Backend) -> int | None:
        return target.tpm_capacity

    async def send(self, x: Exchange, target: Backend) -> httpx.Response:
        return await self._http.send(target, x.operation, x.request, x.headers, stream=x.stream)  # type: ignore[arg-type]

    def relay(self, x: Exchange) -> Relayed:
        assert x.outcome is not None
        upstream = x.outcome.response
        headers = {k: upstream.headers[k] for k in _PASS_HEADERS if k in upstream.headers}
        if not (x.stream and upstream.status_code < 300 and not upstream.is_closed):
            return Relayed(upstream.status_code, headers, body=upstream.content)
        relay = x.scratch["relay"] = SseRelay(strip_usage_chunk=not x.scratch["client_asked_usage"],
                                              collect_content=True)
        headers["cache-control"] = "no-cache"
        return Relayed(upstream.status_code, headers, chunks=self._events(x, upstream, relay),
                       media_type="text/event-stream")

    async def _events(self, x: Exchange, upstream: httpx.Response, relay: SseRelay) -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                out = relay.feed(chunk)
                if out:
                    yield out
            tail = relay.rest()
            if tail.strip():
                yield tail
            if not relay.tally.done:
                x.error_code = "upstream_stream_incomplete"
                yield error_event(x.error_code, "The model backend ended the stream before it was complete.")
        except (httpx.HTTPError, OSError) as exc:
            # Never retried once bytes reached the client; never a silent truncation either.
            x.error_code = "upstream_stream_broken"
            yield error_event(x.error_code, f"The model backend's stream broke ({type(exc).__name__}).")
        finally:
            await upstream.aclose()

    def usage(self, x: Exchange) -> Usage:
        """Real usage when the upstream reported it, else our estimate (prompt + counted streamed text)."""
        assert x.outcome is not None
        response, model = x.outcome.response, x.entity
        relay: SseRelay | None = x.scratch.get("relay")
        if response.status_code >= 300:
            return _usage(model, 0, 0, estimated=False)  # the call failed upstream: nothing to charge
        if relay is not None:
            reported, streamed = relay.tally.usage, relay.tally.content
            if x.payload_in is not None:
                x.payload_out = _clip("".join(streamed))
        else:
            reported, streamed = _json_usage(response), []
            if x.payload_in is not None:
                x.payload_out = _completion_text(response)
        if reported:
            prompt = int(reported.get("prompt_tokens") or 0)
            completion = int(reported.get("completion_tokens") or 0)
        else:
            prompt = x.scratch["prompt_estimate"]
            completion = (self._tokens.count_text("".join(streamed), model.spec.name, _family(model))
                          if streamed else 0)
        # today's semantics: only a stream without reported usage is flagged as estimated
        return _usage(model, prompt, completion, estimated=relay is not None and reported is None)


def _usage(model: Model, prompt: int, completion: int, *, estimated: bool) -> Usage:
    return Usage(tokens=prompt + completion, cost_micros=_cost_micros(model, prompt, completion),
                 attributes={"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion, "usage_estimated": estimated})


def _json_usage(response: httpx.Response) -> dict[str, Any] | None:
    try:
        return orjson.loads(response.content).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return None


def _completion_text(response: httpx.Response) -> str | None:
    try:
        choices = orjson.loads(response.content).get("choices") or []
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return _clip(orjson.dumps([c.get("message", c.get("embedding")) for c in choices]).decode())


def _family(model: Model) -> str:
    return model.spec.tokenizer or model.spec.backends[0].deployment


def _cost_micros(model: Model, prompt: int, completion: int) -> int:
    s = model.spec
    return int((prompt * s.input_price_per_1k + completion * s.output_price_per_1k) * 1000)


def _clip(text: str, limit: int = 30_000) -> str:
    # An Azure Tables string property holds 64 KiB; keep prompts/completions well inside it.
    return text if len(text) <= limit else text[:limit] + "…[truncated]"
