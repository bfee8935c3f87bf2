"""The Responses API on the models spec (shared/pillars/models/spec.py hands these operations here): the same
resolve → estimate → send → relay → usage as chat, with the Responses API's shapes — `input`/`instructions`
and `max_output_tokens` for the estimate, typed SSE events, `usage.input_tokens`/`output_tokens` with
`input_tokens_details.cached_tokens` and `output_tokens_details.reasoning_tokens` for the bill — and the
directory of which backend stores which response id."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import orjson

from shared.errors import ResponseNotFound, UpstreamBadResponse
from shared.pipeline.exchange import Estimate, Exchange, Relayed, Usage

from .domain import Backend, Model
from .openai_http import OpenAIHttp
from .responses_contracts import RESPONSE_ID, RESPONSES
from .responses_directory import ResponseDirectory
from .responses_sse import ResponsesSseRelay, error_event
from .spec import _clip, _json_object, relay_events  # (spec.py imports this module only inside ModelsSpec.__init__)
from .tokens import TokenEstimator

# Azure OpenAI's deployment-style (pre-v1) Responses API needs a preview api-version at least this recent.
AZURE_RESPONSES_API_VERSION = "2025-04-01-preview"
RELAY = "responses.relay"  # Exchange.scratch keys
PAYLOAD = "payload"
_BY_ID_PATH = {"responses.get": "", "responses.delete": "", "responses.input_items": "/input_items"}
_METHOD = {"responses.get": "GET", "responses.delete": "DELETE", "responses.input_items": "GET"}


def responses_url(backend: Backend, suffix: str = "") -> str:
    base = str(backend.endpoint).rstrip("/")
    if backend.kind == "azure_openai" and backend.api_version == "v1":
        return f"{base}/openai/v1/responses{suffix}"
    if backend.kind == "azure_openai":
        version = backend.api_version or ""
        version = version if version >= AZURE_RESPONSES_API_VERSION else AZURE_RESPONSES_API_VERSION
        return f"{base}/openai/responses{suffix}?api-version={version}"
    return f"{base}/responses{suffix}"


def as_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's text as chat messages, for the token estimate (and nothing else)."""
    out: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        out.append({"role": "system", "content": body["instructions"]})
    inp = body.get("input")
    if isinstance(inp, str):
        out.append({"role": "user", "content": inp})
    for item in inp if isinstance(inp, list) else []:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, list):  # input_text / output_text parts
            content = "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
        if isinstance(content, str):
            out.append({"role": str(item.get("role") or "user"), "content": content})
        elif isinstance(item.get("output"), str):  # function_call_output items
            out.append({"role": "tool", "content": item["output"]})
    return out


