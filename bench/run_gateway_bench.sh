#!/usr/bin/env bash
# Benchmark this gateway as users run it locally (dev.emulators + `python -m dev.host`) with the reference
# harness in $SHARED_BENCH (default /work/shared/bench: fake upstream, open-loop generator, wrk, TTFB, LiteLLM
# side by side). The harness's run_all.sh is called unmodified; this script only adds what is ours around it.
#
#   1. emulators (Azurite + Cosmos wire-protocol server) via dev.emulators on free ports, pinned to core 0
#   2. pre-step: a temporary fake upstream (core 0) and the gateway (core 1) on :4100; provisioning through the
#      admin API (project "bench", model "fake-model" -> 127.0.0.1:9001, a key, a quota that never triggers);
#      body.json must come back 200; then both are stopped (the emulators keep the registry and the counters)
#   3. cold start: `import function_app` in 5 fresh processes (core 1), median
#   4. run_all.sh with CUSTOM_GW_CMD = bench/gateway.sh (run_all starts it on core 1, after LiteLLM);
#      a watcher samples the gateway's and LiteLLM's RSS, the emulators' CPU, and the CPU used outside this
#      script's process tree (+ steal): the noise the harness cannot see, reported per run
#   5. PROFILE=1 (default): py-spy on the gateway under PROFILE_RATE req/s open-loop and c=50 closed-loop load
#      (raw + flame graph), GC pauses (bench/gcprobe), and a tail diagnosis run (event-loop stalls > 3 ms)
#   6. report: $RUN/report.md (overhead = gateway - direct of the same run)
#   7. UVLOOP=1 (optional): the harness once more with our gateway on uvloop (no LiteLLM/Portkey), reported
#      separately in $RUN/uvloop/report.md -- a second line for comparison, not what Azure runs
#
# Event loop: the gateway runs on asyncio (GW_LOOP=asyncio, the default), the loop Azure's Python worker runs
# (asyncio.run; the FastAPI HTTP extension serves uvicorn inside it). GW_LOOP=uvloop measures the main run on
# uvloop instead; UVLOOP=1 adds a uvloop run after the asyncio one.
#
# Placement (2 cores): core 0 = fake upstream + load generators + emulators; core 1 = gateway (and LiteLLM,
# which the harness also puts on core 1; the two gateways are loaded one after another, never together).
# The emulators run with SCHED_IDLE (EMU_SCHED=idle, default; EMU_SCHED=normal to compare): Azurite rewrites its
# whole table file every 5 s (126 MB after ~57k logged requests), and at normal priority those bursts delay the
# fake upstream and the load generator on core 0 -- an emulator artefact that inflated our p99 to ~10 ms late in
# a run. In Azure, Tables and Cosmos DB are remote services that use none of the gateway's cores.
#
# Usage: bash bench/run_gateway_bench.sh                  # DUR=10 REPS=3 RATES=25,50,100,200 CONC=10,50 (~14 min)
#        REPS=2 bash bench/run_gateway_bench.sh          # ~11 min
#        DUR=5 REPS=1 PROFILE=0 bash bench/run_gateway_bench.sh   # smoke (~4 min)
#        SKIP_LITELLM=1 ...                              # without the LiteLLM baseline
#        UVLOOP=1 bash bench/run_gateway_bench.sh        # + a second harness run of the gateway on uvloop
#        OVERLOAD=1 ... / ONLY_OVERLOAD=1 ...            # + / only the overload run (c=10..200, bench/overload.py)
#        TELEMETRY=on|sampled|default bash bench/run_gateway_bench.sh   # our gateway with OpenTelemetry on
#
# Telemetry (TELEMETRY=off|on|sampled|default, issue 12): on = TELEMETRY_ENABLED=true, OTLP/HTTP to
# bench/otlp_sink.py, 100 % sampled; sampled = the same at TELEMETRY_SAMPLING_RATIO=0.1; default = the shipped
# sampling (no ratio: at most TELEMETRY_TRACES_PER_SECOND=5 traces/s, every call in the metrics). The sink runs on the load generator's core
# (UP_CPU), the settings reach only our gateway (never LiteLLM/Portkey), and the sink's counts (requests, bytes,
# spans, metric points) land in $RUN/otlp_sink.json at the end (and in env.txt which mode ran).
# Results: $BENCH_WORK/gateway/run-*/ (default BENCH_WORK=/tmp/gw-bench). Loopback only; every process started
# here is stopped on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${SHARED_BENCH:-/work/shared/bench}
export BENCH_WORK=${BENCH_WORK:-/tmp/gw-bench}
WORK=$BENCH_WORK
PY=${GW_PYTHON:-$ROOT/.venv/bin/python}
export DUR=${DUR:-10} REPS=${REPS:-3} RATES=${RATES:-25,50,100,200} CONC=${CONC:-10,50}
export PHASES=${PHASES:-closed,rate,ttfb}
EMU_CPU=${EMU_CPU:-0}; EMU_SCHED=${EMU_SCHED:-idle}; UP_CPU=0; GW_CPU=1    # run_all.sh's defaults (UP_CPU=LG_CPU=0, GW_CPU=1)
GW_PORT=4100; UP_PORT=9001; LL_PORT=4000
export GW_LOOP=${GW_LOOP:-asyncio}; UVLOOP=${UVLOOP:-0}
case "$GW_LOOP" in asyncio|uvloop) ;; *) echo "GW_LOOP must be asyncio or uvloop" >&2; exit 2;; esac
TELEMETRY=${TELEMETRY:-off}; SINK_PORT=${SINK_PORT:-4318}
case "$TELEMETRY" in
  off) TELEMETRY_ENV="" ;;  # the gateway's default (telemetry off): nothing passed
  on|sampled|default) TELEMETRY_ENV="TELEMETRY_ENABLED=true TELEMETRY_EXPORTER=otlp"
    TELEMETRY_ENV+=" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT"
    case "$TELEMETRY" in on) TELEMETRY_ENV+=" TELEMETRY_SAMPLING_RATIO=1.0";;
                         sampled) TELEMETRY_ENV+=" TELEMETRY_SAMPLING_RATIO=0.1";; esac ;;
  *) echo "TELEMETRY must be off, on, sampled or default" >&2; exit 2;;
