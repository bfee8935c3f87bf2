"""The leaner per-call paths of issue 13 do exactly what the slower ones did: the local host's route index picks the
same function as a scan of every route, quota window ids are the zero-padded ones, the one-pass header dict is
`dict(req.headers)`, admission headers keep the smallest remainder, a breaker is created once per key."""
from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse

from dev.host.http import HttpDispatcher, HttpRoute, RouteIndex, compile_template
from shared.domain.quotas import Quota, QuotaLimits
from shared.quotas.enforcer import QuotaEnforcer, window
from shared.quotas.store import MemoryCounterStore
from shared.routing.breaker import Breakers
from shared.web.inputs import header_dict

TEMPLATES = [
    ("v1/chat/completions", {"POST"}), ("v1/models", {"GET"}), ("v1/responses/{response}", {"GET", "DELETE"}),
    ("v1/responses/{response}/input_items", {"GET"}), ("openai/deployments/{deployment}/chat/completions", {"POST"}),
    ("openai/v1/chat/completions", {"POST"}), ("manage/projects/{project}/keys/{key:int}", {"GET", "PATCH"}),
    ("manage/projects/{project}", {"GET", "PUT", "DELETE"}), ("manage/projects", {"GET", "POST"}),
    ("{tenant}/mcp", {"POST"}), ("{tenant}/{*rest}", {"GET"}), ("files/{*rest}", {"GET", "POST"}),
    ("items/{id?}", {"GET"}), ("healthz", {"GET"}), ("{*path}", {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}),
]
SEGMENTS = ["v1", "openai", "manage", "projects", "p1", "keys", "12", "-3", "x", "chat", "completions", "models",
            "responses", "r1", "input_items", "deployments", "files", "items", "healthz", "mcp", "", "V1"]


def _routes(prefix: str) -> list[HttpRoute]:
    routes = []
    for template, methods in TEMPLATES:
        regex, literals = compile_template(prefix, template)
        head = template.split("/", 1)[0]
        routes.append(HttpRoute(template, template, frozenset(methods), regex, "req", lambda req: None, literals,
                                first=None if head.startswith("{") else head))
    return sorted(routes, key=HttpRoute.specificity)


def _scan(routes: list[HttpRoute], method: str, path: str) -> str | None:
    """The host's former dispatch: every route's regex in order, then the method."""
    for r in routes:
        if r.regex.match(path) is not None and method in r.methods:
            return r.name
    return None


def _indexed(index: RouteIndex, method: str, path: str) -> str | None:
    return next((r.name for r in index.candidates(method, path) if r.regex.match(path) is not None), None)


def test_the_route_index_picks_what_a_scan_of_every_route_picks():
    rng = random.Random(13)
    for prefix in ("api", "", "gw/v2"):
        routes = _routes(prefix)
        index = RouteIndex(routes, prefix)
        base = "/" + prefix.strip("/") if prefix else ""
        paths = [f"{base}/" + "/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(0, 5))) for _ in range(3000)]
        paths += [f"{base}/v1/chat/completions", f"{base}/v1/chat/completions/", f"{base}", "/", "/other/v1/models",
                  f"{base}//v1/models", f"{base}/manage/projects/p/keys/7", f"{base}/items"]
        for path in paths:
            for method in ("GET", "POST", "DELETE", "HEAD", "OPTIONS"):
                assert _indexed(index, method, path) == _scan(routes, method, path), (prefix, method, path)


def test_the_index_only_skips_routes_that_cannot_match():
    routes = _routes("api")
    index = RouteIndex(routes, "api")
    names = [r.name for r in index.candidates("POST", "/api/v1/chat/completions")]
    assert "v1/chat/completions" in names and "{*path}" in names and "{tenant}/mcp" in names  # order kept
    assert names == [r.name for r in routes if r.name in names]
    assert not any(n.startswith(("manage", "openai", "files")) for n in names)


def _call(app: Any, path: str, method: str = "GET") -> tuple[int, bytes]:
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [], "root_path": ""}
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        else:
            out["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out["status"], out["body"]


def test_the_dispatcher_runs_sync_and_async_functions_and_answers_404_elsewhere():
    async def hello(req: Request) -> PlainTextResponse:
        return PlainTextResponse("async " + req.path_params["name"])

    def bye(req: Request) -> dict[str, str]:  # a plain function: run in the thread pool, dict → JSON
        return {"sync": req.path_params["name"]}

    routes = []
    for name, template, func in (("hello", "hello/{name}", hello), ("bye", "bye/{name}", bye)):
        regex, literals = compile_template("api", template)
        routes.append(HttpRoute(name, template, frozenset({"GET"}), regex, "req", func, literals,
                                first=template.split("/")[0]))
    assert routes[0].is_async and not routes[1].is_async  # decided once, when the route is built
    app = HttpDispatcher(routes, "api")
    assert _call(app, "/api/hello/ann") == (200, b"async ann")
    assert _call(app, "/api/bye/bob") == (200, b'{"sync": "bob"}')
    assert _call(app, "/api/bye/bob", "POST")[0] == 404
    assert _call(app, "/api/nobody/here")[0] == 404


def test_window_ids_are_the_zero_padded_ones():
    rng = random.Random(7)
    start = datetime(1, 1, 1, tzinfo=timezone.utc)
    moments = [start + timedelta(seconds=rng.randrange(0, 315_000_000_000)) for _ in range(3000)]
    moments += [datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc),
                datetime(999, 1, 2, 3, 4, 5, tzinfo=timezone.utc), datetime(1000, 1, 1, tzinfo=timezone.utc)]
    for now in moments:
        if now.year == 9999 and now.month == 12:
            continue  # the month window's end is past datetime's range (as before)
        assert window("minute", now)[0] == "m%04d%02d%02d%02d%02d" % (now.year, now.month, now.day, now.hour,
                                                                       now.minute)
        assert window("day", now)[0] == "d%04d%02d%02d" % (now.year, now.month, now.day)
        assert window("month", now)[0] == "mo%04d%02d" % (now.year, now.month)
        assert window("minute", now)[1] == 60 - now.second - now.microsecond / 1e6


