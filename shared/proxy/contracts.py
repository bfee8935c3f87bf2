"""What the gateway checks in OpenAI-shaped request bodies. Only the fields it acts on are typed; every other
field passes through untouched (extra="allow"), so new OpenAI parameters need no gateway release.

The typed fields are strict, as OpenAI validates them: `"stream": "false"` is a 400 naming `stream`, not a string
coerced to a boolean (the gateway would then relay an SSE stream to a client that asked for JSON). The proxy acts
on the *validated* values only, never on the raw body's."""
from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from ..errors import InvalidRequest, MalformedJson
from ..web.inputs import check_json_depth, validate

# OpenAI's own integer parameters are 32-bit; a larger number is no request anyone can serve.
MAX_INT32 = 2**31 - 1


class _Passthrough(BaseModel):
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


Operation = Literal["chat", "embeddings"]
CONTRACTS: dict[str, type[BaseModel]] = {"chat": ChatRequest, "embeddings": EmbeddingsRequest}


def read_call(op: Operation, raw: bytes) -> tuple[dict[str, Any], BaseModel]:
    """The raw body (forwarded as sent, unknown fields kept) and its validated contract. Nesting is bounded before
    parsing, so a hostile body is a 400 here — never a serialiser failure after the quota was taken."""
    check_json_depth(raw)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.",
                             details=[{"field": "body", "message": "expected an object", "type": "type"}])
    return body, validate(CONTRACTS[op], body, error=InvalidRequest)


def wants_stream(op: Operation, parsed: BaseModel) -> bool:
    """The validated `stream` flag (chat only): the single source for every streaming decision of a call."""
    return op == "chat" and getattr(parsed, "stream", None) is True


def wants_usage(parsed: BaseModel) -> bool:
    options = getattr(parsed, "stream_options", None)
    return options is not None and options.include_usage is True
