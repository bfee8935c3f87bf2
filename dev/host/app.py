"""The local host: enumerates `app.get_functions()` once and runs each by its trigger type. Generic: a new
function on any blueprint needs no change here."""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any

from azure.functions.warmup import WarmUpContext
from azure.storage.blob.aio import BlobServiceClient
from starlette.types import Receive, Scope, Send

from .config import HostConfig
from .http import HttpDispatcher, build_routes
from .queues import QueueFunction, QueueListener
from .timers import StatusStore, TimerFunction, run_timer
from .validation import validate_functions

log = logging.getLogger("localhost")


class LocalHost:
    def __init__(self, app: Any, config: HostConfig, env: dict[str, str], *, host_id: str = "localhost",
                 queue_lease_seconds: int = 60) -> None:
        functions = app.get_functions()  # the library itself refuses duplicate names, as when the worker indexes
        validate_functions(functions, env)  # everything else the Functions host refuses, in its words
        by_type: dict[str, list[Any]] = {}
        for fn in functions:
            by_type.setdefault(fn.get_trigger().get_binding_name(), []).append(fn)
        unknown = set(by_type) - {"httpTrigger", "timerTrigger", "queueTrigger", "warmupTrigger"}
        if unknown:
            raise ValueError(f"the local host cannot run trigger types {sorted(unknown)}")
        self.app = app
        self.env = env
        self.http = HttpDispatcher(build_routes(by_type.get("httpTrigger", []), config.route_prefix),
                                   config.route_prefix)
        self.timers = [TimerFunction.of(f, env) for f in by_type.get("timerTrigger", [])]
        self.queues = [QueueListener(QueueFunction.of(f, env), config.queues, lease_seconds=queue_lease_seconds)
                       for f in by_type.get("queueTrigger", [])]
        self.warmups = by_type.get("warmupTrigger", [])  # run once at start, as on an instance scale-out adds
        self.warmed = asyncio.Event()  # set once every warmup function has returned (or failed: logged)
        self._host_id = host_id
        self._tasks: list[asyncio.Task[None]] = []
        self._blobs: BlobServiceClient | None = None

    def describe(self) -> list[str]:
        lines = [f"  {r.name}: [{','.join(sorted(r.methods))}] /{r.regex.pattern[2:-3]}" for r in self.http.routes]
        lines += [f"  {t.name}: timer '{t.schedule.text}'" for t in self.timers]
        lines += [f"  {q.fn.name}: queue '{q.fn.queue}'" for q in self.queues]
        lines += [f"  {w.get_function_name()}: warmup (once, at start)" for w in self.warmups]
        return lines

    async def start(self) -> None:
        storage = self.env.get("AzureWebJobsStorage")
        if self.timers and storage:
            self._blobs = BlobServiceClient.from_connection_string(storage)
        store = StatusStore(self._blobs, self._host_id)
        self._tasks = [asyncio.create_task(run_timer(t, store), name=f"timer:{t.name}") for t in self.timers]
        self._tasks += [asyncio.create_task(q.run(), name=f"queue:{q.fn.name}") for q in self.queues]
        # In the background: the host serves meanwhile (a call that arrives first builds what it needs itself).
        self._tasks.append(asyncio.create_task(self._warm(), name="warmup"))

    async def _warm(self) -> None:
        for fn in self.warmups:
            try:
                result = fn.get_user_function()(**{fn.get_trigger().name: WarmUpContext()})
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - like the Functions host: a failed warmup is logged, the host serves
                log.exception("warmup function %s failed", fn.get_function_name())
        self.warmed.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._blobs is not None:
            await self._blobs.close()
        closer = getattr(getattr(self.app, "services", None), "close", None)
        if closer is not None:
            result = closer()
            if inspect.isawaitable(result):
                await result

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        await self.start()
                    except Exception as exc:  # noqa: BLE001
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    try:
                        await asyncio.wait_for(self.stop(), 15)
                    except asyncio.TimeoutError:
                        log.warning("shutdown hooks did not finish within 15 s; exiting anyway")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            await self.http(scope, receive, send)