def test_header_dict_is_dict_of_headers_with_the_first_value_of_a_repeated_name():
    raw = [(b"authorization", b"Bearer a"), (b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"2.2.2.2"),
           (b"user-agent", b"caf\xe9")]
    req = Request({"type": "http", "headers": raw})
    assert header_dict(req) == dict(req.headers) == {"authorization": "Bearer a", "x-forwarded-for": "1.1.1.1",
                                                      "user-agent": "caf\u00e9"}


def test_admission_headers_keep_the_smallest_remainder_and_the_last_limit():
    def q(scope: str, target: str, **limits: int) -> Quota:
        return Quota(id=f"{scope}.{target}", project_id="p", scope=scope, target=target, limits=QuotaLimits(**limits))

    gw = QuotaEnforcer(MemoryCounterStore(), lease_fraction=1.0)
    quotas = [q("project", "p", requests_per_minute=100, tokens_per_minute=1000), q("key", "k", requests_per_minute=5)]
    adm = asyncio.run(gw.admit(quotas, tokens=10, cost_micros=0))
    assert adm.headers == {"x-ratelimit-remaining-requests": "4", "x-ratelimit-limit-requests": "5",
                           "x-ratelimit-remaining-tokens": "990", "x-ratelimit-limit-tokens": "1000"}
    assert len({c.partition for c, _, _ in adm.taken}) == 2 and len(adm.taken) == 3


def test_a_breaker_is_created_once_per_key():
    b = Breakers()
    first = b._get("p/m/a")
    assert b._get("p/m/a") is first and b._get("p/m/b") is not first and len(b._backends) == 2


def test_take_now_answers_as_take_does_and_defers_to_it_when_a_lease_is_needed():
    from shared.quotas.leases import LeasedCounter

    async def scenario() -> None:
        store = MemoryCounterStore()
        now, ref = LeasedCounter(store, "p", "r", 100, 0.1), LeasedCounter(store, "q", "r", 100, 0.1)
        assert now.take_now(5, 8) is False and now.local == 0 and await store.read("p", "r") == 0  # needs a lease
        assert await now.take(5, 8) == 8 and await ref.take(5, 8) == 8  # the lease (one chunk + this call)
        deferred = 0
        for need, want in ((1, 1), (0, 3), (2, 2), (1, 1), (200, 200), (3, 9)):
            got = now.take_now(need, want)
            if got is False:  # the enforcer's pattern: a lease is needed, `take` does it
                deferred += 1
                got = await now.take(need, want)
            assert got == await ref.take(need, want)
            assert now.local == ref.local
        assert deferred >= 1
        await asyncio.sleep(0)  # let the prefetches run (both counters alike)
        assert now.local == ref.local

    asyncio.run(scenario())
