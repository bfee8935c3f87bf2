"""Calls to an A2A upstream: the endpoints an agent answers on as failover Targets, the JSON-RPC request in the
upstream's own protocol version, and a small SSE reader for streamed answers."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ..domain import Agent
from . import bridge
from .protocol import V1, V1_TO_V03


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream interface of an agent, as a failover Target (1.0 interfaces are tried before 0.3 ones)."""

    id: str
    url: str
    version: str
    priority: int
    weight: int = 1
    kind: str = "a2a"  # "backend": a non-A2A agent (Bedrock, Vertex) called through its AgentBackend


def endpoints(agent: Agent) -> list[Endpoint]:
    """JSON-RPC 1.0 interfaces first, then HTTP+JSON 1.0 (`kind="rest"`), then JSON-RPC 0.3. A 0.3 HTTP+JSON
    interface is not called (its paths differ; such agents also offer JSON-RPC)."""
    out = []
    for n, i in enumerate(agent.spec.interfaces):
        rest = i.binding == "http_json"
        if rest and i.protocol_version != V1:
            continue
        priority = 1 if rest else 0 if i.protocol_version == V1 else 2
        out.append(Endpoint(id=f"{'rest-' if rest else ''}{i.protocol_version}@{n}", url=str(i.url),
                            version=i.protocol_version, priority=priority, kind="rest" if rest else "a2a"))
    return out


def request_body(method: str, params: dict[str, Any], rid: str, version: str) -> bytes:
    """The call in the upstream's version (`method`/`params` are v1.0)."""
    if version != V1:
        name = V1_TO_V03.get(method)
        if name is None:
            raise LookupError(method)
        return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": name,
                             "params": bridge.params_to_v03(method, params)})
    return orjson.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})


def request_headers(version: str, stream: bool) -> dict[str, str]:
    """An allow-list: nothing of the client's request (its gateway key above all) reaches the upstream; the
    agent's own credential is added by AgentCredentials (shared/pillars/agents/credentials.py)."""
    headers = {"content-type": "application/json",
               "accept": "text/event-stream" if stream else "application/json"}
    if version == V1:
        headers["A2A-Version"] = V1
    return headers


async def sse_data(response: httpx.Response) -> AsyncIterator[bytes]:
    """The `data:` payload of each server-sent event, joined across lines."""
    buffer = b""
    async for chunk in response.aiter_bytes():
        buffer += chunk.replace(b"\r\n", b"\n")
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            data = b"\n".join(line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
            if data:
                yield data
    tail = b"\n".join(line[5:].lstrip(b" ") for line in buffer.split(b"\n") if line.startswith(b"data:"))
    if tail:
        yield tail
