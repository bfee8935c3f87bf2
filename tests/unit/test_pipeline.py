"""The governance pipeline in process, through a toy second pillar that imports nothing from the models pillar:
quota admission, failover, breaker, release on every path, one log row per call, steps and telemetry hooks.
Memory registry and counters, the real UsageLog over a memory sink, httpx.MockTransport, injected clocks."""
from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from starlette.responses import StreamingResponse

from shared.auth.principal import Principal
from shared.domain.base import Pillar
from shared.domain.lifecycle import Lifecycle, serves
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota, QuotaLimits
from shared.domain.routing import BreakerPolicy, RetryPolicy, RoutingPolicy
from shared.errors import (BadRequest, GatewayError, RateLimited, ResourceNotAllowed, ResourceNotFound,
                           UpstreamUnavailable)
from shared.flags.service import FlagService
from shared.pipeline import Estimate, Exchange, PassStep, Pipeline, Relayed, Usage
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog
from tests.support.processes import REPO

PID = "p1"
NOW = datetime(2026, 1, 1, 12, 0, 5, tzinfo=timezone.utc)


# ---- a toy "echo tools" pillar: a tool served by replicas; its spec is all it writes

@dataclass(frozen=True)
class Replica:
    id: str
    url: str
    priority: int = 0
    weight: int = 1


@dataclass
class Tool:
    name: str
    replicas: list[Replica]
    lifecycle: Lifecycle = Lifecycle.published


class ToolNotFound(ResourceNotFound):
    code = "tool_not_found"


class ToolNotAllowed(ResourceNotAllowed):
    code = "tool_not_allowed"


ROUTING = RoutingPolicy(retry=RetryPolicy(max_attempts=3, retry_on_status=[503]),
                        breaker=BreakerPolicy(failure_count=1, trip_seconds=30, min_calls=100))


class EchoToolsSpec:
    pillar = Pillar.tools
    noun = "tool server"

    def __init__(self, tools: dict[str, Tool], http: httpx.AsyncClient) -> None:
        self.tools, self.http = tools, http

    async def resolve(self, x: Exchange) -> None:
        tool = self.tools.get(x.resource)
        if tool is None or not serves(tool.lifecycle):
            raise ToolNotFound(f"No tool '{x.resource}'.")
        if not x.principal.may_use(Pillar.tools, x.resource):
            raise ToolNotAllowed(f"This key may not call '{x.resource}'.")
        x.entity, x.targets, x.routing = tool, tool.replicas, ROUTING

    async def estimate(self, x: Exchange) -> Estimate:
        return Estimate()  # tools count requests only

    def capacity(self, target: Replica) -> int | None:
        return None

    async def send(self, x: Exchange, target: Replica) -> httpx.Response:
        request = self.http.build_request("POST", target.url, json=x.request)
        return await self.http.send(request, stream=x.stream)

    def relay(self, x: Exchange) -> Relayed:
        up = x.outcome.response
        if not x.stream:
            return Relayed(up.status_code, {}, body=up.content)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in up.aiter_raw():
                    x.scratch["bytes"] = x.scratch.get("bytes", 0) + len(chunk)
                    yield chunk
            finally:
                x.scratch["upstream_closed"] = True
                await up.aclose()

        return Relayed(up.status_code, {}, chunks=chunks(), media_type="text/plain")

    def usage(self, x: Exchange) -> Usage:
        out = x.scratch.get("bytes", len(x.outcome.response.content) if not x.stream else 0)
        return Usage(attributes={"tool": x.resource, "bytes_out": out})


# ---- harness

class Upstreams:
    """Replica behaviour by host: 'ok', 'busy' (503), 'down' (connect error), 'stream'."""

    def __init__(self) -> None:
        self.mode: dict[str, str] = {}
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.calls.append(host)
        mode = self.mode.get(host, "ok")
        if mode == "down":
            raise httpx.ConnectError("refused", request=request)
        if mode == "busy":
            return httpx.Response(503, json={"error": "busy"})
        if mode == "stream":
            return httpx.Response(200, content=_slow_stream())
        return httpx.Response(200, json={"echo": request.read().decode(), "by": host})


