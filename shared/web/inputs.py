"""Turning request bodies and query strings into pydantic contracts, with structured errors naming each field."""
from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from ..errors import BadRequest, MalformedJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError, root: str = "") -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(p) for p in err["loc"]) or root or "body"
        out.append({"field": f"{root}.{path}" if root and err["loc"] else path, "message": err["msg"],
                    "type": err["type"]})
    return out


def validate(model: type[M], data: Any, what: str = "body") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        names = ", ".join(e["field"] for e in errors)
        raise ValidationFailed(f"The request {what} is invalid: {names}.", details=errors) from None


async def read_body(req: Request, max_bytes: int) -> bytes:
    declared = req.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.", details={"limit": max_bytes})
    chunks, size = [], 0
    async for chunk in req.stream():
        size += len(chunk)
        if size > max_bytes:  # chunked uploads have no Content-Length; stop reading as soon as we know
            raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.",
                                  details={"limit": max_bytes})
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(req: Request, max_bytes: int) -> Any:
    ctype = req.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json.", details={"content_type": ctype})
    raw = await read_body(req, max_bytes)
    if not raw.strip():
        return {}  # no body = no fields; the contract says whether that is enough
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise BadRequest(f"Query parameter '{name}' must be an integer from {lo} to {hi}.", code="invalid_query",
                         details=[{"field": name, "message": f"integer {lo}..{hi} expected"}])
    return int(raw)
