"""Per-agent and per-key limits on agent calls, enforced on the pipeline's path (AgentsSpec.resolve/finished).

- rate (requests per minute): the quota machinery's shared counters — each limit is one more quota the pipeline
  admits (`LimitQuotas` adds them to the project's, key's and `agent`-scope quotas), so it holds across instances
  with the quotas' bounded overshoot;
- concurrent tasks: calls in flight to the agent (per agent, and per key on it), counted per instance: with N
  instances up to N × the limit run at once (a shared count would leak holds when an instance dies mid-call);
- max turns: messages per conversation (A2A contextId, else taskId), counted in the shared counter table; the
  gateway names a new conversation itself (a contextId) when the limit is set and the client sent none;
- message size: the request body, before anything is sent;
- task time: the whole call, streams included (a stream past its time ends with an error event).
Each applies the smaller of the agent's and the key's value. Allowed skills per key: see `check_skill`."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import Field

from ...cache import FailStaticCache
from ...domain.base import Contract, Entity, Pillar
from ...domain.quotas import Quota, QuotaLimits
from ...errors import (AgentBusy, DependencyUnavailable, MaxTurnsExceeded, NotFound, PayloadTooLarge,
                       ResourceNotAllowed, ValidationFailed)
from ...quotas.book import QuotaBook
from ...storage.repository import Repository
from .domain import AGENT_ID_PATTERN, Agent, AgentLimits

if TYPE_CHECKING:  # the Tables SDK behind the counters loads with the quota enforcer, on first use
    from ...quotas.store import CounterStore

log = logging.getLogger("gateway.agents.limits")

SkillId = Annotated[str, Field(min_length=1, max_length=128)]
SkillList = Annotated[list[SkillId], Field(max_length=128)]
SKILL_KEYS = ("skillId", "skill")  # where a message names the skill it wants (message or request metadata)


class KeyAgentPolicySpec(Contract):
    """What one virtual key may do with the project's agents, on top of its `agents` scope."""

    skills: dict[Annotated[str, Field(pattern=AGENT_ID_PATTERN)], SkillList] = Field(
        default_factory=dict, max_length=256, description=(
            "agent id → the skills this key may use on it; a call must then name one in message.metadata.skillId. "
            "Agents not listed: every skill."))
    limits: AgentLimits = Field(default_factory=AgentLimits, description=(
        "Limits of this key on each agent; the smaller of these and the agent's own applies."))


class KeyAgentPolicy(Entity):
    """One per key, in the key's project partition (ids are unique across kinds there: `agent-key.<key id>`)."""

    kind: ClassVar[str] = "agent_key_policy"
    key_id: str = Field(max_length=64)
    skills: dict[str, list[str]] = Field(default_factory=dict, max_length=256)
    limits: AgentLimits = Field(default_factory=AgentLimits)

    @staticmethod
    def doc_id(key_id: str) -> str:
        return f"agent-key.{key_id}"


class KeyPolicies:
    """Read through the fail-static cache (the same propagation delay as keys and flags)."""

    def __init__(self, repo: Repository[KeyAgentPolicy], *, ttl: float, max_stale: float) -> None:
        self.repo = repo
        self._cache: FailStaticCache[tuple[str, str], KeyAgentPolicy | None] = FailStaticCache(
            self._load, ttl=ttl, max_stale=max_stale)

    async def _load(self, key: tuple[str, str]) -> KeyAgentPolicy | None:
        return await self.repo.find(key[0], KeyAgentPolicy.doc_id(key[1]))

    async def get(self, project_id: str, key_id: str | None) -> KeyAgentPolicy | None:
        return await self._cache.get((project_id, key_id)) if key_id else None

    def invalidate(self, project_id: str, key_id: str) -> None:
        self._cache.invalidate((project_id, key_id))

    async def forget(self, project_id: str, key_id: str) -> None:
        """The key is purged: its policy goes with it (a later key can never inherit it). Idempotent."""
        try:
            await self.repo.delete(project_id, KeyAgentPolicy.doc_id(key_id))
        except NotFound:
            pass  # the key had no agent policy
        self.invalidate(project_id, key_id)


