"""Virtual keys in process: UTC instants, the self-verifying secret format (refused with zero store calls) and the
key cache's negative entries, on the in-memory registry."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from shared.auth.key_format import KeyMac, shape
from shared.auth.keys import KeyService
from shared.cache import FailStaticCache
from shared.domain.base import Pillar
from shared.domain.keys import KeyCreate, KeyOut, VirtualKey
from shared.errors import DependencyUnavailable, Unauthenticated
from shared.storage.memory import MemoryDocumentStore
from shared.storage.repository import Repository

PEPPER = b"unit-pepper"


class CountingStore(MemoryDocumentStore):
    """The real in-memory store, counting every call that would be a Cosmos round trip."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        super()._check()


def service(store: MemoryDocumentStore, **kw: Any) -> KeyService:
    return KeyService(Repository(store, VirtualKey), pepper=PEPPER, ttl=5, max_stale=60, **kw)


# ---- item 5: instants without a time zone


@pytest.mark.parametrize("given,stored", [
    ("2031-01-01T00:00:00", "2031-01-01T00:00:00+00:00"),  # naive: read as UTC
    ("2031-01-01", "2031-01-01T00:00:00+00:00"),  # a bare date: 00:00 UTC that day
    ("2031-01-01T02:00:00+02:00", "2031-01-01T00:00:00+00:00"),  # an offset: normalised to UTC
])
def test_expires_at_is_utc_whatever_the_client_sends(given: str, stored: str):
    spec = KeyCreate.model_validate({"name": "k", "expires_at": given})
    assert spec.expires_at is not None and spec.expires_at.isoformat() == stored


@pytest.mark.parametrize("given", ["2001-01-01", "2001-01-01T00:00:00Z", "9999-12-31T23:59:59-05:00"])
def test_expires_at_in_the_past_or_out_of_range_is_refused(given: str):
    with pytest.raises(ValidationError) as err:
        KeyCreate.model_validate({"name": "k", "expires_at": given})
    assert [e["loc"] for e in err.value.errors()] == [("expires_at",)]


async def test_a_stored_naive_instant_still_loads_as_utc():
    # Documents half-written before the fix carry naive instants; reading them must not take the project down.
    store = MemoryDocumentStore()
    key = VirtualKey(id="k1", project_id="p", name="k", prefix="sk-gw-abc", hash="h")
    doc = key.to_document()
    doc["expires_at"] = "2001-01-01T00:00:00"
    await store.create(doc)
    page = await Repository(store, VirtualKey).list("p")
    out = KeyOut.of(page.items[0])
    assert out.state == "expired" and out.expires_at == "2001-01-01T00:00:00+00:00"
    assert out.secret_format == "legacy"  # no field: issued before MAC'd secrets


# ---- item 7: self-verifying secrets


async def test_issued_secrets_are_v1_and_authenticate_with_one_lookup():
    store = CountingStore()
    keys = service(store)
    key, secret = await keys.issue("p", KeyCreate(name="k"))
    assert shape(secret) == "v1" and len(secret) == 58 and key.secret_format == "v1"
    before = store.calls
    principal = await keys.authenticate(secret)
    assert principal.key_id == key.id and store.calls == before + 1
    await keys.authenticate(secret)
    assert store.calls == before + 1  # cached


async def test_the_mac_is_checked_until_the_secret_is_remembered_then_skipped(monkeypatch):
    keys = service(CountingStore())
    _, secret = await keys.issue("p", KeyCreate(name="k"))
    checked: list[str] = []
    real = KeyMac.verifies
    monkeypatch.setattr(KeyMac, "verifies", lambda self, s: checked.append(s) or real(self, s))
    await keys.authenticate(secret)
    assert checked == [secret]  # first use: MAC before the registry lookup
    await keys.authenticate(secret)
    await keys.authenticate(secret)
    assert checked == [secret]  # an active key's secret is remembered with its digest: no MAC, no HMAC
    forged = forged_v1()
    with pytest.raises(Unauthenticated):
        await keys.authenticate(forged)
    assert checked == [secret, forged]  # a secret not remembered is always MAC-checked


async def test_a_remembered_secret_still_meets_rotation_and_revocation():
    store = CountingStore()
    keys = service(store)
    key, secret = await keys.issue("p", KeyCreate(name="k"))
    await keys.authenticate(secret)
    assert keys._known == {secret: key.hash}  # the digest is remembered, never the key's validity
    _, new_secret = await keys.rotate("p", key.id, overlap_seconds=0)
    with pytest.raises(Unauthenticated):
        await keys.authenticate(secret)  # the rotated-out secret: its digest no longer finds the key
    assert (await keys.authenticate(new_secret)).key_id == key.id
    keys.forget(await Repository(store, VirtualKey).get("p", key.id))
    assert new_secret not in keys._known and secret in keys._known  # forget drops the key's current digests
    keys._known.clear()
    from shared.auth import keys as keys_module
    for _ in range(keys_module._MAX_KNOWN + 5):  # bounded: a full table starts over
        keys._known[secrets.token_hex(4)] = "x"
        if len(keys._known) >= keys_module._MAX_KNOWN:
            break
    await keys.authenticate(new_secret)
    assert keys._known == {new_secret: keys.hash(new_secret)}


