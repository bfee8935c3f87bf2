"""One governance pipeline for every pillar: resolve → request steps → admit → route/failover → relay →
response steps → settle → log. Release-and-log live in ONE `try/finally` (`run`); a streamed answer hands that
`finally` over to the end of its stream (`_streamed`), so every path — refusal, upstream failure, cancelled call,
client gone mid-stream — releases what it took and writes its row exactly once.

Each stage is one small method, read top to bottom like httpx's `send → _send_handling_auth → …`. What differs
per pillar is the `PillarSpec` (shared/pipeline/spec.py); guardrails and caches plug in as `Step`s
(shared/pipeline/steps.py); telemetry through `Telemetry` (shared/pipeline/telemetry.py).
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from starlette.responses import Response, StreamingResponse

from ..errors import GatewayError
from ..flags.service import FlagService
from ..quotas.book import QuotaBook
from ..quotas.enforcer import QuotaEnforcer
from ..routing.breaker import Breakers
from ..routing.failover import call_with_failover
from ..usage.log import UsageLog, UsageRecord
from ..web.after_send import defer
from .correlation import correlation_of
from .exchange import Exchange, Relayed
from .spec import PillarSpec
from .steps import Step
from .telemetry import NoTelemetry, Telemetry

_R = TypeVar("_R")


class Pipeline:
    def __init__(self, spec: PillarSpec, *, quotas: QuotaBook, enforcer: QuotaEnforcer, breakers: Breakers,
                 usage: UsageLog, flags: FlagService, steps: Sequence[Step] = (),
                 telemetry: Telemetry | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._quotas, self._enforcer, self._breakers = quotas, enforcer, breakers
        self._usage, self._flags = usage, flags
        self.steps: list[Step] = list(steps)  # ordered; other pillars' helpers append theirs at assembly
        self._telemetry: Telemetry = telemetry or NoTelemetry()
        self._rng = rng or random.Random()
        self._clock = clock  # failover's time budget (tests inject one; breakers carry their own)
        # The stages, picked once: without telemetry they run bare — no span entered and left five times per call
        # (~15 of a `tools/call`'s ~390 Python calls, each a few µs on a low-rate call's cold caches).
        self._traced = type(self._telemetry) is not NoTelemetry
        self._resolve: Callable[[Exchange], Awaitable[None]] = \
            self._resolve_traced if self._traced else self._resolve_now
        self._admit = self._admit_traced if self._traced else self._admit_now
        self._route = self._route_traced if self._traced else self._route_now
        self._send: Callable[[Exchange, Any], Awaitable[Any]] = \
            self._send_traced if self._traced else self._send_now

    # `run` and `run_whole` hand back `_run`'s coroutine: plain functions, no await level of their own (which each
    # resumption of the call would pass through again).

    def run(self, x: Exchange) -> Coroutine[Any, Any, Response]:
        """The call as an HTTP response (streamed when the relay streams)."""
        return self._run(x, self._respond)

    def run_whole(self, x: Exchange) -> Coroutine[Any, Any, Relayed]:
        """The call's whole answer (status and the body after every step) for a caller that answers in its own
        protocol (the MCP transport wraps it in JSON-RPC): no HTTP response object and none of the gateway's
        answer headers are built only to be dropped. The spec must not stream."""
        return self._run(x, self._whole)

    async def _run(self, x: Exchange, respond: Callable[[Exchange, Relayed], _R]) -> _R:
        if x.correlation_id is None:
            x.correlation_id = correlation_of(x.headers, x.trace_carrier)
        self._telemetry.call_started(x)
        streaming = False
        try:
            await self._resolve(x)
            relayed = await self._before(x) if self.steps else None
            if relayed is None:
                relayed = await self._forward(x)
            if self.steps:
                relayed = await self._answered(x, self._after(x, relayed))
            response = respond(x, relayed)
            streaming = x.streamed
            return response
        except GatewayError as exc:
            x.status, x.error_code = exc.status, exc.code
            raise
        except asyncio.CancelledError:
            x.status, x.error_code = 499, "client_closed_request"  # the caller went away (nginx's 499)
            raise
        except BaseException:
            x.status, x.error_code = 500, "internal_error"
            raise
        finally:
            # A stream releases and logs when it ends (`_streamed`); a whole answer right after it is written, when
            # the request has an after-send scope (shared/web/after_send.py: off the caller's latency), else now.
            if not streaming and not defer(lambda: self._finish(x)):
                self._finish(x)

    # ---- stages, in order

    def _resolve_now(self, x: Exchange) -> Awaitable[None]:
        return self.spec.resolve(x)  # `self.spec` read per call: tests and assembly may replace the spec

    async def _resolve_traced(self, x: Exchange) -> None:
        with self._telemetry.span(x, "resolve"):
            await self.spec.resolve(x)

    async def _before(self, x: Exchange) -> Relayed | None:
        for step in self.steps:
            if self._traced:
                with self._telemetry.span(x, step.name):
                    relayed = await step.before(x)
            else:
                relayed = await step.before(x)
            if relayed is not None:
                return relayed  # short-circuit (a cache hit): nothing admitted, nothing sent
        return None

    async def _forward(self, x: Exchange) -> Relayed:
        project = x.principal.project  # loaded by the data-plane guard; else read through the flag cache
        if project is None:
            project = await self._flags.project(x.principal.project_id or "")
        x.log_payloads = project is not None and project.log_payloads
        await self._admit(x)
        await self._route(x)
        return self.spec.relay(x)

    async def _admit_traced(self, x: Exchange) -> None:
        with self._telemetry.span(x, "admit"):
            await self._admit_now(x)

    async def _admit_now(self, x: Exchange) -> None:
        x.estimate = est = await self.spec.estimate(x)
        p = x.principal
        quotas = await self._quotas.for_call(p.project_id or "", p.key_id, x.pillar, x.resource)
        x.admission = await self._enforcer.admit(
            quotas, tokens=est.tokens, cost_micros=est.cost_micros, extra_tokens=est.extra_tokens,
            extra_cost_micros=est.extra_cost_micros)

    async def _route_traced(self, x: Exchange) -> None:
        with self._telemetry.span(x, "route"):
            await self._route_now(x)

    async def _route_now(self, x: Exchange) -> None:
        assert x.routing is not None
        prefix = f"{x.principal.project_id}/{x.resource}/"
        try:
            x.outcome = await call_with_failover(
                x.targets, lambda t: self._send(x, t), breakers=self._breakers, key=lambda t: prefix + t.id,
                routing=x.routing, rng=self._rng, clock=self._clock, admit=lambda t: self._reserve(x, prefix, t),
                noun=self.spec.noun)
        except GatewayError as exc:
            x.failed_attempts = list((exc.details or {}).get("attempts", [])) \
                if isinstance(exc.details, dict) else []
            raise
        x.overhead_ms = (time.perf_counter() - x.started) * 1000 - sum(a.ms for a in x.outcome.attempts)

    def _send_now(self, x: Exchange, target: Any) -> Awaitable[Any]:
        return self.spec.send(x, target)

    async def _send_traced(self, x: Exchange, target: Any) -> Any:
        with self._telemetry.span(x, "attempt", target=target.id):
            return await self.spec.send(x, target)

    async def _reserve(self, x: Exchange, prefix: str, target: Any) -> bool:
        capacity = self.spec.capacity(target)
        if capacity is None or target.id in x.reserved:  # a retry on the same target reuses its hold
            return True
        assert x.estimate is not None
        est = x.estimate
        reserved = await self._enforcer.reserve_backend(prefix + target.id, capacity, est.tokens, est.extra_tokens)
        if reserved is not None:
            x.reserved[target.id] = reserved
        return reserved is not None

    def _after(self, x: Exchange, relayed: Relayed) -> Relayed:
        for step in reversed(self.steps):
            relayed = step.after(x, relayed)
        return relayed

    async def _answered(self, x: Exchange, relayed: Relayed) -> Relayed:
        """Steps' optional async `answered` hook, after every `after`, on the answer before it leaves: what must
        wait on the network (a remote output guardrail on a whole body); a stream is wrapped in `after` instead."""
        for step in reversed(self.steps):
            answered = getattr(step, "answered", None)
            if answered is not None:
                relayed = await answered(x, relayed)
        return relayed

    def _whole(self, x: Exchange, relayed: Relayed) -> Relayed:
        if relayed.chunks is not None:
            raise TypeError(f"{self.spec.noun}: run_whole needs a whole answer, the relay streamed")
        self._status(x, relayed)
        return relayed

    def _respond(self, x: Exchange, relayed: Relayed) -> Response:
        headers = self._answer_headers(x, relayed)
        if relayed.chunks is None:
            return Response(relayed.body, status_code=relayed.status, headers=headers, media_type=relayed.media_type)
        x.streamed = True
        return StreamingResponse(self._streamed(x, relayed.chunks), status_code=relayed.status, headers=headers,
                                 media_type=relayed.media_type)

    def _answer_headers(self, x: Exchange, relayed: Relayed) -> dict[str, str]:
        """The gateway's answer headers (quota state, request id, backend, overhead), and the call's status."""
        headers = relayed.headers
        if x.admission is not None:
            headers.update(x.admission.headers)
        headers["x-request-id"] = x.request_id
        outcome = x.outcome
        if outcome is not None:
            headers["x-gateway-backend"] = outcome.target.id
            headers["x-gateway-overhead-ms"] = f"{x.overhead_ms:.2f}"
            if outcome.retries:
                headers["x-gateway-retries"] = str(outcome.retries)
        self._status(x, relayed)
        return headers

    @staticmethod
    def _status(x: Exchange, relayed: Relayed) -> None:
        x.status = relayed.status
        if relayed.status >= 300 and x.outcome is not None and x.error_code is None:  # a spec may name it
            x.error_code = "upstream_error"

    async def _streamed(self, x: Exchange, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:  # the run's `finally`, handed over: the stream ended, broke, or the client went away
            try:
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    await aclose()  # the spec's generator closes its upstream response in its own finally
            finally:
                self._finish(x)

    # ---- the one place that releases and logs

    def _finish(self, x: Exchange) -> None:
        finished = getattr(self.spec, "finished", None)
        if finished is not None:  # optional spec hook: what the spec itself held for the call (in-flight slots)
            finished(x)
        usage = None
        if x.outcome is not None:
            usage = self.spec.usage(x)
            self._settle(x, usage.tokens, usage.cost_micros)
        elif x.admission is not None or x.reserved:
            self._release(x)
        if x.entity is not None:  # a call that named no callable resource is not a governed call: no row
            record = self._record(x, usage)
            self._usage.record(record)
        else:
            record = None
        self._telemetry.call_finished(x, record)

    def _settle(self, x: Exchange, tokens: int, cost_micros: int) -> None:
        if x.admission is not None:
            self._enforcer.settle(x.admission, tokens=tokens, cost_micros=cost_micros)
        served = x.outcome.target.id if x.outcome is not None and x.outcome.response.status_code < 300 else None
        for target_id, (counter, taken) in x.reserved.items():
            # the target that answered used real tokens; the ones that failed used none
            self._enforcer.reconcile(counter, taken, tokens if target_id == served else 0)

    def _release(self, x: Exchange) -> None:
        if x.admission is not None:
            self._enforcer.release(x.admission)
        for counter, taken in x.reserved.values():
            counter.give_back(taken)
        x.reserved.clear()

    def _record(self, x: Exchange, usage: Any) -> UsageRecord:
        p, outcome = x.principal, x.outcome
        tried = [a.__dict__ for a in outcome.attempts] if outcome is not None else x.failed_attempts
        attributes = {**(usage.attributes if usage is not None else {}), **x.attributes}
        if x.correlation_id is not None:
            attributes["correlation_id"] = x.correlation_id
        return UsageRecord(
            request_id=x.request_id, project_id=p.project_id or "", key_id=p.key_id, key_prefix=p.key_prefix,
            pillar=x.pillar.value, operation=x.operation, resource=x.resource,
            target=outcome.target.id if outcome is not None else None, status=x.status, error_code=x.error_code,
            cost_usd=usage.cost_micros / 1e6 if usage is not None else None,
            latency_ms=(time.perf_counter() - x.started) * 1000, overhead_ms=max(0.0, x.overhead_ms),
            retries=max(0, len(tried) - 1), failovers=len({a["target"] for a in tried}) - 1 if tried else 0,
            attempts=tried, streamed=x.streamed,
            attributes=attributes,
            prompt=x.payload_in, completion=x.payload_out, guardrails=x.guardrails)
