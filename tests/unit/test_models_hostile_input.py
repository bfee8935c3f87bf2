"""Hostile or careless input on both planes and from upstreams: bounded JSON depth, strict query numbers, strictly
typed OpenAI fields, distrusted upstream usage — and a call that fails after admission always hands its quota back
and is logged (the pipeline's one finally). The models pillar runs on the real pipeline in process on real
components (memory stores, a real UsageLog, httpx.MockTransport as the upstream)."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from shared.auth.principal import Principal
from shared.config import Settings
from shared.domain.projects import GlobalFlags, Project
from shared.domain.quotas import Quota, QuotaLimits
from shared.errors import (GatewayError, InvalidQuery, InvalidRequest, JsonTooDeep, RouteNotFound,
                           UpstreamBadResponse)
from shared.flags.service import FlagService
from shared.pillars.models.catalog import ModelCatalog
from shared.pillars.models.contracts import exchange, read_call, wants_stream
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.domain import Backend, Model, ModelSpec
from shared.pillars.models.openai_http import OpenAIHttp
from shared.pillars.models.spec import ModelsSpec
from shared.pillars.models.sse import SseRelay
from shared.pillars.models.tokens import TokenEstimator
from shared.pillars.models.usage import MAX_REPORTED_TOKENS, Usage, read_usage
from shared.pipeline import Pipeline
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository
from shared.usage.log import MemoryUsageSink, UsageLog
from shared.web.inputs import MAX_JSON_DEPTH, json_depth_exceeds, query_int, read_body, read_json


def nested(depth: int, inner: str = "1") -> bytes:
    return ("[" * depth + inner + "]" * depth).encode()


# ------------------------------------------------------------------------------------------------ JSON depth


def test_json_depth_bound_is_exact_and_ignores_brackets_in_strings():
    assert not json_depth_exceeds(nested(MAX_JSON_DEPTH))
    assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1))
    assert json_depth_exceeds(b'{"a":' * 300 + b"1" + b"}" * 300)
    mixed = ('{"a":[' * 40 + "1" + "]}" * 40).encode()  # 80 levels of alternating objects and arrays
    assert json_depth_exceeds(mixed)
    # brackets inside strings (escaped quotes too) do not nest; many siblings are not depth
    assert not json_depth_exceeds(json.dumps({"s": "[" * 5000, "t": 'x\\"[[[' * 100}).encode())
    assert not json_depth_exceeds(json.dumps([[i] for i in range(5000)]).encode())
    assert not json_depth_exceeds(json.dumps({"messages": [{"role": "user", "content": "[{" * 9000}]}).encode())


def test_depth_check_is_cheap_on_a_large_hostile_body():
    body = nested(120_000)  # ~240 KB of brackets: the worst case under the data-plane body limit
    t = time.perf_counter()
    assert json_depth_exceeds(body)
    assert time.perf_counter() - t < 0.5


# ------------------------------------------------------------------------------------------------ query numbers


def _request(query: str = "", headers: dict[str, str] | None = None, body: bytes = b"") -> Request:
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": query.encode(),
             "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


@pytest.mark.parametrize("raw", ["%C2%B9", "%D9%A3", "1_0", "+1", "-1", "%201", "1.0", "", "0x1", "9" * 40])
def test_query_int_accepts_ascii_digits_only(raw):
    with pytest.raises(InvalidQuery) as err:
        query_int(_request(f"limit={raw}"), "limit", 50, 1, 200)
    assert err.value.status == 400 and err.value.details[0]["field"] == "limit"


def test_query_int_in_range():
    assert query_int(_request("limit=007"), "limit", 50, 1, 200) == 7
    assert query_int(_request(""), "limit", 50, 1, 200) == 50


async def test_non_ascii_content_length_is_ignored_not_a_crash():
    assert await read_body(_request(headers={"content-length": "¹"}, body=b"{}"), 100) == b"{}"


# ------------------------------------------------------------------------------------------------ strict contracts


@pytest.mark.parametrize("field,value", [
    ("stream", "false"), ("stream", "true"), ("stream", 0), ("stream", 1), ("max_tokens", "5"),
    ("max_tokens", True), ("max_tokens", 1.5), ("max_tokens", 2**31), ("max_tokens", 0),
    ("max_completion_tokens", "10"), ("n", "2"), ("n", 2.0), ("stream_options", "yes"),
    ("stream_options", {"include_usage": "true"}), ("model", 5), ("model", ["m"]), ("messages", {"role": "user"}),
])
def test_chat_fields_the_gateway_acts_on_are_strict(field, value):
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(InvalidRequest) as err:
        read_call("chat", json.dumps(body).encode())
    assert err.value.status == 400 and err.value.type == "invalid_request_error"
    assert err.value.details[0]["field"].split(".")[0] == field and field in err.value.message


def test_validated_stream_flag_and_passthrough():
    body, parsed = read_call("chat", b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false,'
                                     b'"new_param":{"x":1}}')
    assert wants_stream("chat", parsed) is False and body["new_param"] == {"x": 1}
    _, parsed = read_call("chat", b'{"messages":[{"role":"user","content":"hi"}],"stream":true}')
    assert wants_stream("chat", parsed) is True
    assert wants_stream("embeddings", read_call("embeddings", b'{"input":"x","stream":true}')[1]) is False


def test_deep_data_plane_body_is_refused_before_parsing():
    for depth in (MAX_JSON_DEPTH + 1, 255, 300, 1023, 5000):
        raw = b'{"model":"m","messages":[{"role":"user","content":"x"}],"meta":' + nested(depth) + b"}"
        with pytest.raises(JsonTooDeep) as err:
            read_call("chat", raw)
        assert err.value.status == 400 and err.value.details == {"max_depth": MAX_JSON_DEPTH}


# ------------------------------------------------------------------------------------------------ upstream usage


@pytest.mark.parametrize("usage", [
    "12", None, [], {}, {"prompt_tokens": "3", "completion_tokens": 1}, {"prompt_tokens": -1},
    {"prompt_tokens": 1.5, "completion_tokens": 1}, {"prompt_tokens": True}, {"prompt_tokens": 10**30},
    {"prompt_tokens": float("inf")}, {"prompt_tokens": {"n": 1}}, {"prompt_tokens": 1, "completion_tokens": [1]},
    {"prompt_tokens": MAX_REPORTED_TOKENS + 1},
])
def test_untrustworthy_usage_is_no_usage(usage):
    assert read_usage(usage) is None


def test_usage_read():
    assert read_usage({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}) == Usage(3, 4)
    assert read_usage({"prompt_tokens": 5, "total_tokens": 5}) == Usage(5, 0)  # embeddings


def test_sse_relay_tolerates_junk_shapes():
    relay = SseRelay(strip_usage_chunk=False, collect_content=True)
    events = [{"choices": "abc"}, {"choices": [1, None, {"delta": "x"}, {"delta": {"content": 5}}]},
              {"choices": [{"delta": {"content": "ok"}}], "usage": "junk"}, [1, 2]]
    out = b"".join(relay.feed(b"data: " + json.dumps(e).encode() + b"\n\n") for e in events)
    assert out.count(b"data: ") == 4 and relay.tally.content == ["ok"] and read_usage(relay.tally.usage) is None


# ------------------------------------------------------------------------------------------------ the pipeline


class Harness:
    """The models pillar's pipeline on real in-memory components; `upstream` answers each request sent to the model
    backend."""

    def __init__(self, upstream: Callable[[httpx.Request], httpx.Response], *, log_payloads: bool = False,
                 limits: QuotaLimits | None = None) -> None:
        self.store = MemoryDocumentStore()
        self.sink = MemoryUsageSink()
        self.usage = UsageLog(self.sink, flush_seconds=0.01)
        self.sent: list[httpx.Request] = []
        self.log_payloads, self.limits = log_payloads, limits

        def transport(request: httpx.Request) -> httpx.Response:
            self.sent.append(request)
            return upstream(request)

        self.http = httpx.AsyncClient(transport=httpx.MockTransport(transport))
        models, quotas = Repository(self.store, Model), Repository(self.store, Quota)
        self.projects = Repository(self.store, Project)
        self.counters = MemoryCounterStore()
        enforcer = QuotaEnforcer(self.counters, lease_fraction=0.0)
        spec = ModelsSpec(catalog=ModelCatalog(models, ttl=60, max_stale=60),
                          http=OpenAIHttp(self.http, UpstreamCredentials(Settings(), TokenCache(lambda: None))),
                          tokens=TokenEstimator(), enforcer=enforcer)
        self.pipeline = Pipeline(spec, quotas=QuotaBook(quotas, ttl=60, max_stale=60), enforcer=enforcer,
                                 breakers=Breakers(), usage=self.usage,
                                 flags=FlagService(self.projects, Repository(self.store, GlobalFlags), ttl=60,
                                                   max_stale=60))
        self._models, self._quotas = models, quotas

    async def setup(self) -> None:
        await self.projects.create(Project(id="p1", name="p1", log_payloads=self.log_payloads))
        backend = Backend(id="b1", kind="openai_compatible", endpoint="http://upstream.test/v1", deployment="d")
        await self._models.create(Model(id="m1", project_id="p1", spec=ModelSpec(
            name="m1", backends=[backend], capabilities=["chat", "streaming", "embeddings"])))
        if self.limits is not None:
            await self._quotas.create(Quota(id=Quota.doc_id("project", "p1"), project_id="p1", scope="project",
                                            target="p1", limits=self.limits))

    async def call(self, body: dict[str, Any] | bytes, op: str = "chat") -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        principal = Principal(kind="virtual_key", subject="k1", project_id="p1", key_id="k1", key_prefix="sk-gw-x")
        return await self.pipeline.run(exchange(op, raw, None, principal=principal, request_id=f"r{len(self.sent)}",
                                                headers={}, started=time.perf_counter()))

    async def records(self, count: int) -> list[Any]:
        """The request-log rows once `count` were written (the log flushes in the background)."""
        deadline = time.monotonic() + 5
        while len(self.sink.records) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self.usage.close()
        return self.sink.records


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "m1", "messages": [{"role": "user", "content": "hello there"}], **extra}


def completion(usage: Any = None) -> httpx.Response:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
    if usage is not None:
        body["usage"] = usage
    return httpx.Response(200, json=body)


async def test_string_stream_flag_is_refused_and_never_proxied():
    h = Harness(lambda r: completion({"prompt_tokens": 1, "completion_tokens": 1}))
    await h.setup()
    with pytest.raises(InvalidRequest) as err:
        await h.call(chat_body(stream="false"))
    assert err.value.details[0]["field"] == "stream" and h.sent == []
    response = await h.call(chat_body(stream=False))
    assert response.media_type != "text/event-stream" and response.status_code == 200
    sent = json.loads(h.sent[0].content)
    assert sent["stream"] is False and "stream_options" not in sent  # usage is only requested for streams


async def test_deep_body_is_refused_before_admission():
    h = Harness(lambda r: completion(), limits=QuotaLimits(requests_per_minute=1))
    await h.setup()
    for depth in (255, 300, 1023):
        with pytest.raises(JsonTooDeep):
            await h.call(json.dumps(chat_body()).encode()[:-1] + b',"x":' + nested(depth) + b"}")
    assert h.counters.calls == 0 and h.sent == []
    assert (await h.call(chat_body())).status_code == 200  # the one request of the minute is still there


async def test_non_json_success_with_payload_logging_is_502_logged_and_released():
    h = Harness(lambda r: httpx.Response(200, text="<html>proxy says hi</html>"), log_payloads=True,
                limits=QuotaLimits(tokens_per_minute=1000))
    await h.setup()
    for _ in range(3):  # each reserves 900 tokens of 1,000: only possible if the previous one gave them back
        with pytest.raises(UpstreamBadResponse) as err:
            await h.call(chat_body(max_tokens=900))
        assert err.value.status == 502
    records = await h.records(3)
    assert [(r.status, r.error_code, r.attributes["total_tokens"]) for r in records] == \
        [(502, "upstream_bad_response", 0)] * 3
    assert records[0].prompt is not None  # payload logging was on and did not trip over the body


@pytest.mark.parametrize("usage", ["12", {"prompt_tokens": "3", "completion_tokens": "x"}, {"prompt_tokens": -5},
                                   {"prompt_tokens": 2.5, "completion_tokens": 1e300}, {"prompt_tokens": 10**40},
                                   {"prompt_tokens": [{"a": [1]}], "completion_tokens": {"b": None}}, [1, 2], {}])
async def test_odd_upstream_usage_is_estimated_not_a_crash(usage):
    h = Harness(lambda r: completion(usage), log_payloads=True)
    await h.setup()
    response = await h.call(chat_body())
    assert response.status_code == 200
    (record,) = await h.records(1)
    assert record.status == 200 and record.attributes["usage_estimated"] and record.attributes["prompt_tokens"] > 0
    assert record.attributes["completion_tokens"] == 0 and record.completion is not None


async def test_odd_usage_in_a_stream_is_estimated():
    sse = (b'data: {"choices":[{"delta":{"content":"one two"}}]}\n\n'
           b'data: {"choices":[],"usage":{"prompt_tokens":"many","completion_tokens":-1}}\n\ndata: [DONE]\n\n')
    h = Harness(lambda r: httpx.Response(200, stream=httpx.ByteStream(sse),
                                         headers={"content-type": "text/event-stream"}))
    await h.setup()
    response = await h.call(chat_body(stream=True))
    chunks = [c async for c in response.body_iterator]
    assert b"[DONE]" in b"".join(chunks)
    (record,) = await h.records(1)
    assert record.attributes["usage_estimated"] and record.attributes["completion_tokens"] > 0
    assert record.error_code is None


async def test_any_failure_after_admission_releases_and_logs():
    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("not an httpx error")

    h = Harness(broken, limits=QuotaLimits(tokens_per_minute=1000))
    await h.setup()
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await h.call(chat_body(max_tokens=900))
    records = await h.records(3)
    assert [(r.status, r.error_code) for r in records] == [(500, "internal_error")] * 3


async def test_a_cancelled_call_releases_and_logs():
    def cancelled(request: httpx.Request) -> httpx.Response:
        raise asyncio.CancelledError()  # the client went away while the backend was working

    h = Harness(cancelled, limits=QuotaLimits(tokens_per_minute=1000))
    await h.setup()
    for _ in range(3):  # each holds 900 of 1,000 tokens: only possible if the previous one gave them back
        with pytest.raises(asyncio.CancelledError):
            await h.call(chat_body(max_tokens=900))
    records = await h.records(3)
    assert [(r.status, r.error_code) for r in records] == [(499, "client_closed_request")] * 3


def test_error_bodies_always_have_the_four_keys():
    for error in (RouteNotFound("x"), GatewayError("y"), InvalidQuery("z", details=[{"field": "limit"}])):
        assert set(error.to_body()["error"]) == {"code", "message", "type", "details"}


@pytest.mark.parametrize("raw", [b'{"a": ' + b"1" * 5000 + b"}", b'{"a": NaN}', b'{"a": -Infinity}', b"\xff{}",
                                 b"[" * 1000 + b"]" * 1000])
async def test_control_plane_json_oddities_are_400s(raw):
    with pytest.raises(GatewayError) as err:
        await read_json(_request(headers={"content-type": "application/json"}, body=raw), 1_000_000)
    assert err.value.status == 400 and err.value.code in ("malformed_json", "json_too_deep")
