"""GC pause and event-loop stall probe for the diagnosis phases of bench/run_gateway_bench.sh (never used in the
measured runs). No gateway code changes: put this folder on PYTHONPATH and set

  GC_PROBE_OUT=file.json   every garbage collection of the process is timed (gc.callbacks);
  LOOP_PROBE_MS=3          additionally: uvicorn's "auto" loop becomes the pure-Python asyncio loop (uvloop's
                           callbacks cannot be timed from Python) and every loop callback (a task step, a
                           call_soon/call_later callback) that runs longer than this many ms is recorded with
                           the task or callback it ran, and the time.

The summary is rewritten every 2 s by a daemon thread (uvicorn re-raises SIGTERM after its shutdown, so atexit
handlers do not run).
"""
import collections
import gc
import json
import os
import threading
import time

_OUT = os.environ.get("GC_PROBE_OUT")
if _OUT:
    _start = [0.0]
    _gc_ms = [0.0]  # GC time so far (a slow loop step reports how much of it was GC)
    _pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    _t0 = time.time()
    _timed: collections.deque = collections.deque(maxlen=50_000)  # (unix time, generation, ms) of gen 1 and 2

    def _callback(phase, info):
        if phase == "start":
            _start[0] = time.perf_counter()
        else:
            ms = (time.perf_counter() - _start[0]) * 1000
            _gc_ms[0] += ms
            _pauses[info["generation"]].append(ms)
            if info["generation"]:
                _timed.append((round(time.time(), 3), info["generation"], round(ms, 3)))

    _slow: collections.deque = collections.deque(maxlen=20_000)  # (unix time, ms, what ran)
    _limit_ms = float(os.environ.get("LOOP_PROBE_MS") or 0)
    _depth = int(os.environ.get("LOOP_PROBE_FRAMES") or 6)  # more frames: reach the pillar's code under the host
    if _limit_ms:
        import asyncio.events

        import uvicorn.config

        uvicorn.config.LOOP_FACTORIES["auto"] = uvicorn.config.LOOP_FACTORIES["asyncio"]
        _orig_run = asyncio.events.Handle._run

        def _what(handle) -> str:
            cb = handle._callback
            owner = getattr(cb, "__self__", None)
            if owner is not None and hasattr(owner, "get_coro"):  # a task step: name the coroutine and where it is
                coro = owner.get_coro()
                frames = []
                while coro is not None and len(frames) < _depth:
                    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
                    if code is None:
                        break
                    frames.append(f"{code.co_qualname} ({code.co_filename.rsplit('/', 3)[-2:][0]}/"
                                  f"{code.co_filename.rsplit('/', 1)[-1]})")
                    coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
                return "task " + " > ".join(frames)
            return "callback " + getattr(cb, "__qualname__", repr(cb))[:150]

        # LOOP_PROBE_CLOCK=cpu: time steps in this thread's CPU time, so preemption by other processes on a shared
        # machine does not show up as a slow step (the default, wall time, is what the requests in flight feel).
        _step_clock = time.thread_time if os.environ.get("LOOP_PROBE_CLOCK") == "cpu" else time.perf_counter

        # LOOP_PROBE_STACKS=1: what ran DURING a slow step (the task description above is where it stopped). A
        # SIGPROF timer samples the main thread every 0.5 ms of CPU; a slow step keeps its samples' innermost
        # frames of our code and libraries (the "sampled" field), with the GC time spent inside the step.
        _samples: list[str] = []
        if os.environ.get("LOOP_PROBE_STACKS") == "1":
            import signal

            def _sample(_sig, frame):
                parts = []
                while frame is not None and len(parts) < 4:
                    name = frame.f_code.co_filename
                    if "/asyncio/" not in name and "sitecustomize" not in name:
                        parts.append(f"{frame.f_code.co_qualname}:{'/'.join(name.rsplit('/', 2)[-2:])}:"
                                     f"{frame.f_lineno}")
                    frame = frame.f_back
                if len(_samples) < 10_000:
                    _samples.append(" < ".join(parts))

            signal.signal(signal.SIGPROF, _sample)
            signal.setitimer(signal.ITIMER_PROF, 0.0005, 0.0005)

        def _timed_run(self):
            t, c = _step_clock(), time.thread_time()
            gc0 = _gc_ms[0]
            _samples.clear()
            try:
                return _orig_run(self)
            finally:
                ms = (_step_clock() - t) * 1000
                if ms > _limit_ms:
                    try:
                        # the thread's CPU in the step: far below the step's time = descheduled, not working
                        extra = {"cpu_ms": round((time.thread_time() - c) * 1000, 2)}
                        if _samples or _gc_ms[0] > gc0:
                            extra.update(gc_ms=round(_gc_ms[0] - gc0, 2),
                                         sampled=collections.Counter(_samples).most_common(6))
                        row = [round(time.time(), 3), round(ms, 2), _what(self), extra]
                        _slow.append(tuple(row))
                    except Exception:  # noqa: BLE001
                        pass

        asyncio.events.Handle._run = _timed_run

    def _dump():
        out = {"seconds": round(time.time() - _t0, 1), "thresholds": gc.get_threshold(), "slow_callbacks": list(_slow),
               "loop_probe_ms": _limit_ms}
        for gen, v in _pauses.items():
            v = sorted(v)
            out[f"gen{gen}"] = {"count": len(v), "total_ms": round(sum(v), 1),
                                "max_ms": round(v[-1], 2) if v else None,
                                "p50_ms": round(v[len(v) // 2], 3) if v else None,
                                "over_1ms": sum(1 for x in v if x > 1), "over_3ms": sum(1 for x in v if x > 3)}
        out["timed_gen1_gen2"] = list(_timed)
        with open(_OUT + ".tmp", "w") as f:
            json.dump(out, f)
        os.replace(_OUT + ".tmp", _OUT)

    def _loop():
        while True:
            time.sleep(2)
            try:
                _dump()
            except Exception:  # noqa: BLE001 - a probe must never disturb the process
                pass

    gc.callbacks.append(_callback)
    threading.Thread(target=_loop, name="gc-probe", daemon=True).start()
