"""The Responses API's typed server-sent events passing through the gateway (`event: response.created` …
`response.completed`; no `[DONE]`): relayed whole as they come, read on the way — the response id (for the
directory), the text deltas (an estimate when usage is missing) and the final `usage` of the terminal event."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from .sse import SseRelay

TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


@dataclass
class ResponsesTally:
    usage: Any = None  # the terminal event's response.usage, as sent (distrusted by the reader)
    done: bool = False  # a terminal event went by
    response_id: str | None = None
    sequence: int = 0  # the last sequence_number seen, for an error event of our own
    content: list[str] = field(default_factory=list)


class ResponsesSseRelay(SseRelay):
    """The chat relay's event splitting (`feed`/`rest`), reading the Responses API's events; every event is
    relayed unchanged."""

    def __init__(self) -> None:
        super().__init__(strip_usage_chunk=False, collect_content=True)
        self.tally = ResponsesTally()  # type: ignore[assignment]

    def _inspect(self, event: bytes) -> bool:
        data = b"".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
        try:
            obj = orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return True  # relayed as it came, just not read
        if isinstance(obj, dict):
            self._read(obj)
        return True

    def _read(self, obj: dict[str, Any]) -> None:
        kind, t = obj.get("type"), self.tally
        seq = obj.get("sequence_number")
        if isinstance(seq, int) and not isinstance(seq, bool):
            t.sequence = max(t.sequence, seq)
        if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
            t.content.append(obj["delta"])
        response = obj.get("response")
        if not isinstance(response, dict):
            return
        if t.response_id is None and isinstance(response.get("id"), str):
            t.response_id = response["id"]
        if kind in TERMINAL:
            t.done = True
            t.usage = response.get("usage")


def error_event(code: str, message: str, sequence: int, *, details: object = None,
                type_: str = "server_error") -> bytes:
    """The Responses API's own `error` event; it also carries an `error` object, so the openai SDK raises."""
    error: dict[str, object] = {"code": code, "message": message, "type": type_}
    if details is not None:
        error["details"] = details
    body = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": sequence + 1,
            "error": error}
    return b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
