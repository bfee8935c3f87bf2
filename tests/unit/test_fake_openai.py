"""The fake upstream really does what its behaviours promise, over real HTTP; and the demo upstream answers."""
from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from dev import sample_upstream
from tests.support.fake_openai import (
    FakeOpenAI,
    close_connection,
    cut_stream,
    error,
    hang,
    ok,
    stream,
)

CHAT = {"model": "gpt-test", "messages": [{"role": "system", "content": "Be brief."},  # 9 chars
                                          {"role": "user", "content": "Hello there, model!"}]}  # 19 chars
CHAT_PROMPT_TOKENS = (9 + 19) // 4 + 1


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI("unit") as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[httpx.Client]:
    # A fresh client per test: a connection the fake dropped must not leak into the next test's pool.
    with httpx.Client(base_url=fake.url, timeout=3) as c:
        yield c


def sse_lines(response: httpx.Response) -> list[str]:
    return [line for line in response.iter_lines() if line]


def sse_payloads(lines: list[str]) -> list[dict]:
    return [json.loads(line.removeprefix("data: ")) for line in lines if line != "data: [DONE]"]


def test_ok_completion_has_usage_extra_fields_and_request_model(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(ok("one two three four", extra={"prompt_filter_results": [], "x_vendor": {"k": 1}}))
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.headers["x-fake-upstream"] == "unit"
    body = r.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-test" and body["system_fingerprint"] == "fp_fake"
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "one two three four"},
                                "finish_reason": "stop"}]
    assert body["usage"] == {"prompt_tokens": CHAT_PROMPT_TOKENS, "completion_tokens": 4,
                             "total_tokens": CHAT_PROMPT_TOKENS + 4}
    assert body["prompt_filter_results"] == [] and body["x_vendor"] == {"k": 1}


def test_ok_explicit_completion_tokens_and_no_usage(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(ok("hi", completion_tokens=42), ok(usage=False))
    assert client.post("/v1/chat/completions", json=CHAT).json()["usage"]["completion_tokens"] == 42
    assert "usage" not in client.post("/v1/chat/completions", json=CHAT).json()


def test_stream_without_include_usage(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(ok("alpha beta gamma"))
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = sse_lines(r)
    assert lines[-1] == "data: [DONE]"
    chunks = sse_payloads(lines)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    words = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert words == ["alpha ", "beta ", "gamma"] and "".join(words) == "alpha beta gamma"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)


def test_stream_with_include_usage_ends_with_usage_chunk(fake: FakeOpenAI, client: httpx.Client) -> None:
    req = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/chat/completions", json=req) as r:
        chunks = sse_payloads(sse_lines(r))
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": CHAT_PROMPT_TOKENS, "completion_tokens": 3,
                                   "total_tokens": CHAT_PROMPT_TOKENS + 3}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["usage"] is None


def test_explicit_stream_behaviour_paces_chunks_and_can_omit_usage(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(stream("a b c", chunk_delay=0.05, usage=False))
    req = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=req) as r:
        chunks = sse_payloads(sse_lines(r))
    assert time.monotonic() - started >= 0.05 * 5  # 6 events, a pause before each but the first
    assert all("usage" not in c for c in chunks) and len(chunks) == 5


