"""The approval probe: is a submitted MCP server allowed by the egress policy, reachable, speaking MCP
(`initialize` + `tools/list`), are its tool schemas valid JSON Schema, and are its descriptions free of
tool-poisoning patterns. Every connection goes through the egress-guarded client (checked on the address
actually connected to).

A small client of our own rather than the `mcp` SDK's: the SDK brings its own HTTP client, which would bypass
the egress transport. It speaks streamable HTTP (JSON or SSE answers; also what a stdio bridge exposes) and the
legacy HTTP+SSE transport.
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx
from jsonschema import Draft202012Validator, SchemaError

from ...egress import EgressPolicy
from ...errors import GatewayError
from .domain import ApiBinding, Finding, McpServer, PinnedDefinition
from .outbound_auth import AuthSpec, OutboundAuthenticator
from .mcp import jsonrpc as rpc
from .mcp.revisions import LATEST_HANDSHAKE, LEGACY_SSE
from .mcp.session import UpstreamSession
from .mcp.upstream import Endpoint, McpUpstream, UpstreamFailure, same_origin
from .pinning import definition_hash, definition_of
from .scanner import scan

log = logging.getLogger("gateway.tools.probe")
# The probe asks for the same revision as the data plane and the pinning check (one constant): the definitions it
# approves are then the ones the gateway will see when it lists and calls the server.
PROTOCOL_VERSION = LATEST_HANDSHAKE
_MAX_BODY = 4 * 1024 * 1024
_MAX_PAGES = 20
_ACCEPT = "application/json, text/event-stream"


class ProbeFailed(Exception):
    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.finding = Finding(check=check, severity="error", message=message[:2000])  # type: ignore[arg-type]


@dataclass
class ProbeResult:
    findings: list[Finding] = field(default_factory=list)
    tools: list[PinnedDefinition] = field(default_factory=list)
    server_info: dict[str, Any] = field(default_factory=dict)
    bindings: dict[str, ApiBinding] = field(default_factory=dict)  # API sources: original name → HTTP binding

    @property
    def clean(self) -> bool:
        return not any(f.severity in ("error", "warning") for f in self.findings)

    @property
    def failed(self) -> bool:
        return any(f.severity == "error" and f.check in ("egress", "reachable", "speaks_mcp", "lists_tools")
                   for f in self.findings)


def _sse_messages(text: str) -> list[dict[str, Any]]:
    out, data = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            try:
                out.append(json.loads("\n".join(data)))
            except ValueError:
                pass  # a non-JSON event (e.g. a comment payload): not a JSON-RPC message
            data = []
    return out


class McpClient:
    """initialize → notifications/initialized → requests, over streamable HTTP."""

    def __init__(self, http: httpx.AsyncClient, url: str, headers: dict[str, str], timeout: float) -> None:
        self._http, self._url, self._timeout = http, url, timeout
        self._headers = {**headers, "accept": _ACCEPT, "content-type": "application/json"}
        self._next_id = 0

    async def _post(self, message: dict[str, Any]) -> dict[str, Any] | None:
        try:
            async with self._http.stream("POST", self._url, json=message, headers=self._headers,
                                         timeout=self._timeout) as resp:
                body = await _read_bounded(resp)
        except httpx.HTTPError as exc:
            raise ProbeFailed("reachable", f"cannot reach the server: {type(exc).__name__}: {exc}") from None
        if "id" not in message:
            return None
        if resp.status_code >= 400:
            raise ProbeFailed("speaks_mcp", f"{message['method']} answered HTTP {resp.status_code}")
        if session := resp.headers.get("mcp-session-id"):
            self._headers["mcp-session-id"] = session
        if version := resp.headers.get("mcp-protocol-version"):
            self._headers.setdefault("mcp-protocol-version", version)
        ctype = resp.headers.get("content-type", "")
        messages = _sse_messages(body.decode("utf-8", "replace")) if "text/event-stream" in ctype else \
            [_json(body, message["method"])]
        for m in messages:
            if isinstance(m, dict) and m.get("id") == message["id"]:
                return m
        raise ProbeFailed("speaks_mcp", f"no JSON-RPC answer to {message['method']}")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        answer = await self._post({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params or {}})
        assert answer is not None
        if "error" in answer or not isinstance(answer.get("result"), dict):
            raise ProbeFailed("speaks_mcp", f"{method} failed: {json.dumps(answer.get('error'))[:500]}")
        return answer["result"]

    async def notify(self, method: str) -> None:
        await self._post({"jsonrpc": "2.0", "method": method})

    async def initialize(self) -> dict[str, Any]:
        result = await self.request("initialize", {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
            "clientInfo": {"name": "ai-gateway-approval-probe", "version": "1"}})
        if "protocolVersion" not in result or "serverInfo" not in result:
            raise ProbeFailed("speaks_mcp", "initialize answered without protocolVersion/serverInfo")
        self._headers["mcp-protocol-version"] = str(result["protocolVersion"])
        await self.notify("notifications/initialized")
        return result

    async def list_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(_MAX_PAGES):
            result = await self.request("tools/list", {"cursor": cursor} if cursor else {})
            page = result.get("tools")
            if not isinstance(page, list):
                raise ProbeFailed("lists_tools", "tools/list answered without a tools array")
            tools.extend(t for t in page if isinstance(t, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools

    async def close(self) -> None:
        if "mcp-session-id" in self._headers:
            try:
                await self._http.delete(self._url, headers=self._headers, timeout=self._timeout)
            except httpx.HTTPError as exc:
                log.info("probe: session delete failed: %s", type(exc).__name__)


async def _read_bounded(resp: httpx.Response) -> bytes:
    chunks, size = [], 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > _MAX_BODY:
            raise ProbeFailed("speaks_mcp", f"answer larger than {_MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes, method: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ProbeFailed("speaks_mcp", f"{method} answered with something that is not JSON") from None


async def _legacy_sse_endpoint(http: httpx.AsyncClient, url: str, headers: dict[str, str],
                               timeout: float) -> str:
    """Legacy HTTP+SSE (2024-11-05): the GET stream's first `endpoint` event names the POST URL. The probe only
    checks that the server offers one on the same origin; listing tools needs the stream, which the data
    plane's client handles. A server that cannot be reached is a `reachable` finding, never an exception."""
    try:
        async with http.stream("GET", url, headers={**headers, "accept": "text/event-stream"},
                               timeout=timeout) as resp:
            if resp.status_code != 200:
                raise ProbeFailed("speaks_mcp", f"the SSE endpoint answered HTTP {resp.status_code}")
            event = ""
            async for line in resp.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "endpoint":
                    endpoint = urljoin(url, line[5:].strip())
                    if not same_origin(endpoint, url):  # same scheme and host:port, as the data plane checks
                        raise ProbeFailed("egress", "the SSE endpoint event points to another origin")
                    return endpoint
    except httpx.HTTPError as exc:
        raise ProbeFailed("reachable" if isinstance(exc, httpx.TransportError) else "speaks_mcp",
                          f"legacy HTTP+SSE server: cannot read the SSE stream: {type(exc).__name__}: {exc}"
                          ) from None
    raise ProbeFailed("speaks_mcp", "the SSE stream sent no endpoint event")


