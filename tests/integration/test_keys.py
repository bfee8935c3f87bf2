"""Virtual keys through the running gateway: instants without a time zone, past expiry, the key format."""
from __future__ import annotations

import httpx

from shared.auth.key_format import shape
from tests.conftest import new_project


def test_expires_at_without_time_zone_is_utc_and_the_project_stays_listable(admin: httpx.Client):
    pid = new_project(admin)
    naive = admin.post(f"/manage/projects/{pid}/keys", json={"name": "naive", "expires_at": "2031-01-01T00:00:00"})
    assert naive.status_code == 201, naive.text
    assert naive.json()["expires_at"] == "2031-01-01T00:00:00+00:00" and naive.json()["state"] == "active"
    date = admin.post(f"/manage/projects/{pid}/keys", json={"name": "date", "expires_at": "2031-06-01"})
    assert date.status_code == 201 and date.json()["expires_at"] == "2031-06-01T00:00:00+00:00"
    listed = admin.get(f"/manage/projects/{pid}/keys")
    assert listed.status_code == 200, listed.text
    assert sorted(k["name"] for k in listed.json()["items"]) == ["date", "naive"]
    # the secret works on the data plane
    r = httpx.get(admin.base_url.join("/v1/models"), headers={"Authorization": f"Bearer {naive.json()['secret']}"})
    assert r.status_code == 200, r.text


def test_expires_at_in_the_past_is_422_naming_the_field_and_writes_nothing(admin: httpx.Client):
    pid = new_project(admin)
    for past in ("2001-01-01T00:00:00", "2001-01-01", "2001-01-01T00:00:00Z"):
        r = admin.post(f"/manage/projects/{pid}/keys", json={"name": "old", "expires_at": past})
        assert r.status_code == 422, r.text
        assert [d["field"] for d in r.json()["error"]["details"]] == ["expires_at"]
    listed = admin.get(f"/manage/projects/{pid}/keys")
    assert listed.status_code == 200 and listed.json()["items"] == []


def test_issued_and_rotated_secrets_are_self_verifying(admin: httpx.Client):
    pid = new_project(admin)
    created = admin.post(f"/manage/projects/{pid}/keys", json={"name": "k"}).json()
    assert shape(created["secret"]) == "v1" and created["secret_format"] == "v1"
    rotated = admin.post(f"/manage/projects/{pid}/keys/{created['id']}/rotate", json={"overlap_seconds": 0})
    assert rotated.status_code == 200 and shape(rotated.json()["secret"]) == "v1"
    url = admin.base_url.join("/v1/models")
    s = rotated.json()["secret"]
    forged = s[:-1] + ("0" if s[-1] != "0" else "1")
    for bad in (forged, "sk-gw-" + "x" * 10):
        r = httpx.get(url, headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(url, headers={"Authorization": f"Bearer {s}"}).status_code == 200
