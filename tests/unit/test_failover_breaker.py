"""Every way out of an attempt settles the half-open probe (issue 6 item 3), and `503 no_backend_available`
carries the real wait in Retry-After (item 13). Real OpenAIHttp over httpx.MockTransport, injected clock."""
from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import orjson
import pytest

from shared.config import Settings
from shared.pillars.models.domain import Backend
from shared.domain.routing import BreakerPolicy, RetryPolicy, RoutingPolicy
from shared.errors import DependencyUnavailable
from shared.routing.breaker import Breakers
from shared.routing.failover import (MAX_RETRY_AFTER, NoBackendAvailable, UpstreamUnavailable, call_with_failover,
                                     retry_after_header)
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.openai_http import OpenAIHttp

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ROUTING = RoutingPolicy(retry=RetryPolicy(max_attempts=1, max_cool_down_seconds=3600),
                        breaker=BreakerPolicy(failure_count=1, trip_seconds=10, min_calls=100))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class NoToken:
    async def get_token(self, scope: str) -> Any:
        raise RuntimeError("managed identity endpoint unreachable")


def backend(bid: str = "a", kind: str = "openai_compatible") -> Backend:
    extra = {"api_version": "2024-10-21"} if kind == "azure_openai" else {}
    return Backend(id=bid, kind=kind, endpoint="https://upstream.example/v1", deployment="d", **extra)


def upstream(handler) -> OpenAIHttp:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIHttp(client, UpstreamCredentials(Settings(), TokenCache(lambda: NoToken())))


def healthy(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"choices": [], "usage": {"total_tokens": 1}})


async def call(http: OpenAIHttp, b: Backend, breakers: Breakers, clock: Clock, body: dict = BODY,
               routing: RoutingPolicy = ROUTING, backends: list[Backend] | None = None):
    return await call_with_failover(backends or [b], lambda x: http.send(x, "chat", body, {}, stream=False),
                                    breakers=breakers, key=lambda x: x.id, routing=routing,
                                    rng=random.Random(1), clock=clock)


def half_open(breakers: Breakers, clock: Clock, key: str = "a") -> None:
    breakers.record(key, ROUTING.breaker, failed=True)
    assert breakers.state(key, ROUTING.breaker) == "open"
    clock.t += ROUTING.breaker.trip_seconds
    assert breakers.state(key, ROUTING.breaker) == "half_open" and breakers.available(key, ROUTING.breaker)


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


async def _unserialisable(b: Backend, breakers: Breakers, clock: Clock) -> None:
    body = {**BODY, "metadata": nested(300)}  # orjson refuses more than 255 levels
    with pytest.raises(orjson.JSONEncodeError):
        await call(upstream(healthy), b, breakers, clock, body)


async def _credentials_unavailable(b: Backend, breakers: Breakers, clock: Clock) -> None:
    with pytest.raises(DependencyUnavailable):
        await call(upstream(healthy), backend("a", "azure_openai"), breakers, clock)


async def _cancelled(b: Backend, breakers: Breakers, clock: Clock) -> None:
    arrived = asyncio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(call(upstream(never), b, breakers, clock))
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _unexpected_bug(b: Backend, breakers: Breakers, clock: Clock) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise KeyError("a bug anywhere under send()")

    with pytest.raises(KeyError):
        await call(upstream(broken), b, breakers, clock)


@pytest.mark.parametrize("path", [_unserialisable, _credentials_unavailable, _cancelled, _unexpected_bug])
async def test_every_way_out_of_a_half_open_probe_settles_it(path):
    clock, b = Clock(), backend()
    breakers = Breakers(clock)
    half_open(breakers, clock)
    await path(b, breakers, clock)
    # the probe slot is free again: the backend is not stuck answering 503 no_backend_available
    assert breakers.state("a", ROUTING.breaker) == "half_open" and breakers.available("a", ROUTING.breaker)
    outcome = await call(upstream(healthy), b, breakers, clock)  # the next call is the probe, and it succeeds
    assert outcome.response.status_code == 200 and breakers.state("a", ROUTING.breaker) == "closed"


async def test_upstream_failures_still_decide_the_probe():
    clock = Clock()
    breakers = Breakers(clock)
    half_open(breakers, clock)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UpstreamUnavailable):
        await call(upstream(refused), backend(), breakers, clock)
    assert breakers.state("a", ROUTING.breaker) == "open"  # a real failure re-opens, as before


async def test_only_the_probe_holder_frees_the_probe():
    clock = Clock()
    breakers = Breakers(clock)
    half_open(breakers, clock)
    assert breakers.begin("a") is True and not breakers.available("a", ROUTING.breaker)
    breakers.release("a", probe=False)  # an older attempt (begun while closed) ends without a verdict
    assert not breakers.available("a", ROUTING.breaker)  # the probe in flight keeps its slot
    breakers.release("a", probe=True)
    assert breakers.available("a", ROUTING.breaker)


async def test_no_backend_available_reports_the_upstreams_retry_after():
    clock = Clock()
    breakers = Breakers(clock)
    routing = RoutingPolicy(retry=RetryPolicy(max_attempts=1))

    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"retry-after": "30"}, json={"error": {"message": "slow down"}})

    http = upstream(busy)
    first = await call(http, backend(), breakers, clock, routing=routing)
    assert first.response.status_code == 429  # the upstream's own answer, the backend now parked for 30 s
    clock.t += 0.4
    with pytest.raises(NoBackendAvailable) as err:
        await call(http, backend(), breakers, clock, routing=routing)
    assert err.value.headers["retry-after"] == "30"  # 29.6 s left, rounded up — not "1"
    clock.t += 29
    with pytest.raises(NoBackendAvailable) as err:
        await call(http, backend(), breakers, clock, routing=routing)
    assert err.value.headers["retry-after"] == "1"


async def test_no_backend_available_waits_for_the_soonest_backend():
    clock = Clock()
    breakers = Breakers(clock)
    routing = RoutingPolicy(breaker=BreakerPolicy(failure_count=1, trip_seconds=45, min_calls=100))
    breakers.record("a", routing.breaker, failed=True)  # breaker open: half-open in 45 s
    breakers.cool_down("b", 120)  # Retry-After from the upstream: 120 s
    clock.t += 5
    with pytest.raises(NoBackendAvailable) as err:
        await call(upstream(healthy), backend(), breakers, clock, routing=routing,
                   backends=[backend("a"), backend("b")])
    assert err.value.headers["retry-after"] == "40"


def test_retry_after_header_is_bounded():
    assert retry_after_header(0) == 1 and retry_after_header(0.2) == 1 and retry_after_header(29.01) == 30
    assert retry_after_header(10_000) == MAX_RETRY_AFTER == 300
    assert retry_after_header(float("inf")) == MAX_RETRY_AFTER
