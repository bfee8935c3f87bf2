#!/usr/bin/env bash
# exec the gateway's local host with the bench settings; used as the harness's CUSTOM_GW_CMD.
# `exec` keeps this PID, so the harness's CPU meter (and our RSS watcher, via PID_FILE) see the gateway itself.
# Usage: gateway.sh ENV_FILE PORT [PID_FILE]      (ENV_FILE is written by `prepare.py up`)
# Event loop: GW_LOOP=asyncio (default: what Azure's Python worker runs -- asyncio.run, with the HTTP extension's
# uvicorn served inside that loop) or GW_LOOP=uvloop (local comparison only; Azure never runs it).
set -euo pipefail
ENV_FILE=$1; PORT=$2; PID_FILE=${3:-}
LOOP=${GW_LOOP:-asyncio}
case "$LOOP" in asyncio|uvloop) ;; *) echo "GW_LOOP must be asyncio or uvloop, not '$LOOP'" >&2; exit 2;; esac
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
set -a; . "$ENV_FILE"; set +a
[ -n "$PID_FILE" ] && echo $$ > "$PID_FILE"
cd "$ROOT"
exec "${GW_PYTHON:-$ROOT/.venv/bin/python}" -m dev.host --root "$ROOT" --port "$PORT" --settings "$GW_SETTINGS" --loop "$LOOP"
