"""The models data plane for one call: model lookup and scope → quota admission → upstream with failover →
faithful pass-through (streamed chunk by chunk) → usage settlement and the request log (off the hot path)."""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from starlette.responses import Response, StreamingResponse

from ..auth.principal import Principal
from ..catalog import ModelCatalog
from ..domain.models import Model
from ..domain.base import Pillar
from ..errors import BadRequest, Forbidden, GatewayError, GuardrailBlocked, NotFound
from ..flags.service import FlagService
from ..guardrails.segments import apply_chat_input, apply_chat_output, chat_input, chat_output
from ..guardrails.step import GuardrailRun, GuardrailStep
from ..quotas.enforcer import Admission, QuotaEnforcer
from ..routing.breaker import Breakers
from ..routing.failover import Outcome, call_with_failover
from ..tokens import TokenEstimator
from ..upstreams.openai_http import OpenAIHttp
from ..usage.log import UsageLog, UsageRecord
from ..web.inputs import validate
from ..web.responses import error_response
from .contracts import CONTRACTS, Operation
from .quota_book import QuotaBook
from .sse import SseRelay, error_event

# Upstream response headers worth handing to the client; everything else is the gateway's business.
_PASS_HEADERS = ("content-type", "openai-processing-ms", "openai-version", "x-ms-region", "retry-after",
                 "retry-after-ms", "apim-request-id")


@dataclass
class CallState:
    principal: Principal
    request_id: str
    op: Operation
    model: Model
    stream: bool
    started: float
    prompt_estimate: int
    admission: Admission
    prompt_text: str | None = None  # only when the project logs payloads
    # backend id → (its capacity counter, tokens reserved) for backends with a TPM capacity
    reserved: dict[str, tuple[Any, int]] = field(default_factory=dict)
    served_by: str | None = None
    guardrails: GuardrailRun = field(default_factory=GuardrailRun)  # the call's verdicts (log, header, telemetry)


