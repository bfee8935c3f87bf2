"""Guardrail policies: registry objects attached to a project, a key, or one resource of a pillar (a model now; a
toolbox or an agent later). Every number is bounded; every check names its action."""
from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, HttpUrl, field_validator, model_validator

from ..config import UPSTREAM_SECRET_PATTERN, UPSTREAM_SECRET_PREFIX, is_upstream_secret_name
from ..domain.base import AppModel, Contract, Entity, InvalidDocument, Pillar

Action = Literal["block", "redact", "annotate"]
Stage = Literal["input", "output", "both"]
Role = Literal["user", "system", "tool", "assistant"]
CheckName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Phrase = Annotated[str, Field(min_length=1, max_length=200)]
PiiKind = Literal["email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "es_dni", "in_aadhaar", "ipv4",
                  "ipv6", "aws_access_key", "github_token", "openai_key", "jwt", "private_key"]
HarmCategory = Literal["Hate", "SelfHarm", "Sexual", "Violence"]
ALL_PII: tuple[str, ...] = PiiKind.__args__  # type: ignore[attr-defined]


class _Check(Contract):
    name: CheckName = Field(description="Stable name, reported in verdicts and in a block's details.check.")
    action: Action = "block"
    stage: Stage = Field(default="input", description="input: the prompt; output: the answer; both.")
    roles: list[Role] = Field(default_factory=lambda: ["user", "system", "tool"], max_length=4,
                              description="Which input segments are scanned (output is always the assistant).")
    _redactable: ClassVar[bool] = True

    @model_validator(mode="after")
    def _action_fits(self) -> "_Check":
        if self.action == "redact" and not self._redactable:
            raise ValueError(f"a {self.type} check cannot redact; use block or annotate")  # type: ignore[attr-defined]
        return self


class DenyListCheck(_Check):
    type: Literal["deny_list"]
    phrases: list[Phrase] = Field(min_length=1, max_length=1000)
    case_sensitive: bool = False
    whole_words: bool = True


class RegexCheck(_Check):
    type: Literal["regex"]
    patterns: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(min_length=1, max_length=50)
    case_sensitive: bool = False

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        import regex  # the module the check runs with (it honours a timeout)

        for i, p in enumerate(patterns):
            try:
                if regex.compile(p).match(""):
                    raise ValueError(f"pattern {i} matches the empty string")
            except (regex.error, OverflowError, RecursionError) as exc:
                raise ValueError(f"pattern {i} does not compile: {exc}") from None
        try:  # they run as one alternation: group references must still resolve there
            regex.compile("|".join(f"(?:{p})" for p in patterns))
        except (regex.error, OverflowError, RecursionError) as exc:
            raise ValueError(f"the patterns do not compile together (group references?): {exc}") from None
        return patterns


class PiiCheck(_Check):
    type: Literal["pii"]
    action: Action = "redact"
    entities: list[PiiKind] = Field(default_factory=lambda: list(ALL_PII), min_length=1, max_length=len(ALL_PII))


class InjectionCheck(_Check):
    type: Literal["prompt_injection"]
    roles: list[Role] = Field(default_factory=lambda: ["user", "tool"], max_length=4)
    threshold: float = Field(default=0.5, gt=0, le=1, allow_inf_nan=False,
                             description="Score (0-1) at or above which the check fires.")
    _redactable: ClassVar[bool] = False


class MaxSizeCheck(_Check):
    type: Literal["max_prompt_size"]
    max_chars: int = Field(ge=1, le=10_000_000, description="Total characters of the scanned segments.")
    _redactable: ClassVar[bool] = False


class TopicCheck(_Check):
    type: Literal["topics"]
    allow: list[Phrase] = Field(default_factory=list, max_length=500,
                                description="If set, user content must mention at least one of these.")
    deny: list[Phrase] = Field(default_factory=list, max_length=500)
    roles: list[Role] = Field(default_factory=lambda: ["user"], max_length=4)
    _redactable: ClassVar[bool] = False

    @model_validator(mode="after")
    def _some_topic(self) -> "TopicCheck":
        if not self.allow and not self.deny:
            raise ValueError("set allow or deny keywords")
        return self


