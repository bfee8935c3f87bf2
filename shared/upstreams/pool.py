"""httpcore's connection pool with its bookkeeping made proportional to the work, not to the pool's size.

httpcore 1.0's `AsyncConnectionPool._assign_requests_to_connections` runs when a request starts and again when its
response closes, and each time it walks every pooled connection: `has_expired()` on each (a `select` on each idle
socket, through anyio's attribute lookups) and, for each idle connection, a fresh count of the whole pool — O(n²)
in the number of pooled connections. At c=10 that was a third of the gateway's CPU per call; at c=50 (~50 pooled
connections) CPU per call doubled and throughput collapsed (issue 13, docs/benchmarks.md).

This subclass keeps httpcore's own request/connection objects, locking and response streams; only the assignment
changes:
- a queued request takes the first available connection for its origin; *that* connection alone is checked for
  expiry/server disconnect before reuse (what httpcore checks for every connection, checked where it matters);
- closed, expired and surplus idle connections are swept at most every `sweep_seconds`, not on every call;
- the surplus-idle rule counts idle connections (httpcore counted all of them, closing idle ones too early and
  churning connections whenever more than `max_keepalive_connections` were open).
Connections are still opened only through the pool's network backend (the egress check stays on every connect).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpcore
from httpcore._async.interfaces import AsyncConnectionInterface

SWEEP_SECONDS = 1.0


class LeanConnectionPool(httpcore.AsyncConnectionPool):
    def __init__(self, *args: Any, sweep_seconds: float = SWEEP_SECONDS,
                 clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sweep_seconds, self._clock = sweep_seconds, clock
        self._next_sweep = 0.0

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        now = self._clock()
        if now >= self._next_sweep:
            self._next_sweep = now + self._sweep_seconds
            self._sweep(closing)
        for pool_request in self._requests:
            if pool_request.connection is not None:
                continue  # already assigned (in flight)
            origin = pool_request.request.url.origin
            connection = self._reusable(origin, closing)
            if connection is None:
                if len(self._connections) >= self._max_connections:
                    idle = next((c for c in self._connections if c.is_idle()), None)
                    if idle is None:
                        continue  # stays queued until a response closes and frees a connection
                    self._connections.remove(idle)
                    closing.append(idle)
                connection = self.create_connection(origin)
                self._connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing

    async def _close_connections(self, closing: list[AsyncConnectionInterface]) -> None:
        # httpcore enters an anyio cancel-shield scope here on every call, even with nothing to close
        if closing:
            await super()._close_connections(closing)

    def _reusable(self, origin: httpcore.Origin, closing: list[AsyncConnectionInterface]
                  ) -> AsyncConnectionInterface | None:
        """The first available connection to `origin` that is still good (its socket checked now). Closed
        connections met on the way are dropped (a `connection: close` upstream leaves one per call)."""
        connections = self._connections
        i = 0
        while i < len(connections):
            connection = connections[i]
            if connection.is_available():
                if connection.can_handle_request(origin):
                    if not connection.has_expired():  # keep-alive expired, or the server closed it while idle
                        return connection
                    del connections[i]
                    closing.append(connection)
                    continue
            elif connection.is_closed():
                del connections[i]
                continue
            i += 1
        return None

    def _sweep(self, closing: list[AsyncConnectionInterface]) -> None:
        kept: list[AsyncConnectionInterface] = []
        idle = 0
        for connection in self._connections:
            if connection.is_closed():
                continue
            if connection.has_expired():
                closing.append(connection)
            elif connection.is_idle():
                if idle >= self._max_keepalive_connections:
                    closing.append(connection)
                else:
                    idle += 1
                    kept.append(connection)
            else:
                kept.append(connection)
        self._connections = kept
