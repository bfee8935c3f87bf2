"""Property-based fuzzing of the whole OpenAPI surface (schemathesis + hypothesis) against a real gateway process:
once with a virtual key, once with the admin key, valid and invalid inputs. Every answer must be below 500, and
every error must be the gateway's error body (`{"error": {"code", "message", "type", "details"}}`).

Bounded and reproducible: a fixed seed, a fixed number of examples per operation and generation mode, no
shrinking (a failure is reported with the request that caused it and the server's log instead), and a time cap
(90 s, half per credential): past it no new request is sent, and the test fails only if some operation never got
an answer — a loaded machine runs fewer examples, never longer. Half of the examples use the real project, model
and key ids in path parameters and the real model name in bodies, so the fuzzer gets past "not found" into the
handlers and through the proxy to a (fake) upstream with payload logging on.
"""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from dev.emulators import Emulators, Ports
from tests.conftest import ADMIN_KEY, gateway_env, new_key, new_project
from tests.integration.models_support import backend
from tests.support.fake_openai import FakeOpenAI
from tests.support.processes import REPO, HostProcess, start_host


SEED = int(os.environ.get("FUZZ_SEED", "20261126"))  # another seed explores other inputs (same bounds)
# Examples per operation and generation mode: many where the credential is the operation's own (the handlers run),
# a few where it is not (the refusal must still be a proper error) — about 750 requests in all, ~40 s.
EXAMPLES_OWN, EXAMPLES_OTHER = int(os.environ.get("FUZZ_EXAMPLES", "9")), 2
TIME_CAP_SECONDS = 90.0
SPEC_PATHS = ("/spec/openapi.json", "/openapi.json")  # the spec may move; read it from whichever answers


@dataclass
class Found:
    failures: list[str] = field(default_factory=list)
    requests: int = 0
    covered: set[tuple[str, str]] = field(default_factory=set)  # (credential, operation) that got an answer
    statuses: dict[int, int] = field(default_factory=dict)


def error_body_problem(response: requests.Response) -> str | None:
    """Why an error response does not have the gateway's error shape, or None when it does."""
    try:
        body = response.json()
    except ValueError:
        return "the body is not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "no 'error' object"
    missing = [k for k in ("code", "message", "type", "details") if k not in error]
    if missing:
        return f"'error' lacks {missing}"
    if not all(isinstance(error[k], str) and error[k] for k in ("code", "message", "type")):
        return "code, message and type must be non-empty strings"
    return None


def _spec(url: str) -> dict[str, Any]:
    for path in SPEC_PATHS:
        r = httpx.get(url + path, timeout=10)
        if r.status_code == 200:
            return r.json()
    raise AssertionError(f"no OpenAPI document at {SPEC_PATHS}")


def _real_ids(op: Any, ids: dict[str, str]) -> dict[str, str]:
    names = {p.name for p in op.path_parameters}
    return {k: v for k, v in ids.items() if k in names}


def _with_real_model(case: Any, model: str) -> Any:
    if isinstance(case.body, dict) and "model" in case.body:
        case.body["model"] = model
    return case


def _schemes(op: Any) -> set[str]:
    return {name for requirement in op.definition.raw.get("security", []) for name in requirement}


def fuzz_operation(op: Any, mode: GenerationMode, *, examples: int, seed_value: int, base_url: str, who: str,
                   credential: str, ids: dict[str, str], model: str, found: Found, deadline: float) -> None:
    generated = op.as_strategy(generation_mode=mode)
    real = _real_ids(op, ids)
    if real:
        generated = st.one_of(generated, op.as_strategy(generation_mode=mode, path_parameters=real))
    strategy = st.tuples(generated, st.booleans()).map(
        lambda pair: _with_real_model(pair[0], model) if pair[1] else pair[0])
    session = requests.Session()

    @seed(seed_value)
    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @given(strategy)
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            return
        try:
            response = case.call(base_url=base_url, session=session,
                                 headers={"Authorization": f"Bearer {credential}"}, timeout=15)
        except requests.RequestException as exc:  # the gateway must answer, not drop the connection
            found.failures.append(f"{op.label}: no response ({type(exc).__name__}: {exc})\n  {case.as_curl_command()}")
            return
        found.requests += 1
        found.covered.add((who, op.label))
        found.statuses[response.status_code] = found.statuses.get(response.status_code, 0) + 1
        problem = f"status {response.status_code}" if response.status_code >= 500 else None
        if problem is None and response.status_code >= 400:
            problem = error_body_problem(response)
        if problem:
            request_id = (response.headers.get("x-request-id") or ["?"])[0]
            found.failures.append(f"{op.label} [{mode.value}]: {problem}: {response.text[:300]}\n"
                                  f"  {case.as_curl_command()}\n  request id {request_id}")

    try:
        run()
    except Unsatisfiable:
        # Negative mode on an operation with nothing to get wrong (no parameters, no body): nothing to send.
        assert mode is GenerationMode.NEGATIVE, f"{op.label}: no valid input could be generated"
    finally:
        session.close()


