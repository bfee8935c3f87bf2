"""The warmup trigger: Azure invokes `warmup` on each instance that scale-out adds, before the instance gets traffic
(the local host invokes it once at start). It builds the tools data plane — module imports, the MCP client, its TLS
context — which a new instance's first `tools/call` otherwise paid: ~0.9 s measured (docs/benchmarks.md). No network
I/O; a part that fails is logged and built by its first call as before (Azure calls warmup on scale-out only, so a
restarted instance still builds lazily)."""
# No `from __future__ import annotations`: the worker binds the trigger by the parameter's real annotation.
from collections.abc import Callable

import azure.functions as func
from azure.functions.warmup import WarmUpContext  # (listed in azure.functions.__all__ but not exported by 2.x)


def build(warm: Callable[[], list[str]]) -> func.Blueprint:
    bp = func.Blueprint()

    @bp.function_name("warmup")  # Azure: the one warmup function of an app is named `warmup`
    @bp.warm_up_trigger("warmup")
    async def warmup(warmup: WarmUpContext) -> None:  # async: built inside the worker's event loop
        warm()

    return bp
