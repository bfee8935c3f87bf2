"""Settings: the only reader of the process environment.

Locally the values come from `local.settings.json` (the local host, like Core Tools, exports its `Values`
as environment variables); in Azure they are app settings, secrets as Key Vault references.
"""
from __future__ import annotations

import os
import re
from typing import Any, Literal

from dataclasses import dataclass

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

# Upstream credentials may come only from app settings under this prefix (each a Key Vault reference in Azure):
# a backend naming any other setting — the gateway's own secrets and connection strings included — is refused
# at the contract (422) and again when the key would be read.
UPSTREAM_SECRET_PREFIX = "UPSTREAM_SECRET_"
UPSTREAM_SECRET_PATTERN = r"^UPSTREAM_SECRET_[A-Z0-9_]{1,100}$"
_UPSTREAM_SECRET_NAME = re.compile(UPSTREAM_SECRET_PATTERN)


def is_upstream_secret_name(name: object) -> bool:
    return isinstance(name, str) and _UPSTREAM_SECRET_NAME.fullmatch(name) is not None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True,
                                      env_ignore_empty=True)  # "" in local.settings.json means "use the default"

    # --- auth
    admin_key: SecretStr | None = Field(default=None, validation_alias="GATEWAY_ADMIN_KEY")
    # Pepper for the keyed hash of virtual keys. A leaked registry alone must not let anyone test guesses.
    # No default: a well-known pepper would be worse than none. Missing → the data plane refuses (503).
    key_hash_secret: SecretStr | None = Field(default=None, validation_alias="GATEWAY_KEY_HASH_SECRET")
    # Virtual keys issued before self-verifying (MAC'd) secrets: still accepted through a registry lookup while true.
    # Set false once every legacy key is rotated (GET …/keys shows `secret_format`), so no guess costs a lookup.
    accept_legacy_virtual_keys: bool = Field(default=True, validation_alias="ACCEPT_LEGACY_VIRTUAL_KEYS")
    entra_tenant_id: str | None = Field(default=None, validation_alias="ENTRA_TENANT_ID")
    entra_audience: str | None = Field(default=None, validation_alias="ENTRA_AUDIENCE")
    # Overrides, mostly for tests and sovereign clouds; derived from the tenant when absent.
    entra_issuer: str | None = Field(default=None, validation_alias="ENTRA_ISSUER")
    entra_jwks_url: str | None = Field(default=None, validation_alias="ENTRA_JWKS_URL")
    entra_admin_role: str = Field(default="Gateway.Admin", validation_alias="ENTRA_ADMIN_ROLE")
    entra_developer_role: str = Field(default="Gateway.Developer", validation_alias="ENTRA_DEVELOPER_ROLE")
    jwks_cache_seconds: float = Field(default=3600, validation_alias="ENTRA_JWKS_CACHE_SECONDS")

    # --- Cosmos DB registry
    cosmos_connection_string: SecretStr | None = Field(default=None, validation_alias="COSMOS_CONNECTION_STRING")
    cosmos_endpoint: str | None = Field(default=None, validation_alias="COSMOS_ENDPOINT")
    cosmos_database: str = Field(default="gateway", validation_alias="COSMOS_DATABASE")
    cosmos_container: str = Field(default="registry", validation_alias="COSMOS_CONTAINER")
    cosmos_create_if_missing: bool = Field(default=True, validation_alias="COSMOS_CREATE_IF_MISSING")
    # --- response cache (shared/cache_semantic): a second container, partitioned by cache scope
    cache_container: str = Field(default="responsecache", min_length=1, max_length=255,
                                 validation_alias="COSMOS_CACHE_CONTAINER")
    # true in Azure (the container has a vector policy: VectorDistance); false for the local Cosmos server
    cache_vector_search: bool = Field(default=False, validation_alias="CACHE_VECTOR_SEARCH")
    cache_timeout_seconds: float = Field(default=1.0, gt=0, le=10, validation_alias="CACHE_TIMEOUT_SECONDS")
    # Responses API: which backend served a response id (GET/DELETE go back there), per worker, bounded
    responses_directory_max_entries: int = Field(default=100_000, ge=1, le=10_000_000,
                                                 validation_alias="RESPONSES_DIRECTORY_MAX_ENTRIES")
    responses_directory_ttl_seconds: float = Field(default=7 * 86400, gt=0, le=90 * 86400,
                                                   validation_alias="RESPONSES_DIRECTORY_TTL_SECONDS")

    # --- Storage (tables for counters/logs, queues). Same account the Functions host uses.
    storage_connection_string: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GATEWAY_STORAGE", "AzureWebJobsStorage")
    )
    storage_account_name: str | None = Field(default=None, validation_alias="AzureWebJobsStorage__accountName")

    # --- timeouts and caches
    dependency_timeout_seconds: float = Field(default=5.0, validation_alias="DEPENDENCY_TIMEOUT_SECONDS")
    # How long a flag/key read may be served from the in-process cache before it is refreshed. This is the
    # rollback RTO: a flag flip reaches every instance within this many seconds (plus one read).
    flag_cache_ttl_seconds: float = Field(default=5.0, ge=0, validation_alias="FLAG_CACHE_TTL_SECONDS")
    # While Cosmos is unreachable, the data plane keeps serving cached flags/keys for this long (fail-static),
    # then fails closed with 503.
    fail_static_max_seconds: float = Field(default=300.0, ge=0, validation_alias="FAIL_STATIC_MAX_SECONDS")
    max_admin_body_bytes: int = Field(default=1_048_576, gt=0, validation_alias="MAX_ADMIN_BODY_BYTES")
    # Prompts with images or long context are large; still bounded so one request cannot exhaust a worker.
    max_data_body_bytes: int = Field(default=16_777_216, gt=0, validation_alias="MAX_DATA_BODY_BYTES")

    # --- admission control on the data plane, per worker process (shared/web/admission.py, docs/runbook.md
    # "Overload"). In flight = calls between arrival and their response headers; size it by Little's law:
    # calls/s one worker serves × the upstreams' typical latency (600/s × 0.4 s ≈ 256). Beyond it, up to
    # GATEWAY_ADMISSION_QUEUE calls wait at most GATEWAY_ADMISSION_WAIT_MS for a slot; the rest get a fast 503.
    max_in_flight: int = Field(default=256, ge=1, le=100_000, validation_alias="GATEWAY_MAX_IN_FLIGHT")
    admission_queue: int = Field(default=128, ge=0, le=100_000, validation_alias="GATEWAY_ADMISSION_QUEUE")
    admission_wait_ms: int = Field(default=500, ge=0, le=60_000, validation_alias="GATEWAY_ADMISSION_WAIT_MS")
    overload_retry_after_seconds: int = Field(default=1, ge=1, le=3600,
                                              validation_alias="GATEWAY_OVERLOAD_RETRY_AFTER_SECONDS")

    # --- egress policy for registered URLs (model backends, MCP servers, agents)
    egress_allow_loopback: bool = Field(default=False, validation_alias="EGRESS_ALLOW_LOOPBACK")
    egress_allow_private: bool = Field(default=False, validation_alias="EGRESS_ALLOW_PRIVATE")
    egress_allowed_hosts: str = Field(default="", validation_alias="EGRESS_ALLOWED_HOSTS",
                                      description="Comma-separated host names always allowed.")

    # --- models pillar
    quota_lease_fraction: float = Field(default=0.02, gt=0, le=1, validation_alias="QUOTA_LEASE_FRACTION")
    # Completion tokens reserved on token quotas for a chat call that sets no max_tokens (a model's
    # `completion_estimate_tokens` overrides it); reconciled with real usage once the call ends.
    quota_default_completion_tokens: int = Field(default=256, ge=0, le=200_000,
                                                  validation_alias="QUOTA_DEFAULT_COMPLETION_TOKENS")
    usage_flush_seconds: float = Field(default=1.0, gt=0, validation_alias="USAGE_FLUSH_SECONDS")
    # Request-log rows held in memory while Azure Tables is slow or down (per worker). 60,000 rows cover a
    # 10-minute outage at 100 calls/s; rows beyond it are dropped, counted and logged (docs/runbook.md).
    usage_buffer_records: int = Field(default=60_000, ge=100, le=1_000_000,
                                      validation_alias="USAGE_LOG_BUFFER_RECORDS")
    key_rotation_max_overlap_seconds: int = Field(default=7 * 86400, gt=0,
                                                  validation_alias="KEY_ROTATION_MAX_OVERLAP_SECONDS")
    # --- A/B experiments (shared/experiments): the request-log rows one results read may scan (newest first
    # beyond it, reported as `truncated`), and how old a call may be and still take feedback.
    experiment_results_max_rows: int = Field(default=200_000, ge=1_000, le=2_000_000,
                                             validation_alias="EXPERIMENT_RESULTS_MAX_ROWS")
    experiment_feedback_max_age_days: int = Field(default=7, ge=1, le=92,
                                                  validation_alias="EXPERIMENT_FEEDBACK_MAX_AGE_DAYS")

    # --- tools pillar (MCP). The approvals queue; `<name>-poison` is where the host moves a message after
    # maxDequeueCount failed deliveries. ≤ 56 characters so the poison queue's name stays within 63.
    tools_approvals_queue: str = Field(default="tool-submissions", pattern=r"^[a-z0-9][a-z0-9-]{1,54}[a-z0-9]$",
                                       validation_alias="TOOLS_APPROVALS_QUEUE")
    # Six-field NCRONTAB of the pinning check (read by the host through %TOOLS_PINNING_SCHEDULE%; kept here so a
    # malformed value is reported with the other settings).
    tools_pinning_schedule: str = Field(default="0 */15 * * * *", max_length=100,
                                        validation_alias="TOOLS_PINNING_SCHEDULE")

    # --- tools pillar: the MCP data plane (issue 9)
    mcp_session_secrets: SecretStr | None = Field(default=None, validation_alias="MCP_SESSION_SECRETS", description=(
        "Comma-separated secrets sealing MCP session ids; the first seals, every one opens (rotation). Unset: "
        "derived from GATEWAY_KEY_HASH_SECRET."))
    mcp_session_ttl_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400,
                                         validation_alias="MCP_SESSION_TTL_SECONDS")
    mcp_call_timeout_seconds: float = Field(default=60, gt=0, le=900, allow_inf_nan=False,
                                            validation_alias="MCP_CALL_TIMEOUT_SECONDS")
    mcp_max_result_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                      validation_alias="MCP_MAX_RESULT_BYTES")
    mcp_approval_wait_seconds: float = Field(default=20, ge=0, le=120, allow_inf_nan=False,
                                             validation_alias="MCP_APPROVAL_WAIT_SECONDS")
    mcp_approval_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 86_400,
                                          validation_alias="MCP_APPROVAL_TTL_SECONDS")
    mcp_list_ttl_ms: int = Field(default=0, ge=0, le=3_600_000, validation_alias="MCP_LIST_TTL_MS")
    # --- monitoring (issue 12). Timer schedules are app settings read by the host (%SETTING%), not fields.
    request_log_retention_days: int = Field(default=30, ge=1, le=3650, validation_alias="REQUEST_LOG_RETENTION_DAYS")
    # Rows one retention run deletes at most; the next run continues (bounded work per timer invocation).
    request_log_retention_max_rows: int = Field(default=50_000, ge=100, le=1_000_000,
                                                validation_alias="REQUEST_LOG_RETENTION_MAX_ROWS")
    # Each rollup run recomputes this many past hours (plus the current one): rows that reach the log later than
    # this (buffered through a long Storage outage) are not counted in analytics.
    analytics_rollup_lookback_hours: int = Field(default=3, ge=1, le=48,
                                                 validation_alias="ANALYTICS_ROLLUP_LOOKBACK_HOURS")
    alert_webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60,
                                                 validation_alias="ALERT_WEBHOOK_TIMEOUT_SECONDS")
    alert_webhook_attempts: int = Field(default=4, ge=1, le=10, validation_alias="ALERT_WEBHOOK_ATTEMPTS")

    # --- telemetry (issue 12, shared/telemetry): off unless enabled (tests and the benchmark run without it)
    telemetry_enabled: bool = Field(default=False, validation_alias="TELEMETRY_ENABLED")
    telemetry_exporter: Literal["auto", "azure_monitor", "otlp", "console"] = Field(
        default="auto", validation_alias="TELEMETRY_EXPORTER")
    appinsights_connection_string: SecretStr | None = Field(
        default=None, validation_alias="APPLICATIONINSIGHTS_CONNECTION_STRING")
    # Application Insights with local auth disabled: ingest with the app's managed identity (Entra ID).
    telemetry_entra_auth: bool = Field(default=False, validation_alias="TELEMETRY_ENTRA_AUTH")
    # Traces (metrics and the request log count every call whatever is sampled): a fixed share of calls when
    # TELEMETRY_SAMPLING_RATIO is set; otherwise at most TELEMETRY_TRACES_PER_SECOND sampled traces per second per
    # instance (the Azure Monitor distro's own default, 5): every call traced at low traffic, the export cost bounded
    # at high traffic — at 100 % the span export alone cost ~0.6 ms CPU per call in the harness (docs/benchmarks.md).
    telemetry_sampling_ratio: float | None = Field(default=None, ge=0, le=1,
                                                   validation_alias="TELEMETRY_SAMPLING_RATIO")
    telemetry_traces_per_second: float = Field(default=5.0, ge=0, le=100_000,
                                               validation_alias="TELEMETRY_TRACES_PER_SECOND")

    # --- agents pillar: cloud sync (docs/admin-guide.md "Cross-cloud sync"). The schedules are read by the Functions
    # host from AGENTS_SYNC_BEDROCK_SCHEDULE / AGENTS_SYNC_VERTEX_SCHEDULE (six-field NCRONTAB), not by Python.
    # A JSON list of connections; each is validated alone (a bad one is reported on its sync runs, never app-wide).
    agents_sync_connections: str = Field(default="[]", max_length=65_536, validation_alias="AGENTS_SYNC_CONNECTIONS")
    # --- agents pillar: A2A gateway. A private JWK (EC P-256 → ES256, RSA → RS256, Ed25519 → EdDSA) that signs the
    # gateway's agent cards; unset: cards are served unsigned. Its public half is served at /agents/.well-known/jwks.json.
    agent_card_signing_jwk: SecretStr | None = Field(default=None, max_length=16_384,
                                                     validation_alias="AGENT_CARD_SIGNING_JWK")

    @field_validator("*", mode="before")
    @classmethod
    def _unresolved_references_are_missing(cls, value: Any) -> Any:
        # While a Key Vault reference cannot be resolved, App Service passes its literal text. Using that text as
        # a secret (say, the key-hash pepper) would silently break every key issued meanwhile; treat it as unset.
        if isinstance(value, str) and value.startswith("@Microsoft.KeyVault("):
            return None
        return value

    def upstream_secret(self, name: str) -> str | None:
        """An upstream credential named at run time (a model backend's key): only `UPSTREAM_SECRET_*` settings
        are ever read here. Key Vault references resolve in Azure; an unresolved one counts as missing."""
        if not is_upstream_secret_name(name):
            raise ValueError(f"'{name}' is not an upstream secret setting ({UPSTREAM_SECRET_PREFIX}*)")
        value = os.environ.get(name)
        return None if not value or value.startswith("@Microsoft.KeyVault(") else value

    @property
    def table_endpoint(self) -> str | None:
        return f"https://{self.storage_account_name}.table.core.windows.net" if self.storage_account_name else None

    @property
    def queue_endpoint(self) -> str | None:
        return f"https://{self.storage_account_name}.queue.core.windows.net" if self.storage_account_name else None


