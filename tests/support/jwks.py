"""A local stand-in for Entra ID's signing-key endpoint: real RSA keys, a real JWKS over HTTP, tokens we sign."""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


class JwksServer:
    def __init__(self) -> None:
        self.tenant = str(uuid.uuid4())
        self.audience = "api://ai-gateway-test"
        self.issuer = f"https://login.microsoftonline.com/{self.tenant}/v2.0"
        self.kid = "test-key-1"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests += 1
                jwk = json.loads(RSAAlgorithm.to_jwk(outer._key.public_key()))
                body = json.dumps({"keys": [{**jwk, "kid": outer.kid, "use": "sig", "alg": "RS256"}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/discovery/v2.0/keys"

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()

    def token(self, *, roles: list[str] | None = None, audience: str | None = None, issuer: str | None = None,
              expires_in: int = 600, kid: str | None = None, key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": issuer or self.issuer, "aud": audience or self.audience, "iat": now, "nbf": now,
                   "exp": now + expires_in, "oid": str(uuid.uuid4()), "preferred_username": "dev@example.com",
                   "roles": roles if roles is not None else ["Gateway.Admin"], **claims}
        return jwt.encode(payload, key or self._key, algorithm="RS256", headers={"kid": kid or self.kid})
