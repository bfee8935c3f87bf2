"""Performs a call of an API-backed tool as one HTTP request (the data plane's "send" for such tools): the
arguments go where the tool's `ApiBinding` says (path, query, header, body), the admin's outbound auth is added,
the connection goes through the egress-guarded client, and the answer becomes an MCP `CallToolResult` —
structured (`structuredContent`) when it is a JSON object, text otherwise; an HTTP error is `isError: true`.
"""
from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

import httpx

from .domain import ApiBinding, ApiSource, ToolDefinition
from .openapi import TOKEN, _RESERVED
from .outbound_auth import OutboundAuthenticator

DEFAULT_MAX_RESULT_BYTES = 1024 * 1024


def _error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


class ResultTooLarge(Exception):
    pass


# RFC 6265 cookie-octets other than '%' stay as they are; everything else (space, '"', ',', ';', '\\', controls,
# non-ASCII) is percent-encoded, so a value can never end its cookie or start another.
_COOKIE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"


def build_request(base_url: str, binding: ApiBinding, arguments: dict[str, Any],
                  owned: frozenset[str] = _RESERVED) -> tuple[str, dict[str, Any]]:
    """(url, httpx request kwargs). Path values are percent-encoded whole (a '/' or '..' cannot change the
    path); header arguments never set a header the gateway owns (`owned`, lower-case: the reserved headers and
    the source's auth header) and header names are lower-cased, so no two spellings of one name are sent;
    cookie arguments become one `cookie` header, names checked as tokens and values percent-encoded."""
    path = binding.path
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for p in binding.params:
        if p.name not in arguments or arguments[p.name] is None:
            if p.location == "path":
                raise ValueError(f"missing path argument '{p.name}'")
            continue
        value = arguments[p.name]
        if p.location == "path":
            path = path.replace("{" + p.wire_name + "}", quote(_text(value), safe=""))
        elif p.location == "query":
            values = value if isinstance(value, list) else [value]
            query.extend((p.wire_name, _text(v)) for v in values)
        elif p.location == "header" and TOKEN.match(p.wire_name) and p.wire_name.lower() not in owned:
            headers[p.wire_name.lower()] = _header_value(_text(value))
        elif p.location == "cookie" and TOKEN.match(p.wire_name):
            cookies.append(f"{p.wire_name}={quote(_text(value), safe=_COOKIE_SAFE)}")
    if cookies:
        headers["cookie"] = "; ".join(cookies)
    kwargs: dict[str, Any] = {"params": query, "headers": headers}
    if binding.body_argument and binding.body_argument in arguments:
        kwargs["content"] = json.dumps(arguments[binding.body_argument]).encode()
        headers["content-type"] = binding.body_media_type or "application/json"
    return base_url.rstrip("/") + path, kwargs


def _header_value(text: str) -> str:
    """Visible ASCII, space and tab as they are; anything else (CR, LF, NUL, other controls, non-ASCII, which
    the HTTP client cannot even encode) percent-encoded as UTF-8: no header injection, no client exception."""
    return "".join(c if " " <= c <= "~" or c == "\t" else quote(c, safe="") for c in text)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


class ApiExecutor:
    def __init__(self, http: httpx.AsyncClient, auth: OutboundAuthenticator) -> None:
        self._http = http  # egress-guarded; redirects are not followed (a redirect could leave the policy)
        self._auth = auth

    async def call(self, source: ApiSource, tool: ToolDefinition, arguments: dict[str, Any], *,
                   timeout: float | None = None, max_result_bytes: int | None = None) -> dict[str, Any]:
        binding = tool.binding
        base = source.resolved_base_url or (str(source.spec.base_url) if source.spec.base_url else None)
        if binding is None or base is None:
            return _error(f"tool '{tool.name}' has no HTTP binding; re-approve its API source")
        auth = {k.lower(): v for k, v in (await self._auth.headers(source.spec.auth)).items()}  # type: ignore[arg-type]
        try:
            url, kwargs = build_request(base, binding, arguments, _RESERVED | frozenset(auth))
        except ValueError as exc:
            return _error(str(exc))
        # the admin's auth header always wins: a binding stored before its name was reserved is dropped above,
        # and the merge is on lower-case names, so a differently-cased argument cannot ride along
        kwargs["headers"].update(auth)
        kwargs["headers"]["accept"] = "application/json, text/plain;q=0.9, */*;q=0.5"
        limit = max_result_bytes or tool.limits.max_result_bytes or DEFAULT_MAX_RESULT_BYTES
        seconds = timeout or tool.limits.timeout_seconds or source.spec.timeouts.call_seconds
        try:
            async with self._http.stream(binding.method, url, timeout=seconds, **kwargs) as resp:
                body = await _bounded(resp, limit)
        except ResultTooLarge:
            return _error(f"the API answered more than {limit} bytes")
        except httpx.TimeoutException:
            return _error(f"the API did not answer within {seconds:g} s")
        except httpx.HTTPError as exc:
            return _error(f"the API cannot be reached: {type(exc).__name__}")
        return to_result(resp.status_code, resp.headers.get("content-type", ""), body,
                         structured=tool.definition.output_schema is not None)


async def _bounded(resp: httpx.Response, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResultTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def to_result(status: int, content_type: str, body: bytes, *, structured: bool) -> dict[str, Any]:
    media = content_type.split(";")[0].strip().lower()
    is_error = status >= 400
    if media == "application/json" or media.endswith("+json"):
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        else:
            result: dict[str, Any] = {"content": [{"type": "text", "text": json.dumps(data)}], "isError": is_error}
            if isinstance(data, dict) and not is_error:
                result["structuredContent"] = data
            elif structured and not is_error:
                result["structuredContent"] = {"result": data}
            return result
    if media.startswith("image/") and not is_error:
        return {"content": [{"type": "image", "data": base64.b64encode(body).decode(), "mimeType": media}],
                "isError": False}
    text = body.decode("utf-8", "replace")
    if is_error:
        text = f"HTTP {status}: {text[:4000]}"
    return {"content": [{"type": "text", "text": text}], "isError": is_error}