esac
PROFILE=${PROFILE:-1}; PROFILE_RATE=${PROFILE_RATE:-200}; PROFILE_DUR=${PROFILE_DUR:-10}
STALL_WARM=${STALL_WARM:-20}; STALL_DUR=${STALL_DUR:-40}
RUN=${RUN:-$WORK/gateway/run-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$RUN"
echo "run dir: $RUN"

PIDS=()
cleanup() {
  local i p
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] && { timeout 20 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null || true; }
  done
  PIDS=()
  # gateways started by run_all.sh (or left by a hung shutdown): by their recorded PIDs only
  for f in "$RUN"/*.pid "$RUN"/uvloop/*.pid; do
    [ -f "$f" ] || continue; p=$(cat "$f")
    if [ -n "$p" ] && grep -q "dev.host" "/proc/$p/cmdline" 2>/dev/null; then
      echo "gateway $p ($(basename "$f")) still running: SIGKILL" >&2; kill -9 "$p" 2>/dev/null || true
    fi
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop_pid() {  # stop one process we started and forget it (SIGKILL if it has not exited after 20 s)
  kill "$1" 2>/dev/null || true
  timeout 20 tail --pid="$1" -f /dev/null 2>/dev/null || {
    echo "pid $1 did not exit within 20 s of SIGTERM: SIGKILL" | tee -a "$RUN/hung-shutdowns.txt" >&2
    kill -9 "$1" 2>/dev/null || true; }
  local keep=() p; for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done; PIDS=("${keep[@]:-}")
}
wait_http() {  # url seconds [pid that must stay alive]
  for _ in $(seq 1 "$2"); do
    curl -s -o /dev/null -m 2 "$1" && return 0
    [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && { echo "process $3 exited while waiting for $1" >&2; return 1; }
    sleep 1
  done
  echo "timeout waiting for $1" >&2; return 1
}
busy_port() { curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/" && { echo "port $1 already in use" >&2; exit 1; } || true; }

# ---- 0. harness venvs, wrk, py-spy
if [ ! -x "$WORK/venv-up/bin/python" ] || [ ! -x "$WORK/venv/bin/litellm" ] || ! command -v wrk >/dev/null; then
  bash "$SHARED/setup.sh"
fi
if [ "$PROFILE" = 1 ] && [ ! -x "$WORK/venv-prof/bin/py-spy" ]; then
  python3 -m venv "$WORK/venv-prof" && "$WORK/venv-prof/bin/pip" install -q py-spy
fi
for p in $GW_PORT $UP_PORT $LL_PORT; do busy_port "$p"; done
{ echo "date: $(date -Is)"; echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) (+ uncommitted:"
  git -C "$ROOT" status --porcelain 2>/dev/null | grep -v ' bench/' | sed 's/^/   /' || true; echo ")"
  echo "gateway python: $($PY -V)"; "$PY" -m pip freeze 2>/dev/null | grep -iE '^(uvicorn|starlette|uvloop|httptools|httpx|orjson|pydantic|azure-data-tables|azure-cosmos|tiktoken)=' || true
  echo "node: $(node -v)"; echo "loadavg: $(cat /proc/loadavg)"; echo "PYTHONDONTWRITEBYTECODE=${PYTHONDONTWRITEBYTECODE:-}"
  echo "DUR=$DUR REPS=$REPS RATES=$RATES CONC=$CONC PHASES=$PHASES EMU_CPU=$EMU_CPU EMU_SCHED=$EMU_SCHED GW_CPU=$GW_CPU"
  echo "gateway event loop: GW_LOOP=$GW_LOOP (UVLOOP=$UVLOOP: second run on uvloop)"
  echo "telemetry: TELEMETRY=$TELEMETRY ($TELEMETRY_ENV)"; } > "$RUN/env.txt"

# ---- 1. emulators on core EMU_CPU (prepare.py pins itself first; the node children inherit it)
taskset -c "$EMU_CPU" "$PY" "$HERE/prepare.py" up --dir "$RUN" --cpu "$EMU_CPU" --sched "$EMU_SCHED" > "$RUN/emulators.log" 2>&1 &
EMU_PID=$!; PIDS+=("$EMU_PID")
for _ in $(seq 1 120); do
  [ -f "$RUN/gw.env" ] && break
  kill -0 "$EMU_PID" 2>/dev/null || { cat "$RUN/emulators.log"; exit 1; }
  sleep 0.5
done
[ -f "$RUN/gw.env" ] || { echo "emulators did not come up"; cat "$RUN/emulators.log"; exit 1; }
cat "$RUN/emulators.log"

start_upstream() {
  taskset -c "$UP_CPU" "$WORK/venv-up/bin/uvicorn" --app-dir "$SHARED" fake_upstream:app --host 127.0.0.1 \
    --port $UP_PORT --no-access-log --log-level warning --loop uvloop --http httptools > "$RUN/$1-upstream.log" 2>&1 &
  UPS_PID=$!; PIDS+=("$UPS_PID")
  wait_http "http://127.0.0.1:$UP_PORT/health" 30 "$UPS_PID"
}
start_gateway() {  # name [VAR=value ...] (extra environment; the telemetry settings except for the pre-step)
  local name=$1; shift
  local tel=(); [ "$name" != pre ] && read -ra tel <<< "$TELEMETRY_ENV"
  taskset -c "$GW_CPU" env "${tel[@]}" "$@" bash "$HERE/gateway.sh" "$RUN/gw.env" $GW_PORT "$RUN/$name.pid" > "$RUN/$name-gateway.log" 2>&1 &
  GWP_PID=$!; PIDS+=("$GWP_PID")
  wait_http "http://127.0.0.1:$GW_PORT/healthz" 120 "$GWP_PID"
}

# ---- telemetry sink (TELEMETRY=on|sampled): on the load generator's core, for the whole run; counts at exit
SINK_PID=
if [ "$TELEMETRY" != off ]; then
  busy_port "$SINK_PORT"
  taskset -c "$UP_CPU" "$PY" "$HERE/otlp_sink.py" --port "$SINK_PORT" --out "$RUN/otlp_sink.json" \
    > "$RUN/otlp_sink.log" 2>&1 &
  SINK_PID=$!; PIDS+=("$SINK_PID")
  for _ in $(seq 1 50); do grep -q listening "$RUN/otlp_sink.log" 2>/dev/null && break; sleep 0.2; done
  grep -q listening "$RUN/otlp_sink.log" || { echo "otlp sink did not start"; cat "$RUN/otlp_sink.log"; exit 1; }
fi
stop_sink() {  # the sink writes its counts when it stops (after the last gateway has flushed on shutdown)
  [ -n "$SINK_PID" ] || return 0
  stop_pid "$SINK_PID"; SINK_PID=
  local line; line="otlp sink (TELEMETRY=$TELEMETRY): $(tr -d ' \n' < "$RUN/otlp_sink.json" 2>/dev/null)"
  echo "$line" | tee -a "$RUN/env.txt"
  [ -f "$RUN/report.md" ] && printf '\n%s\n' "$line" >> "$RUN/report.md"
  return 0
}

# ---- 2. provisioning pre-step
start_upstream pre
start_gateway pre
"$PY" "$HERE/prepare.py" provision --gw "http://127.0.0.1:$GW_PORT" --env "$RUN/gw.env" --out "$RUN/key.txt"
stop_pid "$GWP_PID"; stop_pid "$UPS_PID"
SECRET=$(cat "$RUN/key.txt")

# ---- overload run (OVERLOAD=1 after everything else; ONLY_OVERLOAD=1 instead of steps 3-7): closed loop at
#      OVERLOAD_CONC (default 10,50,100,200) against a gateway started with OVERLOAD_ENV (a small admission limit,
#      so shedding shows on one core); bench/overload.py reports served/shed calls per second, their latencies,
#      and the gateway's /readyz admission counters -> $RUN/overload.json, $RUN/overload.txt (docs/runbook.md)
OVERLOAD_ENV=${OVERLOAD_ENV:-GATEWAY_MAX_IN_FLIGHT=16 GATEWAY_ADMISSION_QUEUE=16 GATEWAY_ADMISSION_WAIT_MS=100}
overload_run() {
  for p in $GW_PORT $UP_PORT; do busy_port "$p"; done
  start_upstream overload
  # shellcheck disable=SC2086  # OVERLOAD_ENV is a list of VAR=value words
  start_gateway overload $OVERLOAD_ENV
  taskset -c "$UP_CPU" "$PY" "$HERE/overload.py" --url "http://127.0.0.1:$GW_PORT/v1/chat/completions" \
    --auth "Bearer $SECRET" --body "$SHARED/body.json" -c "${OVERLOAD_CONC:-10,50,100,200}" -d "${OVERLOAD_DUR:-10}" \
    --out "$RUN/overload.json" | tee "$RUN/overload.txt"
  echo "gateway settings: $OVERLOAD_ENV" >> "$RUN/overload.txt"
  stop_pid "$GWP_PID"; stop_pid "$UPS_PID"
}
if [ "${ONLY_OVERLOAD:-0}" = 1 ]; then overload_run; stop_sink; echo "overload: $RUN/overload.txt"; exit 0; fi

# ---- 3. cold start (quiet machine, core GW_CPU)
"$PY" "$HERE/prepare.py" coldstart -n 5 --cpu "$GW_CPU" --python "$PY" --env "$RUN/gw.env" --importtime \
  --pycache "$RUN/pycache" --out "$RUN/coldstart.json" | cut -c1-400

# ---- 4. the reference harness, with our gateway as the custom gateway
"$PY" "$HERE/prepare.py" watch --pid-file "$RUN/gw.pid" --emu "$RUN/emulators.json" --root-pid $$ \
  --out "$RUN/watch.json" &
PIDS+=("$!"); W1=$!
W2=
if [ -z "${SKIP_LITELLM:-}" ]; then
  "$PY" "$HERE/prepare.py" watch --port $LL_PORT --out "$RUN/litellm_watch.json" & PIDS+=("$!"); W2=$!
fi
set +e
OUT="$RUN/harness" CUSTOM_GW_NAME=ours \
  CUSTOM_GW_CMD="env $TELEMETRY_ENV bash $HERE/gateway.sh $RUN/gw.env $GW_PORT $RUN/gw.pid" \
  CUSTOM_GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions" CUSTOM_GW_AUTH="Bearer $SECRET" \
  CUSTOM_GW_HEALTH="http://127.0.0.1:$GW_PORT/healthz" \
  timeout 1800 bash "$SHARED/run_all.sh" 2>&1 | tee "$RUN/harness.log"
rc=${PIPESTATUS[0]}
set -e
stop_pid "$W1"; [ -n "$W2" ] && stop_pid "$W2"
[ "$rc" = 0 ] || { echo "run_all.sh failed ($rc)"; exit "$rc"; }

# ---- 5. profile under load (the harness has stopped its processes; same placement): open loop at
#      PROFILE_RATE req/s, then closed loop (wrk, c=PROFILE_CONC). py-spy samples without pausing the gateway;
#      bench/gcprobe times every garbage collection of this (unmeasured) gateway process. Then a tail diagnosis:
#      a fresh gateway on the asyncio loop records every loop callback > 3 ms (what ran, how long, GC or not).
spy() {  # name seconds: a raw profile (for prepare.py profile-summary) and a flame graph, one after the other
  local f
  for f in raw flamegraph; do
    taskset -c "$UP_CPU" timeout $(($2 + 30)) "$WORK/venv-prof/bin/py-spy" record --nonblocking -r 200 -d "$2" \
      -f $f -o "$RUN/$1.$([ $f = raw ] && echo raw || echo svg)" --pid "$GPID" >> "$RUN/py-spy.log" 2>&1 || true
  done
  [ -s "$RUN/$1.raw" ] && "$PY" "$HERE/prepare.py" profile-summary "$RUN/$1.raw" --top 20 > "$RUN/$1-summary.txt"
  return 0
}
if [ "$PROFILE" = 1 ]; then
  for p in $GW_PORT $UP_PORT; do busy_port "$p"; done
  start_upstream prof
  start_gateway prof PYTHONPATH="$HERE/gcprobe" GC_PROBE_OUT="$RUN/gc-prof.json"
  GPID=$(cat "$RUN/prof.pid")
  URL="http://127.0.0.1:$GW_PORT/v1/chat/completions"
  curl -s -o /dev/null -m 10 "$URL" -H 'content-type: application/json' -H "Authorization: Bearer $SECRET" \
    -d @"$SHARED/body.json"
  AUTH="Bearer $SECRET" timeout 30 taskset -c "$UP_CPU" wrk -t1 -c10 -d5s -s "$SHARED/post.lua" "$URL" > /dev/null
  taskset -c "$UP_CPU" "$WORK/venv-up/bin/python" "$SHARED/openloop.py" --url "$URL" --auth "Bearer $SECRET" \
    --rate "$PROFILE_RATE" --duration $((2 * PROFILE_DUR + 4)) > "$RUN/prof-rate-load.json" &
  LOAD=$!; PIDS+=("$LOAD"); T0=$(date +%s.%N)
  sleep 2; spy prof-rate "$PROFILE_DUR"
  timeout 60 tail --pid="$LOAD" -f /dev/null || true
  echo "{\"t0\": $T0, \"t1\": $(date +%s.%N), \"rate\": $PROFILE_RATE}" > "$RUN/prof-rate-window.json"
  echo "profile load (open loop): $(cut -c1-240 "$RUN/prof-rate-load.json")"
  AUTH="Bearer $SECRET" timeout $((2 * PROFILE_DUR + 40)) taskset -c "$UP_CPU" wrk -t1 -c"${PROFILE_CONC:-50}" \
    -d$((2 * PROFILE_DUR + 4))s -s "$SHARED/post.lua" "$URL" > "$RUN/prof-closed-load.txt" &
  LOAD=$!; PIDS+=("$LOAD")
  sleep 2; spy prof-closed "$PROFILE_DUR"
  timeout 60 tail --pid="$LOAD" -f /dev/null || true
  echo "profile load (closed loop): $(grep -o '"requests":[0-9]*,"duration_us":[0-9]*' "$RUN/prof-closed-load.txt")"
  for f in prof-rate prof-closed; do echo "== $f"; head -22 "$RUN/$f-summary.txt" 2>/dev/null; done
  sleep 2; stop_pid "$GWP_PID"  # the probe rewrites its file every 2 s
  # tail diagnosis: a fresh gateway on the pure-Python asyncio loop with every loop callback > 3 ms recorded
  start_gateway stall GW_LOOP=asyncio PYTHONPATH="$HERE/gcprobe" GC_PROBE_OUT="$RUN/gc-stall.json" LOOP_PROBE_MS=3
  curl -s -o /dev/null -m 10 "$URL" -H 'content-type: application/json' -H "Authorization: Bearer $SECRET" \
    -d @"$SHARED/body.json"
  # age the process first (~STALL_WARM s of closed-loop load), as in the harness, where the rate phase comes late
  AUTH="Bearer $SECRET" timeout $((STALL_WARM + 30)) taskset -c "$UP_CPU" wrk -t1 -c10 -d${STALL_WARM}s \
    -s "$SHARED/post.lua" "$URL" > /dev/null
  T0=$(date +%s.%N)
  taskset -c "$UP_CPU" "$WORK/venv-up/bin/python" "$SHARED/openloop.py" --url "$URL" --auth "Bearer $SECRET" \
    --rate "$PROFILE_RATE" --duration "$STALL_DUR" > "$RUN/stall-load.json"
  echo "{\"t0\": $T0, \"t1\": $(date +%s.%N), \"rate\": $PROFILE_RATE}" > "$RUN/stall-window.json"
  sleep 2.5
  "$PY" "$HERE/prepare.py" stall-summary "$RUN/gc-stall.json" "$RUN/stall-window.json" || true
  stop_pid "$GWP_PID"; stop_pid "$UPS_PID"
fi

[ "${OVERLOAD:-0}" = 1 ] && overload_run

# ---- 6. report
"$PY" "$HERE/prepare.py" report --run "$RUN"
echo "results: $RUN (report.md, harness/summary.txt, harness/results.jsonl, coldstart.json, prof-*.svg)"

# ---- 7. optional second line: the same harness, our gateway on uvloop (local comparison; Azure runs asyncio)
if [ "$UVLOOP" = 1 ]; then
  for p in $GW_PORT $UP_PORT; do busy_port "$p"; done
  mkdir -p "$RUN/uvloop"; cp "$RUN/coldstart.json" "$RUN/uvloop/" 2>/dev/null || true
  "$PY" "$HERE/prepare.py" watch --pid-file "$RUN/uvloop/gw.pid" --emu "$RUN/emulators.json" --root-pid $$ \
    --out "$RUN/uvloop/watch.json" &
  PIDS+=("$!"); W1=$!
  set +e
  OUT="$RUN/uvloop/harness" CUSTOM_GW_NAME=ours SKIP_LITELLM=1 SKIP_PORTKEY=1 \
    CUSTOM_GW_CMD="env GW_LOOP=uvloop $TELEMETRY_ENV bash $HERE/gateway.sh $RUN/gw.env $GW_PORT $RUN/uvloop/gw.pid" \
    CUSTOM_GW_URL="http://127.0.0.1:$GW_PORT/v1/chat/completions" CUSTOM_GW_AUTH="Bearer $SECRET" \
    CUSTOM_GW_HEALTH="http://127.0.0.1:$GW_PORT/healthz" \
    timeout 1800 bash "$SHARED/run_all.sh" 2>&1 | tee "$RUN/uvloop/harness.log"
  rc=${PIPESTATUS[0]}
  set -e
  stop_pid "$W1"
  [ "$rc" = 0 ] || { echo "run_all.sh (uvloop) failed ($rc)"; exit "$rc"; }
  "$PY" "$HERE/prepare.py" report --run "$RUN/uvloop"
  echo "uvloop line: $RUN/uvloop/report.md"
fi
stop_sink
