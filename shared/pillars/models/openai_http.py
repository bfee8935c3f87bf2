"""HTTP to OpenAI-shaped backends: OpenAI, Azure OpenAI and any OpenAI-compatible endpoint. One shared upstream
client per worker (pooled keep-alive connections); streaming responses are returned unread.

The client is an `httpx.AsyncClient`; when its transport is the gateway's lean wire (`guarded_client`,
shared/upstreams/lean_transport.py) the request goes to `LeanHttp` directly — no `httpx.Request`, no transport
layer — and comes back as an `httpx.Response` whose body streams lazily (the connection is pooled again only once
the body was read to its end and closed). The client's request hooks (telemetry's W3C trace context) still run,
on an `httpx.Request` built for them; any other client machinery (response hooks, auth, cookies, mounts) takes
httpx's full send path."""
from __future__ import annotations

from typing import Any

import httpx
import orjson

from shared.upstreams.lean_http import LeanHttp, Timeouts
from shared.upstreams.lean_transport import LeanTransport, to_httpx

from .domain import Backend
from .credentials import UpstreamCredentials

from .contracts import ModelsOperation
_PATHS = {"chat": "chat/completions", "embeddings": "embeddings"}
_DEFAULT_AZURE_API_VERSION = "2024-10-21"
# The only client request headers that travel upstream (an allow-list: anything else, present or future, stays
# here). The body carries everything a chat/embeddings call needs; the gateway sets content-type and its own
# credentials. Deliberately NOT forwarded: authorization/api-key/cookie (the client's credentials),
# OpenAI-Organization/OpenAI-Project (would let a key holder pick which org the gateway's key bills), Metadata,
# Forwarded/X-Forwarded-*/X-Real-IP (spoofed origin), the platform's x-ms-*/x-arr-*/disguised-host/
# x-site-deployment-id (internal details), traceparent, user-agent and the SDKs' x-stainless-* telemetry (the
# upstream's caller is the gateway; per-client attribution is in the request log), and idempotency keys (the
# gateway retries and fails over across backends itself).
FORWARDED_REQUEST_HEADERS = frozenset({"accept"})


def upstream_url(backend: Backend, op: ModelsOperation) -> str:
    base = str(backend.endpoint).rstrip("/")
    if backend.kind == "azure_openai" and backend.api_version == "v1":
        # Azure OpenAI's v1 API: OpenAI-shaped paths under /openai/v1, the deployment named in the body
        return f"{base}/openai/v1/{_PATHS[op]}"
    if backend.kind == "azure_openai":
        version = backend.api_version or _DEFAULT_AZURE_API_VERSION
        return f"{base}/openai/deployments/{backend.deployment}/{_PATHS[op]}?api-version={version}"
    return f"{base}/{_PATHS[op]}"


class OpenAIHttp:
    def __init__(self, http: httpx.AsyncClient, credentials: UpstreamCredentials) -> None:
        self._http = http
        self._credentials = credentials
        self._urls: dict[tuple[str, str, str | None, str, str], httpx.URL] = {}
        self._timeouts: dict[float, Timeouts] = {}
        # The client's own default headers (user-agent, accept-encoding, …), as the client would merge them.
        self._base_headers = {k.lower(): v for k, v in http.headers.items()}

    async def send(self, backend: Backend, op: ModelsOperation, body: dict[str, Any], client_headers: dict[str, str],
                   *, stream: bool) -> httpx.Response:
        payload = dict(body)
        if backend.kind != "azure_openai" or backend.api_version == "v1":
            payload["model"] = backend.deployment  # Azure's deployment paths route by the URL instead
        return await self.request(backend, "POST", self._url(backend, op), payload, client_headers, stream=stream)

    async def request(self, backend: Backend, method: str, url: httpx.URL | str, payload: dict[str, Any] | None,
                      client_headers: dict[str, str], *, stream: bool) -> httpx.Response:
        """One request to a backend with its credentials and the allow-listed client headers (the Responses
        API's GET/DELETE carry no body)."""
        headers = dict(self._base_headers)
        headers.update((k.lower(), v) for k, v in client_headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS)
        headers.update(await self._credentials.headers(backend))
        if payload is not None:
            headers["content-type"] = "application/json"
        content = orjson.dumps(payload) if payload is not None else None
        lean = self._lean()
        if lean is not None:
            return await self._send_lean(lean, backend, method, url, content, headers, stream)
        timeout = httpx.Timeout(backend.timeout_seconds, connect=min(10.0, backend.timeout_seconds))
        request = httpx.Request(method, url, content=content, headers=headers,
                                extensions={"timeout": timeout.as_dict()})
        # any other client (a test's MockTransport, response hooks, auth, mounts): the client's full send path
        return await _read_unless_stream(await self._http.send(request, stream=True), stream)

    def _url(self, backend: Backend, op: ModelsOperation) -> httpx.URL:
        """Parsed once per backend and operation (httpx's URL parser was ~10 % of a call's CPU)."""
        key = (str(backend.endpoint), backend.kind, backend.api_version, backend.deployment, op)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= 4096:  # bounded: backends are admin-registered, but edits mint new keys
                self._urls.clear()
            url = self._urls[key] = httpx.URL(upstream_url(backend, op))
        return url

    async def _send_lean(self, lean: LeanHttp, backend: Backend, method: str, url: httpx.URL | str,
                         content: bytes | None, headers: dict[str, str], stream: bool) -> httpx.Response:
        seconds = backend.timeout_seconds
        timeouts = self._timeouts.get(seconds)
        if timeouts is None:  # one per distinct backend timeout (admin-set, bounded)
            if len(self._timeouts) >= 256:
                self._timeouts.clear()
            timeouts = self._timeouts[seconds] = Timeouts(min(10.0, seconds), seconds, seconds, seconds)
        hooks = self._http.event_hooks["request"]
        request = None
        raw: Any = headers
        if hooks and all(hasattr(hook, "headers") for hook in hooks):
            # hooks that can hand over their headers as a dict (telemetry's trace context): merged without an
            # `httpx.Request` built only to run them
            raw = dict(headers)
            for hook in hooks:
                raw.update(hook.headers())
        elif hooks:  # other hooks see (and may add to) the request as the client would show it
            request = httpx.Request(method, url, content=content, headers=headers)
            for hook in hooks:
                await hook(request)
            raw = request.headers.raw
        if isinstance(url, str):  # the Responses API's by-id URLs: httpx's parser percent-encodes what needs it
            url = httpx.URL(url)
        return await _read_unless_stream(to_httpx(await lean.request(method, url, content or b"", raw, timeouts),
                                                  request), stream)

    def _lean(self) -> LeanHttp | None:
        """The lean wire when the client adds nothing but request hooks around its transport."""
        http = self._http
        transport = getattr(http, "_transport", None)
        if not isinstance(transport, LeanTransport) or http.event_hooks["response"] or http.auth is not None \
                or http.cookies or getattr(http, "_mounts", None):
            return None
        return transport.lean


async def _read_unless_stream(response: httpx.Response, stream: bool) -> httpx.Response:
    """A streamed response is returned unread (the relay reads it); any other is read whole and closed, so its
    connection goes back to the pool on every path out."""
    if not stream:
        try:
            await response.aread()
        finally:
            await response.aclose()
    return response
