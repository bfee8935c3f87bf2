"""`LeanTransport`: `LeanHttp` as an httpx transport, so callers that need an `httpx.AsyncClient` (the a2a-sdk,
the approvals probe, webhooks, OpenAIHttp's `httpx.Response`) get the lean wire under httpx's own request/response
objects. Response bodies stream lazily; the connection is pooled again only when the body was read to its end and
the response closed (`LeanStream.aclose`), and closed otherwise.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from .lean_http import LeanHttp, LeanResponse, Timeouts

_HTTP11 = {"http_version": b"HTTP/1.1"}


class LeanStream(httpx.AsyncByteStream):
    __slots__ = ("_response",)

    def __init__(self, response: LeanResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._response.chunks():
            yield part

    async def aclose(self) -> None:
        await self._response.aclose()


def timeouts_of(request: httpx.Request) -> Timeouts:
    t = request.extensions.get("timeout")
    if not t:
        return Timeouts()
    return Timeouts(t.get("connect"), t.get("read"), t.get("write"), t.get("pool"))


async def body_of(request: httpx.Request) -> bytes:
    """The request body in one piece (one write with the head). Bodies the gateway sends are already in memory."""
    stream = request.stream
    if isinstance(stream, httpx.ByteStream):
        return bytes(stream._stream)  # noqa: SLF001 - the bytes httpx holds; iterating would copy them anyway
    return b"".join([part async for part in stream])  # type: ignore[union-attr]


def to_httpx(response: LeanResponse, request: httpx.Request | None = None) -> httpx.Response:
    out = httpx.Response(response.status, headers=response.raw_headers, stream=LeanStream(response),
                         extensions={**_HTTP11, "reason_phrase": response.reason})
    if request is not None:
        out.request = request
    return out


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, lean: LeanHttp) -> None:
        self.lean = lean

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.lean.request(request.method, request.url, await body_of(request),
                                           request.headers.raw, timeouts_of(request))
        return to_httpx(response)

    async def aclose(self) -> None:
        await self.lean.aclose()