def wrong_last_char(secret: str) -> str:
    return secret[:-1] + ("0" if secret[-1] != "0" else "1")


def forged_v1() -> str:
    return KeyMac(b"another deployment's pepper").mint()


@pytest.mark.parametrize("make", [
    lambda: "sk-gw-" + secrets.token_hex(8),  # malformed: wrong length
    lambda: "sk-gw-" + "!" * 52,  # malformed: wrong alphabet
    forged_v1,  # well-formed, MAC from another key
    lambda: wrong_last_char(KeyMac(PEPPER).mint()),  # a genuine secret with its MAC altered
])
async def test_malformed_and_forged_keys_cost_no_store_call_and_no_cache_entry(make):
    store = CountingStore()
    keys = service(store)
    for _ in range(200):
        with pytest.raises(Unauthenticated) as err:
            await keys.authenticate(make())
        assert err.value.code == "invalid_api_key"
    assert store.calls == 0 and len(keys._cache) == 0
    store.available = False  # even during a Cosmos outage: a definite 401, never a 503
    with pytest.raises(Unauthenticated):
        await keys.authenticate(forged_v1())


async def test_a_tampered_secret_fails_its_mac():
    store = CountingStore()
    keys = service(store)
    _, secret = await keys.issue("p", KeyCreate(name="k"))
    flipped = secret[:10] + ("A" if secret[10] != "A" else "B") + secret[11:]
    before = store.calls
    with pytest.raises(Unauthenticated):
        await keys.authenticate(flipped)
    assert store.calls == before


async def test_without_the_pepper_well_formed_keys_get_503_malformed_ones_401():
    keys = KeyService(Repository(CountingStore(), VirtualKey), pepper=None, ttl=5, max_stale=60)
    with pytest.raises(DependencyUnavailable):
        await keys.authenticate(forged_v1())
    with pytest.raises(Unauthenticated):
        await keys.authenticate("sk-gw-short")


async def legacy_key(store: MemoryDocumentStore) -> str:
    """A key as issued before v1: token_urlsafe secret, document without `secret_format`."""
    secret = "sk-gw-" + secrets.token_urlsafe(32)
    digest = hmac.new(PEPPER, secret.encode(), hashlib.sha256).hexdigest()
    doc = VirtualKey(id="old", project_id="p", name="old", prefix=secret[:12], hash=digest,
                     lookup=[digest]).to_document()
    doc.pop("secret_format")
    await store.create(doc)
    return secret


async def test_legacy_keys_still_work_until_switched_off_and_rotation_migrates_them():
    store = CountingStore()
    secret = await legacy_key(store)
    assert shape(secret) == "legacy"
    assert (await service(store).authenticate(secret)).key_id == "old"

    strict = service(store, accept_legacy=False)
    before = store.calls
    with pytest.raises(Unauthenticated) as err:
        await strict.authenticate(secret)
    assert err.value.details == {"reason": "legacy_key_format"} and store.calls == before

    key, new_secret = await service(store).rotate("p", "old", overlap_seconds=0)
    assert key.secret_format == "v1" and shape(new_secret) == "v1"
    assert (await strict.authenticate(new_secret)).key_id == "old"


# ---- item 7: negative cache entries never evict positive ones


async def test_a_flood_of_unknown_keys_never_evicts_a_known_one():
    loads: list[str] = []
    up = {"cosmos": True}

    async def load(key: str) -> str | None:
        loads.append(key)
        if not up["cosmos"]:
            raise DependencyUnavailable("down")
        return f"value-{key}" if key.startswith("known") else None

    now = [0.0]
    cache = FailStaticCache(load, ttl=5, max_stale=300, clock=lambda: now[0], max_entries=10,
                            max_negative_entries=50)
    for i in range(10):
        await cache.get(f"known-{i}")
    for i in range(5_000):  # 100x the negative bound
        assert await cache.get(f"unknown-{i}") is None
    assert len(cache) == 60  # both tables bounded
    now[0] += 10  # past the TTL, and Cosmos goes down: fail-static must still know every known key
    up["cosmos"] = False
    for i in range(10):
        assert await cache.get(f"known-{i}") == f"value-known-{i}"


async def test_positive_overflow_evicts_the_oldest_positive_only():
    async def load(key: str) -> str:
        return key

    cache = FailStaticCache(load, ttl=5, max_stale=60, max_entries=3)
    for k in "abcd":
        await cache.get(k)
    assert sorted(cache._entries) == ["b", "c", "d"]


