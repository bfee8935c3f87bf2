"""Assembling the agents pillar: its upstream client (card fetches, Vertex calls, A2A upstreams) and its parts."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from shared.config import Settings
from shared.egress import EgressPolicy
from shared.storage.documents import DocumentStore
from shared.upstreams.egress_transport import guarded_client

from .pillar import AgentsPillar


def assemble_agents(settings: Settings, *, store: DocumentStore, egress: EgressPolicy,
                    project_exists: Callable[[str], Any], credential: Callable[[], Any],
                    on_close: Callable[[str, Callable[[], Any]], None]) -> AgentsPillar:
    """`on_close(name, aclose)`: registers what this pillar opened with the composition root's exit stack."""
    # Every connection through the egress policy, on the address connected to.
    http = guarded_client(egress, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
    on_close("agents upstream http", http.aclose)
    return AgentsPillar(settings, store, egress, http, project_exists=project_exists, azure_credential=credential)
