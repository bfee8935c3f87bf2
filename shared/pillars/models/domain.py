"""Models pillar: a public model name (what clients send) mapped to a pool of backends."""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BeforeValidator, Field, HttpUrl, field_validator

from ...domain.base import AppModel
from shared.cache_semantic.settings import CacheSettings
from shared.config import UPSTREAM_SECRET_PATTERN, UPSTREAM_SECRET_PREFIX, is_upstream_secret_name
from shared.domain.base import Contract, Entity
from shared.domain.lifecycle import Lifecycle, read_lifecycle
from shared.domain.routing import RoutingPolicy

Capability = Literal["chat", "embeddings", "streaming", "tools", "vision"]


class Backend(Contract):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["openai", "azure_openai", "openai_compatible"]
    endpoint: HttpUrl
    deployment: str = Field(min_length=1, description="Upstream model id, or the Azure OpenAI deployment name.")
    api_version: str | None = Field(default=None, description="Azure OpenAI api-version.")
    # Name of an app setting / Key Vault reference holding the upstream key; None: keyless (managed identity).
    api_key_setting: str | None = Field(default=None, max_length=116, json_schema_extra={
        "pattern": UPSTREAM_SECRET_PATTERN}, description="An app setting named UPSTREAM_SECRET_*; nothing else.")
    priority: int = Field(default=0, ge=0, le=1000, description="Lower is tried first.")
    weight: int = Field(default=1, ge=1, le=1000)
    timeout_seconds: float = Field(default=60, gt=0, le=600, allow_inf_nan=False)
    tpm_capacity: int | None = Field(default=None, gt=0, le=10**10)

    @field_validator("api_key_setting")
    @classmethod
    def _upstream_secret_only(cls, name: str | None) -> str | None:
        # Any other setting (the admin key, the key pepper, connection strings) would ship to the backend's host.
        if name is not None and not is_upstream_secret_name(name):
            raise ValueError(f"must name an app setting {UPSTREAM_SECRET_PREFIX}<NAME> (upper-case letters, "
                             "digits, _); the gateway's own settings can never be an upstream credential")
        return name


class ModelSpec(Contract):
    name: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="Public model name clients send.")
    description: str = Field(default="", max_length=2000)
    capabilities: list[Capability] = Field(default_factory=lambda: ["chat", "streaming"])
    context_window: int | None = Field(default=None, gt=0, le=100_000_000)
    input_price_per_1k: float = Field(default=0, ge=0, le=10_000, allow_inf_nan=False)
    output_price_per_1k: float = Field(default=0, ge=0, le=10_000, allow_inf_nan=False)
    lifecycle: Annotated[Lifecycle, BeforeValidator(read_lifecycle)] = Field(default=Lifecycle.published, description=(
        "draft | published | deprecated | retired | suspended (earlier names: preview = draft, active = "
        "published). Retired and suspended models are not served."))
    tokenizer: str | None = Field(default=None, max_length=128, description=(
        "The underlying OpenAI model or encoding (e.g. gpt-4o, cl100k_base) for quota estimates; "
        "default: the public name, then the backend deployment, then a byte-based estimate."))
    completion_estimate_tokens: int | None = Field(default=None, ge=0, le=200_000, description=(
        "Completion tokens reserved on token quotas for a chat call that sets no max_tokens, reconciled with "
        "real usage after; default: the gateway's QUOTA_DEFAULT_COMPLETION_TOKENS (256). 0 reserves none."))
    backends: list[Backend] = Field(min_length=1, max_length=32)
    routing: RoutingPolicy = Field(default_factory=RoutingPolicy)
    cache: CacheSettings | None = Field(default=None, description=(
        "Response cache for chat calls (exact match, optionally semantic); off when absent."))
    cached_input_price_per_1k: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False, description=(
        "Price of input tokens the provider served from its prompt cache (usage "
        "prompt_tokens_details.cached_tokens); default: the input price."))
    reasoning_price_per_1k: float | None = Field(default=None, ge=0, le=10_000, allow_inf_nan=False, description=(
        "Price of reasoning tokens (usage completion_tokens_details.reasoning_tokens); default: the output price."))


class Model(Entity):
    kind: ClassVar[str] = "model"
    spec: ModelSpec


class ModelOut(ModelSpec):
    project_id: str
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, m: Model) -> "ModelOut":
        return cls(**m.spec.model_dump(), project_id=m.project_id, created_at=m.created_at.isoformat(),
                   updated_at=m.updated_at.isoformat())


class OpenAIModel(AppModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class OpenAIModelList(AppModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]
