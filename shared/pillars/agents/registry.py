"""Operate agents: register (by A2A card URL or by hand), update, move through the lifecycle, keep the audit trail.

Every write that changes an agent also appends a `LifecycleEvent` (who, when, why, from → to, what changed). The
agent is written first (conditional on its ETag), the event after: a failed event write is logged and counted,
never a reason to undo a kill switch that is already in force.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from ...egress import EgressPolicy
from ...errors import AlreadyExists, ValidationFailed
from ...storage.repository import Page, Repository
from .cards import MAX_CARD_BYTES, CardSummary, parse_card_bytes
from .domain import (INVOCABLE, Agent, AgentSpec, FieldChange, Lifecycle, LifecycleEvent, SyncRun, check_transition,
                     utcnow)

log = logging.getLogger("gateway.agents")
ADMIN_OWNED = {"auth", "limits", "owner", "replacement"}  # what a card (or a sync) never overwrites

# Called after a transition is stored (e.g. stop a Bedrock alias at the source); failures are reported, not raised.
TransitionHook = Callable[[Agent, str, str], Awaitable[str | None]]
# Checked before an agent's spec is stored (project, agent id, spec): raise a GatewayError to refuse it
# (e.g. composition/validate.py: members published, no cycles).
SpecCheck = Callable[[str, str, AgentSpec], Awaitable[None]]


def diff(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[FieldChange]:
    """Field-level changes between two JSON documents (nested objects walked; lists compared whole)."""
    out: list[FieldChange] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff(a, b, f"{path}.")
        elif a != b:
            out.append(FieldChange(field=path[:128], before=a, after=b))
    return out[:64]


@dataclass
class RegistryRepos:
    agents: Repository[Agent]
    events: Repository[LifecycleEvent]
    runs: Repository[SyncRun]


class AgentRegistry:
    def __init__(self, repos: RegistryRepos, egress: EgressPolicy, http: httpx.AsyncClient, *,
                 hooks: list[TransitionHook] | None = None, clock: Callable[[], datetime] = utcnow,
                 card_timeout: float = 10.0) -> None:
        self.repos = repos
        self._egress = egress
        self._http = http  # the egress-guarded upstream client
        self._hooks = hooks or []
        self._clock = clock
        self._card_timeout = card_timeout
        self.event_failures = 0
        self.spec_checks: list[SpecCheck] = []

    # ---- audit

    async def record(self, agent: Agent, action: str, actor: str, *, reason: str = "",
                     from_state: str | None = None, to_state: str | None = None,
                     changes: list[FieldChange] | None = None) -> None:
        event = LifecycleEvent(id=f"evt-{uuid.uuid4().hex}", project_id=agent.project_id, agent_id=agent.id,
                               action=action, from_state=from_state, to_state=to_state, actor=actor[:256],
                               reason=reason[:2000], at=self._clock(), changes=changes or [])
        try:
            await self.repos.events.create(event)
        except Exception:  # noqa: BLE001 - the change itself is stored; a lost audit line is logged and counted
            self.event_failures += 1
            log.exception("agent audit event not written: project=%s agent=%s action=%s", agent.project_id,
                          agent.id, action)

    async def history(self, project_id: str, agent_id: str, *, limit: int = 100,
                      cursor: str | None = None) -> Page[LifecycleEvent]:
        return await self.repos.events.list(project_id, limit=limit, cursor=cursor, agent_id=agent_id)

    # ---- register / update

    async def _check_egress(self, spec: AgentSpec) -> None:
        for i, iface in enumerate(spec.interfaces):
            await self._egress.check(str(iface.url), f"interfaces.{i}.url")
        if spec.card_url is not None:
            await self._egress.check(str(spec.card_url), "card_url")

    async def fetch_card(self, url: str) -> CardSummary:
        """GET the card through the egress-guarded client (checked on the address connected to), bounded."""
        await self._egress.check(url, "card_url")
        try:
            async with self._http.stream("GET", url, timeout=self._card_timeout,
                                         headers={"accept": "application/json"}) as resp:
                if resp.status_code != 200:
                    raise self._card_error(url, f"answered HTTP {resp.status_code}")
                raw = bytearray()
                async for chunk in resp.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_CARD_BYTES:
                        raise self._card_error(url, f"card larger than {MAX_CARD_BYTES} bytes")
        except httpx.HTTPError as exc:
            raise self._card_error(url, f"could not be fetched ({type(exc).__name__})") from None
        return parse_card_bytes(bytes(raw))

    @staticmethod
    def _card_error(url: str, why: str) -> ValidationFailed:
        return ValidationFailed(f"card_url: '{url}' {why}.", code="card_unavailable",
                                details=[{"field": "card_url", "message": why}])

    @staticmethod
    def spec_from_card(card: CardSummary, url: str, keep: dict[str, Any] | None = None) -> AgentSpec:
        """The card's facts plus what only the admin can say (auth, limits, owner, replacement)."""
        keep = {k: v for k, v in (keep or {}).items() if k in ADMIN_OWNED and v is not None}
        return AgentSpec(**keep, name=card.name, description=card.description, source="a2a", card_url=url,
                         interfaces=card.interfaces, skills=card.skills, security_schemes=card.schemes,
                         version=card.agent_version)

    async def register(self, project_id: str, agent_id: str, spec: AgentSpec, actor: str, *,
                       card: dict[str, Any] | None = None, lifecycle: Lifecycle = "draft",
                       sync_connection: str | None = None, origin: Any = None, reason: str = "") -> Agent:
        await self._check_egress(spec)
        for check in self.spec_checks:
            await check(project_id, agent_id, spec)
        agent = Agent(id=agent_id, project_id=project_id, spec=spec, card=card, lifecycle=lifecycle,
                      lifecycle_changed_at=self._clock(), sync_connection=sync_connection, origin=origin)
        try:
            saved = await self.repos.agents.create(agent)
        except AlreadyExists as exc:
            if exc.code == "id_taken":
                raise
            raise AlreadyExists(f"Agent '{agent_id}' already exists in project '{project_id}'.",
                                details=[{"field": "id", "message": "taken"}]) from None
        await self.record(saved, "registered", actor, reason=reason, to_state=saved.lifecycle)
        return saved

    async def register_from_card(self, project_id: str, agent_id: str, card_url: str, actor: str,
                                 keep: dict[str, Any] | None = None) -> Agent:
        summary = await self.fetch_card(card_url)
        spec = self.spec_from_card(summary, card_url, keep)
        return await self.register(project_id, agent_id, spec, actor, card=summary.card)

    async def update(self, project_id: str, agent_id: str, spec: AgentSpec, actor: str, *,
                     if_match: str | None = None, card: dict[str, Any] | None = None, action: str = "updated",
                     origin: Any = None, reason: str = "") -> tuple[Agent, list[FieldChange]]:
        await self._check_egress(spec)
        for check in self.spec_checks:
            await check(project_id, agent_id, spec)
        changes: list[FieldChange] = []

        def apply(a: Agent) -> None:
            changes.extend(diff(a.spec.model_dump(mode="json"), spec.model_dump(mode="json"), "spec."))
            a.spec = spec
            if card is not None:
                a.card = card
            if origin is not None:
                changes.extend(diff(a.origin.model_dump(mode="json", exclude={"last_seen_at"}) if a.origin else {},
                                    origin.model_dump(mode="json", exclude={"last_seen_at"}), "origin."))
                a.origin = origin

        saved = await self.repos.agents.update(project_id, agent_id, apply, if_match=if_match)
        if changes:
            await self.record(saved, action, actor, reason=reason, changes=changes)
        return saved, changes

    async def refresh_card(self, project_id: str, agent_id: str, actor: str,
                           if_match: str | None = None) -> tuple[Agent, list[FieldChange]]:
        current = await self.repos.agents.get(project_id, agent_id)
        if current.spec.card_url is None:
            raise ValidationFailed("This agent was not registered from a card.", code="no_card_url",
                                   details=[{"field": "card_url", "message": "not set"}])
        url = str(current.spec.card_url)
        summary = await self.fetch_card(url)
        spec = self.spec_from_card(summary, url, current.spec.model_dump(include=ADMIN_OWNED))
        return await self.update(project_id, agent_id, spec, actor, if_match=if_match, card=summary.card)

    # ---- lifecycle

    async def transition(self, project_id: str, agent_id: str, to: Lifecycle, actor: str, *, reason: str = "",
                         replacement: str | None = None, if_match: str | None = None) -> tuple[Agent, list[str]]:
        """Move an agent; returns it and any warnings from the hooks (e.g. the source could not be stopped)."""
        seen: dict[str, str] = {}
        if replacement is not None:
            target = await self.repos.agents.get(project_id, replacement)
            if target.lifecycle not in INVOCABLE or target.id == agent_id:
                raise ValidationFailed("The replacement must be another published (or deprecated) agent.",
                                       code="invalid_replacement",
                                       details=[{"field": "replacement", "message": f"is {target.lifecycle}"}])

        def apply(a: Agent) -> None:
            check_transition(a.lifecycle, to)
            seen["from"] = a.lifecycle
            a.suspended_from = a.lifecycle if to == "suspended" else None
            a.lifecycle, a.lifecycle_reason, a.lifecycle_changed_at = to, reason[:2000], self._clock()
            if replacement is not None:
                a.spec = a.spec.model_copy(update={"replacement": replacement})

        saved = await self.repos.agents.update(project_id, agent_id, apply, if_match=if_match)
        await self.record(saved, "transition", actor, reason=reason, from_state=seen["from"], to_state=to)
        warnings = []
        for hook in self._hooks:
            try:
                warning = await hook(saved, seen["from"], to)
            except Exception as exc:  # noqa: BLE001 - the gateway-side switch holds; the source is best effort
                log.exception("transition hook failed for agent %s", agent_id)
                warning = f"{type(exc).__name__}: {exc}"[:500]
            if warning:
                warnings.append(warning)
                await self.record(saved, "transition", "system", reason=f"source not updated: {warning}",
                                  from_state=to, to_state=to)
        return saved, warnings
