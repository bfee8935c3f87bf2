"""Amazon Bedrock Agents with boto3: the sync's catalog (bedrock-agent ListAgents → GetAgent → ListAgentAliases,
all paged) and the alias invocation-state switch used when a suspension is mirrored at the source.

boto3 is blocking, so every call runs in a worker thread. Credentials: access keys from UPSTREAM_SECRET_* settings,
or the default chain (the app's role); with `role_arn` the session assumes that role first.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from ....config import Settings
from ....errors import DependencyUnavailable
from ..domain import Agent, AgentSkill, AgentSpec, AwsAuth, BedrockRef, SyncError
from ..sync.connections import BedrockConnection
from ..sync.engine import CloudAgent, Listing

log = logging.getLogger("gateway.agents.bedrock")
TEST_ALIAS = "TSTALIASID"  # Bedrock's built-in alias of the working draft: never what the gateway fronts


def session_for(settings: Settings, auth: AwsAuth) -> Any:
    import boto3  # imported on first use: cold start stays small

    kwargs: dict[str, Any] = {"region_name": auth.region}
    if auth.access_key_id_setting and auth.secret_access_key_setting:
        key, secret = (settings.upstream_secret(auth.access_key_id_setting),
                       settings.upstream_secret(auth.secret_access_key_setting))
        if not key or not secret:
            raise DependencyUnavailable("The AWS key settings are not set (or not resolved).",
                                        code="upstream_credential_unavailable")
        kwargs.update(aws_access_key_id=key, aws_secret_access_key=secret)
    session = boto3.session.Session(**kwargs)
    if auth.role_arn:
        creds = session.client("sts").assume_role(RoleArn=auth.role_arn, RoleSessionName="ai-gateway")["Credentials"]
        session = boto3.session.Session(region_name=auth.region, aws_access_key_id=creds["AccessKeyId"],
                                        aws_secret_access_key=creds["SecretAccessKey"],
                                        aws_session_token=creds["SessionToken"])
    return session


def client_config(timeout: float) -> Any:
    from botocore.config import Config

    return Config(connect_timeout=min(timeout, 10), read_timeout=timeout,
                  retries={"max_attempts": 2, "mode": "standard"})


def connection_auth(conn: BedrockConnection) -> AwsAuth:
    return AwsAuth(region=conn.region, access_key_id_setting=conn.access_key_id_setting,
                   secret_access_key_setting=conn.secret_access_key_setting)


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


def pick_alias(aliases: list[dict[str, Any]]) -> str | None:
    """The alias the gateway invokes: the most recently updated PREPARED one, never the draft test alias."""
    ready = [a for a in aliases if a["id"] != TEST_ALIAS and a["status"] == "PREPARED"]
    return max(ready, key=lambda a: a["updated"])["id"] if ready else None


def map_agent(agent: dict[str, Any], aliases: list[dict[str, Any]] | None, conn: BedrockConnection,
              latest_version: str) -> CloudAgent:
    name = str(agent["agentName"])[:200]
    description = str(agent.get("description") or "")[:2000]
    model = str(agent.get("foundationModel") or "")
    spec = AgentSpec(name=name, description=description, source="bedrock", version=latest_version[:64],
                     bedrock=BedrockRef(agent_id=agent["agentId"], alias_id=pick_alias(aliases or []),
                                        region=conn.region),
                     auth=connection_auth(conn),
                     skills=[AgentSkill(id="invoke", name=name, description=description,
                                        tags=[model[:64]] if model else [])])
    details: dict[str, Any] = {"agent_arn": str(agent.get("agentArn", "")), "latest_version": latest_version,
                               "foundation_model": model, "aliases": aliases if aliases is not None else "unknown"}
    return CloudAgent(cloud_id=agent["agentId"], spec=spec, upstream_status=str(agent.get("agentStatus", "")),
                      upstream_updated_at=_iso(agent.get("updatedAt")), details=details, partial=aliases is None)


def _alias(summary: dict[str, Any]) -> dict[str, Any]:
    return {"id": summary["agentAliasId"], "name": summary.get("agentAliasName", ""),
            "status": summary.get("agentAliasStatus", ""), "updated": _iso(summary.get("updatedAt")),
            "routing": [r.get("agentVersion", "") for r in summary.get("routingConfiguration") or []],
            "invocation_state": summary.get("aliasInvocationState", "ACCEPT_INVOCATIONS")}


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)[:64]
    return type(exc).__name__[:64]


class BedrockCatalog:
    cloud = "bedrock"

    def __init__(self, conn: BedrockConnection, client: Any) -> None:
        self._conn, self._client = conn, client  # a boto3 `bedrock-agent` client

    async def list_agents(self) -> Listing:
        return await asyncio.to_thread(self._list)

    def _list(self) -> Listing:
        out = Listing(agents=[])
        pages = self._client.get_paginator("list_agents").paginate(
            PaginationConfig={"PageSize": self._conn.page_size})
        for page in pages:
            for summary in page.get("agentSummaries") or []:
                try:
                    self._one(summary, out)
                except Exception as exc:  # noqa: BLE001 - an agent we cannot map is reported, its neighbours go on
                    out.errors.append(SyncError(code=_error_code(exc), cloud_id=str(summary.get("agentId"))[:512],
                                                message=f"could not map the agent: {exc}"[:2000]))
                    out.complete = False  # it may exist locally: retiring it would be wrong
        return out

    def _one(self, summary: dict[str, Any], out: Listing) -> None:
        agent_id = summary["agentId"]
        try:
            agent = self._client.get_agent(agentId=agent_id)["agent"]
        except Exception as exc:  # noqa: BLE001 - this agent's details are missing: keep it as it is, say why
            out.errors.append(SyncError(code=_error_code(exc), cloud_id=agent_id,
                                        message=f"GetAgent failed: {exc}"[:2000]))
            out.agents.append(map_agent({**summary, "agentArn": ""}, None, self._conn,
                                        str(summary.get("latestAgentVersion") or "")))
            return
        try:
            aliases = [_alias(a) for page in self._client.get_paginator("list_agent_aliases").paginate(
                agentId=agent_id, PaginationConfig={"PageSize": self._conn.page_size})
                for a in page.get("agentAliasSummaries") or []]
        except Exception as exc:  # noqa: BLE001 - degraded: the agent is listed, its aliases are unknown
            out.errors.append(SyncError(code="aliases_unavailable", cloud_id=agent_id,
                                        message=f"ListAgentAliases failed ({_error_code(exc)}); the agent's alias "
                                                "is unknown and an existing entry is left unchanged."))
            aliases = None
        latest = str(summary.get("latestAgentVersion") or agent.get("agentVersion") or "")
        out.agents.append(map_agent(agent, aliases, self._conn, latest))


class BedrockAliasSwitch:
    """Mirror a suspension at the source: UpdateAgentAlias with aliasInvocationState REJECT_INVOCATIONS (and back
    to ACCEPT_INVOCATIONS when the suspension is lifted). A transition hook of the registry."""

    def __init__(self, connections: dict[str, BedrockConnection], client_for: Any) -> None:
        self._connections = connections
        self._client_for = client_for  # connection → boto3 bedrock-agent client

    async def __call__(self, agent: Agent, before: str, after: str) -> str | None:
        conn = self._connections.get(agent.sync_connection or "")
        ref = agent.spec.bedrock
        if conn is None or not conn.suspend_at_source or ref is None or "suspended" not in (before, after):
            return None
        if after == "retired":
            return None
        if ref.alias_id is None:
            return "the agent has no known alias to stop at the source"
        state = "REJECT_INVOCATIONS" if after == "suspended" else "ACCEPT_INVOCATIONS"
        await asyncio.to_thread(self._set, self._client_for(conn), ref.agent_id, ref.alias_id, state)
        log.info("bedrock alias %s/%s set to %s", ref.agent_id, ref.alias_id, state)
        return None

    @staticmethod
    def _set(client: Any, agent_id: str, alias_id: str, state: str) -> None:
        alias = client.get_agent_alias(agentId=agent_id, agentAliasId=alias_id)["agentAlias"]
        kwargs: dict[str, Any] = {"agentId": agent_id, "agentAliasId": alias_id,
                                  "agentAliasName": alias["agentAliasName"], "aliasInvocationState": state}
        if alias.get("routingConfiguration"):
            kwargs["routingConfiguration"] = alias["routingConfiguration"]
        client.update_agent_alias(**kwargs)