def test_429_with_retry_after_and_openai_error_shape(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(error(429, retry_after=2), error(503, retry_after=0.5))
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "rate_limit_exceeded" and r.json()["error"]["message"]
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 503 and r.headers["retry-after"] == "0.5"


def test_500_400_and_408_with_custom_body(fake: FakeOpenAI, client: httpx.Client) -> None:
    custom = {"error": {"message": "bad temperature", "type": "invalid_request_error", "code": "bad_param"}}
    fake.script(error(500), error(400, body=custom), error(408))
    r = client.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 500 and set(r.json()["error"]) >= {"message", "type", "code"}
    assert "retry-after" not in r.headers
    r = client.post("/v1/chat/completions", json=CHAT)
    assert (r.status_code, r.json()) == (400, custom)
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 408


def test_hang_makes_the_client_time_out(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(hang(10))
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v1/chat/completions", json=CHAT, timeout=0.3)
    assert time.monotonic() - started < 2
    assert len(fake.requests) == 1  # it did arrive: the fake accepted it and stayed silent


def test_hang_then_answers_if_the_client_waits(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(hang(0.2))
    started = time.monotonic()
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_cut_stream_gives_an_incomplete_body_without_done(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(cut_stream(after_chunks=2, content="one two three four five"))
    seen: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line:
                    seen.append(line)
    chunks = sse_payloads(seen)
    assert len(chunks) == 2 and chunks[1]["choices"][0]["delta"] == {"content": "one "}
    assert "data: [DONE]" not in seen


def test_cut_stream_on_a_non_streaming_request_truncates_the_json(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(cut_stream())
    with pytest.raises(httpx.RemoteProtocolError, match="incomplete|expected"):
        client.post("/v1/chat/completions", json=CHAT)


def test_close_connection_before_any_response(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(close_connection(), close_connection(reset=True))
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.post("/v1/chat/completions", json=CHAT)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        client.post("/v1/chat/completions", json=CHAT)
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 200  # server itself is fine
    assert len(fake.requests) == 3


def test_api_key_is_enforced_by_bearer_or_api_key_header() -> None:
    with FakeOpenAI("keyed", api_key="sk-right") as up, httpx.Client(base_url=up.url, timeout=3) as c:
        up.script(error(500))
        r = c.post("/v1/chat/completions", json=CHAT)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert c.post("/v1/chat/completions", json=CHAT,
                      headers={"Authorization": "Bearer sk-wrong"}).status_code == 401
        assert up.pending == 1  # rejected requests do not consume the script
        assert c.post("/v1/chat/completions", json=CHAT,
                      headers={"Authorization": "Bearer sk-right"}).status_code == 500
        assert c.post("/v1/chat/completions", json=CHAT, headers={"api-key": "sk-right"}).status_code == 200
        assert len(up.requests) == 4


def test_azure_deployment_paths_need_api_version(fake: FakeOpenAI, client: httpx.Client) -> None:
    path = "/openai/deployments/my-gpt/chat/completions"
    r = client.post(path, json={"messages": CHAT["messages"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "404"
    r = client.post(path, params={"api-version": "2024-10-21"}, json={"messages": CHAT["messages"]},
                    headers={"api-key": "anything"})
    assert r.status_code == 200 and r.json()["model"] == "my-gpt"
    assert fake.requests[-1].query == {"api-version": "2024-10-21"}
    assert fake.requests[-1].headers["api-key"] == "anything"
    r = client.post("/openai/deployments/my-embed/embeddings", params={"api-version": "2024-10-21"},
                    json={"input": "x"})
    assert r.status_code == 200 and r.json()["model"] == "my-embed"


def test_embeddings_for_string_and_list_inputs(fake: FakeOpenAI, client: httpx.Client) -> None:
    one = client.post("/v1/embeddings", json={"model": "emb", "input": "hello world"}).json()
    assert one["object"] == "list" and one["model"] == "emb"
    assert [d["index"] for d in one["data"]] == [0] and len(one["data"][0]["embedding"]) == 8
    assert one["usage"] == {"prompt_tokens": 11 // 4 + 1, "total_tokens": 11 // 4 + 1}
    many = client.post("/v1/embeddings", json={"model": "emb", "input": ["hello world", "other"]}).json()
    assert [d["index"] for d in many["data"]] == [0, 1]
    assert many["data"][0]["embedding"] == one["data"][0]["embedding"]  # deterministic
    assert many["data"][1]["embedding"] != one["data"][0]["embedding"]
    fake.script(error(429, retry_after=1))
    assert client.post("/v1/embeddings", json={"input": "x"}).status_code == 429  # same script drives it


def test_models_list(client: httpx.Client) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list" and {m["id"] for m in body["data"]} == {"fake-chat", "fake-embed"}


def test_fifo_script_then_default_then_reset(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(error(500), ok("second"))
    fake.script(error(503))
    fake.set_default(ok("default answer"))
    statuses = [client.post("/v1/chat/completions", json=CHAT) for _ in range(5)]
    assert [r.status_code for r in statuses] == [500, 200, 503, 200, 200]
    assert statuses[1].json()["choices"][0]["message"]["content"] == "second"
    assert statuses[4].json()["choices"][0]["message"]["content"] == "default answer"
    fake.script(error(500))
    fake.reset()
    assert fake.requests == [] and fake.pending == 0
    assert client.post("/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"] == \
        "Hello from fake"


def test_every_request_is_recorded_in_order(fake: FakeOpenAI, client: httpx.Client) -> None:
    before = time.monotonic()
    client.post("/v1/chat/completions?trace=1", json=CHAT, headers={"X-Custom": "Yes"})
    client.post("/v1/chat/completions", content=b"not json", headers={"content-type": "application/json"})
    client.get("/nope")
    first, bad, unknown = fake.requests
    assert (first.method, first.path, first.query, first.body) == ("POST", "/v1/chat/completions",
                                                                   {"trace": "1"}, CHAT)
    assert first.headers["x-custom"] == "Yes" and before <= first.at <= bad.at <= unknown.at
    assert bad.body is None and bad.raw == b"not json"
    assert (unknown.method, unknown.path) == ("GET", "/nope")


def test_malformed_and_unknown_requests_do_not_consume_the_script(fake: FakeOpenAI, client: httpx.Client) -> None:
    fake.script(error(503))
    assert client.post("/v1/chat/completions", content=b"{").status_code == 400
    assert client.get("/v2/whatever").status_code == 404
    assert client.post("/v1/chat/completions", json=CHAT).status_code == 503


def test_stop_is_prompt_even_while_a_request_hangs() -> None:
    up = FakeOpenAI("stopper").start()
    up.script(hang(30))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            httpx.post(up.url + "/v1/chat/completions", json=CHAT, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    deadline = time.monotonic() + 2
    while not up.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    up.stop()
    t.join(5)
    assert time.monotonic() - started < 2 and not t.is_alive() and errors


# --------------------------------------------------------------------------------------------- demo upstream


@pytest.fixture(scope="module")
def sample_url() -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # IPPROTO_TCP: see FakeOpenAI.start
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(sample_upstream.app, log_config=None, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(5)


def test_sample_upstream_chat_stream_embeddings_and_errors(sample_url: str) -> None:
    with httpx.Client(base_url=sample_url, timeout=5) as c:
        assert c.get("/health").status_code == 200
        assert {m["id"] for m in c.get("/v1/models").json()["data"]} == {"sample-chat", "sample-embed"}

        body = c.post("/v1/chat/completions", json=CHAT).json()
        reply = body["choices"][0]["message"]["content"]
        assert reply == "You said: Hello there, model!"
        assert body["usage"] == {"prompt_tokens": CHAT_PROMPT_TOKENS, "completion_tokens": 5,
                                 "total_tokens": CHAT_PROMPT_TOKENS + 5}
        long = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x" * 500}]}).json()
        assert len(long["choices"][0]["message"]["content"]) == 200 and long["model"] == "sample-chat"

        req = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        with c.stream("POST", "/v1/chat/completions", json=req) as r:
            lines = sse_lines(r)
        assert lines[-1] == "data: [DONE]"
        chunks = sse_payloads(lines)
        assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks if ch["choices"]) == reply
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == body["usage"]

        emb = c.post("/v1/embeddings", json={"input": ["a", "b"]}).json()
        assert [len(d["embedding"]) for d in emb["data"]] == [16, 16] and emb["model"] == "sample-embed"
        again = c.post("/v1/embeddings", json={"input": "a"}).json()
        assert again["data"][0]["embedding"] == emb["data"][0]["embedding"]

        bad = c.post("/v1/chat/completions", content=b"{oops")
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        assert c.post("/v1/chat/completions", json={"model": "m"}).status_code == 400
