"""What a shed call costs the worker (issue 13): the real models surface (`functions/models_api.py`) behind a full
admission gate, called in process with a Starlette request; compare with `bench/pipeline_overhead.py` (a governed
call, ~0.4–0.5 ms CPU on the reference machine).

    .venv/bin/python -m bench.admission_cost [-n 20000]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import azure.functions as func
from starlette.requests import Request

from functions import models_api
from shared.web.admission import AdmissionGate

BODY = b'{"model":"m","messages":[{"role":"user","content":"hello"}]}'


async def main(n: int) -> None:
    gate = AdmissionGate(max_in_flight=1, max_queue=0, queue_timeout=0.1, retry_after=1)

    class Guard:
        scheme = "virtualKey"

        async def __call__(self, req: Request):
            raise AssertionError("a shed call never reaches authentication")

    api = models_api.build(lambda: None, catalog=None, guard=Guard(), max_body_bytes=1 << 20)  # type: ignore
    api.admit_through(gate)
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(api.blueprint)
    chat = next(f.get_user_function() for f in app.get_functions() if f.get_function_name() == "v1_chat_completions")
    assert gate.try_enter()  # the only slot is busy: every call below is shed
    headers = [(b"content-type", b"application/json"), (b"authorization", b"Bearer sk-gw-x")]

    async def receive() -> dict:
        return {"type": "http.request", "body": BODY, "more_body": False}

    def request() -> Request:
        return Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers,
                        "query_string": b"", "path_params": {}}, receive)

    for _ in range(1000):
        await chat(request())
    t = time.process_time()
    for _ in range(n):
        r = await chat(request())
    us = (time.process_time() - t) / n * 1e6
    assert r.status_code == 503 and gate.stats()["shed"] == n + 1000
    print(f"shed call: {us:.1f} µs CPU (n={n}; includes building the Starlette request)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=20000)
    asyncio.run(main(ap.parse_args().n))
