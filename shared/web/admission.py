"""Admission control for the HTTP data plane (models, MCP, A2A): a bounded number of calls in flight per worker
process, a short bounded FIFO queue in front of it, and a fast `503 gateway_overloaded` with `Retry-After` beyond
that (docs/runbook.md "Overload").

The gate runs before anything else a call costs — before authentication, before the body is read or parsed, before
a quota is taken or a breaker probed — so a shed call costs a counter and a pre-serialised answer. Without it,
overload queued calls without bound inside the worker (each holding its request, parsed body and task) and every
caller waited seconds; with it, the worker keeps serving what it admitted at full speed and tells the rest, at
once, when to come back.

A slot is held until the handler returns its response (for a streamed answer: once its headers are ready); the
stream itself is bounded by the upstream's timeouts, not by this gate.
"""
from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import orjson
from starlette.responses import Response

from ..errors import GatewayOverloaded


class AdmissionGate:
    def __init__(self, *, max_in_flight: int, max_queue: int, queue_timeout: float, retry_after: int) -> None:
        self.max_in_flight, self.max_queue, self.queue_timeout = max_in_flight, max_queue, queue_timeout
        self._retry_after = str(retry_after)
        self.in_flight = 0
        self.peak_in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.admitted = 0  # calls that ran (directly or after a wait)
        self.waited = 0  # of those, calls that waited in the queue first
        self.shed_queue_full = 0  # refused at once: every slot busy and the queue full
        self.shed_queue_timeout = 0  # waited queue_timeout without a slot
        self._bodies = {reason: self._body(reason) for reason in ("queue_full", "queue_timeout")}

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_enter(self) -> bool:
        """The fast path: a free slot and nobody ahead in the queue (FIFO stays fair)."""
        if self.in_flight < self.max_in_flight and not self._waiters:
            self._take()
            return True
        return False

    async def wait(self) -> str | None:
        """After `try_enter` failed: wait for a slot in the queue. → None once admitted (the caller then owns a
        slot and must `leave()`), else why it was shed ("queue_full" / "queue_timeout")."""
        if len(self._waiters) >= self.max_queue:
            self.shed_queue_full += 1
            return "queue_full"
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_timeout)
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # a slot was handed over just as we gave up: pass it on
            else:
                waiter.cancel()
                self._discard(waiter)
            if isinstance(exc, TimeoutError):
                self.shed_queue_timeout += 1
                return "queue_timeout"
            raise
        self.admitted += 1
        self.waited += 1
        return None

    def leave(self) -> None:
        """A call ended: hand its slot to the first caller still waiting, else free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves over; in_flight is unchanged
                return
        self.in_flight -= 1

    def shed_response(self, reason: str, request_id: str) -> Response:
        # Pre-serialised body, no logging per call: shedding must stay far cheaper than the work it refuses.
        return Response(self._bodies[reason], status_code=GatewayOverloaded.status, media_type="application/json",
                        headers={"retry-after": self._retry_after, "x-request-id": request_id,
                                 "x-gateway-shed": reason})

    def stats(self) -> dict[str, Any]:
        return {"in_flight": self.in_flight, "queued": self.queued, "max_in_flight": self.max_in_flight,
                "max_queue": self.max_queue, "peak_in_flight": self.peak_in_flight, "admitted": self.admitted,
                "waited": self.waited, "shed": self.shed_queue_full + self.shed_queue_timeout,
                "shed_queue_full": self.shed_queue_full, "shed_queue_timeout": self.shed_queue_timeout}

    def _take(self) -> None:
        self.in_flight += 1
        self.admitted += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass  # already handed a slot and popped

    def _body(self, reason: str) -> bytes:
        why = ("every slot is busy and the wait queue is full" if reason == "queue_full"
               else f"no slot freed within {self.queue_timeout:g} s")
        error = GatewayOverloaded(
            f"The gateway is at capacity ({why}); retry after {self._retry_after} s.",
            details={"reason": reason, "max_in_flight": self.max_in_flight, "max_queue": self.max_queue})
        return orjson.dumps(error.to_body())
