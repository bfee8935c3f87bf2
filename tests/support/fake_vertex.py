"""A local Vertex AI Agent Engine, written from Google's REST reference: `reasoningEngines.list` (paged by
pageSize/pageToken), `:query`, `:streamQuery` (one JSON object per line), bearer-token auth with 401/403, injected
429/5xx — plus an OAuth2 token endpoint (the JWT-bearer grant a service-account key's `token_uri` points at)."""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ya29.fake-vertex-token"
_LIST = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+)/reasoningEngines$")
_CALL = re.compile(r"^/v1/(projects/[^/]+/locations/[^/]+/reasoningEngines/[^/:]+):(query|streamQuery)$")


def engine(parent: str, id: str, name: str, *, framework: str = "google-adk", a2a: bool = False,
           updated: str = "2026-11-01T10:00:00Z") -> dict[str, Any]:
    methods = [{"name": "query", "api_mode": ""}, {"name": "stream_query", "api_mode": "stream"}]
    if a2a:
        methods.append({"name": "on_message_send", "api_mode": "a2a_extension"})
    return {"name": f"{parent}/reasoningEngines/{id}", "displayName": name, "description": f"{name} on Vertex",
            "createTime": "2026-10-01T10:00:00Z", "updateTime": updated, "etag": f"etag-{id}-{updated}",
            "labels": {"team": "search"}, "spec": {"agentFramework": framework, "classMethods": methods}}


@dataclass
class FakeVertex:
    engines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # parent → engines
    fail_next: list[int] = field(default_factory=list)  # statuses to answer the next list calls with
    token_requests: int = 0
    queries: list[dict[str, Any]] = field(default_factory=list)
    deny_token: bool = False
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeVertex":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, state: str, message: str) -> None:
                self._json(status, {"error": {"code": status, "status": state, "message": message}})

            def _authorized(self) -> bool:
                auth = self.headers.get("authorization", "")
                if not auth:
                    self._error(401, "UNAUTHENTICATED", "Request is missing required authentication credential.")
                    return False
                if auth != f"Bearer {TOKEN}":
                    self._error(403, "PERMISSION_DENIED", "Permission 'aiplatform.reasoningEngines.list' denied.")
                    return False
                return True

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if parts.path == "/token":
                    fake.token_requests += 1
                    form = parse_qs(body.decode())
                    if fake.deny_token or form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                        return self._json(400, {"error": "invalid_grant", "error_description": "denied"})
                    return self._json(200, {"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"})
                m = _CALL.match(parts.path)
                if m is None:
                    return self._error(404, "NOT_FOUND", "no such method")
                if not self._authorized():
                    return
                req = json.loads(body or b"{}")
                fake.queries.append({"resource": m.group(1), "verb": m.group(2), **req})
                text = (req.get("input") or {}).get("input") or (req.get("input") or {}).get("message") or ""
                if m.group(2) == "query":
                    return self._json(200, {"output": {"output": f"Vertex heard: {text}"}})
                lines = [{"content": {"parts": [{"text": f"Vertex streams: {text}"}], "role": "model"}},
                         {"content": {"parts": [{"text": " (done)"}], "role": "model"}}]
                data = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                m = _LIST.match(parts.path)
                if m is None:
                    return self._error(404, "NOT_FOUND", "no such collection")
                if fake.fail_next:
                    status = fake.fail_next.pop(0)
                    return self._error(status, "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE", "try later")
                if not self._authorized():
                    return
                q = parse_qs(parts.query)
                size = min(int(q.get("pageSize", ["50"])[0]), 1000)
                start = int(q.get("pageToken", ["0"])[0] or 0)
                items = fake.engines.get(m.group(1), [])
                page = items[start:start + size]
                more = start + size < len(items)
                self._json(200, {"reasoningEngines": page, **({"nextPageToken": str(start + size)} if more else {})})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
