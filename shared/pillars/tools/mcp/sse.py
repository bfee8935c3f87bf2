"""Reading and writing MCP's server-sent events (one JSON-RPC message per `data`; `endpoint` events on the
2024-11-05 HTTP+SSE transport)."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class Event:
    event: str
    data: str
    id: str | None = None


async def events(lines: AsyncIterator[str], *, max_event_bytes: int) -> AsyncIterator[Event]:
    """Events from an SSE body's lines; an event larger than `max_event_bytes` ends the stream with ValueError."""
    name, data, eid, size = "message", [], None, 0
    async for line in lines:
        if not line:
            if data:
                yield Event(name, "\n".join(data), eid)
            name, data, eid, size = "message", [], None, 0
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        size += len(value)
        if size > max_event_bytes:
            raise ValueError(f"SSE event larger than {max_event_bytes} bytes")
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
        elif field == "id":
            eid = value
    if data:
        yield Event(name, "\n".join(data), eid)


def encode(message: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n".encode() if event_id else b""
    return head + b"event: message\ndata: " + orjson.dumps(message) + b"\n\n"
