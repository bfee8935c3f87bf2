"""Backend credentials: api keys from settings, keyless Entra tokens cached and refreshed before expiry."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.pillars.models.domain import Backend
from shared.errors import DependencyUnavailable
from shared.pillars.models.credentials import TokenCache, UpstreamCredentials
from shared.pillars.models.openai_http import upstream_url


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
    monkeypatch.setenv("UPSTREAM_SECRET_AOAI", "k1")
    assert await creds.headers(aoai(api_key_setting="UPSTREAM_SECRET_AOAI")) == {"api-key": "k1"}
    openai_backend = Backend(id="o", kind="openai", endpoint="https://api.openai.com/v1", deployment="gpt-4o",
                             api_key_setting="UPSTREAM_SECRET_AOAI")
    assert await creds.headers(openai_backend) == {"authorization": "Bearer k1"}
    monkeypatch.setenv("UPSTREAM_SECRET_AOAI", "@Microsoft.KeyVault(SecretUri=https://kv/secrets/x)")
    with pytest.raises(DependencyUnavailable):
        await creds.headers(aoai(api_key_setting="UPSTREAM_SECRET_AOAI"))


GATEWAY_OWN = ["GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET", "COSMOS_CONNECTION_STRING", "AzureWebJobsStorage",
               "AzureWebJobsStorage__accountName", "APPLICATIONINSIGHTS_CONNECTION_STRING", "OPENAI_API_KEY",
               "upstream_secret_lower", "UPSTREAM_SECRET_", "UPSTREAM_SECRET_A-B", "UPSTREAM_SECRETX",
               "UPSTREAM_SECRET_A\n", " UPSTREAM_SECRET_A", "UPSTREAM_SECRET_" + "A" * 101]


@pytest.mark.parametrize("name", GATEWAY_OWN)
def test_contract_refuses_settings_outside_the_upstream_secret_prefix(name):
    with pytest.raises(ValidationError) as err:
        aoai(api_key_setting=name)
    assert [e["loc"] for e in err.value.errors()] == [("api_key_setting",)]


@pytest.mark.parametrize("name", ["GATEWAY_ADMIN_KEY", "GATEWAY_KEY_HASH_SECRET", "COSMOS_CONNECTION_STRING",
                                  "AzureWebJobsStorage", "APPLICATIONINSIGHTS_CONNECTION_STRING"])
async def test_a_stored_backend_naming_a_gateway_secret_is_refused_at_use_time(monkeypatch, name):
    monkeypatch.setenv(name, "the-gateways-own-secret")
    # as a document written before the contract refused such names would be, if it were ever loaded
    legacy = Backend.model_construct(id="b", kind="openai", endpoint="https://api.openai.com/v1",
                                     deployment="gpt-4o", api_key_setting=name)
    creds = UpstreamCredentials(Settings(), TokenCache(lambda: None))
    with pytest.raises(DependencyUnavailable) as err:
        await creds.headers(legacy)
    assert err.value.code == "upstream_credential_refused"
    assert "the-gateways-own-secret" not in str(err.value.to_body())
    with pytest.raises(ValueError):
        Settings().upstream_secret(name)  # the one reader of the environment refuses it too


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
