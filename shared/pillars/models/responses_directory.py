"""Which backend served a Responses API id, so that `GET`/`DELETE /v1/responses/{id}` (and a later call's
`previous_response_id`) go back to the backend that stores it — and only for the project that created it.

Per worker, in memory, bounded (least recently used out first) and with a TTL. Why not ask a configured
backend: a model's pool may hold several upstream accounts, and only the one that answered holds the response;
asking each in turn would leak one project's ids to every account. The cost: a worker that did not serve the
id answers 404 `response_not_found` (see docs/developer-guide.md, "Responses API")."""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Served:
    project_id: str
    model: str
    backend: str
    expires: float


class ResponseDirectory:
    def __init__(self, *, max_entries: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._max, self._ttl, self._clock = max_entries, ttl, clock
        self._entries: OrderedDict[str, Served] = OrderedDict()

    def record(self, project_id: str, response_id: str, model: str, backend: str) -> None:
        self._entries[response_id] = Served(project_id, model, backend, self._clock() + self._ttl)
        self._entries.move_to_end(response_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def find(self, project_id: str, response_id: str) -> Served | None:
        served = self._entries.get(response_id)
        if served is None:
            return None
        if served.expires <= self._clock():
            del self._entries[response_id]
            return None
        if served.project_id != project_id:
            return None  # another project's id is indistinguishable from an unknown one
        self._entries.move_to_end(response_id)
        return served

    def forget(self, response_id: str) -> None:
        self._entries.pop(response_id, None)

    def __len__(self) -> int:
        return len(self._entries)
