"""The developer's tool playground: call one tool of a toolbox with arguments and see the result together with
the governance trace (toolbox visible to the caller → tool approved and pinned → allowed → arguments valid
against its inputSchema → sent, with which target and how long it took).

It uses the data plane's own pieces (the ToolDirectory for every visibility rule, the API executor for
API-backed tools); for MCP tools it sends one `tools/call` to the server's targets in priority order. Once the
MCP data plane's toolbox endpoint is merged, `send_mcp` is the seam to route through it instead.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from ...auth.principal import Principal
from ...errors import GatewayError
from .api_executor import ApiExecutor
from .directory import ResolvedTool, ToolDirectory
from .outbound_auth import OutboundAuthenticator
from .probe import McpClient, ProbeFailed

import httpx


class TraceStep(BaseModel):
    step: str
    ok: bool
    detail: str = ""
    ms: float = 0.0


class PlaygroundResult(BaseModel):
    ok: bool
    result: dict[str, Any] | None = None
    trace: list[TraceStep] = Field(default_factory=list)


@dataclass
class Playground:
    directory: ToolDirectory
    executor: ApiExecutor
    http: httpx.AsyncClient
    auth: OutboundAuthenticator

    async def run(self, principal: Principal, project_id: str, toolbox: str, tool: str,
                  arguments: dict[str, Any]) -> PlaygroundResult:
        out = PlaygroundResult(ok=False)
        started = time.perf_counter()
        try:
            resolved = await self.directory.resolve(principal, project_id, toolbox, tool)
        except GatewayError as exc:
            out.trace.append(TraceStep(step="resolve", ok=False, detail=f"{exc.code}: {exc.message}"))
            return out
        d = resolved.definition
        out.trace.append(TraceStep(step="resolve", ok=True, detail=(
            f"toolbox '{toolbox}' → {d.source} '{d.server_id}', tool '{d.original_name}' approved, pinned "
            f"{d.pinned_hash}"), ms=_ms(started)))
        errors = sorted(Draft202012Validator(d.definition.input_schema).iter_errors(arguments), key=str)
        if errors:
            out.trace.append(TraceStep(step="validate_arguments", ok=False, detail="; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:10])))
            return out
        out.trace.append(TraceStep(step="validate_arguments", ok=True, detail="valid against inputSchema"))
        if d.sensitive:
            out.trace.append(TraceStep(step="per_call_approval", ok=False, detail=(
                "sensitive tool: each call waits for an approver on the data plane; not run from the playground")))
            return out
        sent = time.perf_counter()
        try:
            result, target = await self._send(resolved, arguments)
        except (ProbeFailed, GatewayError) as exc:
            out.trace.append(TraceStep(step="send", ok=False, detail=str(exc)[:500], ms=_ms(sent)))
            return out
        size = len(str(result).encode())
        out.trace.append(TraceStep(step="send", ok=not result.get("isError", False),
                                   detail=f"target {target}, {size} bytes", ms=_ms(sent)))
        out.ok, out.result = not result.get("isError", False), result
        return out

    async def _send(self, resolved: ResolvedTool, arguments: dict[str, Any]) -> tuple[dict[str, Any], str]:
        d = resolved.definition
        if resolved.api_source is not None:
            return await self.executor.call(resolved.api_source, d, arguments), "api"
        assert resolved.server is not None
        return await self.send_mcp(resolved, arguments)

    async def send_mcp(self, resolved: ResolvedTool, arguments: dict[str, Any]) -> tuple[dict[str, Any], str]:
        server = resolved.server
        assert server is not None
        headers = await self.auth.headers(server.spec.auth)  # type: ignore[arg-type]
        timeout = resolved.definition.limits.timeout_seconds or server.spec.timeouts.call_seconds
        last: ProbeFailed | None = None
        for target in sorted(resolved.targets, key=lambda t: t.priority):
            client = McpClient(self.http, str(target.url), headers, timeout)
            try:
                await client.initialize()
                result = await client.request("tools/call", {"name": resolved.definition.original_name,
                                                             "arguments": arguments})
                return result, target.id
            except ProbeFailed as exc:
                last = exc
                if exc.finding.check != "reachable":
                    raise
            finally:
                await client.close()
        assert last is not None
        raise last


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