async def legacy_list_tools(http: httpx.AsyncClient, url: str, headers: dict[str, str], timeout: float
                           ) -> list[dict[str, Any]]:
    """`tools/list` (every page) from a legacy HTTP+SSE server, with the data plane's own client of that transport
    (GET stream → `endpoint` event → POSTs on the same origin), so the probe and the pinning timer read exactly
    what the toolbox will list and call."""
    upstream = McpUpstream(http, timeout=timeout, max_bytes=_MAX_BODY)
    ep, session = Endpoint("probe", url, transport="sse", headers=headers), UpstreamSession(version=LEGACY_SSE)
    tools: list[dict[str, Any]] = []
    cursor = None
    for _ in range(_MAX_PAGES):
        try:
            page = await upstream.request(ep, session, "tools/list", {"cursor": cursor} if cursor else {})
        except UpstreamFailure as exc:
            raise ProbeFailed("reachable" if isinstance(exc.__cause__, httpx.TransportError) else "speaks_mcp",
                              f"legacy HTTP+SSE server: {exc}") from None
        except rpc.Fault as fault:
            raise ProbeFailed("reachable" if fault.code == rpc.REQUEST_TIMEOUT else "lists_tools",
                              f"tools/list failed: {fault.message[:500]}") from None
        if not isinstance(page.get("tools"), list):
            raise ProbeFailed("lists_tools", "tools/list answered without a tools array")
        tools.extend(t for t in page["tools"] if isinstance(t, dict))
        cursor = page.get("nextCursor")
        if not cursor:
            break
    return tools


