"""Control-plane auth (admin key, Entra tokens validated against a local JWKS) and the data/control split."""
from __future__ import annotations

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import ADMIN_KEY, new_key, new_project
from tests.support.jwks import JwksServer


def call(gateway, path: str, token: str | None, method: str = "GET", **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, gateway.url + path, headers=headers, timeout=10, **kw)


def test_admin_key_and_admin_token_open_the_control_plane(gateway, jwks: JwksServer):
    assert call(gateway, "/manage/projects", ADMIN_KEY).status_code == 200
    assert call(gateway, "/manage/projects", jwks.token(roles=["Gateway.Admin"])).status_code == 200
    me = call(gateway, "/portal/me", jwks.token(roles=["Gateway.Admin"])).json()
    assert me["roles"] == ["admin"] and me["via"] == "entra"


@pytest.mark.parametrize("case,code", [
    ("missing", "missing_credentials"),
    ("garbage", "invalid_credentials"),
    ("wrong-admin-key", "invalid_credentials"),
    ("expired", "token_expired"),
    ("wrong-audience", "invalid_audience"),
    ("wrong-issuer", "invalid_issuer"),
    ("forged", "invalid_token"),
    ("unknown-kid", "invalid_token"),
    ("broken-jwt", "invalid_token"),
])
def test_unauthenticated_is_401(gateway, jwks: JwksServer, case: str, code: str):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "missing": None,
        "garbage": "hello",
        "wrong-admin-key": ADMIN_KEY + "x",
        "expired": jwks.token(expires_in=-3600),
        "wrong-audience": jwks.token(audience="api://someone-else"),
        "wrong-issuer": jwks.token(issuer="https://login.microsoftonline.com/other-tenant/v2.0"),
        "forged": jwks.token(key=other_key),
        "unknown-kid": jwks.token(kid="rotated-away", key=other_key),
        "broken-jwt": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    }[case]
    r = call(gateway, "/manage/projects", token)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == code and r.headers["www-authenticate"].startswith("Bearer")


def test_roles(gateway, jwks: JwksServer):
    dev = jwks.token(roles=["Gateway.Developer"])
    r = call(gateway, "/manage/projects", dev)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
    assert call(gateway, "/manage/projects", dev, "POST", json={"id": "dev-made", "name": "x"}).status_code == 403
    assert call(gateway, "/manage/projects/dev-made", ADMIN_KEY).status_code == 404  # nothing written
    assert call(gateway, "/portal/me", dev).json()["roles"] == ["developer"]
    assert call(gateway, "/portal/projects", dev).status_code == 200
    no_role = call(gateway, "/portal/me", jwks.token(roles=["Something.Else"]))
    assert no_role.status_code == 403 and no_role.json()["error"]["code"] == "missing_role"


def test_jwks_is_cached(gateway, jwks: JwksServer):
    token = jwks.token()
    call(gateway, "/manage/projects", token)
    before = jwks.requests
    for _ in range(5):
        assert call(gateway, "/manage/projects", token).status_code == 200
    assert jwks.requests == before


def test_credentials_never_cross_planes(gateway, admin: httpx.Client, jwks: JwksServer):
    pid = new_project(admin)
    secret = new_key(admin, pid)
    # control-plane credentials on the data plane
    for token in (ADMIN_KEY, jwks.token(roles=["Gateway.Admin"])):
        r = call(gateway, "/v1/models", token)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(gateway.url + "/v1/models", headers={"api-key": ADMIN_KEY}).status_code == 401
    # a virtual key on the control plane
    r = call(gateway, "/manage/projects", secret)
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    assert call(gateway, "/portal/me", secret).status_code == 401
    assert call(gateway, "/v1/models", secret).status_code == 200
    assert call(gateway, "/v1/models", None).json()["error"]["code"] == "missing_credentials"