@pytest.fixture(scope="module")
def upstream():
    with FakeOpenAI("fuzz") as fake:
        yield fake


@pytest.fixture(scope="module")
def fuzz_gateway(jwks, tmp_path_factory):
    """A gateway on emulators of its own: the admin fuzz flips global kill switches and deletes what it finds, and
    fuzzed payloads reach the request log — Azurite answers 500 to a batch holding U+2028 and was seen failing
    every later batch of the session after such garbage. None of that may leak into the other tests."""
    emu = Emulators(tmp_path_factory.mktemp("fuzz-emulators"), Ports.free())
    emu.start()
    host: HostProcess | None = None
    try:
        host = start_host(root=REPO, app="function_app:app", env=gateway_env(emu, jwks),
                          log_dir=tmp_path_factory.mktemp("fuzz-gateway"), name="gateway")
        yield host
    finally:
        if host is not None:
            host.stop()
        emu.stop()


def test_whole_surface_survives_fuzzing(fuzz_gateway, upstream):
    gw = fuzz_gateway
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10) as admin:
        pid = new_project(admin)
        assert admin.patch(f"/manage/projects/{pid}", json={"log_payloads": True}).status_code == 200
        model = "m-" + uuid.uuid4().hex[:6]
        r = admin.post(f"/manage/projects/{pid}/models", json={
            "name": model, "backends": [backend(upstream, "f")],
            "capabilities": ["chat", "streaming", "embeddings"]})
        assert r.status_code == 201, r.text
        secret = new_key(admin, pid)
        key_id = admin.get(f"/manage/projects/{pid}/keys").json()["items"][0]["id"]
        r = admin.post(f"/manage/projects/{pid}/experiments", json={  # A/B routing on the fuzzed model's calls
            "name": "fuzz-exp", "model": model, "variants": [{"id": "c", "weight": 1}, {"id": "t", "weight": 1}]})
        assert r.status_code == 201 and admin.post(f"/manage/projects/{pid}/experiments/fuzz-exp/start").is_success
    schema = schemathesis.openapi.from_dict(_spec(gw.url))
    operations = [result.ok() for result in schema.get_all_operations()]
    ids = {"project": pid, "model": model, "deployment": model, "key": key_id, "target": model,
           "experiment": "fuzz-exp"}
    found = Found()
    started = time.monotonic()
    # The virtual key first (the admin run may revoke the key, delete the model or switch the pillar off), each with
    # half of the time. Round 1 gives every operation and mode one example, so a slow machine shrinks the run
    # instead of leaving operations out; round 2 adds the rest.
    for n, (who, credential) in enumerate((("virtualKey", secret), ("controlPlane", ADMIN_KEY)), start=1):
        deadline = started + TIME_CAP_SECONDS * n / 2
        for round_seed, own_examples, other_examples in ((SEED, 1, 1), (SEED + 1, EXAMPLES_OWN, EXAMPLES_OTHER)):
            for op in operations:
                own = not _schemes(op) or who in _schemes(op)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    if time.monotonic() < deadline:
                        fuzz_operation(op, mode, examples=own_examples if own else other_examples,
                                       seed_value=round_seed, base_url=gw.url, who=who, credential=credential,
                                       ids=ids, model=model, found=found, deadline=deadline)
    elapsed = time.monotonic() - started
    report = (f"{found.requests} requests in {elapsed:.1f} s, statuses {dict(sorted(found.statuses.items()))}")
    print(report)
    # Server errors first, one line per kind of failure (operation + problem), then the gateway's log.
    ordered = sorted(found.failures, key=lambda f: "status 5" not in f)
    kinds = {f.split(": {", 1)[0].split("\n")[0]: f for f in ordered}
    assert not found.failures, "\n".join([report, *list(kinds.values())[:40], "--- gateway log (tail)",
                                           gw.output()[-6000:]])
    missed = {(who, op.label) for who in ("virtualKey", "controlPlane") for op in operations} - found.covered
    assert not missed, f"never answered within {TIME_CAP_SECONDS} s: {sorted(missed)}; {report}"
    assert elapsed <= TIME_CAP_SECONDS + 20, f"the fuzz run overran its time cap: {report}"  # one slow example
    assert found.statuses.get(200, 0) > 0 and upstream.requests, "the fuzzer never got a call through"
