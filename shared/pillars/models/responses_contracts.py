"""The Responses API (`POST /v1/responses`, `GET|DELETE /v1/responses/{id}`, `GET …/{id}/input_items`) as the
models pillar's operations. As for chat, only the fields the gateway acts on are typed (strictly); every other
field passes through untouched."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import Field, StrictBool, StrictInt, StrictStr

from shared.domain.base import Pillar
from shared.errors import InvalidRequest
from shared.pipeline.exchange import Exchange
from shared.web.inputs import validate

from .contracts import MAX_INT32, _Passthrough, read_object

if TYPE_CHECKING:
    from shared.auth.principal import Principal

RESPONSES = "responses"  # POST: create (the only one that streams and spends tokens)
BY_ID = ("responses.get", "responses.delete", "responses.input_items")
OPERATIONS = (RESPONSES, *BY_ID)
RESPONSE_ID = "response_id"  # Exchange.request key of the by-id operations
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")
# Query parameters the by-id operations pass upstream (an allow-list, bounded below).
PASSED_QUERY = ("after", "before", "limit", "order", "include[]", "include")


class InputMessage(_Passthrough):
    role: StrictStr | None = Field(default=None, min_length=1, max_length=64)
    content: StrictStr | list[Any] | None = None


class ResponsesRequest(_Passthrough):
    model: StrictStr = Field(min_length=1, max_length=256)
    input: StrictStr | list[InputMessage] | None = None
    instructions: StrictStr | None = None
    stream: StrictBool | None = None
    max_output_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_INT32)
    previous_response_id: StrictStr | None = Field(default=None, pattern=_ID.pattern)
    store: StrictBool | None = None


def check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise InvalidRequest("The response id is malformed.", details=[
            {"field": RESPONSE_ID, "message": "1-256 characters: letters, digits, _ . : -", "type": "pattern"}])
    return value


def create(raw: bytes, *, principal: Principal, request_id: str, headers: Mapping[str, str],
           started: float) -> Exchange:
    body = read_object(raw)
    parsed = validate(ResponsesRequest, body, error=InvalidRequest)
    return Exchange(Pillar.models, RESPONSES, principal, request_id, body, headers, started,
                    stream=parsed.stream is True, resource=parsed.model)


def by_id(op: str, response_id: str, query: Mapping[str, str], *, principal: Principal, request_id: str,
          headers: Mapping[str, str], started: float) -> Exchange:
    """A read/delete of a stored response: the model (and backend) are found from the id in `resolve`."""
    assert op in BY_ID
    passed = {k: v[:256] for k, v in query.items() if k in PASSED_QUERY}
    request: dict[str, Any] = {RESPONSE_ID: check_id(response_id), "query": passed}
    return Exchange(Pillar.models, op, principal, request_id, request, headers, started)
