"""What the gateway checks in OpenAI-shaped request bodies. Only the fields it acts on are typed; every other
field passes through untouched (extra="allow"), so new OpenAI parameters need no gateway release.

The typed fields are strict, as OpenAI validates them: `"stream": "false"` is a 400 naming `stream`, not a string
coerced to a boolean (the gateway would then relay an SSE stream to a client that asked for JSON). The pillar acts
on the *validated* values only, never on the raw body's: `exchange` hands them to the pipeline."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from ...domain.base import AppModel
from shared.domain.base import Pillar
from shared.errors import InvalidRequest, MalformedJson
from shared.pipeline.exchange import Exchange
from shared.web.inputs import check_json_depth, validate

if TYPE_CHECKING:
    from shared.auth.principal import Principal

# OpenAI's own integer parameters are 32-bit; a larger number is no request anyone can serve.
MAX_INT32 = 2**31 - 1
CLIENT_ASKED_USAGE = "client_asked_usage"  # Exchange.scratch key: the validated stream_options.include_usage


class _Passthrough(AppModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ChatMessage(_Passthrough):
    role: StrictStr = Field(min_length=1, max_length=64)
    content: StrictStr | list[Any] | None = None


class StreamOptions(_Passthrough):
    include_usage: StrictBool | None = None


class ChatRequest(_Passthrough):
    model: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_INT32)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_INT32)
    n: StrictInt | None = Field(default=None, ge=1, le=128)


class EmbeddingsRequest(_Passthrough):
    model: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    input: StrictStr | list[Any] = Field(min_length=1)


ModelsOperation = Literal["chat", "embeddings"]  # the models pillar's own operations
CONTRACTS: dict[str, type[BaseModel]] = {"chat": ChatRequest, "embeddings": EmbeddingsRequest}


def read_call(op: ModelsOperation, raw: bytes) -> tuple[dict[str, Any], BaseModel]:
    """The raw body (forwarded as sent, unknown fields kept) and its validated contract. Nesting is bounded before
    parsing, so a hostile body is a 400 here — never a serialiser failure after the quota was taken."""
    body = read_object(raw)
    return body, validate(CONTRACTS[op], body, error=InvalidRequest)


def read_object(raw: bytes) -> dict[str, Any]:
    """A depth-bounded JSON object body, or a 400 (malformed JSON, not an object)."""
    check_json_depth(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.",
                             details=[{"field": "body", "message": "expected an object", "type": "type"}])
    return body


def wants_stream(op: str, parsed: BaseModel) -> bool:
    """The validated `stream` flag (chat only): the single source for every streaming decision of a call."""
    return op == "chat" and getattr(parsed, "stream", None) is True


def wants_usage(parsed: BaseModel) -> bool:
    options = getattr(parsed, "stream_options", None)
    return options is not None and options.include_usage is True


def parse(op: ModelsOperation, raw: bytes, path_model: str | None) -> tuple[dict[str, Any], str]:
    """The body (kept as a dict: unknown fields pass through byte-for-byte) and the model name it calls."""
    body, name, _ = _read(op, raw, path_model)
    return body, name


def exchange(op: ModelsOperation, raw: bytes, path_model: str | None, *, principal: Principal, request_id: str,
             headers: Mapping[str, str], started: float) -> Exchange:
    """One models call for the pipeline, with the validated flags it acts on (`stream`, `include_usage`)."""
    body, name, parsed = _read(op, raw, path_model)
    return Exchange(Pillar.models, op, principal, request_id, body, headers, started,
                    stream=wants_stream(op, parsed), resource=name,
                    scratch={CLIENT_ASKED_USAGE: wants_usage(parsed)})


def _read(op: ModelsOperation, raw: bytes, path_model: str | None) -> tuple[dict[str, Any], str, BaseModel]:
    body, parsed = read_call(op, raw)
    name = path_model or getattr(parsed, "model", None)
    if not name:
        raise InvalidRequest("'model' is required.", details=[{"field": "model", "message": "required"}])
    return body, name, parsed
