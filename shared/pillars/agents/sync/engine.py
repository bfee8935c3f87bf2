"""One sync run of one connection: list the cloud's agents, upsert them keyed by cloud id, retire the ones gone
upstream, record the run.

Rules (docs/admin-guide.md, "Cross-cloud sync"):
- idempotent: a synced agent's id is derived from its connection and cloud id, and an agent whose fingerprint
  (the hash of everything mapped from the cloud) is unchanged is not written at all;
- changes are recorded field by field on the agent's audit trail (action `synced`);
- only a complete listing retires anything: if the listing failed or was cut short, nothing is retired;
- agents gone upstream are retired, never deleted (their history stays); retired is final, so an agent that
  reappears upstream is reported, not revived;
- new agents enter as draft unless the project's agents policy publishes synced agents;
- admin-owned fields (limits, owner, replacement, and the lifecycle) are never overwritten by a sync.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ....errors import GatewayError
from ..domain import Agent, AgentSpec, SyncCounts, SyncError, SyncOrigin, SyncRun, utcnow
from ..policy import AgentsPolicy
from ..registry import AgentRegistry

log = logging.getLogger("gateway.agents.sync")
ADMIN_FIELDS = ("limits", "owner", "replacement")


@dataclass
class CloudAgent:
    """One agent as a cloud describes it, already mapped to the registry's terms."""

    cloud_id: str
    spec: AgentSpec
    upstream_status: str = ""
    upstream_updated_at: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # Some of its facts could not be read (e.g. aliases): an existing agent is then left as it is.
    partial: bool = False

    def fingerprint(self) -> str:
        facts = {"spec": self.spec.model_dump(mode="json", exclude=set(ADMIN_FIELDS)), "status": self.upstream_status,
                 "updated": self.upstream_updated_at, "details": self.details}
        return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Listing:
    agents: list[CloudAgent]
    complete: bool = True  # False: the listing stopped early (nothing may be retired)
    errors: list[SyncError] = field(default_factory=list)


class CloudCatalog(Protocol):
    cloud: str

    async def list_agents(self) -> Listing:
        """Every agent of the connection; raise only when the listing could not start at all."""


def local_id(connection: str, cloud_id: str) -> str:
    tail = "".join(c for c in cloud_id.rsplit("/", 1)[-1].lower() if c.isalnum() or c == "-")
    return f"{connection}-{tail}"[:63]


def _error(exc: BaseException) -> SyncError:
    code = exc.code if isinstance(exc, GatewayError) else type(exc).__name__
    return SyncError(code=str(code)[:64], message=str(exc)[:2000] or type(exc).__name__)


class SyncEngine:
    def __init__(self, registry: AgentRegistry, policies: Callable[[str], Any], *,
                 clock: Callable[[], datetime] = utcnow, timer: Callable[[], float] = time.perf_counter) -> None:
        self._registry = registry
        self._policy = policies  # project id → awaitable AgentsPolicy
        self._clock = clock
        self._timer = timer

    async def run(self, connection: Any, catalog: CloudCatalog, *, trigger: str = "timer",
                  past_due: bool = False) -> SyncRun:
        started, t0 = self._clock(), self._timer()
        counts, errors = SyncCounts(), []
        status = "succeeded"
        try:
            await self._registry_project(connection.project)
            listing = await catalog.list_agents()
            errors += listing.errors
            await self._apply(connection, listing, counts, errors)
            if errors:
                status = "partial"
        except Exception as exc:  # noqa: BLE001 - one cloud failing is recorded on its run, never raised further
            log.warning("agent sync %s (%s) failed: %s", connection.name, catalog.cloud, exc)
            errors.append(_error(exc))
            status = "failed"
        run = SyncRun(id=f"run-{connection.name}-{started.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}",
                      project_id=connection.project, cloud=catalog.cloud, connection=connection.name,
                      started_at=started, duration_ms=round((self._timer() - t0) * 1000, 3), status=status,
                      counts=counts, errors=errors[:50], trigger=trigger, past_due=past_due)
        try:
            return await self._registry.repos.runs.create(run)
        except Exception:  # noqa: BLE001 - the run happened; losing its record must not fail the timer
            log.exception("sync run record not written: %s", run.id)
            return run

    async def _registry_project(self, project: str) -> None:
        await self._policy(project)  # raises NotFound when the connection names a project that does not exist

    async def _apply(self, conn: Any, listing: Listing, counts: SyncCounts, errors: list[SyncError]) -> None:
        policy: AgentsPolicy = await self._policy(conn.project)
        existing = await self._existing(conn)
        seen: set[str] = set()
        for item in listing.agents:
            aid = local_id(conn.name, item.cloud_id)
            seen.add(aid)
            try:
                await self._upsert(conn, aid, item, existing.get(aid), policy, counts, errors)
            except Exception as exc:  # noqa: BLE001 - one agent failing does not stop its neighbours
                errors.append(_error(exc).model_copy(update={"cloud_id": item.cloud_id[:512]}))
        if not listing.complete:
            return
        for aid, agent in existing.items():
            if aid in seen or agent.lifecycle == "retired":
                continue
            try:
                await self._registry.transition(conn.project, aid, "retired", f"sync:{conn.name}",
                                                reason="gone upstream")
                counts.retired += 1
            except Exception as exc:  # noqa: BLE001
                errors.append(_error(exc).model_copy(update={"cloud_id": agent.origin.cloud_id if agent.origin
                                                             else None}))

    async def _existing(self, conn: Any) -> dict[str, Agent]:
        out: dict[str, Agent] = {}
        cursor = None
        while True:
            page = await self._registry.repos.agents.list(conn.project, limit=200, cursor=cursor,
                                                          sync_connection=conn.name)
            out.update({a.id: a for a in page.items})
            if page.cursor is None:
                return out
            cursor = page.cursor

    async def _upsert(self, conn: Any, aid: str, item: CloudAgent, current: Agent | None, policy: AgentsPolicy,
                      counts: SyncCounts, errors: list[SyncError]) -> None:
        origin = SyncOrigin(cloud=conn.cloud, connection=conn.name, cloud_id=item.cloud_id,
                            fingerprint=item.fingerprint(), upstream_status=item.upstream_status[:64],
                            upstream_updated_at=item.upstream_updated_at[:64], details=item.details,
                            last_seen_at=self._clock())
        actor = f"sync:{conn.name}"
        if current is None:
            state = "published" if policy.publish_synced else "draft"
            await self._registry.register(conn.project, aid, item.spec, actor, lifecycle=state,
                                          sync_connection=conn.name, origin=origin, reason="appeared upstream")
            counts.created += 1
            return
        if current.lifecycle == "retired":
            errors.append(SyncError(code="retired_locally", cloud_id=item.cloud_id[:512],
                                    message=f"'{aid}' is listed upstream again but is retired here; register it "
                                            "anew if it should come back."))
            counts.unchanged += 1
            return
        if item.partial or (current.origin and current.origin.fingerprint == origin.fingerprint):
            counts.unchanged += 1
            return
        keep = current.spec.model_dump(include=set(ADMIN_FIELDS))
        spec = item.spec.model_copy(update={k: getattr(current.spec, k) for k in keep})
        await self._registry.update(conn.project, aid, spec, actor, origin=origin, action="synced",
                                    reason="changed upstream")
        counts.updated += 1
