"""The HTTP exchange under every streamable-HTTP MCP call: one POST, its status, headers and body chunks.

Why not `httpx.AsyncClient` on the hot path: a py-spy profile of `tools/call` through a toolbox (docs/benchmarks.md)
put about half of the gateway's CPU per call in the upstream client (httpx's layers, httpcore's pool scan, h11),
while the MCP exchange needs none of them (no redirects are followed, no cookies may be kept: a cookie one caller's
call received must never ride on another caller's). The data plane uses the gateway's lean upstream client
(`shared/upstreams/lean_http.py` `LeanHttp.post`); `HttpxWire` keeps an
`httpx.AsyncClient` usable (the approvals probe, tests with `httpx.MockTransport`, callers that pass their own
client). Errors are httpx's transport classes either way, so the pipeline's failover sees the same classes.
"""
from __future__ import annotations

import codecs
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import httpx

from ....upstreams.http1 import UnsupportedEncoding, WireResponse  # noqa: F401 - UnsupportedEncoding: re-exported


class Wire(Protocol):
    def post(self, url: str, content: bytes, headers: Mapping[str, str]
             ) -> contextlib.AbstractAsyncContextManager[WireResponse]: ...


class HttpxWire:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    @contextlib.asynccontextmanager
    async def post(self, url: str, content: bytes, headers: Mapping[str, str]) -> AsyncIterator[WireResponse]:
        req = self._client.build_request("POST", url, content=content, headers=dict(headers))
        resp = await self._client.send(req, stream=True)
        try:
            yield WireResponse(resp.status_code, resp.headers, resp.aiter_bytes())
        finally:
            await resp.aclose()


async def lines(chunks: AsyncIterator[bytes], *, max_line_bytes: int) -> AsyncIterator[str]:
    """SSE lines (CRLF, LF or CR ends a line) from body chunks; a line longer than the cap is a ValueError, so a
    server cannot make the gateway buffer an endless line."""
    buf = ""
    pending_cr = False
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character split across chunks stays whole
    async for chunk in chunks:
        text = decoder.decode(chunk)
        if pending_cr and text.startswith("\n"):
            text = text[1:]
        pending_cr = text.endswith("\r")
        buf += text
        parts = buf.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        buf = parts.pop()
        if len(buf) > max_line_bytes:
            raise ValueError(f"SSE line longer than {max_line_bytes} bytes")
        for line in parts:
            yield line
    buf += decoder.decode(b"", final=True)
    if buf:
        yield buf
