"""A scriptable fake OpenAI-compatible upstream, served over real sockets so the gateway's HTTP client is exercised.

Usage::

    with FakeOpenAI("primary", api_key="sk-test") as up:
        up.script(error(429, retry_after=1), ok("second try"))
        ...  # point the gateway at up.url
        assert [r.path for r in up.requests] == ["/v1/chat/completions"] * 2

Each well-formed request pops the next scripted behaviour (FIFO); once the script is empty the default applies
(`ok()` unless changed with `set_default`). Requests the fake rejects on its own — wrong key (401), Azure path
without `api-version` (404), unknown path (404), body that is not a JSON object (400) — are recorded but do not
consume the script, so a test's script stays aligned with the calls that really reach the "model".

Token counting is deterministic so tests can assert on usage: the rule and every body shape come from
dev/openai_wire.py, which the demo upstream (dev/sample_upstream.py) uses too — one definition, not two kept in
step. completion_tokens = the behaviour's value, else the word count of the content.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dev import openai_wire as wire
from tests.support import fake_responses as rwire

# --------------------------------------------------------------------------------------------- behaviours


@dataclass(frozen=True)
class Ok:
    content: str = "Hello from fake"
    completion_tokens: int | None = None
    usage: bool = True
    extra: dict[str, Any] | None = None
    delay: float = 0.0
    cached_tokens: int = 0  # Responses API usage details (input_tokens_details / output_tokens_details)
    reasoning_tokens: int = 0


@dataclass(frozen=True)
class Stream:
    content: str = "Hello from fake"
    chunk_delay: float = 0.0
    usage: bool = True


@dataclass(frozen=True)
class Error:
    status: int
    body: dict[str, Any] | str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Hang:
    seconds: float = 30.0


@dataclass(frozen=True)
class CutStream:
    after_chunks: int = 2
    content: str = "Hello from fake"
    reset: bool = False


@dataclass(frozen=True)
class CloseConnection:
    reset: bool = False


Behaviour = Ok | Stream | Error | Hang | CutStream | CloseConnection


def ok(content: str = "Hello from fake", completion_tokens: int | None = None, usage: bool = True,
       extra: dict[str, Any] | None = None, delay: float = 0.0, *, cached_tokens: int = 0,
       reasoning_tokens: int = 0) -> Ok:
    """A normal answer (SSE if the request asked for `stream: true`). `extra` top-level fields are merged into the
    completion (and into every stream chunk) so tests can prove unknown fields pass through the gateway.
    `cached_tokens`/`reasoning_tokens`: the Responses API's usage details."""
    return Ok(content, completion_tokens, usage, extra, delay, cached_tokens, reasoning_tokens)


def stream(content: str = "Hello from fake", chunk_delay: float = 0.0, usage: bool = True) -> Stream:
    """SSE on chat endpoints even if the request did not ask for it; `chunk_delay` seconds between events."""
    return Stream(content, chunk_delay, usage)


def error(status: int, body: dict[str, Any] | str | None = None, retry_after: float | None = None,
          delay: float = 0.0, *, headers: dict[str, str] | None = None) -> Error:
    """An error response; `body` defaults to an OpenAI-shaped `{"error": {...}}`, `retry_after` sets Retry-After."""
    return Error(status, body, retry_after, delay, headers)


def hang(seconds: float = 30.0) -> Hang:
    """Read the request, send nothing for `seconds` (then answer as `ok()`); ends early if the client goes away."""
    return Hang(seconds)


def cut_stream(after_chunks: int = 2, content: str = "Hello from fake", *, reset: bool = False) -> CutStream:
    """Start a 200 response, send `after_chunks` SSE events (never `[DONE]`), then close the TCP connection.
    On a non-streaming request: a Content-Length header for the full JSON, then half of it, then the close.
    `reset=True` sends a TCP RST (SO_LINGER 0) instead of a FIN."""
    return CutStream(after_chunks, content, reset)


def close_connection(*, reset: bool = False) -> CloseConnection:
    """Close the connection after reading the request, before any response byte (FIN, or RST with reset=True)."""
    return CloseConnection(reset)


# --------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: dict[str, Any] | None  # None when absent or not a JSON object; see `raw`
    at: float  # time.monotonic() when the request was read, for measuring retry spacing
    raw: bytes = b""


