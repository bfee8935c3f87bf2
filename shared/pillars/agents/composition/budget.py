"""One budget per composite task: agent hops, tokens and tool calls together, plus wall-clock time.

The same `Budget` object travels with the task through every hop, nested composites included (the hop hands it
to the inner composite in the Exchange's scratch), so a task cannot escape its limits by nesting."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .contracts import TaskBudget


class BudgetExhausted(Exception):
    """`limit`: hops | tokens | tool_calls | time — the stable reason a task stopped."""

    def __init__(self, limit: str, used: float, allowed: float) -> None:
        super().__init__(f"The task's {limit.replace('_', ' ')} budget is exhausted ({used:g} of {allowed:g}).")
        self.limit, self.used, self.allowed = limit, used, allowed
        self.partial: tuple[str, list[Any]] | None = None  # (member, output parts) of the hop that went over


@dataclass
class Budget:
    limits: TaskBudget
    clock: Callable[[], float] = time.monotonic
    hops: int = 0
    tokens: int = 0
    tool_calls: int = 0
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def remaining_seconds(self) -> float:
        return self.limits.max_seconds - (self.clock() - self.started)

    def begin_hop(self) -> None:
        """Before a hop: one more agent call must fit, and time must be left."""
        if self.hops >= self.limits.max_hops:
            raise BudgetExhausted("hops", self.hops + 1, self.limits.max_hops)
        if self.remaining_seconds() <= 0:
            raise BudgetExhausted("time", round(self.clock() - self.started, 3), self.limits.max_seconds)
        self.hops += 1

    def charge(self, tokens: int, tool_calls: int) -> None:
        """After a hop: what the member reported. Over a limit → the task stops (the hop's output is kept)."""
        self.tokens += max(0, tokens)
        self.tool_calls += max(0, tool_calls)
        lim = self.limits
        if lim.max_tokens is not None and self.tokens > lim.max_tokens:
            raise BudgetExhausted("tokens", self.tokens, lim.max_tokens)
        if lim.max_tool_calls is not None and self.tool_calls > lim.max_tool_calls:
            raise BudgetExhausted("tool_calls", self.tool_calls, lim.max_tool_calls)

    def report(self) -> dict[str, object]:
        lim = self.limits
        return {"hops": self.hops, "maxHops": lim.max_hops, "tokens": self.tokens, "maxTokens": lim.max_tokens,
                "toolCalls": self.tool_calls, "maxToolCalls": lim.max_tool_calls,
                "seconds": round(self.clock() - self.started, 3), "maxSeconds": lim.max_seconds}
