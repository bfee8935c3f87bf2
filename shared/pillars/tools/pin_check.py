"""Where pinning is checked: by the timer function over every approved server (`check_all`), and by the data
plane each time it lists a server's tools (`ListTimeCheck`, memoised per listing so an unchanged list costs one
hash, not a registry write)."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...errors import GatewayError
from .directory import ProjectTools
from .domain import McpServer, SERVABLE_LIFECYCLE
from .pinning import Observation, PinningService, definition_hash, definition_of
from .probe import ProbeFailed, Prober
from .registry import ToolsRegistry

log = logging.getLogger("gateway.tools.pinning")
_CONCURRENCY = 8
_MEMO = 4096


@dataclass
class CheckSummary:
    servers: int = 0
    quarantined: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


async def check_all(registry: ToolsRegistry, prober: Prober, pinning: PinningService) -> CheckSummary:
    summary = CheckSummary()
    servers: list[McpServer] = []
    cursor = None
    while True:
        page = await registry.servers.list(None, limit=200, cursor=cursor)
        servers += [s for s in page.items if s.approval == "approved" and s.lifecycle in SERVABLE_LIFECYCLE]
        cursor = page.cursor
        if cursor is None:
            break
    gate = asyncio.Semaphore(_CONCURRENCY)
    snapshots: dict[str, ProjectTools] = {}

    async def one(server: McpServer) -> None:
        async with gate:
            try:
                listings = await prober.list_targets(server)
            except (ProbeFailed, GatewayError) as exc:  # no target could be asked (e.g. the outbound credential)
                log.warning("pinning check: %s/%s not listed: %s", server.project_id, server.id, exc)
                summary.unreachable.append(f"{server.project_id}/{server.id}")
                return
            # Every target is checked (calls fail over to replicas): a replica serving a drifted definition
            # quarantines the tool exactly as the primary would. Equal listings are observed once.
            observed: set[tuple[str, ...]] = set()
            for target, listed in listings:
                name = f"{server.project_id}/{server.id}" + ("" if target == "primary" else f"/{target}")
                if isinstance(listed, BaseException):
                    # Unreachable is not drift: the tools stay as they are; failover/breaker handles it.
                    log.warning("pinning check: %s not listed: %s", name, listed)
                    summary.unreachable.append(name)
                    continue
                key = tuple(sorted(definition_hash(d) for d in listed))
                if key in observed:
                    continue
                observed.add(key)
                if server.project_id not in snapshots:
                    snapshots[server.project_id] = await registry.snapshot(server.project_id)
                registered = list(snapshots[server.project_id].tools.values())
                seen = await pinning.observe(server.project_id, server.id, listed, registered=registered,
                                             actor="pinning-timer")
                if seen.quarantined:  # the next target is compared with the stored state, not a stale copy
                    snapshots.pop(server.project_id, None)
                summary.quarantined += [f"{server.project_id}/{n}" for n in seen.quarantined
                                        if f"{server.project_id}/{n}" not in summary.quarantined]

    summary.servers = len(servers)
    await asyncio.gather(*(one(s) for s in servers))
    return summary


class ListTimeCheck:
    """`await check(project_id, server_id, tools)` with the raw `tools/list` entries the data plane just got.
    Returns the Observation (quarantined tools are then filtered by the directory after its invalidation).

    The memo is keyed by the listing *and* by the server's pins as the data plane's directory sees them (cached
    snapshot: no registry read on a hit): a re-approval changes the pins, so a listing seen before it is checked
    again (approve v1 → v2 quarantined and re-approved → the upstream back on v1 is drift again)."""

    def __init__(self, registry: ToolsRegistry, pinning: PinningService, directory: "_Snapshots") -> None:
        self._registry = registry
        self._pinning = pinning
        self._directory = directory
        self._seen: OrderedDict[tuple[str, str, str, tuple[tuple[str, str, str], ...]], None] = OrderedDict()

    async def __call__(self, project_id: str, server_id: str, tools: list[dict[str, Any]]) -> Observation:
        listed = [definition_of(t) for t in tools if isinstance(t, dict)]
        digest = hashlib.sha256(repr([d.model_dump(mode="json") for d in listed]).encode()).hexdigest()
        current = (await self._directory.snapshot(project_id)).tools.values()
        pins = tuple(sorted((t.original_name, t.pinned_hash or "", t.status) for t in current
                            if t.server_id == server_id))
        key = (project_id, server_id, digest, pins)
        if key in self._seen:
            self._seen.move_to_end(key)
            return Observation()
        registered = list((await self._registry.snapshot(project_id)).tools.values())
        seen = await self._pinning.observe(project_id, server_id, listed, registered=registered,
                                           actor="pinning-list")
        self._seen[key] = None
        if len(self._seen) > _MEMO:
            self._seen.popitem(last=False)
        return seen


class _Snapshots(Protocol):
    async def snapshot(self, project_id: str) -> ProjectTools: ...
