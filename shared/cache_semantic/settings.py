"""What an admin sets per model (and so per project: models belong to one project) for the response cache."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..domain.base import Contract

VaryBy = Literal["key", "system_prompt"]
BYPASS_HEADER = "x-gateway-cache"  # request value "bypass" skips the cache; responses carry hit|miss|bypass
DEFAULT_VARY_FIELDS = ["temperature", "top_p", "max_tokens", "max_completion_tokens", "response_format", "tools",
                       "tool_choice", "seed", "n"]


class CacheSettings(Contract):
    enabled: bool = False
    semantic: bool = Field(default=False, description=(
        "Also answer close paraphrases (embedding similarity + the false-hit veto); exact matches are always "
        "looked up first."))
    embeddings_model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description=(
        "A model of the same project with the embeddings capability; required when semantic is on."))
    similarity_threshold: float = Field(default=0.85, ge=0.5, le=1.0, allow_inf_nan=False, description=(
        "Cosine similarity at or above which a cached prompt may answer (then the veto decides)."))
    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 86_400)
    vary_by: list[VaryBy] = Field(default_factory=lambda: ["system_prompt"], max_length=2, description=(
        "Entries are always per project and model; also per key and/or per system prompt."))
    vary_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_VARY_FIELDS), max_length=32, description=(
        "Top-level request fields whose values separate entries (semantic lookups; the exact key covers the "
        "whole request)."))
    messages_considered: int = Field(default=1, ge=1, le=32, description=(
        "How many of the last user/assistant messages form the prompt that is matched."))
    allow_bypass: bool = Field(default=True, description="Honour the request header `x-gateway-cache: bypass`.")
    max_prompt_chars: int = Field(default=4000, ge=16, le=100_000, description=(
        "Longer prompts are not cached semantically (embedding cost, weaker similarity)."))

    @model_validator(mode="after")
    def _semantic_needs_embeddings(self) -> "CacheSettings":
        if self.semantic and not self.embeddings_model:
            raise ValueError("semantic caching needs embeddings_model")
        for name in self.vary_fields:
            if not (1 <= len(name) <= 64) or not name.replace("_", "").isalnum():
                raise ValueError(f"vary_fields: {name[:64]!r} is not a request field name")
        return self