class ContentSafetyCheck(_Check):
    type: Literal["content_safety"]
    endpoint: HttpUrl = Field(description="The Azure AI Content Safety (or AI Services) resource endpoint.")
    thresholds: dict[HarmCategory, Annotated[int, Field(ge=0, le=7)]] = Field(
        default_factory=lambda: {"Hate": 4, "SelfHarm": 4, "Sexual": 4, "Violence": 4}, max_length=4,
        description="Severity (0-7) at or above which a category fires; categories left out are not analysed.")
    prompt_shields: bool = Field(default=True, description="Also run Prompt Shields (user prompt + documents).")
    fail_mode: Literal["open", "closed"] = Field(default="closed", description=(
        "When the service errs or times out: open lets the call through (verdict 'unavailable'), closed refuses "
        "it with 503 guardrail_unavailable."))
    timeout_seconds: float = Field(default=2.0, gt=0, le=30, allow_inf_nan=False)
    api_key_setting: str | None = Field(default=None, max_length=116, json_schema_extra={
        "pattern": UPSTREAM_SECRET_PATTERN}, description="An app setting named UPSTREAM_SECRET_*; none: Entra ID.")
    # On output (stage output/both): a whole answer is analysed before it is returned; a stream is held back in
    # batches until each has passed (shared/guardrails/remote_stream.py). Prompt Shields analyse input only.
    _redactable: ClassVar[bool] = False

    @field_validator("api_key_setting")
    @classmethod
    def _upstream_secret_only(cls, name: str | None) -> str | None:
        if name is not None and not is_upstream_secret_name(name):
            raise ValueError(f"must name an app setting {UPSTREAM_SECRET_PREFIX}<NAME>")
        return name


CheckSpec = Annotated[DenyListCheck | RegexCheck | PiiCheck | InjectionCheck | MaxSizeCheck | TopicCheck
                      | ContentSafetyCheck, Field(discriminator="type")]


class Attachment(Contract):
    """Where a policy applies: the whole project, one key, or one resource of a pillar (pillar + resource)."""

    scope: Literal["project", "key", "resource"]
    key_id: str | None = Field(default=None, max_length=128, description="scope=key: the key's id.")
    pillar: Pillar | None = Field(default=None, description="scope=resource: models, tools or agents.")
    resource: str | None = Field(default=None, max_length=128, description="scope=resource: e.g. the model name.")

    @model_validator(mode="after")
    def _complete(self) -> "Attachment":
        if self.scope == "key" and not self.key_id:
            raise ValueError("scope=key needs key_id")
        if self.scope == "resource" and (self.pillar is None or not self.resource):
            raise ValueError("scope=resource needs pillar and resource")
        return self


class PolicySpec(Contract):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    attach: Attachment
    checks: list[CheckSpec] = Field(min_length=1, max_length=32)

    @model_validator(mode="after")
    def _unique_names(self) -> "PolicySpec":
        names = [c.name for c in self.checks]
        if len(names) != len(set(names)):
            raise ValueError("check names must be unique within a policy")
        return self


class GuardrailPolicy(Entity):
    kind: ClassVar[str] = "guardrail_policy"
    spec: PolicySpec

    def applies(self, pillar: Pillar, resource: str | None, key_id: str | None) -> bool:
        a = self.spec.attach
        if not self.spec.enabled:
            return False
        return (a.scope == "project" or (a.scope == "key" and a.key_id == key_id)
                or (a.scope == "resource" and a.pillar == pillar and a.resource == resource))


class PolicyOut(PolicySpec):
    project_id: str
    updated_at: str

    @classmethod
    def of(cls, p: GuardrailPolicy) -> "PolicyOut":
        return cls(**p.spec.model_dump(), project_id=p.project_id, updated_at=p.updated_at.isoformat())


class PolicyList(AppModel):
    items: list[PolicyOut]
    invalid: list[InvalidDocument] = Field(default_factory=list, description=(
        "Stored policies that no longer validate: skipped, so NOT enforced; delete or replace them."))