# ---- a malformed setting must not take the whole app down (issue 7)


@dataclass(frozen=True)
class SettingProblem:
    setting: str  # the app-setting name, as the operator typed it
    reason: str  # pydantic's message; it never contains the value (which may be a secret)


def load_settings() -> tuple[Settings, list[SettingProblem]]:
    """Settings from the environment, never raising: each malformed setting is reported and falls back to its
    default, so the app still imports and indexes every function (which then answer `configuration_error`)."""
    try:
        return Settings(), []
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors(include_input=False, include_url=False)]
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        problems = [SettingProblem("(unknown)", str(exc))]
    fields = _fields_by_setting()
    defaults = {fields[p.setting]: Settings.model_fields[fields[p.setting]].default
                for p in problems if p.setting in fields}
    try:
        return Settings(**defaults), problems
    except (ValidationError, SettingsError):  # could not isolate the bad setting: defaults only, all refused
        return Settings.model_construct(), problems


def _fields_by_setting() -> dict[str, str]:
    """Every app-setting name (each alias choice) and field name → the field."""
    out: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        names = alias.choices if isinstance(alias, AliasChoices) else [alias or field]
        out.update({str(n): field for n in names})
        out[field] = field
    return out


def _problem(err: Any) -> SettingProblem:
    # pydantic-settings reports the alias the value came from (the setting the operator set), e.g.
    # ('FLAG_CACHE_TTL_SECONDS',); `include_input=False` keeps the value itself out of the report.
    loc = err.get("loc") or ("(unknown)",)
    return SettingProblem(str(loc[0]), str(err.get("msg", "invalid value")))