def check_schemas(d: PinnedDefinition) -> list[Finding]:
    found = []
    for where, schema in (("inputSchema", d.input_schema), ("outputSchema", d.output_schema)):
        if schema is None:
            continue
        if schema.get("type") != "object":
            found.append(Finding(check="schema_valid", severity="error", tool=d.name,
                                 message=f"{where} must be a JSON Schema of type object"))
            continue
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            found.append(Finding(check="schema_valid", severity="error", tool=d.name,
                                 message=f"{where} is not valid JSON Schema: {exc.message[:300]}"))
    return found


_TRANSIENT = (ProbeFailed, GatewayError, asyncio.TimeoutError, httpx.HTTPError)


def _as_finding(exc: BaseException, where: str = "") -> Finding:
    """A failure to reach or list one target as the probe's finding (`where`: which replica, for a replica)."""
    if isinstance(exc, ProbeFailed):
        check, message = exc.finding.check, exc.finding.message
    elif isinstance(exc, GatewayError):  # egress refusal at check time, missing upstream credential, …
        check, message = ("egress" if exc.status == 422 else "reachable"), exc.message
    elif isinstance(exc, httpx.HTTPError):
        check, message = "reachable", f"cannot reach the server: {type(exc).__name__}"
    else:
        check, message = "reachable", "the probe timed out"
    return Finding(check=check, severity="error", message=(where + message)[:2000])  # type: ignore[arg-type]


def replica_drift(replica_id: str, primary: list[PinnedDefinition], replica: list[PinnedDefinition]
                  ) -> Finding | None:
    """A replica must list exactly the primary's tools, definition for definition (pinning hashes): calls fail
    over to it, so what it serves is what gets approved. None when it does."""
    ours = {d.name: definition_hash(d) for d in primary}
    theirs = {d.name: definition_hash(d) for d in replica}
    if ours == theirs and len(primary) == len(replica):
        return None
    parts = [f"{label}: {', '.join(sorted(names))}" for label, names in (
        ("missing", ours.keys() - theirs.keys()), ("extra", theirs.keys() - ours.keys()),
        ("different definition", {n for n in ours.keys() & theirs.keys() if ours[n] != theirs[n]})) if names]
    detail = "; ".join(parts) or "duplicate tool names"
    return Finding(check="lists_tools", severity="error",
                   message=f"replica {replica_id} does not list the primary's tools ({detail})"[:2000])


