"""Turning request bodies and query strings into pydantic contracts, with structured errors naming each field."""
from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request

from ..errors import (GatewayError, InvalidQuery, JsonTooDeep, MalformedJson, PayloadTooLarge, UnsupportedMediaType,
                      ValidationFailed)

M = TypeVar("M", bound=BaseModel)

# Deepest JSON nesting either plane accepts. Real bodies (chat messages, tool JSON schemas, admin contracts) stay far
# below it; the parsers and serialisers do not: stdlib json recurses (~1,000 levels → RecursionError), orjson.dumps
# refuses more than 254 levels, so a deeper body would fail mid-call instead of at the door.
MAX_JSON_DEPTH = 64
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string literal (brackets inside do not nest)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1 opens a level, -1 closes one
_DEPTH_CHUNK = 8192
_ASCII_UINT = re.compile(r"[0-9]{1,18}")  # str.isdigit() also accepts '¹', '٣', … which int() refuses


def json_depth_exceeds(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `raw` nests arrays/objects deeper than `limit`, checked on the bytes before any parser recurses.

    Cheap by construction: a body with at most `limit` opening brackets cannot exceed it (the common case, no
    scan); otherwise string literals are removed, the rest reduced to its brackets as +1/-1 steps, and the running
    depth summed in C (`accumulate` over a signed-byte array), chunk by chunk so a deep body stops early."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    steps = array("b", _STRING.sub(b"", raw).translate(_STEPS, _NOT_BRACKETS))
    depth = 0
    for start in range(0, len(steps), _DEPTH_CHUNK):
        running = list(accumulate(steps[start:start + _DEPTH_CHUNK], initial=depth))
        if max(running) > limit:
            return True
        depth = running[-1]
    return False


def check_json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> None:
    if json_depth_exceeds(raw, limit):
        raise JsonTooDeep(f"The request body nests arrays/objects more than {limit} levels deep.",
                          details={"max_depth": limit})


def field_errors(exc: ValidationError, root: str = "") -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or root or "body"
        out.append({"field": f"{root}.{path}" if root and err["loc"] else path, "message": err["msg"],
                    "type": err["type"]})
    return out


def validate(model: type[M], data: Any, what: str = "body",
             error: type[GatewayError] = ValidationFailed) -> M:
    """`error`: the class raised on a mismatch (control plane 422 `ValidationFailed`; the OpenAI-shaped data plane
    uses 400 `InvalidRequest`, as OpenAI does)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        names = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise error(f"The request {what} is invalid: {names}.", details=errors) from None


_HEADERS = "gateway.headers"  # the request's header dict, kept in its ASGI scope (header_dict)


def header_dict(req: Request) -> dict[str, str]:
    """The request's headers as a dict: the first value of each (lower-case, ASGI) name. Built once per request and
    kept in its scope, so the request id, the guard, the body reader and the handler share one dict instead of each
    scanning the raw list again through starlette's `Headers` (a missing name — `x-request-id`, `api-key` — cost a
    raised KeyError there). Shared: readers must not change it."""
    scope = req.scope
    found: dict[str, str] | None = scope.get(_HEADERS)
    if found is None:
        found = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1")
            if name not in found:
                found[name] = value.decode("latin-1")
        scope[_HEADERS] = found
    return found


async def read_body(req: Request, max_bytes: int) -> bytes:
    """The whole body, refused (413) past `max_bytes` — before reading when Content-Length says so, else as soon as
    the chunks say so. Reads the ASGI messages directly: starlette's `stream()` is an async generator (hooks, a
    weak set entry, a frame per chunk) for what is one message on almost every request."""
    declared = header_dict(req).get("content-length")
    if declared and _ASCII_UINT.fullmatch(declared) and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.", details={"limit": max_bytes})
    cached = getattr(req, "_body", None)  # read before (starlette's `body()` keeps it there too)
    if cached is not None:
        return cached
    chunks, size = [], 0
    receive = req.receive
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client went away
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_bytes:  # chunked uploads have no Content-Length; stop reading as soon as we know
                raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.",
                                      details={"limit": max_bytes})
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    req._body = body  # what starlette's own `body()` and `stream()` hand out from now on
    return body


def _not_json(token: str) -> Any:
    # Python's json accepts NaN and ±Infinity; JSON (RFC 8259) does not, and no contract number can hold them.
    raise ValueError(f"{token} is not a JSON value")


async def read_json(req: Request, max_bytes: int) -> Any:
    ctype = header_dict(req).get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json.", details={"content_type": ctype})
    raw = await read_body(req, max_bytes)
    if not raw.strip():
        return {}  # no body = no fields; the contract says whether that is enough
    check_json_depth(raw)
    try:
        return json.loads(raw, parse_constant=_not_json)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and ints over Python's 4,300-digit limit
        pos = getattr(exc, "pos", None)
        raise MalformedJson(f"The request body is not valid JSON: {exc}.", details={"position": pos}) from None


async def read_model(req: Request, model: type[M], max_bytes: int) -> M:
    data = await read_json(req, max_bytes)
    if not isinstance(data, dict):
        raise ValidationFailed("The request body must be a JSON object.",
                               details=[{"field": "body", "message": "expected an object", "type": "type"}])
    return validate(model, data)


def query_int(req: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = req.query_params.get(name)
    if raw is None:
        return default
    # ASCII digits only, bounded length: int() would accept '٣' or '1_000', and str.isdigit() accepts '¹' (500).
    if not _ASCII_UINT.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise InvalidQuery(f"Query parameter '{name}' must be an integer from {lo} to {hi}.",
                           details=[{"field": name, "message": f"integer {lo}..{hi} expected"}])
    return int(raw)
