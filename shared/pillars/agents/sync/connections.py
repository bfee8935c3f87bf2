"""Sync connections, from the AGENTS_SYNC_CONNECTIONS app setting (a JSON list): which cloud account feeds which
project. Each entry is validated on its own, so one malformed or disabled connection never stops the others (nor
the gateway: a bad entry is reported on the sync runs, not as an app-wide configuration error)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, HttpUrl, TypeAdapter, ValidationError, field_validator

from ....domain.base import Contract, Slug
from ..domain import CONNECTION_PATTERN, SecretSetting, upstream_secret_name

REGION = r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$"


class ConnectionBase(Contract):
    name: str = Field(pattern=CONNECTION_PATTERN)
    project: Slug = Field(description="The registry project the connection's agents land in.")
    enabled: bool = True
    timeout_seconds: float = Field(default=20, gt=0, le=300, allow_inf_nan=False)


class BedrockConnection(ConnectionBase):
    cloud: Literal["bedrock"] = "bedrock"
    region: str = Field(pattern=REGION)
    access_key_id_setting: SecretSetting | None = None
    secret_access_key_setting: SecretSetting | None = None
    role_arn: str | None = Field(default=None, max_length=600)
    endpoint_url: HttpUrl | None = Field(default=None, description="bedrock-agent endpoint override (tests, VPC).")
    runtime_endpoint_url: HttpUrl | None = Field(default=None, description="bedrock-agent-runtime override.")
    # Suspending one of this connection's agents also sets its alias to REJECT_INVOCATIONS (and lifting the
    # suspension back to ACCEPT_INVOCATIONS).
    suspend_at_source: bool = False
    page_size: int = Field(default=50, ge=1, le=100)

    @field_validator("access_key_id_setting", "secret_access_key_setting")
    @classmethod
    def _secret_only(cls, name: str | None) -> str | None:
        return upstream_secret_name(name)


class VertexConnection(ConnectionBase):
    cloud: Literal["vertex"] = "vertex"
    gcp_project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$|^\d{1,20}$")
    location: str = Field(pattern=r"^[a-z]+-[a-z]+\d{1,2}$")
    service_account_setting: SecretSetting | None = Field(
        default=None, description="Service-account JSON; None: the injected/default credential.")
    api_endpoint: HttpUrl | None = Field(default=None,
                                         description="Default https://{location}-aiplatform.googleapis.com")
    page_size: int = Field(default=100, ge=1, le=1000)

    @field_validator("service_account_setting")
    @classmethod
    def _secret_only(cls, name: str | None) -> str | None:
        return upstream_secret_name(name)

    @property
    def base_url(self) -> str:
        return str(self.api_endpoint).rstrip("/") if self.api_endpoint else \
            f"https://{self.location}-aiplatform.googleapis.com"

    @property
    def parent(self) -> str:
        return f"projects/{self.gcp_project}/locations/{self.location}"


Connection = Annotated[BedrockConnection | VertexConnection, Field(discriminator="cloud")]
_ONE = TypeAdapter(Connection)


@dataclass(frozen=True)
class ConnectionProblem:
    index: int
    name: str
    reason: str


def parse_connections(raw: str) -> tuple[list[BedrockConnection | VertexConnection], list[ConnectionProblem]]:
    """Every valid connection, and a problem per invalid one (never the setting's values: they may be secret)."""
    try:
        items = json.loads(raw or "[]")
    except json.JSONDecodeError:
        return [], [ConnectionProblem(-1, "(setting)", "AGENTS_SYNC_CONNECTIONS is not JSON")]
    if not isinstance(items, list):
        return [], [ConnectionProblem(-1, "(setting)", "AGENTS_SYNC_CONNECTIONS must be a JSON list")]
    good, bad, names = [], [], set()
    for i, item in enumerate(items[:64]):
        name = str(item.get("name", f"#{i}"))[:40] if isinstance(item, dict) else f"#{i}"
        try:
            conn = _ONE.validate_python(item)
        except ValidationError as exc:
            reason = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                               for e in exc.errors(include_input=False, include_url=False))
            bad.append(ConnectionProblem(i, name, reason[:1000]))
            continue
        if conn.name in names:
            bad.append(ConnectionProblem(i, name, "duplicate connection name"))
            continue
        names.add(conn.name)
        good.append(conn)
    return good, bad
