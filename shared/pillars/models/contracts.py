"""What the gateway checks in OpenAI-shaped request bodies. Only the fields it acts on are typed; every other
field passes through untouched (extra="allow"), so new OpenAI parameters need no gateway release."""
from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from shared.errors import BadRequest, MalformedJson
from shared.web.inputs import validate


class _Passthrough(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Passthrough):
    role: str = Field(min_length=1)
    content: str | list[Any] | None = None


class StreamOptions(_Passthrough):
    include_usage: bool | None = None


class ChatRequest(_Passthrough):
    model: str | None = Field(default=None, min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=128)


class EmbeddingsRequest(_Passthrough):
    model: str | None = Field(default=None, min_length=1)
    input: str | list[Any] = Field(min_length=1)


ModelsOperation = Literal["chat", "embeddings"]  # the models pillar's own operations
CONTRACTS: dict[str, type[BaseModel]] = {"chat": ChatRequest, "embeddings": EmbeddingsRequest}


def parse(op: ModelsOperation, raw: bytes, path_model: str | None) -> tuple[dict[str, Any], str]:
    """The body (kept as a dict: unknown fields pass through byte-for-byte) and the model name it calls."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_request")
    parsed = validate(CONTRACTS[op], body)
    name = path_model or getattr(parsed, "model", None)
    if not name:
        raise BadRequest("'model' is required.", code="invalid_request",
                         details=[{"field": "model", "message": "required"}])
    return body, name
