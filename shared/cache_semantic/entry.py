"""One cached answer: what was asked (prompt text, its embedding) and what was answered."""
from __future__ import annotations

from pydantic import ConfigDict, Field

from ..domain.base import AppModel


class CachedAnswer(AppModel):
    model_config = ConfigDict(extra="ignore")

    content: str = Field(max_length=200_000)
    finish_reason: str = Field(default="stop", max_length=32)
    model: str = Field(max_length=256)
    prompt_tokens: int = Field(default=0, ge=0, le=10**9)
    completion_tokens: int = Field(default=0, ge=0, le=10**9)


class CacheEntry(AppModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(max_length=64)  # the exact key
    scope: str = Field(max_length=64)
    prompt: str = Field(max_length=100_000)
    vector: list[float] | None = Field(default=None, max_length=8192)
    answer: CachedAnswer
    created_at: float
    expires_at: float
