"""The models pillar's spec for the governance pipeline: OpenAI / Azure OpenAI chat and embeddings.

parse (JSON, typed check of the fields we act on) → resolve (catalog, lifecycle, key scope, capability) →
estimate (tiktoken; the `stream_options` rewrite) → send (one backend) → relay (pass-through; SSE chunk by chunk,
usage read on the way) → usage (real, else our estimate)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson

from shared.domain.base import Pillar
from shared.domain.lifecycle import serves
from shared.errors import CapabilityNotSupported, ModelNotAllowed, ModelNotFound, UpstreamBadResponse
from shared.pipeline.exchange import Estimate, Exchange, Relayed, Usage
from shared.quotas.enforcer import QuotaEnforcer

from . import billing
from .catalog import ModelCatalog
from .contracts import CLIENT_ASKED_USAGE
from .domain import Backend, Model
from .openai_http import OpenAIHttp
from .responses_contracts import OPERATIONS as RESPONSES_OPS, RESPONSES
from .responses_directory import ResponseDirectory
from .sse import SseRelay, error_event
from .tokens import TokenEstimator
from .usage import Usage as ReportedUsage, read_usage

# Upstream response headers worth handing to the client; everything else is the gateway's business.
_PASS_HEADERS = frozenset({b"content-type", b"openai-processing-ms", b"openai-version", b"x-ms-region",
                           b"retry-after", b"retry-after-ms", b"apim-request-id"})


class ModelsSpec:
    pillar = Pillar.models
    noun = "model backend"

    def __init__(self, *, catalog: ModelCatalog, http: OpenAIHttp, tokens: TokenEstimator,
                 enforcer: QuotaEnforcer, responses: ResponseDirectory | None = None) -> None:
        from .responses_ops import ResponsesOps  # imports this module's helpers

        self._catalog, self._http, self._tokens = catalog, http, tokens
        self.http = http  # the upstream client, shared with steps that call models themselves (cache embeddings)
        self._completion_estimate = enforcer.completion_estimate
        # the Responses API's operations (shared/pillars/models/responses_ops.py)
        self.responses = ResponsesOps(
            http=http, tokens=tokens, completion_estimate=enforcer.completion_estimate, family=_family,
            cost=_cost_micros, directory=responses if responses is not None  # (an empty directory is falsy: it has a length)
            else ResponseDirectory(max_entries=100_000, ttl=7 * 86400))

    async def resolve(self, x: Exchange) -> None:
        responses = x.operation in RESPONSES_OPS
        if responses:
            await self.responses.model_of(x)  # a stored response's id names its model
        name, principal = x.resource, x.principal
        assert principal.project_id is not None
        model = await self._catalog.get(principal.project_id, name)
        if model is None or not serves(model.spec.lifecycle):
            raise ModelNotFound(f"The model '{name}' does not exist in this project.")
        if not principal.may_use(Pillar.models, name):
            raise ModelNotAllowed(f"This key may not call the model '{name}'.")
        # `x.stream` is the validated flag (contracts.exchange), never the raw body's; only chat streams
        x.stream = stream = x.operation in ("chat", RESPONSES) and x.stream
        caps, needed = model.spec.capabilities, "chat" if responses else x.operation  # the Responses API is chat
        if needed not in caps or (stream and "streaming" not in caps):
            raise CapabilityNotSupported(f"The model '{name}' does not support "
                                         f"{'streaming ' if stream else ''}{x.operation}.")
        x.entity, x.routing = model, model.spec.routing
        x.targets = await self.responses.targets(x, model) if responses else model.spec.backends
        x.scratch["stream"] = stream

    async def estimate(self, x: Exchange) -> Estimate:
        if x.operation in RESPONSES_OPS:
            return await self.responses.estimate(x)
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
        if x.stream:
            # Ask for usage on the client's behalf so streamed calls are counted; stripped again if unasked.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        return Estimate(tokens=prompt + completion, cost_micros=_cost_micros(model, prompt, completion),
                        extra_tokens=guess, extra_cost_micros=_cost_micros(model, 0, guess))

    def capacity(self, target: Backend) -> int | None:
        return target.tpm_capacity

    async def send(self, x: Exchange, target: Backend) -> httpx.Response:
        if x.operation in RESPONSES_OPS:
            return await self.responses.send(x, target)
        return await self._http.send(target, x.operation, x.request, x.headers, stream=x.stream)  # type: ignore[arg-type]

    def relay(self, x: Exchange) -> Relayed:
        assert x.outcome is not None
        upstream = x.outcome.response
        headers = _passed_headers(upstream.headers.raw)
        if x.operation in RESPONSES_OPS:
            return self.responses.relay(x, headers)
        if not (x.stream and upstream.status_code < 300 and not upstream.is_closed):
            if upstream.status_code < 300:
                x.scratch["payload"] = payload = _json_object(upstream.content)
                if payload is None:
                    # A success the gateway cannot read (HTML from a proxy, a truncated body): nothing to pass on
                    # or bill — the pipeline's finally logs it and hands the quota back (usage() charges nothing).
                    raise UpstreamBadResponse(
                        f"The model backend '{x.outcome.target.id}' answered {upstream.status_code} with a body "
                        "that is not a JSON object.", details={"backend": x.outcome.target.id})
            return Relayed(upstream.status_code, headers, body=upstream.content)
        relay = x.scratch["relay"] = SseRelay(strip_usage_chunk=not x.scratch.get(CLIENT_ASKED_USAGE, False),
                                              collect_content=True)
        headers["cache-control"] = "no-cache"
        return Relayed(upstream.status_code, headers, chunks=self._events(x, upstream, relay),
                       media_type="text/event-stream")

    def _events(self, x: Exchange, upstream: httpx.Response, relay: SseRelay) -> AsyncIterator[bytes]:
        return relay_events(x, upstream, relay, error_event)


    def usage(self, x: Exchange) -> Usage:
        """Real usage when the upstream reported it (and it is believable), else our estimate (prompt + counted
        streamed text); nothing when the call failed upstream or answered a body the gateway cannot read."""
        assert x.outcome is not None
        if x.operation in RESPONSES_OPS:
            return self._responses_usage(x)
        response, model = x.outcome.response, x.entity
        relay: SseRelay | None = x.scratch.get("relay")
        if relay is not None:
            reported, streamed = read_usage(relay.tally.usage), relay.tally.content
            if x.payload_in is not None:
                x.payload_out = _clip("".join(streamed))
        else:
            payload = x.scratch.get("payload")
            if response.status_code >= 300 or payload is None:
                return _usage(model, 0, 0, estimated=False)  # failed upstream / unreadable: nothing to charge
            reported, streamed = read_usage(payload.get("usage")), []
            if x.payload_in is not None:
                x.payload_out = _clip(orjson.dumps(_answers(payload)).decode())
        shown = x.scratch.get("guardrails.shown_text")  # a guardrail rewrote or cut the answer: log only that
        if shown is not None and x.payload_in is not None:
            x.payload_out = _clip("".join(shown))
        if reported is not None:
            return _billed(model, reported, relay.tally.usage if relay is not None else payload.get("usage"))
        else:
            prompt = x.scratch["prompt_estimate"]
            completion = (self._tokens.count_text("".join(streamed), model.spec.name, _family(model))
                          if streamed else 0)
        return _usage(model, prompt, completion, estimated=reported is None)

    def _responses_usage(self, x: Exchange) -> Usage:
        """As `usage`, from the Responses API's shapes (responses_ops.ResponsesOps.reported)."""
        model: Model = x.entity
        raw, streamed, billable = self.responses.reported(x)
        if not billable:
            return _usage(model, 0, 0, estimated=False)  # a read/delete, a failed or unreadable answer
        if x.payload_in is not None:
            shown = x.scratch.get("guardrails.shown_text")
            x.payload_out = _clip("".join(shown) if shown is not None else self.responses.output_text(x) or "")
        reported = read_usage(raw)
        if reported is not None and raw is not None:
            return _billed(model, reported, raw)
        completion = (self._tokens.count_text("".join(streamed), model.spec.name, _family(model))
                      if streamed else 0)
        return _usage(model, x.scratch["prompt_estimate"], completion, estimated=True)


