"""Monitoring's part of the composition root (mixed into `shared.services.Services`, issue 12): request-log reads,
analytics rollups, alert rules, sources and the webhook notifier, each built on first use; `self` is the one
`Services` instance."""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from ..storage.repository import Repository

if TYPE_CHECKING:  # imported lazily at run time: cold start stays small
    from ..domain.monitoring import AlertRule


class MonitoringServices:
    @cached_property
    def request_log_table(self) -> Any:
        from .tables import REQUEST_LOG_TABLE, ReadTable

        return ReadTable(self.storage.tables.get_table_client(REQUEST_LOG_TABLE))

    @cached_property
    def analytics_table(self) -> Any:
        from .tables import ANALYTICS_TABLE, ReadTable

        return ReadTable(self.storage.tables.get_table_client(ANALYTICS_TABLE))

    @cached_property
    def alert_rules(self) -> "Repository[AlertRule]":
        from ..domain.monitoring import AlertRule

        return Repository(self.store, AlertRule)

    @cached_property
    def alert_sources(self) -> Any:
        from ..alerts.sources import GatewaySources
        from ..pillars.agents.monitoring import AgentSyncFailures
        from ..pillars.agents.domain import SyncRun
        from ..pillars.tools.monitoring import QuarantinedTools, ToolApprovalsWaiting
        from ..pillars.tools.call_approvals import CallApproval
        from ..pillars.tools.domain import Submission, ToolDefinition

        store = self.store
        return GatewaySources(log_table=self.request_log_table, agg_table=self.analytics_table,
                              quotas=self.quotas, key_requests=self.key_requests,
                              sync=AgentSyncFailures(Repository(store, SyncRun)),
                              tool_approvals=ToolApprovalsWaiting(Repository(store, Submission),
                                                                  Repository(store, CallApproval)),
                              quarantined=QuarantinedTools(Repository(store, ToolDefinition)))

    @cached_property
    def adoption_sources(self) -> Any:
        """The tools and agents pillars' adoption counters (registered tools, toolboxes, agents; tool approvals)."""
        from .adoption import AdoptionSources
        from ..pillars.agents.domain import Agent
        from ..pillars.agents.monitoring import AgentsAdoption
        from ..pillars.tools.domain import Submission, ToolDefinition, Toolbox
        from ..pillars.tools.monitoring import ToolsAdoption

        store = self.store
        tools = ToolsAdoption(Repository(store, ToolDefinition), Repository(store, Toolbox),
                              Repository(store, Submission))
        return AdoptionSources(tools=tools.tools, agents=AgentsAdoption(Repository(store, Agent)),
                               extra={"toolboxes": tools.toolboxes}, tool_approvals=tools.approval_timings)

    @cached_property
    def alert_notifier(self) -> Any:
        from ..alerts.webhook import WebhookNotifier
        from ..upstreams.egress_transport import guarded_client

        http = guarded_client(self.egress)  # the webhook's address passes the egress policy on every connect
        self._on_close("alert webhooks http", http.aclose)
        s = self.settings
        return WebhookNotifier(http, s.upstream_secret, attempts=s.alert_webhook_attempts,
                               timeout=s.alert_webhook_timeout_seconds)
