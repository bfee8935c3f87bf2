"""Backend credentials: api keys from settings, keyless Entra tokens cached and refreshed before expiry."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from shared.config import Settings
from shared.domain.models import Backend
from shared.errors import DependencyUnavailable
from shared.upstreams.credentials import TokenCache, UpstreamCredentials
from shared.upstreams.openai_http import upstream_url


class FakeCredential:
    def __init__(self, clock) -> None:
        self.calls, self.clock, self.fail = 0, clock, False

    async def get_token(self, scope: str):
        self.calls += 1
        if self.fail:
            raise RuntimeError("no identity here")
        return SimpleNamespace(token=f"tok-{self.calls}", expires_on=self.clock() + 3600)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def aoai(**kw) -> Backend:
    return Backend(id="b", kind="azure_openai", endpoint="https://x.openai.azure.com", deployment="gpt4o", **kw)


async def test_keyless_token_is_cached_and_refreshed_before_expiry():
    clock = Clock()
    cred = FakeCredential(clock)
    creds = UpstreamCredentials(Settings(), TokenCache(lambda: cred, clock=clock))
    assert (await creds.headers(aoai()))["authorization"] == "Bearer tok-1"
    clock.t += 3000  # 10 minutes before expiry: still fine
    assert (await creds.headers(aoai()))["authorization"] == "Bearer tok-1" and cred.calls == 1
    clock.t += 400  # inside the 5-minute margin: refreshed
    assert (await creds.headers(aoai()))["authorization"] == "Bearer tok-2"
    cred.fail = True
    clock.t += 3400  # refresh fails but the token is still valid: keep using it
    assert (await creds.headers(aoai()))["authorization"] == "Bearer tok-2"
    clock.t += 400  # expired and no new token: a clear 503
    with pytest.raises(DependencyUnavailable) as err:
        await creds.headers(aoai())
    assert err.value.code == "upstream_credential_unavailable"


async def test_api_key_from_setting(monkeypatch):
    creds = UpstreamCredentials(Settings(), TokenCache(lambda: None))
    monkeypatch.setenv("MY_AOAI_KEY", "k1")
    assert await creds.headers(aoai(api_key_setting="MY_AOAI_KEY")) == {"api-key": "k1"}
    openai_backend = Backend(id="o", kind="openai", endpoint="https://api.openai.com/v1", deployment="gpt-4o",
                             api_key_setting="MY_AOAI_KEY")
    assert await creds.headers(openai_backend) == {"authorization": "Bearer k1"}
    monkeypatch.setenv("MY_AOAI_KEY", "@Microsoft.KeyVault(SecretUri=https://kv/secrets/x)")
    with pytest.raises(DependencyUnavailable):
        await creds.headers(aoai(api_key_setting="MY_AOAI_KEY"))


def test_upstream_urls():
    assert upstream_url(aoai(api_version="2025-01-01"), "chat") == \
        "https://x.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2025-01-01"
    compat = Backend(id="c", kind="openai_compatible", endpoint="http://127.0.0.1:9/v1/", deployment="m")
    assert upstream_url(compat, "embeddings") == "http://127.0.0.1:9/v1/embeddings"


async def test_egress_policy():
    from shared.egress import EgressPolicy
    from shared.errors import ValidationFailed

    strict = EgressPolicy()
    for url in ("http://127.0.0.1/v1", "http://10.0.0.5/v1", "http://169.254.169.254/", "http://[::1]/",
                "ftp://example.com", "http://192.168.1.1", "http://localhost:8080/v1"):
        with pytest.raises(ValidationFailed):
            await strict.check(url, "endpoint")
    await strict.check("https://8.8.8.8/v1", "endpoint")
    await EgressPolicy(allow_loopback=True).check("http://127.0.0.1:9/v1", "endpoint")
    with pytest.raises(ValidationFailed):
        await EgressPolicy(allow_loopback=True).check("http://169.254.169.254/", "endpoint")
    await EgressPolicy(allowed_hosts=frozenset({"internal.corp"})).check("https://internal.corp/v1", "endpoint")
