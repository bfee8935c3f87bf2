"""Server-sent events passing through the gateway: split into whole events without holding any back longer than
it takes for the event to complete, read `usage` when it goes by, and drop the usage-only chunk the gateway
asked for on the client's behalf."""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson


@dataclass
class StreamTally:
    usage: object = None  # as the upstream sent it; read (and distrusted) by shared.pillars.models.usage
    done: bool = False
    content: list[str] = field(default_factory=list)  # delta text, to estimate usage when the upstream omits it


class SseRelay:
    def __init__(self, *, strip_usage_chunk: bool, collect_content: bool) -> None:
        self._buf = b""
        self._strip = strip_usage_chunk
        self._collect = collect_content
        self.tally = StreamTally()

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to forward now: every complete event in the buffer (minus a stripped usage chunk)."""
        self._buf += chunk
        if b"\n\n" not in self._buf and b"\r\n\r\n" not in self._buf:
            return b""
        self._buf = self._buf.replace(b"\r\n", b"\n")
        *events, self._buf = self._buf.split(b"\n\n")
        out = []
        for event in events:
            if self._inspect(event):
                out.append(event + b"\n\n")
        return b"".join(out)

    def rest(self) -> bytes:
        rest, self._buf = self._buf, b""
        return rest

    def _inspect(self, event: bytes) -> bool:
        data = b"".join(line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:"))
        if not data:
            return True
        if data == b"[DONE]":
            self.tally.done = True
            return True
        if b'"usage"' not in data and not self._collect:
            return True  # the common case: no parse at all
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return True
        if not isinstance(obj, dict):
            return True
        if obj.get("usage"):
            self.tally.usage = obj["usage"]
            if self._strip and not obj.get("choices"):
                return False
        if self._collect:
            choices = obj.get("choices")
            # The upstream's shapes are not trusted: junk is relayed as it came, just not counted.
            for choice in choices if isinstance(choices, list) else []:
                delta = choice.get("delta") if isinstance(choice, dict) else None
                text = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(text, str):
                    self.tally.content.append(text)
        return True


def error_event(code: str, message: str, *, details: object = None, type_: str = "server_error") -> bytes:
    error: dict[str, object] = {"code": code, "message": message, "type": type_}
    if details is not None:
        error["details"] = details
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"
