"""Composite agents: the registry contract of a composition and its task budget.

A composite agent is an ordinary `Agent` (source "composite") whose `spec.composition` names published member
agents and how a message flows through them:
- `sequential`: each member's output is the next member's input; the last one's output is the answer.
- `router`: the first rule that matches the message picks one member; no match → `default`.

Every number is bounded (the contract test enumerates them). This module imports nothing of the agents pillar
(domain.py imports it), so the id pattern is repeated here; a unit test keeps the two equal.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ....domain.base import Contract

MEMBER_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"  # = domain.AGENT_ID_PATTERN
MemberId = Annotated[str, Field(pattern=MEMBER_PATTERN)]
Keyword = Annotated[str, Field(min_length=1, max_length=64)]
SkillId = Annotated[str, Field(min_length=1, max_length=128)]

MAX_MEMBERS = 16


class TaskBudget(Contract):
    """One budget per composite task, shared by every hop (nested composites included). A hop that would go over
    `max_hops`, or whose reported usage takes the task over `max_tokens` / `max_tool_calls`, or a task past
    `max_seconds`, stops the task: TASK_STATE_FAILED with reason `budget_exhausted`, partial output kept."""

    max_hops: int = Field(default=8, ge=1, le=64, description="Agent calls (hops) per task, nested ones included.")
    max_tokens: int | None = Field(default=None, ge=1, le=100_000_000,
                                   description="Tokens the members report (metadata.usage.totalTokens), summed.")
    max_tool_calls: int | None = Field(default=None, ge=0, le=100_000,
                                       description="Tool calls the members report (metadata.usage.toolCalls).")
    max_seconds: float = Field(default=120.0, gt=0, le=3_600, allow_inf_nan=False,
                               description="Wall-clock time for the whole task.")


class RouteRule(Contract):
    """Matches when the message asks for one of `skills` (message metadata `skill`), or when its text contains
    one of `keywords` (case-insensitive, whole words). A rule needs at least one of the two."""

    agent: MemberId
    skills: list[SkillId] = Field(default_factory=list, max_length=32)
    keywords: list[Keyword] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _something_to_match(self) -> "RouteRule":
        if not self.skills and not self.keywords:
            raise ValueError("a rule needs skills or keywords to match")
        return self


class Composition(Contract):
    mode: Literal["sequential", "router"]
    members: list[MemberId] = Field(default_factory=list, max_length=MAX_MEMBERS,
                                    description="sequential: the agents in order (a member may appear more than "
                                                "once). router: ignored (the rules and default name the members).")
    rules: list[RouteRule] = Field(default_factory=list, max_length=64)
    default: MemberId | None = Field(default=None, description="router: the member when no rule matches.")
    budget: TaskBudget = Field(default_factory=TaskBudget)

    @model_validator(mode="after")
    def _shape(self) -> "Composition":
        if self.mode == "sequential":
            if not self.members:
                raise ValueError("a sequential composition needs members")
            if self.rules or self.default:
                raise ValueError("rules and default belong to a router composition")
        else:
            if self.default is None:
                raise ValueError("a router composition needs a default member")
            if self.members:
                raise ValueError("a router names its members in rules and default, not members")
        return self

    def member_ids(self) -> list[str]:
        """Every agent this composition can call, each once, in first-use order."""
        ids = self.members if self.mode == "sequential" else [r.agent for r in self.rules] + [self.default or ""]
        return list(dict.fromkeys(ids))