@dataclass(frozen=True, slots=True)
class Effective:
    """The limits that apply to one call (plain values: built per call, so no model validation)."""

    requests_per_minute: int | None = None
    concurrent_tasks: int | None = None
    max_turns: int | None = None
    max_message_bytes: int | None = None
    task_timeout_seconds: float | None = None


_LIMIT_FIELDS = tuple(f.name for f in fields(Effective))


def effective(agent: AgentLimits, key: AgentLimits | None) -> Effective:
    """Field by field, the smaller of the two (None: no limit on that side)."""
    merged = {}
    for name in _LIMIT_FIELDS:
        a, k = getattr(agent, name), getattr(key, name) if key is not None else None
        merged[name] = k if a is None else a if k is None else min(a, k)
    return Effective(**merged)


# ---- skills

def requested_skill(params: dict[str, Any]) -> str | None:
    """The skill a call names: `message.metadata.skillId` (or `skill`), else the request's `metadata`."""
    message = params.get("message")
    for holder in (message.get("metadata") if isinstance(message, dict) else None, params.get("metadata")):
        if isinstance(holder, dict):
            for key in SKILL_KEYS:
                if isinstance(holder.get(key), str):
                    return holder[key][:128]
    return None


def check_skill(agent: Agent, policy: KeyAgentPolicy | None, skill: str | None) -> None:
    known = {s.id for s in agent.spec.skills}
    if skill is not None and known and skill not in known:
        raise ValidationFailed(f"Agent '{agent.id}' has no skill '{skill}'.", code="unknown_skill",
                               details=[{"field": "message.metadata.skillId", "message": "unknown skill",
                                         "skills": sorted(known)}])
    allowed = policy.skills.get(agent.id) if policy is not None else None
    if allowed is None:
        return
    if skill is None or skill not in allowed:
        raise ResourceNotAllowed(
            f"This key may call agent '{agent.id}' only for the skills {sorted(allowed)}; name one in "
            "message.metadata.skillId.", code="skill_not_allowed",
            details={"agent": agent.id, "skill": skill, "allowed": sorted(allowed)})


def visible_skills(agent: Agent, policy: KeyAgentPolicy | None) -> set[str] | None:
    """The skills a key's card lists (None: all)."""
    allowed = policy.skills.get(agent.id) if policy is not None else None
    return set(allowed) if allowed is not None else None


def with_skills(agent: Agent, allowed: set[str] | None) -> Agent:
    """The agent as a key with an allowed-skills list sees it (its card lists only those)."""
    if allowed is None:
        return agent
    spec = agent.spec.model_copy(update={"skills": [s for s in agent.spec.skills if s.id in allowed]})
    return agent.model_copy(update={"spec": spec})


# ---- message size

def check_size(limits: AgentLimits | Effective, body_bytes: int) -> None:
    limit = limits.max_message_bytes
    if limit is not None and body_bytes > limit:
        raise PayloadTooLarge(f"The message is larger than the agent's limit of {limit} bytes.",
                              details={"limit": limit, "size": body_bytes})


# ---- rate: extra quotas the pipeline admits

def rate_quotas(project_id: str, agent: Agent, key_id: str | None, agent_limits: AgentLimits,
                key_limits: AgentLimits | None) -> list[Quota]:
    out = []
    if agent_limits.requests_per_minute is not None:
        out.append(_rate_quota(project_id, f"agent-limit.{agent.id}", f"{agent.id} (agent limit)",
                               agent_limits.requests_per_minute))
    if key_limits is not None and key_limits.requests_per_minute is not None and key_id:
        out.append(_rate_quota(project_id, f"agent-key-limit.{agent.id}.{key_id}", f"{agent.id} (key {key_id} limit)",
                               key_limits.requests_per_minute))
    return out


@lru_cache(maxsize=4096)
def _rate_quota(project_id: str, quota_id: str, target: str, per_minute: int) -> Quota:
    """Built once per (limit, value): the enforcer only reads quotas, and building one validates it."""
    return Quota(id=quota_id, project_id=project_id, scope="agent", target=target,
                 limits=QuotaLimits(requests_per_minute=per_minute))


