"""Which backend served a Responses API id, so that `GET`/`DELETE /v1/responses/{id}` (and a later call's
`previous_response_id`) go back to the backend that stores it — and only for the project that created it.

Two levels. First, per worker, in memory, bounded (least recently used out first) and with a TTL. Second, durable
and shared by every instance: the registry (one `response_route` document per id, in the project's partition —
another project's id is simply not there). The durable write happens in the background after the answer
(bounded: past `max_pending` writes in flight, new ones are dropped with a warning, never queued without end; it
never delays the call); a local miss reads through (bounded by `timeout`; a store that fails answers "unknown",
never a 5xx) and fills the local level. Expiry is enforced on both levels (the document carries its wall-clock
expiry, checked on read, and a Cosmos `ttl` for containers with TTL on).

Why not ask a configured backend: a model's pool may hold several upstream accounts, and only the one that answered
holds the response; asking each in turn would leak one project's ids to every account."""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from ...domain.base import Entity
from ...errors import AlreadyExists, GatewayError, NotFound
from ...storage.repository import Repository

log = logging.getLogger(__name__)
PREFIX = "response."
# Ids the registry can hold (Cosmos ids exclude / \ ? #); others stay per worker, as before.
_STORABLE = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")


@dataclass(frozen=True)
class Served:
    project_id: str
    model: str
    backend: str
    expires: float


class ResponseRoute(Entity):
    """One Responses API id → the model and backend that store it, until `expires_at` (epoch seconds)."""

    kind: ClassVar[str] = "response_route"
    model: str = Field(max_length=256)
    backend: str = Field(max_length=256)
    expires_at: float = Field(ge=0, le=10**11)
    ttl: int = Field(ge=1, le=90 * 86400)  # Cosmos per-item TTL (honoured where the container has TTL on)


class ResponseDirectory:
    def __init__(self, *, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic,
                 store: Repository[ResponseRoute] | None = None, wall: Callable[[], float] = time.time,
                 max_pending: int = 256, timeout: float = 2.0) -> None:
        self._max, self._ttl, self._clock, self._wall = max_entries, ttl, clock, wall
        self._entries: OrderedDict[str, Served] = OrderedDict()
        self._store, self._max_pending, self._timeout = store, max_pending, timeout
        self._pending: set[asyncio.Task[None]] = set()
        self.dropped = 0  # durable writes not attempted (too many in flight): those ids stay per worker

    # ---- the local level

    def _put(self, response_id: str, served: Served) -> None:
        self._entries[response_id] = served
        self._entries.move_to_end(response_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def find(self, project_id: str, response_id: str) -> Served | None:
        """This worker's memory only."""
        served = self._entries.get(response_id)
        if served is None or not served.backend:
            return None
        if served.expires <= self._clock():
            del self._entries[response_id]
            return None
        if served.project_id != project_id:
            return None  # another project's id is indistinguishable from an unknown one
        self._entries.move_to_end(response_id)
        return served

    def __len__(self) -> int:
        return len(self._entries)

    # ---- both levels

    def record(self, project_id: str, response_id: str, model: str, backend: str) -> None:
        self._put(response_id, Served(project_id, model, backend, self._clock() + self._ttl))
        if self._store is not None and _STORABLE.match(response_id):
            route = ResponseRoute(id=PREFIX + response_id, project_id=project_id, model=model, backend=backend,
                                  expires_at=self._wall() + self._ttl, ttl=max(1, int(self._ttl)))
            self._background(self._write(route), "record")

    async def lookup(self, project_id: str, response_id: str) -> Served | None:
        """This worker's memory, else the registry (any instance's record), filling the memory."""
        served = self.find(project_id, response_id)
        if served is not None or self._store is None or not _STORABLE.match(response_id):
            return served
        if response_id in self._entries and not self._entries[response_id].backend \
                and self._entries[response_id].expires > self._clock():
            return None  # deleted here: the registry's delete may not have landed yet
        try:
            route = await asyncio.wait_for(self._store.find(project_id, PREFIX + response_id), self._timeout)
        except (TimeoutError, GatewayError) as exc:  # unreachable or an invalid document: unknown, logged
            log.warning("responses directory: reading %s failed: %s", response_id[:64], type(exc).__name__)
            return None
        if route is None:
            return None
        left = route.expires_at - self._wall()
        if left <= 0:
            self._background(self._delete(project_id, response_id), "expire")
            return None
        served = Served(project_id, route.model, route.backend, self._clock() + min(left, self._ttl))
        self._put(response_id, served)
        return served

    def forget(self, response_id: str, project_id: str | None = None) -> None:
        self._entries.pop(response_id, None)
        if self._store is not None and project_id is not None and _STORABLE.match(response_id):
            # a tombstone (no backend): this worker does not read the id back while the delete is in flight
            self._put(response_id, Served(project_id, "", "", self._clock() + self._timeout * 4))
            self._background(self._delete(project_id, response_id), "forget")

    async def drain(self) -> None:
        """Wait for the background writes in flight (tests; shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # ---- background writes

    def _background(self, work: Coroutine[Any, Any, None], what: str) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            work.close()  # the coroutine never runs
            log.warning("responses directory: %d durable writes in flight, %s dropped (%d so far)",
                        len(self._pending), what, self.dropped)
            return
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, route: ResponseRoute) -> None:
        try:
            await asyncio.wait_for(self._store.create(route), self._timeout)  # type: ignore[union-attr]
        except AlreadyExists:
            pass  # the same id recorded twice (a retried stream): the first one stands
        except (TimeoutError, GatewayError) as exc:
            log.warning("responses directory: storing %s failed (it stays per worker): %s", route.id[:80],
                        type(exc).__name__)
        except Exception:  # noqa: BLE001 - a background task: nobody awaits it, so it is logged here
            log.exception("responses directory: storing %s failed", route.id[:80])

    async def _delete(self, project_id: str, response_id: str) -> None:
        try:
            await asyncio.wait_for(self._store.delete(project_id, PREFIX + response_id), self._timeout)  # type: ignore[union-attr]
        except NotFound:
            pass
        except (TimeoutError, GatewayError) as exc:
            log.warning("responses directory: deleting %s failed: %s", response_id[:64], type(exc).__name__)
        except Exception:  # noqa: BLE001 - a background task: nobody awaits it, so it is logged here
            log.exception("responses directory: deleting %s failed", response_id[:64])