def _billed(model: Model, reported: ReportedUsage, raw: dict[str, Any]) -> Usage:
    """Trusted totals (`read_usage` checked them) with the provider's cached/reasoning details priced apart."""
    details = billing.read_usage(raw)
    tokens = billing.Tokens(reported.prompt, reported.completion, min(details.cached, reported.prompt),
                            min(details.reasoning, reported.completion))
    return Usage(tokens=tokens.prompt + tokens.completion, cost_micros=billing.cost_micros(model, tokens),
                 attributes={**billing.attributes(tokens), "usage_estimated": False})


def _usage(model: Model, prompt: int, completion: int, *, estimated: bool) -> Usage:
    return Usage(tokens=prompt + completion, cost_micros=_cost_micros(model, prompt, completion),
                 attributes={"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion, "usage_estimated": estimated})


def _passed_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """One pass over the upstream's raw headers (httpx's `in`/`[]` scan them all per name); repeated names are
    joined with ", " as httpx does."""
    out: dict[str, str] = {}
    for key, value in raw:
        name = key.lower()
        if name in _PASS_HEADERS:
            k, v = name.decode("ascii"), value.decode("latin-1")
            out[k] = f"{out[k]}, {v}" if k in out else v
    return out


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _answers(payload: dict[str, Any]) -> list[Any]:
    """What the model answered, for the payload log: chat messages, or embeddings (tolerating junk shapes)."""
    items = payload.get("choices")
    if not isinstance(items, list):
        items = payload.get("data") if isinstance(payload.get("data"), list) else []
    return [i.get("message", i.get("embedding")) for i in items if isinstance(i, dict)]


def _family(model: Model) -> str:
    return model.spec.tokenizer or model.spec.backends[0].deployment


def _cost_micros(model: Model, prompt: int, completion: int) -> int:
    s = model.spec
    return int((prompt * s.input_price_per_1k + completion * s.output_price_per_1k) * 1000)


def _clip(text: str, limit: int = 30_000) -> str:
    # An Azure Tables string property holds 64 KiB; keep prompts/completions well inside it.
    return text if len(text) <= limit else text[:limit] + "…[truncated]"


async def relay_events(x: Exchange, upstream: httpx.Response, relay: Any, error: Callable[[str, str], bytes],
                       fed: Callable[[], None] | None = None) -> AsyncIterator[bytes]:
    """An upstream SSE stream through `relay` (chat's SseRelay or the Responses API's), ended by an `error`
    event when the upstream breaks it or stops before its terminal event; `fed()` runs after each chunk."""
    try:
        async for chunk in upstream.aiter_raw():
            out = relay.feed(chunk)
            if fed is not None:
                fed()
            if out:
                yield out
        tail = relay.rest()
        if tail.strip():
            yield tail
        if not relay.tally.done:
            x.error_code = "upstream_stream_incomplete"
            yield error(x.error_code, "The model backend ended the stream before it was complete.")
    except (httpx.HTTPError, OSError) as exc:
        # Never retried once bytes reached the client; never a silent truncation either.
        x.error_code = "upstream_stream_broken"
        yield error(x.error_code, f"The model backend's stream broke ({type(exc).__name__}).")
    finally:
        await upstream.aclose()