# --------------------------------------------------------------------------------------------- payloads

prompt_tokens = wire.prompt_tokens  # re-exported: tests compute expected usage with it


def _vector(item: Any, dim: int = 8) -> list[float]:
    digest = hashlib.sha256(json.dumps(item).encode()).digest()
    return [round(b / 127.5 - 1.0, 6) for b in digest[:dim]]


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    return wire.error_body(status, message or f"fake upstream error {status}")


@dataclass
class _Call:
    """What the behaviour needs to know about the request it answers."""
    kind: str  # "chat" | "embeddings" | "models" | "responses"
    model: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # sent on every response
    scope: Scope = field(default_factory=dict)
    store: dict[str, Any] | None = None  # the fake's stored responses (Responses API)

    @property
    def wants_stream(self) -> bool:
        return self.kind in ("chat", "responses") and self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        opts = self.body.get("stream_options")
        return isinstance(opts, dict) and opts.get("include_usage") is True


def _completion(call: _Call, b: Ok) -> dict[str, Any]:
    if call.kind == "models":
        return {"object": "list", "data": [{"id": m, "object": "model", "created": int(time.time()),
                                            "owned_by": "fake"} for m in ("fake-chat", "fake-embed")],
                **(b.extra or {})}
    if call.kind == "embeddings":
        inputs = wire.embedding_inputs(call.body)
        tokens = wire.embedding_tokens(inputs) if b.usage else None
        return {**wire.embeddings(call.model, [_vector(x) for x in inputs], tokens), **(b.extra or {})}
    if call.kind == "responses":
        return _stored(call, rwire.response(call.model, call.body, b.content, _responses_usage(call, b),
                                            extra=b.extra))
    usage = wire.chat_usage(call.body, b.content, b.completion_tokens) if b.usage else None
    return {**wire.chat_completion(call.model, b.content, usage, fingerprint="fp_fake"), **(b.extra or {})}


def _responses_usage(call: _Call, b: Any) -> dict[str, Any] | None:
    if not getattr(b, "usage", True):
        return None
    return rwire.usage(call.body, b.content, getattr(b, "completion_tokens", None),
                       cached=getattr(b, "cached_tokens", 0), reasoning=getattr(b, "reasoning_tokens", 0))


def _stored(call: _Call, resp: dict[str, Any]) -> dict[str, Any]:
    if call.store is not None and call.body.get("store") is not False:
        call.store[resp["id"]] = (resp, rwire.input_items(call.body))
    return resp


def _sse_events(call: _Call, content: str, *, usage: bool, completion_tokens: int | None = None,
                extra: dict[str, Any] | None = None, b: Any = None) -> list[bytes]:
    if call.kind == "responses":
        rid = "resp_" + uuid.uuid4().hex
        used = _responses_usage(call, b if b is not None else Ok(content, completion_tokens, usage))
        _stored(call, rwire.response(call.model, call.body, content, used, response_id=rid))
        return rwire.events(call.model, call.body, content, used, rid)
    with_usage = wire.chat_usage(call.body, content, completion_tokens) if usage and call.include_usage else None
    return wire.sse_events(call.model, content, with_usage, fingerprint="fp_fake", extra=extra)


# --------------------------------------------------------------------------------------------- the server


class _Endpoint:
    """A raw ASGI endpoint (not a function) so Starlette hands us `receive`/`send` and we control every byte."""

    def __init__(self, fake: FakeOpenAI, kind: str | None) -> None:
        self.fake, self.kind = fake, kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.fake._serve(self.kind, scope, receive, send)


async def _drop(receive: Receive, *, reset: bool) -> None:
    """Close the client connection now, whatever has been sent.

    ASGI has no "abort" message, so this reaches uvicorn's per-request cycle through the bound `receive`
    (`receive.__self__.transport`). Without it we raise instead: uvicorn then closes the connection if the
    response has started (a plain 500 otherwise)."""
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("fake upstream: cannot reach the transport to drop the connection")
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()  # flushes what was already written, then FIN
    # Wait until uvicorn has seen the disconnect, else it logs "returned without completing response".
    for _ in range(200):
        if getattr(cycle, "disconnected", True) or getattr(cycle, "response_complete", False):
            return
        await asyncio.sleep(0.005)


