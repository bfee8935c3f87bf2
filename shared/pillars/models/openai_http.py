"""HTTP to OpenAI-shaped backends: OpenAI, Azure OpenAI and any OpenAI-compatible endpoint. One shared
`httpx.AsyncClient` per worker (pooled keep-alive connections); streaming responses are returned unread."""
from __future__ import annotations

from typing import Any

import httpx
import orjson

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

    async def send(self, backend: Backend, op: ModelsOperation, body: dict[str, Any], client_headers: dict[str, str],
                   *, stream: bool) -> httpx.Response:
        payload = dict(body)
        if backend.kind != "azure_openai" or backend.api_version == "v1":
            payload["model"] = backend.deployment  # Azure's deployment paths route by the URL instead
        return await self.request(backend, "POST", upstream_url(backend, op), payload, client_headers, stream=stream)

    async def request(self, backend: Backend, method: str, url: str, payload: dict[str, Any] | None,
                      client_headers: dict[str, str], *, stream: bool) -> httpx.Response:
        """One request to a backend with its credentials and the allow-listed client headers (the Responses
        API's GET/DELETE carry no body)."""
        headers = {k.lower(): v for k, v in client_headers.items() if k.lower() in FORWARDED_REQUEST_HEADERS}
        headers.update(await self._credentials.headers(backend))
        if payload is not None:
            headers["content-type"] = "application/json"
        timeout = httpx.Timeout(backend.timeout_seconds, connect=min(10.0, backend.timeout_seconds))
        request = self._http.build_request(method, url, headers=headers, timeout=timeout,
                                           content=orjson.dumps(payload) if payload is not None else None)
        return await self._http.send(request, stream=True) if stream else await self._send_read(request)

    async def _send_read(self, request: httpx.Request) -> httpx.Response:
        response = await self._http.send(request, stream=True)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response