def test_an_expired_instant_compares_with_now():
    key = VirtualKey(id="k", project_id="p", name="k", prefix="x", hash="h",
                     expires_at=datetime(2001, 1, 1))  # naive on assignment too
    assert key.expires_at == datetime(2001, 1, 1, tzinfo=timezone.utc) and key.state() == "expired"
    assert key.state(datetime.now(timezone.utc) - timedelta(days=365 * 40)) == "active"


async def test_settings_reach_the_key_service_and_the_request_log(monkeypatch):
    from shared.config import Settings
    from shared.services import Services

    monkeypatch.setenv("GATEWAY_KEY_HASH_SECRET", PEPPER.decode())
    monkeypatch.setenv("ACCEPT_LEGACY_VIRTUAL_KEYS", "false")
    monkeypatch.setenv("USAGE_LOG_BUFFER_RECORDS", "500")
    # a closed port: readiness fails fast and touches nobody's emulator
    monkeypatch.setenv("AzureWebJobsStorage", "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                       "AccountKey=" + "A" * 88 + ";TableEndpoint=http://127.0.0.1:9/devstoreaccount1")
    monkeypatch.setenv("DEPENDENCY_TIMEOUT_SECONDS", "1")
    store = CountingStore()
    services = Services(Settings(), store=store)
    secret = await legacy_key(store)
    with pytest.raises(Unauthenticated):
        await services.key_service.authenticate(secret)
    assert services.usage_log.stats()["capacity"] == 500
    checks = await services.readiness()
    assert checks["usage_log"]["capacity"] == 500 and checks["usage_log"]["status"] == "ok"
    assert checks["storage"]["status"] == "unavailable"
    assert checks["quotas"] == {"status": "ok", "deferred_charges": 0, "deferred_returns": 0, "lease_failures": 0}
    await services.close()


# ---- an accepted key is remembered per cached key object, never past the instant it may stop being valid


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = datetime.now(timezone.utc)
        from shared.auth import keys as keys_module
        monkeypatch.setattr(keys_module, "utcnow", lambda: self.now)


async def test_a_remembered_key_still_expires_on_time_while_its_cached_copy_is_unchanged(monkeypatch):
    clock = Clock(monkeypatch)
    keys = service(CountingStore())
    _, secret = await keys.issue("p", KeyCreate(name="k", expires_at=clock.now + timedelta(hours=1)))
    first, second = await keys.authenticate(secret), await keys.authenticate(secret)
    assert first == second and first is not second  # one principal per call: the guard sets `project` on it
    first.project = object()  # type: ignore[assignment]
    assert (await keys.authenticate(secret)).project is None
    clock.now += timedelta(minutes=59, seconds=59)
    assert (await keys.authenticate(secret)).key_id == first.key_id
    clock.now += timedelta(seconds=1)  # the key cache still holds the same object (TTL is monotonic, not this clock)
    with pytest.raises(Unauthenticated) as err:
        await keys.authenticate(secret)
    assert err.value.code == "key_expired"


async def test_a_rotated_out_secret_stops_at_the_end_of_its_overlap_even_when_remembered(monkeypatch):
    clock = Clock(monkeypatch)
    store = CountingStore()
    keys = service(store)
    key, old = await keys.issue("p", KeyCreate(name="k"))
    await keys.authenticate(old)
    _, new = await keys.rotate("p", key.id, overlap_seconds=60)
    assert (await keys.authenticate(old)).key_id == key.id  # inside the overlap: accepted, then remembered
    assert (await keys.authenticate(old)).key_id == key.id
    assert (await keys.authenticate(new)).key_id == key.id
    clock.now += timedelta(seconds=61)
    with pytest.raises(Unauthenticated):
        await keys.authenticate(old)
    assert (await keys.authenticate(new)).key_id == key.id  # the current secret has no such end


async def test_a_changed_key_is_checked_again_not_served_from_memory():
    store = CountingStore()
    keys = service(store)
    key, secret = await keys.issue("p", KeyCreate(name="k", tools=["a__x"]))
    assert (await keys.authenticate(secret)).scopes[Pillar.tools] == frozenset({"a__x"})

    def narrow(k: VirtualKey) -> None:
        k.tools = ["a__y"]

    await Repository(store, VirtualKey).update("p", key.id, narrow)
    keys._cache.invalidate(key.hash)  # what the admin API does on this instance (else: the cache TTL)
    assert (await keys.authenticate(secret)).scopes[Pillar.tools] == frozenset({"a__y"})
    revoked = await Repository(store, VirtualKey).update(
        "p", key.id, lambda k: setattr(k, "revoked_at", datetime.now(timezone.utc)))
    keys.forget(revoked)
    with pytest.raises(Unauthenticated) as err:
        await keys.authenticate(secret)
    assert err.value.code == "key_revoked"