class Prober:
    def __init__(self, egress: EgressPolicy, http: httpx.AsyncClient, auth: OutboundAuthenticator) -> None:
        self._egress, self._http, self._auth = egress, http, auth

    async def probe(self, server: McpServer) -> ProbeResult:
        """Every target is probed: the primary (its tools are what gets approved), then each replica, which must
        be reachable, speak MCP and list the very same definitions (a call may fail over to it)."""
        result = ProbeResult()
        try:
            await self._probe(server, result)
        except _TRANSIENT as exc:
            result.findings.append(_as_finding(exc))
        return result

    async def _probe(self, server: McpServer, result: ProbeResult) -> None:
        await self._egress.check(str(server.spec.url), "url")
        for i, replica in enumerate(server.spec.replicas):
            await self._egress.check(str(replica.url), f"replicas.{i}.url")
        result.findings.append(Finding(check="egress", severity="info", message="allowed by the egress policy"))
        headers = await self._auth.headers(server.spec.auth)  # type: ignore[arg-type]
        timeout, legacy = server.spec.timeouts.call_seconds, server.spec.transport == "sse"
        await self._list_target(str(server.spec.url), headers, timeout, result, legacy)
        found = await asyncio.gather(*(self._listing(str(r.url), headers, timeout, legacy)
                                       for r in server.spec.replicas))
        for r, listed in zip(server.spec.replicas, found):
            if isinstance(listed, BaseException):
                result.findings.append(_as_finding(listed, f"replica {r.id}: "))
            else:
                result.findings.append(replica_drift(r.id, result.tools, listed) or Finding(
                    check="lists_tools", severity="info", message=f"replica {r.id} lists the primary's tools"))

    async def _list_target(self, url: str, headers: dict[str, str], timeout: float, result: ProbeResult,
                           legacy: bool) -> None:
        if legacy:
            await _legacy_sse_endpoint(self._http, url, headers, timeout)
        await self.list_into(url, headers, timeout, result, legacy=legacy)

    async def _listing(self, url: str, headers: dict[str, str], timeout: float, legacy: bool
                       ) -> list[PinnedDefinition] | BaseException:
        """What one target lists, or why it could not be listed (never raised: the other targets still count)."""
        scratch = ProbeResult()
        try:
            await self._list_target(url, headers, timeout, scratch, legacy)
        except _TRANSIENT as exc:
            return exc
        return scratch.tools

    async def list_into(self, url: str, headers: dict[str, str], timeout: float, result: ProbeResult, *,
                        legacy: bool = False) -> None:
        if legacy:
            listed = await legacy_list_tools(self._http, url, headers, timeout)
            result.findings.append(Finding(check="speaks_mcp", severity="info", message=(
                f"MCP over the legacy HTTP+SSE transport ({LEGACY_SSE})")))
        else:
            listed = await self._list_streamable(url, headers, timeout, result)
        for raw in listed:
            try:
                d = definition_of(raw)
            except ValueError as exc:
                result.findings.append(Finding(check="schema_valid", severity="error", tool=str(raw.get("name"))[:256],
                                               message=f"tool definition rejected: {str(exc)[:300]}"))
                continue
            result.tools.append(d)
            result.findings.extend(check_schemas(d) + scan(d))
        result.findings.append(Finding(check="lists_tools", severity="info", message=f"{len(result.tools)} tools"))

    async def _list_streamable(self, url: str, headers: dict[str, str], timeout: float, result: ProbeResult
                               ) -> list[dict[str, Any]]:
        client = McpClient(self._http, url, headers, timeout)
        try:
            init = await client.initialize()
            result.server_info = {"protocolVersion": init.get("protocolVersion"),
                                  **{k: v for k, v in (init.get("serverInfo") or {}).items()
                                     if k in ("name", "version", "title")}}
            result.findings.append(Finding(check="speaks_mcp", severity="info",
                                           message=f"MCP {init.get('protocolVersion')}"))
            return await client.list_tools()
        finally:
            await client.close()

    async def list_targets(self, server: McpServer) -> list[tuple[str, list[PinnedDefinition] | BaseException]]:
        """For the pinning timer: what each target (primary first, then every replica) lists now, or why it
        could not be listed. Raises only when no target can be asked at all (e.g. the outbound credential)."""
        headers = await self._auth.headers(server.spec.auth)  # type: ignore[arg-type]
        timeout, legacy = server.spec.timeouts.call_seconds, server.spec.transport == "sse"
        targets = server.targets()
        found = await asyncio.gather(*(self._listing(str(t.url), headers, timeout, legacy) for t in targets))
        return [(t.id, listed) for t, listed in zip(targets, found)]


__all__ = ["AuthSpec", "McpClient", "Prober", "ProbeFailed", "ProbeResult", "check_schemas", "replica_drift"]