class LimitQuotas:
    """The pipeline's QuotaBook for agents: the stored quotas plus each agent's and key's rate limits."""

    def __init__(self, book: QuotaBook, agent_of: Callable[[str, str], Awaitable[Agent]],
                 policies: KeyPolicies) -> None:
        self._book, self._agent_of, self._policies = book, agent_of, policies

    async def for_call(self, project_id: str, key_id: str | None, pillar: Pillar, resource: str) -> list[Quota]:
        quotas = await self._book.for_call(project_id, key_id, pillar, resource)
        agent = await self._agent_of(project_id, resource)
        policy = await self._policies.get(project_id, key_id)
        return quotas + rate_quotas(project_id, agent, key_id, agent.spec.limits,
                                    policy.limits if policy is not None else None)

    def invalidate(self, project_id: str) -> None:
        self._book.invalidate(project_id)


# ---- concurrency (per instance)

class InFlight:
    """Calls in flight per key (agent, or agent+key), refused — never queued — past the limit."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def take(self, key: str, limit: int | None) -> bool:
        if limit is None:
            return False
        n = self._counts.get(key, 0)
        if n >= limit:
            raise AgentBusy(f"{limit} call(s) already in flight ({key}); retry when one ends.",
                            details={"limit": limit, "scope": key}, headers={"retry-after": "1"})
        self._counts[key] = n + 1
        return True

    def give(self, key: str) -> None:
        n = self._counts.get(key, 0) - 1
        if n > 0:
            self._counts[key] = n
        else:
            self._counts.pop(key, None)

    def count(self, key: str) -> int:
        return self._counts.get(key, 0)


# ---- turns (shared counters)

class Turns:
    def __init__(self, counters: CounterStore) -> None:
        self._counters = counters
        self.unenforced = 0  # counter outages during which a turn limit was not checked (logged)

    async def count(self, project_id: str, agent_id: str, conversation: str, limit: int) -> int:
        """Counts this turn; refuses it when the conversation already had `limit`. Fails open (logged) when
        the counters are unreachable: a storage outage must not stop every conversation."""
        try:
            total = await self._counters.add(f"{project_id}|agent-turns", f"{agent_id}|{conversation[:200]}", 1)
        except DependencyUnavailable:
            self.unenforced += 1
            log.warning("turn counter unreachable: max_turns not enforced for %s/%s", project_id, agent_id)
            return 0
        if total > limit:
            raise MaxTurnsExceeded(f"This conversation has had its {limit} turn(s) with agent '{agent_id}'; "
                                   "start a new one (a new contextId).",
                                   details={"limit": limit, "conversation": conversation[:200]})
        return total


def conversation_of(params: dict[str, Any], assign: bool) -> str | None:
    """The conversation a message belongs to (contextId, else taskId); with `assign`, a new contextId is set on
    a message that has neither, so its follow-ups can be counted."""
    message = params.get("message")
    if not isinstance(message, dict):
        return None
    for name in ("contextId", "taskId"):
        if isinstance(message.get(name), str) and message[name]:
            return str(message[name])
    if assign:
        message["contextId"] = uuid.uuid4().hex
        return str(message["contextId"])
    return None


# ---- task time

async def within(events: AsyncIterator[Any], deadline: float, clock: Callable[[], float] = time.monotonic
                 ) -> AsyncIterator[Any]:
    """`events` until `deadline` (clock time); raises TimeoutError when it passes mid-stream. The wait runs in
    the caller's task (`asyncio.timeout`, not `wait_for`): the upstream connection's reads stay in one task."""
    iterator = aiter(events)
    while True:
        left = deadline - clock()
        if left <= 0:
            raise TimeoutError
        try:
            async with asyncio.timeout(left):
                item = await anext(iterator)
        except StopAsyncIteration:
            return
        if clock() > deadline:  # arrived too late (the clock may not be the loop's)
            raise TimeoutError
        yield item