class ResponsesOps:
    def __init__(self, *, http: OpenAIHttp, tokens: TokenEstimator, directory: ResponseDirectory,
                 completion_estimate: Callable[[int, int | None], int], family: Callable[[Model], str],
                 cost: Callable[[Model, int, int], int]) -> None:
        self._http, self._tokens, self.directory = http, tokens, directory
        self._completion_estimate, self._family, self._cost = completion_estimate, family, cost

    # ---- resolve

    async def model_of(self, x: Exchange) -> None:
        """By-id operations name no model: the directory says which one served the id (for this project)."""
        if x.operation == RESPONSES:
            return
        served = await self.directory.lookup(x.principal.project_id or "", x.request[RESPONSE_ID])
        if served is None:
            raise _not_found(RESPONSE_ID, x.request[RESPONSE_ID])
        x.resource = served.model

    async def targets(self, x: Exchange, model: Model) -> list[Backend]:
        """The backend that stores the response named (by id, or as `previous_response_id`); else the pool."""
        pid = x.principal.project_id or ""
        if x.operation == RESPONSES:
            previous = x.request.get("previous_response_id")
            if not isinstance(previous, str):
                return list(model.spec.backends)
            served, field, wanted = await self.directory.lookup(pid, previous), "previous_response_id", previous
        else:
            wanted = x.request[RESPONSE_ID]
            served, field = await self.directory.lookup(pid, wanted), RESPONSE_ID
        pool = [b for b in model.spec.backends if served is not None and served.model == model.spec.name
                and b.id == served.backend]
        if not pool:  # unknown here, another project's, or its backend left the pool
            raise _not_found(field, wanted)
        return pool

    # ---- estimate / send

    async def estimate(self, x: Exchange) -> Estimate:
        model: Model = x.entity
        if x.operation != RESPONSES:
            return Estimate()  # a read or delete spends no tokens (still one request on request quotas)
        name, family, body = model.spec.name, self._family(model), x.request
        if not self._tokens.is_ready(name, family):
            await asyncio.to_thread(self._tokens.encoding_for, name, family)
        messages = as_messages(body)
        prompt = self._tokens.estimate_chat_prompt({"messages": messages}, name, family)
        limit = body.get("max_output_tokens")
        completion = limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else 0
        guess = self._completion_estimate(completion, model.spec.completion_estimate_tokens)
        x.scratch["prompt_estimate"] = prompt
        if x.log_payloads:
            x.payload_in = _clip(orjson.dumps(messages).decode())
        return Estimate(tokens=prompt + completion, cost_micros=self._cost(model, prompt, completion),
                        extra_tokens=guess, extra_cost_micros=self._cost(model, 0, guess))

    async def send(self, x: Exchange, target: Backend) -> httpx.Response:
        if x.operation == RESPONSES:
            payload = {**x.request, "model": target.deployment}  # every Responses API names the model in the body
            return await self._http.request(target, "POST", responses_url(target), payload, dict(x.headers),
                                            stream=x.stream)
        url = responses_url(target, "/" + quote(x.request[RESPONSE_ID], safe="") + _BY_ID_PATH[x.operation])
        if x.request["query"]:
            url += ("&" if "?" in url else "?") + urlencode(x.request["query"])
        return await self._http.request(target, _METHOD[x.operation], url, None, dict(x.headers), stream=False)

    # ---- relay

    def relay(self, x: Exchange, headers: dict[str, str]) -> Relayed:
        assert x.outcome is not None
        upstream, target = x.outcome.response, x.outcome.target
        if x.stream and upstream.status_code < 300 and not upstream.is_closed:
            relay = x.scratch[RELAY] = ResponsesSseRelay()
            headers["cache-control"] = "no-cache"
            return Relayed(upstream.status_code, headers, chunks=relay_events(
                x, upstream, relay, lambda code, message: error_event(code, message, relay.tally.sequence),
                fed=lambda: self._remember_streamed(x, relay)), media_type="text/event-stream")
        if upstream.status_code < 300:
            payload = _json_object(upstream.content)
            if payload is None:
                raise UpstreamBadResponse(
                    f"The model backend '{target.id}' answered {upstream.status_code} with a body that is not a "
                    "JSON object.", details={"backend": target.id})
            x.scratch[PAYLOAD] = payload
            self._remember(x, payload.get("id"))
        return Relayed(upstream.status_code, headers, body=upstream.content)

    def _remember(self, x: Exchange, response_id: Any) -> None:
        assert x.outcome is not None
        if x.operation == "responses.delete":
            self.directory.forget(x.request[RESPONSE_ID], x.principal.project_id or "")
        elif x.operation == RESPONSES and isinstance(response_id, str) and response_id:
            self.directory.record(x.principal.project_id or "", response_id[:256], x.resource, x.outcome.target.id)

    def _remember_streamed(self, x: Exchange, relay: ResponsesSseRelay) -> None:
        if relay.tally.response_id is not None and not x.scratch.get("responses.remembered"):
            x.scratch["responses.remembered"] = True  # from `response.created`, once
            self._remember(x, relay.tally.response_id)

    # ---- usage

    def reported(self, x: Exchange) -> tuple[dict[str, Any] | None, list[str], bool]:
        """(the upstream's usage in Chat Completions' names, streamed text, whether anything is billable)."""
        relay: ResponsesSseRelay | None = x.scratch.get(RELAY)
        if relay is not None:
            return chat_usage(relay.tally.usage), relay.tally.content, True
        payload = x.scratch.get(PAYLOAD)
        assert x.outcome is not None
        if x.operation != RESPONSES or payload is None or x.outcome.response.status_code >= 300:
            return None, [], False
        return chat_usage(payload.get("usage")), [], True

    def output_text(self, x: Exchange) -> str | None:
        payload = x.scratch.get(PAYLOAD)
        relay: ResponsesSseRelay | None = x.scratch.get(RELAY)
        if relay is not None:
            return "".join(relay.tally.content)
        return orjson.dumps(payload.get("output")).decode() if isinstance(payload, dict) else None


def chat_usage(raw: Any) -> dict[str, Any] | None:
    """Responses API usage in the names the models pillar bills (details kept: cached ⊆ input, reasoning ⊆
    output); the values are checked by `usage.read_usage` like any upstream's."""
    if not isinstance(raw, dict) or "input_tokens" not in raw:
        return None
    return {"prompt_tokens": raw.get("input_tokens"), "completion_tokens": raw.get("output_tokens", 0),
            "prompt_tokens_details": raw.get("input_tokens_details") or {},
            "completion_tokens_details": raw.get("output_tokens_details") or {}}


def _not_found(field: str, value: str) -> ResponseNotFound:
    return ResponseNotFound(
        f"No response '{value[:64]}' was served to this project by this gateway (or it has expired).",
        details={"field": field})