class ModelProxy:
    def __init__(self, *, catalog: ModelCatalog, quota_book: QuotaBook, enforcer: QuotaEnforcer, http: OpenAIHttp,
                 breakers: Breakers, tokens: TokenEstimator, usage: UsageLog, flags: FlagService,
                 rng: random.Random | None = None, guardrails: GuardrailStep | None = None) -> None:
        self._flags = flags
        self._guardrails = guardrails
        self._catalog, self._quotas, self._enforcer = catalog, quota_book, enforcer
        self._http, self._breakers = http, breakers
        self._tokens, self._usage = tokens, usage
        self._rng = rng or random.Random()

    async def handle(self, *, principal: Principal, request_id: str, op: Operation, raw: bytes,
                     headers: dict[str, str], path_model: str | None, started: float) -> Response:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"The request body is not valid JSON: {exc}.", code="malformed_json") from None
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.", code="invalid_request")
        parsed = validate(CONTRACTS[op], body)
        name = path_model or getattr(parsed, "model", None)
        if not name:
            raise BadRequest("'model' is required.", code="invalid_request",
                             details=[{"field": "model", "message": "required"}])
        model = await self._model(principal, name, op, bool(body.get("stream")))
        stream = op == "chat" and bool(body.get("stream"))
        state = CallState(principal, request_id, op, model, stream, started, 0, Admission())
        if self._guardrails is not None:
            try:  # before admission: a refused call takes no quota; a redacted prompt is what gets estimated
                await self._guardrails.on_input(
                    state.guardrails, project_id=model.project_id, pillar=Pillar.models, resource=name,
                    key_id=principal.key_id, payload=body, extract=chat_input, apply=apply_chat_input)
            except GatewayError as exc:
                self._log(state, None, exc.status, exc.code, None, 0.0)
                raise
        family = model.spec.tokenizer or model.spec.backends[0].deployment
        if not self._tokens.is_ready(name, family):
            # First use of an encoding in this worker: build it (~0.1–0.3 s) off the event loop.
            await asyncio.to_thread(self._tokens.encoding_for, name, family)
        prompt = (self._tokens.estimate_chat_prompt(body, name, family) if op == "chat"
                  else self._tokens.estimate_embeddings_input(body, name, family))
        completion = self._tokens.requested_completion(body, 0) if op == "chat" else 0
        # no max_tokens: also reserve the model's completion estimate where there is room (reconciled after)
        guess = self._enforcer.completion_estimate(completion, model.spec.completion_estimate_tokens) \
            if op == "chat" else 0
        quotas = await self._quotas.for_call(model.project_id, principal.key_id, name)
        state.prompt_estimate = prompt
        try:
            state.admission = await self._enforcer.admit(
                quotas, tokens=prompt + completion, cost_micros=self._cost_micros(model, prompt, completion),
                extra_tokens=guess, extra_cost_micros=self._cost_micros(model, 0, guess))
        except GatewayError as exc:
            # Refused calls are calls too: admins look for 429/403 spikes in the same log.
            self._log(state, None, exc.status, exc.code, None, 0.0)
            raise
        admission = state.admission
        project = await self._flags.project(model.project_id)  # cached: the guard just read it
        if project is not None and project.log_payloads:
            state.prompt_text = _clip(orjson.dumps(body.get("messages") or body.get("input")).decode())
        client_asked_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if stream:
            # Ask for usage on the client's behalf so streamed calls are counted; stripped again if unasked.
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        estimate = prompt + completion

        async def admit(b: Any) -> bool:
            if b.tpm_capacity is None or b.id in state.reserved:  # a retry on the same backend reuses its hold
                return True
            reserved = await self._enforcer.reserve_backend(f"{model.project_id}/{name}/{b.id}", b.tpm_capacity,
                                                            estimate, guess)
            if reserved is not None:
                state.reserved[b.id] = reserved
            return reserved is not None

        try:
            outcome = await call_with_failover(
                model.spec.backends, lambda b: self._http.send(b, op, body, headers, stream=stream),
                breakers=self._breakers, key=lambda b: f"{model.project_id}/{name}/{b.id}", routing=model.spec.routing,
                rng=self._rng, admit=admit)
        except GatewayError as exc:
            self._enforcer.release(admission)
            for counter, taken in state.reserved.values():
                counter.give_back(taken)
            self._log(state, None, exc.status, exc.code, None, 0.0, attempts=exc.details)
            raise
        state.served_by = outcome.backend.id if outcome.response.status_code < 300 else None
        if stream and outcome.response.status_code < 300 and not outcome.response.is_closed:
            return self._stream(state, outcome, strip_usage=not client_asked_usage)
        return await self._complete(state, outcome)

    async def _model(self, principal: Principal, name: str, op: Operation, stream: bool) -> Model:
        assert principal.project_id is not None
        model = await self._catalog.get(principal.project_id, name)
        if model is None or model.spec.lifecycle == "retired":
            raise NotFound(f"The model '{name}' does not exist in this project.", code="model_not_found")
        if principal.allowed_models is not None and name not in principal.allowed_models:
            raise Forbidden(f"This key may not call the model '{name}'.", code="model_not_allowed")
        needed = {"chat": "chat", "embeddings": "embeddings"}[op]
        if needed not in model.spec.capabilities or (stream and "streaming" not in model.spec.capabilities):
            raise BadRequest(f"The model '{name}' does not support {'streaming ' if stream else ''}{op}.",
                             code="capability_not_supported")
        return model

    @staticmethod
    def _cost_micros(model: Model, prompt: int, completion: int) -> int:
        s = model.spec
        return int((prompt * s.input_price_per_1k + completion * s.output_price_per_1k) * 1000)

    def _headers(self, state: CallState, outcome: Outcome, overhead_ms: float) -> dict[str, str]:
        h = {k: outcome.response.headers[k] for k in _PASS_HEADERS if k in outcome.response.headers}
        h.update(state.admission.headers)
        h.update({"x-request-id": state.request_id, "x-gateway-backend": outcome.backend.id,
                  "x-gateway-overhead-ms": f"{overhead_ms:.2f}"})
        if outcome.retries:
            h["x-gateway-retries"] = str(outcome.retries)
        verdicts = state.guardrails.header()
        if verdicts:
            h["x-gateway-guardrails"] = verdicts
        return h

    async def _complete(self, state: CallState, outcome: Outcome) -> Response:
        response = outcome.response
        usage = answer = None
        if response.status_code < 300:
            try:
                answer = orjson.loads(response.content)
                usage = answer.get("usage")
            except (orjson.JSONDecodeError, AttributeError):
                usage = answer = None
        overhead = (time.perf_counter() - state.started) * 1000 - sum(a.ms for a in outcome.attempts)
        tokens = self._settle(state, usage if response.status_code < 300 else {}, [])
        content = response.content
        if self._guardrails is not None and isinstance(answer, dict) and state.op == "chat":
            try:
                before = state.guardrails.verdicts[:]
                await self._guardrails.on_output(state.guardrails, answer, chat_output, apply_chat_output)
                if state.guardrails.verdicts != before:
                    content = orjson.dumps(answer)
            except GatewayError as exc:  # the upstream was paid for (settled above); the client gets the refusal
                self._log(state, outcome, exc.status, exc.code, tokens, overhead)
                return error_response(exc, state.request_id)
        completion = None
        if state.prompt_text is not None and isinstance(answer, dict):
            completion = _clip(orjson.dumps([c.get("message", c.get("embedding")) for c in
                                             (orjson.loads(content).get("choices") or [])]).decode())
        self._log(state, outcome, response.status_code, None if response.status_code < 300 else "upstream_error",
                  tokens, overhead, completion=completion)
        return Response(content, status_code=response.status_code,
                        headers=self._headers(state, outcome, overhead))

    def _stream(self, state: CallState, outcome: Outcome, *, strip_usage: bool) -> Response:
        overhead = (time.perf_counter() - state.started) * 1000 - sum(a.ms for a in outcome.attempts)
        relay = SseRelay(strip_usage_chunk=strip_usage, collect_content=True)
        upstream = outcome.response
        guard = self._guardrails.stream(state.guardrails) if self._guardrails is not None else None

        async def events() -> AsyncIterator[bytes]:
            error_code = None
            try:
                async for chunk in upstream.aiter_raw():
                    out = relay.feed(chunk)
                    if out and guard is not None:
                        out = guard.events(out)  # held back by at most the window; a block raises
                    if out:
                        yield out
                tail = relay.rest()
                if tail.strip() and guard is not None:
                    tail = guard.events(tail)
                if tail.strip():
                    yield tail
                if not relay.tally.done:
                    error_code = "upstream_stream_incomplete"
                    yield error_event(error_code, "The model backend ended the stream before it was complete.")
            except (httpx.HTTPError, OSError) as exc:
                # Never retried once bytes reached the client; never a silent truncation either.
                error_code = "upstream_stream_broken"
                yield error_event(error_code, f"The model backend's stream broke ({type(exc).__name__}).")
            except GuardrailBlocked as exc:
                # The blocked text was held back in the window: it never reaches the client, nor the log below.
                error_code = exc.code
                yield error_event(exc.code, exc.message, details=exc.details, type_="invalid_request_error")
            finally:
                await upstream.aclose()
                tokens = self._settle(state, relay.tally.usage, relay.tally.content)
                if guard is not None:
                    state.guardrails.verdicts += guard.verdicts()
                shown = guard.released if guard is not None else relay.tally.content
                self._log(state, outcome, 200, error_code, tokens, overhead, streamed=True,
                          estimated=relay.tally.usage is None,
                          completion=_clip("".join(shown)) if state.prompt_text is not None else None)

        return StreamingResponse(events(), status_code=upstream.status_code, media_type="text/event-stream",
                                 headers={**self._headers(state, outcome, overhead), "cache-control": "no-cache"})

    def _settle(self, state: CallState, usage: dict | None, streamed_text: list[str]) -> dict[str, int]:
        """Real usage when the upstream reported it, else our estimate (prompt + counted streamed text)."""
        if usage:
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
        elif usage is None:
            spec = state.model.spec
            prompt = state.prompt_estimate
            completion = (self._tokens.count_text("".join(streamed_text), spec.name,
                                                  spec.tokenizer or spec.backends[0].deployment)
                          if streamed_text else 0)
        else:
            prompt = completion = 0  # the call failed upstream: nothing to charge
        cost = self._cost_micros(state.model, prompt, completion)
        self._enforcer.settle(state.admission, tokens=prompt + completion, cost_micros=cost)
        for backend_id, (counter, taken) in state.reserved.items():
            # the backend that answered used real tokens; the ones that failed used none
            used = prompt + completion if backend_id == state.served_by else 0
            self._enforcer.reconcile(counter, taken, used)
        return {"prompt": prompt, "completion": completion, "cost_micros": cost}

    def _log(self, state: CallState, outcome: Outcome | None, status: int, error: str | None,
             tokens: dict[str, int] | None, overhead: float, *, streamed: bool = False, estimated: bool = False,
             attempts: Any = None, completion: str | None = None) -> None:
        p = state.principal
        tried = [a.__dict__ for a in outcome.attempts] if outcome else list((attempts or {}).get("attempts", []))
        self._usage.record(UsageRecord(
            request_id=state.request_id, project_id=p.project_id or "", key_id=p.key_id, key_prefix=p.key_prefix,
            operation=state.op, model=state.model.spec.name, backend=outcome.backend.id if outcome else None,
            status=status, error_code=error,
            prompt_tokens=tokens["prompt"] if tokens else None,
            completion_tokens=tokens["completion"] if tokens else None,
            total_tokens=tokens["prompt"] + tokens["completion"] if tokens else None,
            cost_usd=tokens["cost_micros"] / 1e6 if tokens else None,
            latency_ms=(time.perf_counter() - state.started) * 1000, overhead_ms=max(0.0, overhead),
            retries=max(0, len(tried) - 1), failovers=len({a["backend"] for a in tried}) - 1 if tried else 0,
            attempts=tried, streamed=streamed, usage_estimated=estimated, prompt=state.prompt_text,
            completion=completion, guardrails=state.guardrails.public()))


def _clip(text: str, limit: int = 30_000) -> str:
    # An Azure Tables string property holds 64 KiB; keep prompts/completions well inside it.
    return text if len(text) <= limit else text[:limit] + "…[truncated]"