async def _slow_stream() -> AsyncIterator[bytes]:
    for i in range(5):
        yield f"part{i};".encode()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def call_started(self, x: Exchange) -> None:
        self.events.append(("call", x.request_id))

    def span(self, x: Exchange, name: str, **attrs: Any):
        self.events.append(("span", name, *map(str, attrs.values())))
        from contextlib import nullcontext
        return nullcontext()

    def call_finished(self, x: Exchange, record: Any) -> None:
        self.events.append(("end", x.request_id, str(record.status) if record else "-"))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def world():
    store = MemoryDocumentStore()
    quotas = Repository(store, Quota)
    upstreams = Upstreams()
    http = httpx.AsyncClient(transport=httpx.MockTransport(upstreams))
    tools = {"echo": Tool("echo", [Replica("a", "http://a/", priority=0), Replica("b", "http://b/", priority=1)])}
    sink = MemoryUsageSink()
    usage = UsageLog(sink, flush_seconds=60)
    clock = Clock()
    telemetry = Recorder()
    flags = FlagService(Repository(store, Project), Repository(store, GlobalFlags), ttl=60, max_stale=600)
    enforcer = QuotaEnforcer(MemoryCounterStore(), clock=lambda: NOW)
    pipeline = Pipeline(EchoToolsSpec(tools, http), quotas=QuotaBook(quotas, ttl=60, max_stale=600),
                        enforcer=enforcer, breakers=Breakers(clock=clock), usage=usage, flags=flags,
                        telemetry=telemetry, clock=clock)

    class W:
        pass

    w = W()
    w.__dict__.update(pipeline=pipeline, quotas=quotas, upstreams=upstreams, tools=tools, sink=sink, usage=usage,
                      clock=clock, telemetry=telemetry, enforcer=enforcer)
    yield w
    await usage.close()
    await http.aclose()


def principal(scopes: dict[Pillar, frozenset[str]] | None = None) -> Principal:
    return Principal(kind="virtual_key", subject="k1", project_id=PID, key_id="k1", key_prefix="sk-gw-abc",
                     scopes=scopes or {})


_n = 0


def exchange(tool: str = "echo", *, stream: bool = False, who: Principal | None = None) -> Exchange:
    global _n
    _n += 1
    return Exchange(Pillar.tools, "tools/call", who or principal(), f"req-{_n}", {"args": {"q": 1}}, {},
                    time.perf_counter(), stream=stream, resource=tool)


async def rows(w) -> list:
    await w.usage.flush()
    return w.sink.records


async def set_quota(w, scope: str, target: str, **limits: int) -> None:
    await w.quotas.create(Quota(id=Quota.doc_id(scope, target), project_id=PID, scope=scope, target=target,
                                limits=QuotaLimits(**limits)))


# ---- tests

def test_the_shared_gateway_imports_no_pillar_code():
    """Layering: only the composition root (services.py) may reach into shared/pillars/."""
    offenders = []
    for path in (REPO / "shared").rglob("*.py"):
        rel = path.relative_to(REPO / "shared")
        if rel.parts[0] == "pillars" or rel.name == "services.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and "pillars" in (node.module or "").split("."):
                offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


async def test_toy_pillar_quota_failover_and_log(world):
    w = world
    await set_quota(w, "tool", "echo", requests_per_minute=2)  # scoped by (tools, echo)
    w.upstreams.mode["a"] = "busy"
    first = await w.pipeline.run(exchange())
    assert first.status_code == 200 and first.headers["x-gateway-backend"] == "b"
    assert first.headers["x-gateway-retries"] == "1" and first.headers["x-ratelimit-remaining-requests"] == "1"
    assert b'"by":"b"' in first.body
    second = await w.pipeline.run(exchange())  # a's breaker is open (failure_count=1): b straight away
    assert second.status_code == 200 and "x-gateway-retries" not in second.headers
    assert w.upstreams.calls == ["a", "b", "b"]
    with pytest.raises(RateLimited):
        await w.pipeline.run(exchange())
    log = await rows(w)
    assert [(r.pillar, r.resource, r.target, r.status, r.error_code) for r in log] == [
        ("tools", "echo", "b", 200, None), ("tools", "echo", "b", 200, None),
        ("tools", "echo", None, 429, "rate_limit_exceeded")]
    assert log[0].retries == 1 and log[0].failovers == 1 and [a["target"] for a in log[0].attempts] == ["a", "b"]
    assert log[0].attributes == {"tool": "echo", "bytes_out": len(first.body)}
    assert log[0].to_entity()["bytes_out"] == len(first.body)  # attributes are columns of their own


async def test_a_quota_of_another_resource_or_pillar_does_not_apply(world):
    w = world
    await set_quota(w, "model", "echo", requests_per_minute=1)  # (models, echo): not this pillar's resource
    for _ in range(3):
        assert (await w.pipeline.run(exchange())).status_code == 200


async def test_every_path_releases_what_it_took(world):
    w = world
    await set_quota(w, "key", "k1", requests_per_minute=1)
    w.upstreams.mode.update(a="down", b="down")
    with pytest.raises(UpstreamUnavailable) as err:
        await w.pipeline.run(exchange())
    assert err.value.message == "The tool server could not be reached (ConnectError)."
    w.clock.t += 31  # breakers half-open again
    w.upstreams.mode.update(a="ok", b="ok")
    ok = await w.pipeline.run(exchange())  # the failed call handed its one request back
    assert ok.status_code == 200
    log = await rows(w)
    assert (log[0].status, log[0].error_code, log[0].target) == (502, "upstream_unavailable", None)
    assert [a["target"] for a in log[0].attempts] == ["a", "b"] and log[0].failovers == 1


