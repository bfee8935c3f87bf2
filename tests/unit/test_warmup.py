"""The warmup trigger: the local host runs an app's `warmup` function once at start, in the background (as Azure
does on an instance scale-out adds), and the gateway's warm-up builds each data plane (models, tools, agents) its first call built."""
from __future__ import annotations

import asyncio
import logging

import azure.functions as func
from azure.functions.warmup import WarmUpContext

from dev.host.app import LocalHost
from dev.host.config import HostConfig
from shared.config import Settings
from shared.services import Services
from shared.storage.memory import MemoryDocumentStore


def _app(body) -> func.FunctionApp:
    app = func.FunctionApp()
    bp = func.Blueprint()

    @bp.function_name("warmup")
    @bp.warm_up_trigger("warmup")
    async def warmup(warmup: WarmUpContext) -> None:
        await body(warmup)

    app.register_functions(bp)
    return app


async def test_the_local_host_runs_warmup_once_at_start_without_holding_the_start():
    calls: list[object] = []
    release = asyncio.Event()

    async def body(ctx: object) -> None:
        calls.append(ctx)
        await release.wait()

    host = LocalHost(_app(body), HostConfig(), {})
    assert "  warmup: warmup (once, at start)" in host.describe()
    await host.start()  # returns while the warmup still runs: the host serves meanwhile
    await asyncio.sleep(0)
    assert len(calls) == 1 and isinstance(calls[0], WarmUpContext) and not host.warmed.is_set()
    release.set()
    await asyncio.wait_for(host.warmed.wait(), 5)
    assert len(calls) == 1
    await host.stop()


async def test_a_failing_warmup_is_logged_and_the_host_keeps_going(caplog):
    async def body(ctx: object) -> None:
        raise RuntimeError("no")

    host = LocalHost(_app(body), HostConfig(), {})
    with caplog.at_level(logging.ERROR, logger="localhost"):
        await host.start()
        await asyncio.wait_for(host.warmed.wait(), 5)
    assert "warmup function warmup failed" in caplog.text
    await host.stop()


def _services() -> Services:
    from shared.quotas.enforcer import QuotaEnforcer
    from shared.quotas.store import MemoryCounterStore
    from shared.usage.log import MemoryUsageSink, UsageLog

    services = Services(Settings(), store=MemoryDocumentStore())
    services.__dict__["enforcer"] = QuotaEnforcer(MemoryCounterStore())  # no Storage account in a unit test
    services.__dict__["usage_log"] = UsageLog(MemoryUsageSink())
    return services


async def test_the_gateway_warm_up_builds_every_data_plane_and_its_app_declares_warmup(caplog):
    services = _services()
    planes = ("models_pipeline", "agents_pipeline", "agents_front", "agents_cards")
    assert "mcp" not in services.tools.__dict__ and not any(p in services.__dict__ for p in planes)
    assert services.warm() == ["models", "tools", "agents"]
    assert "mcp" in services.tools.__dict__  # what the first call of each pillar built before
    assert all(p in services.__dict__ for p in planes)
    await services.close()

    broken = _services()
    type(broken.tools).mcp.func, real = (lambda self: 1 / 0), type(broken.tools).mcp.func  # type: ignore[attr-defined]
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.services"):
            assert broken.warm() == ["models", "agents"]  # logged; its first call builds it (and reports its error)
    finally:
        type(broken.tools).mcp.func = real  # type: ignore[attr-defined]
    assert "warm-up of the tools plane failed" in caplog.text

    from function_app import build_app
    names = {f.get_function_name(): f.get_trigger().get_binding_name()
             for f in build_app(Settings(), Services(Settings(), store=MemoryDocumentStore())).get_functions()}
    assert names["warmup"] == "warmupTrigger"
