"""Plays the Functions host against a worker process: gRPC server, the start-up sequence, HTTP invocations.

Sequence as the host runs it for a Python app with worker indexing: start the worker with the gRPC address on its
command line -> StartStream -> WorkerInitRequest (host capabilities, app directory) -> FunctionsMetadataRequest
-> FunctionLoadRequest per indexed function -> InvocationRequests. For an HTTP-streaming app (the worker answered
init with the `HttpUri` capability) an HTTP call is an InvocationRequest carrying the route parameters plus the
real HTTP request forwarded to that URI with the `x-ms-invocation-id` header, which is how the runtime pairs the two.
"""
from __future__ import annotations

import json
import queue
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx

from tests.conformance import protocol

INVOCATION_HEADER = "x-ms-invocation-id"  # azure_functions_runtime.utils.constants.X_MS_INVOCATION_ID
# What the host announces in WorkerInitRequest.capabilities (the runtime reads FunctionDataCache; the HTTP-proxying
# capability is how the host says it will forward HTTP requests to the worker's own server).
HOST_CAPABILITIES = {"HttpUri": "", "FunctionDataCache": "false", "HandlesInvocationCancelMessage": "true"}


@dataclass(frozen=True)
class Function:
    function_id: str
    name: str
    bindings: list[dict[str, Any]]  # raw_bindings, parsed

    @property
    def trigger(self) -> dict[str, Any]:
        return next(b for b in self.bindings if b.get("type", "").lower().endswith("trigger"))


@dataclass(frozen=True)
class HttpRoute:
    function: Function
    methods: frozenset[str]
    pattern: re.Pattern[str]


def route_pattern(template: str) -> re.Pattern[str]:
    """`a/{x}/b` -> a regex with one named group per `{param}` (one path segment each, as the host matches);
    a catch-all `{*rest}` (last segment only) takes the rest of the path, slashes included, possibly empty."""
    parts = []
    for seg in template.strip("/").split("/"):
        if seg.startswith("{*") and seg.endswith("}"):
            parts.append(f"(?P<{seg[2:-1].split(':')[0]}>.*)")
        elif seg.startswith("{") and seg.endswith("}"):
            parts.append(f"(?P<{seg[1:-1].split(':')[0]}>[^/]+)")
        else:
            parts.append(re.escape(seg))
    return re.compile("^/" + "/".join(parts) + "/?$")


def route_rank(template: str) -> int:
    """The host tries routes with fewer parameters first; a catch-all only when nothing else matches."""
    return 2 if "{*" in template else 1 if "{" in template else 0


