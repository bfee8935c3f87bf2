"""The tools pillar's part of the composition root (mixed into `shared.services.Services`): the pillar (registry,
directory, approvals, pinning and the MCP data plane), assembled on first use (shared/pillars/tools/assemble.py);
`self` is the one `Services` instance."""
from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily at run time: cold start stays small
    from .wiring import ToolsPillar


class ToolsServices:
    @cached_property
    def tools(self) -> "ToolsPillar":
        """The tools pillar: registry, directory, approvals, pinning, outbound auth and the MCP data plane (`.mcp`),
        each part built on first use."""
        from .assemble import assemble_tools

        return assemble_tools(self.settings, store=self.store, egress=self.egress, quotas=self.quota_book,
                              flags=self.flags, enforcer=lambda: self.enforcer, usage=lambda: self.usage_log,
                              credential=lambda: self.credential, on_close=self._on_close,
                              telemetry=lambda: self.telemetry, instrument=self._instrument,
                              trace=self._trace_carrier(), guardrails=lambda: self.guardrail_step)