class FakeOpenAI:
    def __init__(self, name: str = "fake", *, api_key: str | None = None) -> None:
        self.name, self.api_key = name, api_key
        self.url = ""
        self.port = 0
        self.requests: list[Recorded] = []
        self.responses: dict[str, Any] = {}  # Responses API: id → (response, input items), as OpenAI stores them
        self._lock = threading.Lock()
        self._script: deque[Behaviour] = deque()
        self._default: Behaviour = Ok()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.app = self._build_app()

    # ---- test-thread API

    def script(self, *behaviours: Behaviour) -> None:
        """Append behaviours; each well-formed request pops the oldest one."""
        with self._lock:
            self._script.extend(behaviours)

    def set_default(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._default = behaviour

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._default = Ok()
            self.requests.clear()  # in place: callers holding the list see it empty
            self.responses.clear()

    @property
    def pending(self) -> int:
        """Scripted behaviours not yet consumed."""
        with self._lock:
            return len(self._script)

    def start(self) -> FakeOpenAI:
        # proto must be IPPROTO_TCP: asyncio only sets TCP_NODELAY on sockets that say so, and without it every
        # keep-alive response (headers, then body) stalls ~40 ms on Nagle + delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # bound here and handed to uvicorn: no race for a "free" port
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, loop="asyncio", http="h11", lifespan="on", log_config=None,
                                log_level="warning", access_log=False, proxy_headers=False,
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"fake-openai-{self.name}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"fake upstream {self.name!r} did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already gone
                self._loop.call_soon_threadsafe(self._stopping.set)  # wakes hung/delayed requests
        self._server.should_exit = True
        self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ---- server-thread side

    def _build_app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
            yield

        chat, emb = _Endpoint(self, "chat"), _Endpoint(self, "embeddings")
        responses = [r for prefix in ("/v1", "/openai/v1") for r in (
            Route(f"{prefix}/responses", _Endpoint(self, "responses"), methods=["POST"]),
            Route(f"{prefix}/responses/{{rid}}", _Endpoint(self, "responses.get"), methods=["GET"]),
            Route(f"{prefix}/responses/{{rid}}", _Endpoint(self, "responses.delete"), methods=["DELETE"]),
            Route(f"{prefix}/responses/{{rid}}/input_items", _Endpoint(self, "responses.input_items"),
                  methods=["GET"]))]
        return Starlette(lifespan=lifespan, routes=[
            *responses,
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/embeddings", emb, methods=["POST"]),
            Route("/v1/models", _Endpoint(self, "models"), methods=["GET"]),
            Route("/openai/deployments/{deployment}/chat/completions", chat, methods=["POST"]),
            Route("/openai/deployments/{deployment}/embeddings", emb, methods=["POST"]),
            Route("/{path:path}", _Endpoint(self, None)),  # everything else: recorded, then 404
        ])

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self._default

    def _authorised(self, headers: dict[str, str]) -> bool:
        if self.api_key is None:
            return True
        return headers.get("authorization") == f"Bearer {self.api_key}" or headers.get("api-key") == self.api_key

    async def _serve(self, kind: str | None, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw = await request.body()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        body = parsed if isinstance(parsed, dict) else None
        headers = dict(request.headers)
        with self._lock:
            self.requests.append(Recorded(request.method, request.url.path, dict(request.query_params), headers,
                                          body, time.monotonic(), raw))
        base = {"x-fake-upstream": self.name, "x-request-id": uuid.uuid4().hex}
        deployment = scope.get("path_params", {}).get("deployment")
        reject: Response | None = None
        if kind is None:
            reject = JSONResponse(_error_body(404, f"Unknown request URL: {request.method} {request.url.path}"),
                                  404, headers=base)
        elif not self._authorised(headers):
            reject = JSONResponse(_error_body(401, "Incorrect API key provided."), 401, headers=base)
        elif deployment is not None and "api-version" not in request.query_params:
            reject = JSONResponse({"error": {"code": "404", "message": "Resource not found"}}, 404, headers=base)
        elif kind is not None and kind.startswith("responses."):
            reject = self._stored_response(kind, scope["path_params"]["rid"], base)
        elif kind != "models" and body is None:
            reject = JSONResponse(_error_body(400, "We could not parse the JSON body of your request."), 400,
                                  headers=base)
        if reject is not None:
            await reject(scope, receive, send)
            return
        assert kind is not None
        model = deployment or str((body or {}).get("model") or f"{self.name}-model")
        await self._apply(self._next(), _Call(kind, model, body or {}, base, scope, self.responses), receive, send)

    def _stored_response(self, kind: str, rid: str, headers: dict[str, str]) -> Response:
        """GET / DELETE / input_items of a stored response (they do not consume the script)."""
        with self._lock:
            found = self.responses.get(rid)
            if found is not None and kind == "responses.delete":
                del self.responses[rid]
        if found is None:
            return JSONResponse(_error_body(404, f"Response with id '{rid}' not found."), 404, headers=headers)
        resp, items = found
        body = {"responses.get": resp, "responses.delete": rwire.deleted(rid),
                "responses.input_items": rwire.item_list(items)}[kind]
        return JSONResponse(body, 200, headers=headers)

    async def _pause(self, seconds: float, receive: Receive) -> bool:
        """Sleep; False if cut short because the client disconnected or the fake is stopping."""
        if seconds <= 0:
            return True

        async def client_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        assert self._stopping is not None
        waiters = {asyncio.ensure_future(self._stopping.wait()), asyncio.ensure_future(client_gone())}
        done, pending = await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        return not done

    async def _apply(self, b: Behaviour, call: _Call, receive: Receive, send: Send) -> None:
        if isinstance(b, CloseConnection):
            await _drop(receive, reset=b.reset)
        elif isinstance(b, Hang):
            if await self._pause(b.seconds, receive):
                await self._apply(Ok(), call, receive, send)
            else:
                await _drop(receive, reset=False)
        elif isinstance(b, Error):
            if not await self._pause(b.delay, receive):
                return await _drop(receive, reset=False)
            hdrs = {**call.headers, **(b.headers or {})}
            if b.retry_after is not None:
                hdrs["retry-after"] = str(int(b.retry_after)) if float(b.retry_after).is_integer() \
                    else str(b.retry_after)
            content = b.body if b.body is not None else _error_body(b.status)
            resp = Response(content, b.status, hdrs, "text/plain") if isinstance(content, str) \
                else JSONResponse(content, b.status, hdrs)
            await resp(call.scope, receive, send)
        elif isinstance(b, Ok):
            if not await self._pause(b.delay, receive):
                return await _drop(receive, reset=False)
            if call.wants_stream:
                await self._sse(_sse_events(call, b.content, usage=b.usage, completion_tokens=b.completion_tokens,
                                            extra=b.extra, b=b), call, receive, send)
            else:
                await JSONResponse(_completion(call, b), 200, call.headers)(call.scope, receive, send)
        elif isinstance(b, Stream):
            if call.kind not in ("chat", "responses"):
                return await self._apply(Ok(b.content, usage=b.usage), call, receive, send)
            await self._sse(_sse_events(call, b.content, usage=b.usage), call, receive, send, delay=b.chunk_delay)
        elif isinstance(b, CutStream):
            if call.wants_stream:
                events = _sse_events(call, b.content, usage=True)
                cut = min(max(b.after_chunks, 0), len(events) - 1)  # never reaches [DONE]
                await self._sse(events, call, receive, send, cut_after=cut, reset=b.reset)
            else:
                payload = json.dumps(_completion(call, Ok(b.content))).encode()
                await self._start(send, 200, "application/json", call,
                                  [(b"content-length", str(len(payload)).encode())])
                await send({"type": "http.response.body", "body": payload[: len(payload) // 2], "more_body": True})
                await _drop(receive, reset=b.reset)
        else:  # pragma: no cover - a new behaviour type without a branch here
            raise TypeError(f"unknown behaviour {b!r}")

    async def _start(self, send: Send, status: int, ctype: str, call: _Call,
                     more: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", ctype.encode())] + [(k.encode(), v.encode()) for k, v in call.headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers + (more or [])})

    async def _sse(self, events: list[bytes], call: _Call, receive: Receive, send: Send, *, delay: float = 0.0,
                   cut_after: int | None = None, reset: bool = False) -> None:
        await self._start(send, 200, "text/event-stream; charset=utf-8", call, [(b"cache-control", b"no-cache")])
        for i, event in enumerate(events):
            if cut_after is not None and i >= cut_after:
                return await _drop(receive, reset=reset)
            if i and not await self._pause(delay, receive):
                return await _drop(receive, reset=False)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