async def test_a_cancelled_call_releases_and_logs(world):
    w = world
    await set_quota(w, "key", "k1", requests_per_minute=1)
    gate = asyncio.Event()
    spec = w.pipeline.spec
    real_send = spec.send

    async def hanging(x, target):
        gate.set()
        await asyncio.sleep(3600)

    spec.send = hanging
    task = asyncio.create_task(w.pipeline.run(exchange()))
    await gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    spec.send = real_send
    assert (await w.pipeline.run(exchange())).status_code == 200
    log = await rows(w)
    assert (log[0].status, log[0].error_code) == (499, "client_closed_request") and log[1].status == 200


async def test_resolution_refusals_are_not_logged(world):
    w = world
    w.tools["old"] = Tool("old", [Replica("a", "http://a/")], lifecycle=Lifecycle.retired)
    with pytest.raises(ToolNotFound):
        await w.pipeline.run(exchange("old"))
    with pytest.raises(ToolNotAllowed):
        await w.pipeline.run(exchange(who=principal({Pillar.tools: frozenset({"other"})})))
    assert await rows(w) == [] and w.upstreams.calls == []


async def test_a_stream_logs_once_when_it_ends_and_when_the_client_leaves(world):
    w = world
    await set_quota(w, "key", "k1", requests_per_minute=1)
    w.upstreams.mode["a"] = "stream"
    x = exchange(stream=True)
    response = await w.pipeline.run(x)
    assert isinstance(response, StreamingResponse) and await rows(w) == []  # not before the stream ends
    body = response.body_iterator
    first = await body.__anext__()
    await body.aclose()  # the client went away after one chunk
    assert first == b"part0;" and x.scratch["upstream_closed"] is True
    log = await rows(w)
    assert len(log) == 1 and log[0].streamed and log[0].attributes["bytes_out"] == len(first)
    with pytest.raises(RateLimited):  # a call that reached the upstream is settled (charged), not released
        await w.pipeline.run(exchange())


async def test_steps_short_circuit_rewrite_refuse_and_wrap(world):
    w = world

    class Cache(PassStep):
        name = "cache"

        async def before(self, x):
            if x.request.get("cached"):
                return Relayed(200, {}, body=b"from-cache")
            return None

    class Redact(PassStep):
        name = "redact"

        async def before(self, x):
            if x.request.get("secret"):
                x.request = {**x.request, "secret": "***"}
            if x.request.get("evil"):
                raise BadRequest("Blocked by a guardrail.", code="guardrail_blocked")
            return None

    class Shout(PassStep):
        name = "shout"

        def after(self, x, relayed):
            if relayed.body is not None:
                relayed.body = relayed.body.upper()
            return relayed

    w.pipeline.steps.extend([Cache(), Redact(), Shout()])
    hit = exchange()
    hit.request = {"cached": True}
    r = await w.pipeline.run(hit)
    assert r.body == b"FROM-CACHE" and w.upstreams.calls == []
    red = exchange()
    red.request = {"secret": "hunter2"}
    r = await w.pipeline.run(red)
    assert b"HUNTER2" not in r.body and b"***" in r.body
    bad = exchange()
    bad.request = {"evil": True}
    with pytest.raises(GatewayError):
        await w.pipeline.run(bad)
    log = await rows(w)
    assert [(r.status, r.target, r.error_code) for r in log] == [(200, None, None), (200, "a", None),
                                                                 (400, None, "guardrail_blocked")]


async def test_telemetry_sees_one_call_with_its_stages_and_attempts(world):
    w = world
    w.upstreams.mode["a"] = "busy"
    x = exchange()
    await w.pipeline.run(x)
    assert w.telemetry.events == [("call", x.request_id), ("span", "resolve"), ("span", "admit"),
                                  ("span", "route"), ("span", "attempt", "a"), ("span", "attempt", "b"),
                                  ("end", x.request_id, "200")]


async def test_an_async_answered_hook_can_refuse_an_answer_after_the_upstream_answered(world):
    w = world

    class RemoteCheck(PassStep):
        name = "remote"

        async def answered(self, x, relayed):
            await asyncio.sleep(0)  # a network call
            if relayed.body is not None and b"bad" in relayed.body.lower():
                raise BadRequest("Refused on output.", code="guardrail_blocked")
            relayed.headers["x-checked"] = "yes"
            return relayed

    w.pipeline.steps.append(RemoteCheck())
    good = await w.pipeline.run(exchange())
    assert good.headers["x-checked"] == "yes"
    bad = exchange()
    bad.request = {"args": {"q": "bad"}}  # the echo upstream answers with the request
    with pytest.raises(GatewayError):
        await w.pipeline.run(bad)
    log = await rows(w)
    assert [(r.status, r.target, r.error_code) for r in log] == [(200, "a", None), (400, "a", "guardrail_blocked")]
