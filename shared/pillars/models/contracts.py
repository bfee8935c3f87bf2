"""What the gateway checks in OpenAI-shaped request bodies. Only the fields it acts on are typed; every other
field passes through untouched (extra="allow"), so new OpenAI parameters need no gateway release."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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
