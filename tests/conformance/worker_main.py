"""Stand-in for the host-shipped proxy worker: the process the Functions host starts for a Python 3.13 app.

On Python 3.13+ the Functions host ships a thin gRPC "proxy worker" with itself (it is not on PyPI); the runtime
that indexes, loads and invokes the functions is the `azure_functions_runtime` package, which the proxy imports from
the app's own dependencies and calls with each host message wrapped as `request.request` plus
`request.properties = {"protos": <message module>, "host": <host address>}`. This module does only that transport
part, so the code under test is the pinned runtime itself:

- the command line the host uses (`--host/--port/--workerId/--requestId/--grpcMaxMessageLength`, and the
  `--functions-*` spellings of the same);
- one bidirectional `EventStream`, opened with `StartStream`, read on a thread, each request handled as a task on
  the process's single `asyncio.run` loop (the loop the runtime starts its uvicorn HTTP server on);
- WorkerInit -> runtime.worker_init_request, FunctionEnvironmentReload (placeholder specialisation) ->
  function_environment_reload_request, FunctionsMetadata -> functions_metadata_request,
  FunctionLoad -> function_load_request, Invocation -> invocation_request; WorkerStatus answered here.

Run as `python -m tests.conformance.worker_main ...` from the repository root.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import queue
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import grpc

from tests.conformance import protocol

log = logging.getLogger("conformance.worker")


@dataclass
class WorkerRequest:
    """The shape the runtime reads: `.request` (a StreamingMessage) and `.properties`."""
    name: str
    request: Any
    properties: dict[str, Any] = field(default_factory=dict)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="conformance-worker")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workerId", "--functions-worker-id", dest="worker_id", required=True)
    p.add_argument("--requestId", "--functions-request-id", dest="request_id", required=True)
    p.add_argument("--grpcMaxMessageLength", "--functions-grpc-max-message-length", dest="max_msg_len",
                   type=int, default=2**31 - 1)
    p.add_argument("--functions-uri", dest="functions_uri", default=None)
    return p.parse_args(argv)


class ProxyWorker:
    _STOP = object()

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.protos, self.stubs = protocol.load()
        self.outbox: queue.Queue[Any] = queue.Queue()
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.runtime: Any = None
        self.tasks: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones

    def _spawn(self, msg: Any) -> None:
        task = self.loop.create_task(self._dispatch(msg))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def reply(self, **content: Any) -> None:
        self.outbox.put(self.protos.StreamingMessage(request_id=self.args.request_id, **content))

    def _poll(self) -> None:
        """gRPC thread: send whatever is queued, hand every host message to the loop."""
        opts = [("grpc.max_receive_message_length", self.args.max_msg_len),
                ("grpc.max_send_message_length", self.args.max_msg_len)]
        channel = grpc.insecure_channel(f"{self.args.host}:{self.args.port}", opts)
        stub = self.stubs.FunctionRpcStub(channel)

        def outgoing():
            while (msg := self.outbox.get()) is not self._STOP:
                yield msg

        try:
            for msg in stub.EventStream(outgoing()):
                self.loop.call_soon_threadsafe(self._spawn, msg)
        except grpc.RpcError as exc:
            log.info("event stream closed: %s", exc.code())
        finally:
            self.loop.call_soon_threadsafe(lambda: self.done.done() or self.done.set_result(None))

    async def _dispatch(self, msg: Any) -> None:
        kind = msg.WhichOneof("content")
        try:
            if kind == "worker_init_request":
                await self._init(msg)
            elif kind == "function_environment_reload_request":
                await self._reload(msg)
            elif kind == "functions_metadata_request":
                resp = await self.runtime.functions_metadata_request(WorkerRequest("metadata", msg))
                self.reply(function_metadata_response=resp)
            elif kind == "function_load_request":
                resp = await self.runtime.function_load_request(WorkerRequest("load", msg))
                self.reply(function_load_response=resp)
            elif kind == "invocation_request":
                resp = await self.runtime.invocation_request(WorkerRequest("invocation", msg))
                self.reply(invocation_response=resp)
            elif kind == "worker_status_request":
                self.reply(worker_status_response=self.protos.WorkerStatusResponse())
            else:
                log.error("unknown host message %s", kind)
        except Exception:  # the real proxy logs and keeps serving; a crash here would hide the runtime's answer
            log.exception("handling %s failed", kind)

    async def _init(self, msg: Any) -> None:
        app_dir = msg.worker_init_request.function_app_directory
        if app_dir not in sys.path:
            sys.path.insert(0, app_dir)  # as the proxy does: the app's modules import from its directory
        import azure_functions_runtime as runtime  # the pinned package, from this venv (= the app's packages)

        self.runtime = runtime
        runtime.start_threadpool_executor()
        resp = await runtime.worker_init_request(
            WorkerRequest("init", msg, {"protos": self.protos, "host": self.args.host}))
        self.reply(worker_init_response=resp)

    async def _reload(self, msg: Any) -> None:
        """Placeholder specialisation. The proxy first drops every module it imported from its own dependency
        directory and puts the app's packages first, so the runtime (and the SDK and extensions) are imported
        afresh, from the app's packages; state cached during the placeholder's init does not survive."""
        self.runtime.stop_threadpool_executor()
        for name in [m for m in sys.modules if m.split(".")[0] in ("azure_functions_runtime", "azurefunctions")
                     or m == "azure.functions" or m.startswith("azure.functions.")]:
            del sys.modules[name]
        import azure_functions_runtime as runtime

        self.runtime = runtime
        runtime.start_threadpool_executor()
        resp = await runtime.function_environment_reload_request(
            WorkerRequest("reload", msg, {"protos": self.protos, "host": self.args.host}))
        self.reply(function_environment_reload_response=resp)

    async def run(self) -> None:
        self.reply(start_stream=self.protos.StartStream(worker_id=self.args.worker_id))
        thread = threading.Thread(target=self._poll, name="grpc", daemon=True)
        thread.start()
        try:
            await self.done
        finally:
            self.outbox.put(self._STOP)
            if self.runtime is not None:
                self.runtime.stop_threadpool_executor()


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)

    async def serve() -> None:
        await ProxyWorker(args).run()

    asyncio.run(serve())  # what the proxy runs: plain asyncio, no uvloop


if __name__ == "__main__":
    main(sys.argv[1:])
