"""A local AWS front for the Bedrock agents tests: moto (server mode) for what moto implements (bedrock-agent
CreateAgent/GetAgent/ListAgents…) and, written from AWS's API reference, what it lacks:

- bedrock-agent ListAgentAliases (paged), GetAgentAlias, UpdateAgentAlias (aliasInvocationState);
- bedrock-agent-runtime InvokeAgent, answered as an `application/vnd.amazon.eventstream` (prelude with total and
  header lengths + CRC32, string headers, payload, message CRC32) with chunk / trace / returnControl /
  exception events.

Everything else is forwarded to moto unchanged.
"""
from __future__ import annotations

import base64
import json
import re
import struct
import threading
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ALIASES = re.compile(r"^/agents/([^/]+)/agentaliases/?$")
_ALIAS = re.compile(r"^/agents/([^/]+)/agentaliases/([^/]+)/?$")
_INVOKE = re.compile(r"^/agents/([^/]+)/agentAliases/([^/]+)/sessions/([^/]+)/text$")


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack("!B", len(n)) + n + b"\x07" + struct.pack("!H", len(v)) + v  # 7: string


def event_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: [total len][headers len][prelude CRC][headers][payload][message CRC]."""
    hdrs = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(hdrs) + len(payload) + 4
    prelude = struct.pack("!II", total, len(hdrs))
    prelude += struct.pack("!I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + hdrs + payload
    return body + struct.pack("!I", zlib.crc32(body) & 0xFFFFFFFF)


def event(kind: str, body: dict[str, Any]) -> bytes:
    return event_frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                       json.dumps(body).encode())


def exception(kind: str, message: str) -> bytes:
    return event_frame({":exception-type": kind, ":content-type": "application/json",
                        ":message-type": "exception"}, json.dumps({"message": message}).encode())


@dataclass
class FakeBedrock:
    moto_url: str
    aliases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # agent id → alias records
    invocations: list[dict[str, Any]] = field(default_factory=list)
    fail_aliases: bool = False
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add_alias(self, agent_id: str, alias_id: str, name: str, version: str = "1",
                  status: str = "PREPARED") -> None:
        now = datetime.now(timezone.utc).isoformat()
        self.aliases.setdefault(agent_id, []).append({
            "agentAliasId": alias_id, "agentAliasName": name, "agentAliasStatus": status,
            "routingConfiguration": [{"agentVersion": version}], "createdAt": now, "updatedAt": now,
            "aliasInvocationState": "ACCEPT_INVOCATIONS", "agentId": agent_id,
            "agentAliasArn": f"arn:aws:bedrock:us-east-1:123456789012:agent-alias/{agent_id}/{alias_id}"})

    def alias(self, agent_id: str, alias_id: str) -> dict[str, Any] | None:
        return next((a for a in self.aliases.get(agent_id, []) if a["agentAliasId"] == alias_id), None)

    def start(self) -> "FakeBedrock":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("content-length") or 0))

            def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, kind: str, message: str) -> None:
                self._json(status, {"message": message}, {"x-amzn-ErrorType": kind})

            def handle_any(self) -> None:
                path = self.path.split("?", 1)[0]
                body = self._body()
                if m := _INVOKE.match(path):
                    return fake._invoke(self, *m.groups(), json.loads(body or b"{}"))
                if (m := _ALIASES.match(path)) and self.command == "POST":
                    if fake.fail_aliases:
                        return self._error(500, "InternalServerException", "aliases are down")
                    req = json.loads(body or b"{}")
                    items = fake.aliases.get(m.group(1), [])
                    start = int(req.get("nextToken") or 0)
                    size = int(req.get("maxResults") or 100)
                    page = items[start:start + size]
                    more = start + size < len(items)
                    return self._json(200, {"agentAliasSummaries": page,
                                            **({"nextToken": str(start + size)} if more else {})})
                if m := _ALIAS.match(path):
                    alias = fake.alias(*m.groups())
                    if alias is None:
                        return self._error(404, "ResourceNotFoundException", "no such alias")
                    if self.command == "PUT":
                        req = json.loads(body or b"{}")
                        alias["aliasInvocationState"] = req.get("aliasInvocationState", "ACCEPT_INVOCATIONS")
                        alias["agentAliasName"] = req["agentAliasName"]
                        return self._json(202, {"agentAlias": alias})
                    return self._json(200, {"agentAlias": alias})
                fake._forward(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _forward(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "content-length")}
        req = urllib.request.Request(self.moto_url + h.path, data=body if body else None, method=h.command,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                status, data, rh = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as err:
            status, data, rh = err.code, err.read(), err.headers
        h.send_response(status)
        for k, v in rh.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                h.send_header(k, v)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _invoke(self, h: Any, agent_id: str, alias_id: str, session: str, req: dict[str, Any]) -> None:
        self.invocations.append({"agent": agent_id, "alias": alias_id, "session": session, **req})
        alias = self.alias(agent_id, alias_id)
        if alias is None:
            return h._error(404, "ResourceNotFoundException", "no such alias")
        if alias["aliasInvocationState"] == "REJECT_INVOCATIONS":
            return h._error(403, "AccessDeniedException", "the alias rejects invocations")
        text = str(req.get("inputText", ""))
        results = (req.get("sessionState") or {}).get("returnControlInvocationResults")
        frames = []
        if results is not None:
            frames.append(event("chunk", {"bytes": base64.b64encode(b"It is sunny in Paris.").decode()}))
        elif "weather" in text:
            frames.append(event("returnControl", {"invocationId": "inv-1", "invocationInputs": [
                {"functionInvocationInput": {"actionGroup": "weather", "function": "get_weather",
                                             "parameters": [{"name": "city", "type": "string", "value": "Paris"}]}}]}))
        elif "boom" in text:
            frames.append(event("chunk", {"bytes": base64.b64encode(b"partial").decode()}))
            frames.append(exception("throttlingException", "slow down"))
        else:
            frames.append(event("trace", {"agentId": agent_id, "sessionId": session, "trace": {"orchestrationTrace": {
                "modelInvocationOutput": {"metadata": {"usage": {"inputTokens": 11, "outputTokens": 7}}}}}}))
            for piece in (f"You said: {text[:40]}", " (from Bedrock)"):
                frames.append(event("chunk", {"bytes": base64.b64encode(piece.encode()).decode()}))
        payload = b"".join(frames)
        h.send_response(200)
        h.send_header("content-type", "application/vnd.amazon.eventstream")
        h.send_header("x-amzn-bedrock-agent-content-type", "application/json")
        h.send_header("x-amz-bedrock-agent-session-id", session)
        h.send_header("content-length", str(len(payload)))
        h.end_headers()
        h.wfile.write(payload)
