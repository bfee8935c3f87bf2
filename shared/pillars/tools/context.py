"""What the MCP data plane knows about one inbound JSON-RPC request once the transport has read it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...auth.principal import Principal
from .mcp import revisions as rev
from .mcp.session import SessionState, UpstreamSession


@dataclass
class McpContext:
    principal: Principal
    project_id: str
    toolbox: str
    request_id: str
    client_version: str
    elicitation: bool = False          # the client can answer elicitation/create (2025-06-18+ sessions)
    session: SessionState | None = None
    headers: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    # sees the pipeline's Exchange once the call is over (the playground's governance trace); None on the data plane
    observe: Any = None

    @property
    def modern(self) -> bool:
        return rev.is_modern(self.client_version)

    @property
    def caller(self) -> str:
        return self.principal.key_id or self.principal.subject

    @property
    def carried(self) -> dict[str, UpstreamSession] | None:
        return self.session.upstreams if self.session is not None else None


@dataclass
class Reply:
    """The JSON-RPC answer, plus what the transport needs: extra messages to stream before it (SSE), headers."""

    message: dict[str, Any] | None
    before: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    wait: Any = None  # a coroutine producing the final message while `before` is streamed (SSE only)
    fallback: dict[str, Any] | None = None  # the answer instead of `wait` when the client cannot take SSE
    body: bytes | None = None  # `message` already serialised (the pipeline's bytes), sent as is when set
