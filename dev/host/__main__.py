"""`python -m dev.host` — serve a Functions app locally, like `func start`.

Reads `local.settings.json` (Values become environment variables; the environment wins), then `host.json`,
then imports the app (`function_app:app` by default) and serves it on 127.0.0.1:7071.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

import uvicorn

from .app import LocalHost
from .config import HostConfig, load_local_settings
from .validation import FunctionsInError

LOOPS = ("asyncio", "uvloop")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dev.host", description=__doc__)
    p.add_argument("--root", default=".", help="folder with host.json, local.settings.json and the app")
    p.add_argument("--app", default="function_app:app", help="module:attribute of the func.FunctionApp")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: Host.LocalHttpPort or 7071")
    p.add_argument("--settings", default="local.settings.json")
    p.add_argument("--queue-lease-seconds", type=int, default=60,
                   help="message lease while a queue function runs (re-delivery delay after a crash)")
    p.add_argument("--loop", choices=LOOPS, default=None,
                   help="event loop (default: the LOCAL_HOST_LOOP setting, else asyncio). Azure's Python worker "
                        "runs asyncio (asyncio.run; the HTTP extension serves uvicorn inside that loop), so uvloop "
                        "is opt-in, for comparison only")
    args = p.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The Azure SDKs log every HTTP exchange at INFO; keep the console for the gateway's own messages.
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per upstream call otherwise
    root = Path(args.root).resolve()
    load_local_settings(root / args.settings)
    loop = args.loop or os.environ.get("LOCAL_HOST_LOOP") or "asyncio"
    if loop not in LOOPS:
        p.error(f"LOCAL_HOST_LOOP must be one of {', '.join(LOOPS)}, not {loop!r}")
    sys.path.insert(0, str(root))
    module, _, attr = args.app.partition(":")
    app = getattr(importlib.import_module(module), attr or "app")
    try:
        host = LocalHost(app, HostConfig.load(root / "host.json", os.environ), dict(os.environ),
                         queue_lease_seconds=args.queue_lease_seconds)
    except FunctionsInError as exc:  # what the Functions host would log; it would not serve these functions
        print(exc, file=sys.stderr, flush=True)
        sys.exit(1)
    port = args.port or int(os.environ.get("FUNCTIONS_HTTPWORKER_PORT", 0)) or _settings_port(root / args.settings)
    print(f"Functions ({args.app}):", *host.describe(), sep="\n", flush=True)
    print(f"Local host listening on http://{args.host}:{port} (event loop: {loop})", flush=True)
    # Bounded shutdown: in-flight requests get 10 s, then the process exits (a stuck upstream must not keep a
    # stopped host alive).
    uvicorn.run(host, host=args.host, port=port, log_level="warning", lifespan="on", access_log=False,
                timeout_graceful_shutdown=10, loop=loop)


def _settings_port(path: Path) -> int:
    import json

    if path.exists():
        return int(json.loads(path.read_text()).get("Host", {}).get("LocalHttpPort", 7071))
    return 7071


if __name__ == "__main__":
    main()
