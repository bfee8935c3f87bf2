"""Assembling the agents pillar: its operate side (registry, directory, sync, cloud backends) over one upstream
client, and its A2A data plane on the governance pipeline. Imported on first use (cold start stays small)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from shared.config import Settings
from shared.egress import EgressPolicy
from shared.flags.service import FlagService
from shared.pipeline.pipeline import Pipeline
from shared.pipeline.telemetry import Telemetry
from shared.quotas.book import QuotaBook
from shared.quotas.enforcer import QuotaEnforcer
from shared.routing.breaker import Breakers
from shared.storage.documents import DocumentStore
from shared.upstreams.egress_transport import guarded_client
from shared.usage.log import UsageLog

from .pillar import AgentsPillar

if TYPE_CHECKING:
    from shared.guardrails.step import GuardrailStep


def assemble_agents(settings: Settings, *, store: DocumentStore, egress: EgressPolicy,
                    project_exists: Callable[[str], Any], credential: Callable[[], Any],
                    on_close: Callable[[str, Callable[[], Any]], None]) -> AgentsPillar:
    """`on_close(name, aclose)`: registers what this pillar opened with the composition root's exit stack."""
    # Every connection through the egress policy, on the address connected to.
    http = guarded_client(egress, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
    on_close("agents upstream http", http.aclose)
    return AgentsPillar(settings, store, egress, http, project_exists=project_exists, azure_credential=credential)


def assemble_agents_pipeline(agents: AgentsPillar, *, quotas: QuotaBook, enforcer: QuotaEnforcer, usage: UsageLog,
                             flags: FlagService, egress: EgressPolicy,
                             on_close: Callable[[str, Callable[[], Any]], None], telemetry: Telemetry | None = None,
                             instrument: Callable[[httpx.AsyncClient, Breakers], None] | None = None,
                             trace: Callable[[], dict[str, str]] | None = None,
                             guardrails: "GuardrailStep | None" = None) -> Pipeline:
    """The A2A data plane on the governance pipeline; `instrument(upstream, breakers)`: the telemetry's hooks;
    `trace()`: the current W3C trace context (telemetry on), also carried in A2A message metadata;
    `guardrails`: the shared GuardrailStep, run on A2A messages and answers (shared/pillars/agents/guardrails.py)."""
    from .limits import LimitQuotas, Turns
    from .spec import AgentsSpec

    # A2A upstreams: every connection through the egress policy, on the address actually connected to.
    http = guarded_client(egress, limits=httpx.Limits(max_connections=500, max_keepalive_connections=100))
    on_close("agents a2a upstream http", http.aclose)
    breakers = Breakers()
    if instrument is not None:
        instrument(http, breakers)
    spec = AgentsSpec(directory=agents.directory, http=http, credentials=agents.credentials,
                      backend_for=agents.cloud_backend, policies=agents.key_policies, turns=Turns(enforcer.store),
                      trace=trace, task_ids=agents.task_ids)  # task ids sealed to the key that created them
    # Each agent's (and key's) rate limit is one more quota the pipeline admits.
    limit_quotas = LimitQuotas(quotas, agents.agent_of, agents.key_policies)
    steps = []
    if guardrails is not None:
        from .guardrails import AgentsGuardrails

        steps.append(AgentsGuardrails(guardrails))
    return Pipeline(spec, quotas=limit_quotas,  # type: ignore[arg-type]  # QuotaBook's for_call/invalidate
                    enforcer=enforcer, breakers=breakers, usage=usage, flags=flags, steps=steps, telemetry=telemetry)
