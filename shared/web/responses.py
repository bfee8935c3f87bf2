"""JSON responses and the one mapping from GatewayError to HTTP."""
from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from ..errors import GatewayError, InternalError

log = logging.getLogger("gateway.http")


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(by_alias=True).encode()
    else:
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def error_response(exc: BaseException, request_id: str) -> Response:
    """The single place where an error becomes an HTTP response (status, stable code, message, details)."""
    if not isinstance(exc, GatewayError):
        log.exception("unhandled error (request %s)", request_id, exc_info=exc)
        exc = InternalError(f"Internal error; quote request id {request_id} when reporting it.")
    elif exc.status >= 500:
        log.warning("request %s failed: %s %s", request_id, exc.code, exc.message)
    headers = {"x-request-id": request_id, **exc.headers}
    if exc.status == 401:
        headers.setdefault("www-authenticate", 'Bearer realm="ai-gateway"')
    if exc.retryable and exc.status == 503:
        headers.setdefault("retry-after", "2")
    return json_response(exc.to_body(), exc.status, headers)