class _EventStream:
    """gRPC servicer: one worker stream; worker->host messages routed to waiters, host->worker from a queue."""

    def __init__(self, protos: Any) -> None:
        self.protos = protos
        self.outbox: queue.Queue[Any] = queue.Queue()
        self.lock = threading.Lock()
        self.waiters: dict[str, futures.Future] = {}
        self.logs: list[Any] = []
        self.connected = threading.Event()

    def expect(self, key: str) -> futures.Future:
        with self.lock:
            return self.waiters.setdefault(key, futures.Future())

    def EventStream(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        threading.Thread(target=self._read, args=(request_iterator,), daemon=True).start()
        while (msg := self.outbox.get()) is not None:
            yield msg

    def _read(self, incoming: Iterator[Any]) -> None:
        try:
            for msg in incoming:
                kind = msg.WhichOneof("content")
                if kind == "rpc_log":
                    self.logs.append(msg.rpc_log)
                    continue
                if kind == "start_stream":
                    self.connected.set()
                body = getattr(msg, kind)
                key = kind
                if kind == "invocation_response":
                    key = f"invocation:{body.invocation_id}"
                elif kind == "function_load_response":
                    key = f"load:{body.function_id}"
                self.expect(key).set_result(body)
        except grpc.RpcError:
            pass  # the worker went away; waiters time out with a clear message


class FunctionsHost:
    def __init__(self, app_dir: Path, env: dict[str, str], log_path: Path, *, placeholder: Path | None = None
                 ) -> None:
        """`placeholder`: start the worker as a pre-warmed placeholder in that (empty) directory, without the
        app's settings, and specialise it with FunctionEnvironmentReloadRequest, as the platform does for a
        pre-started instance."""
        self.app_dir, self.env, self.log_path, self.placeholder = app_dir, env, log_path, placeholder
        self.protos, stubs = protocol.load()
        self.stream = _EventStream(self.protos)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        stubs.add_FunctionRpcServicer_to_server(self.stream, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.proc: subprocess.Popen[bytes] | None = None
        self.worker_id = str(uuid.uuid4())
        self.init_response: Any = None
        self.functions: list[Function] = []
        self.load_responses: dict[str, Any] = {}
        self.routes: list[HttpRoute] = []
        self.http_uri = ""

    # ---- lifecycle

    def start(self, timeout: float = 60) -> FunctionsHost:
        self.server.start()
        request_id = str(uuid.uuid4())
        max_len = str(2**31 - 1)
        cmd = [sys.executable, "-m", "tests.conformance.worker_main", "--host", "127.0.0.1", "--port", str(self.port),
               "--workerId", self.worker_id, "--requestId", request_id, "--grpcMaxMessageLength", max_len,
               "--functions-uri", f"http://127.0.0.1:{self.port}/", "--functions-worker-id", self.worker_id,
               "--functions-request-id", request_id, "--functions-grpc-max-message-length", max_len]
        path = {"PYTHONPATH": str(protocol.PROTO.parents[2])}
        app_env = {**os.environ, **self.env, **path}
        start_dir = self.placeholder or self.app_dir
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=start_dir, env={**os.environ, **path} if self.placeholder else app_env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self._wait("start_stream", timeout, "StartStream")
        self._send(worker_init_request=self.protos.WorkerInitRequest(
            host_version="4.1040.0", capabilities=HOST_CAPABILITIES, worker_directory=str(start_dir),
            function_app_directory=str(start_dir)))
        self.init_response = self._wait("worker_init_response", timeout, "WorkerInitResponse")
        if self.placeholder:
            self._send(function_environment_reload_request=self.protos.FunctionEnvironmentReloadRequest(
                environment_variables=app_env, function_app_directory=str(self.app_dir)))
            self.init_response = self._wait("function_environment_reload_response", timeout,
                                            "FunctionEnvironmentReloadResponse")
        self.http_uri = self.init_response.capabilities.get("HttpUri", "")
        self._send(functions_metadata_request=self.protos.FunctionsMetadataRequest(
            function_app_directory=str(self.app_dir)))
        metadata = self._wait("function_metadata_response", timeout, "FunctionMetadataResponse")
        self.metadata_response = metadata
        for fm in metadata.function_metadata_results:
            fn = Function(fm.function_id, fm.name, [json.loads(b) for b in fm.raw_bindings])
            self.functions.append(fn)
            self._send(function_load_request=self.protos.FunctionLoadRequest(function_id=fm.function_id,
                                                                            metadata=fm))
        for fn in self.functions:
            self.load_responses[fn.name] = self._wait(f"load:{fn.function_id}", timeout, f"load {fn.name}")
            trig = fn.trigger
            if trig.get("type") == "httpTrigger":
                methods = frozenset(m.upper() for m in trig.get("methods") or ["GET", "POST", "PUT", "DELETE",
                                                                                "PATCH", "HEAD", "OPTIONS"])
                self.routes.append(HttpRoute(fn, methods, route_pattern(trig.get("route") or fn.name)))
        return self

    def stop(self) -> None:
        self.stream.outbox.put(None)  # ends the event stream: the worker's dispatcher returns and the process exits
        self.server.stop(grace=1)
        if self.proc is not None:
            for signal_it in (lambda: None, self.proc.terminate, self.proc.kill):
                signal_it()
                try:
                    self.proc.wait(3)
                    break
                except subprocess.TimeoutExpired:
                    continue
            self._log.close()

    def worker_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def _send(self, **content: Any) -> None:
        self.stream.outbox.put(self.protos.StreamingMessage(request_id=str(uuid.uuid4()), **content))

    def _wait(self, key: str, timeout: float, what: str) -> Any:
        try:
            return self.stream.expect(key).result(timeout)
        except futures.TimeoutError:
            raise AssertionError(f"no {what} from the worker within {timeout}s; worker log:\n{self.worker_log()}") \
                from None

    # ---- HTTP through the worker

    def match(self, method: str, path: str) -> tuple[Function, dict[str, str]]:
        for r in sorted(self.routes, key=lambda r: route_rank(r.function.trigger.get("route") or r.function.name)):
            m = r.pattern.match(path)
            if m and method.upper() in r.methods:
                return r.function, m.groupdict()
        raise LookupError(f"no function for {method} {path}")

    def _invoke(self, method: str, url: httpx.URL, headers: dict[str, str]) -> tuple[str, futures.Future]:
        fn, params = self.match(method, url.path)
        invocation_id = str(uuid.uuid4())
        done = self.stream.expect(f"invocation:{invocation_id}")
        http = self.protos.RpcHttp(method=method.upper(), url=str(url), headers=headers, params=params,
                                   query=dict(url.params))
        self._send(invocation_request=self.protos.InvocationRequest(
            invocation_id=invocation_id, function_id=fn.function_id,
            input_data=[self.protos.ParameterBinding(name=fn.trigger["name"], data=self.protos.TypedData(http=http))]))
        return invocation_id, done

    @contextmanager
    def http(self, method: str, path: str, *, headers: dict[str, str] | None = None, json_body: Any = None,
             timeout: float = 10, stream: bool = False) -> Iterator[tuple[httpx.Response, futures.Future]]:
        """One HTTP call the way the host makes it: InvocationRequest + the request forwarded to the worker's
        server with the invocation id. Yields (response, future of the InvocationResponse)."""
        url = httpx.URL(self.http_uri + path)
        hdrs = {k.lower(): v for k, v in (headers or {}).items()}
        invocation_id, done = self._invoke(method, url, hdrs)
        with httpx.Client(timeout=timeout) as client:
            req = client.build_request(method, url, headers={**hdrs, INVOCATION_HEADER: invocation_id},
                                       json=json_body)
            resp = client.send(req, stream=stream)
            try:
                yield resp, done
            finally:
                resp.close()

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """A complete non-streamed call; also requires the invocation to have succeeded."""
        with self.http(method, path, **kw) as (resp, done):
            resp.read()
            result = done.result(kw.get("timeout", 10)).result
            assert result.status == self.protos.StatusResult.Success, (path, result.exception.message)
            return resp
