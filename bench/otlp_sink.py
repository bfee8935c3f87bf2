"""A tiny OTLP/HTTP receiver for benchmarks with telemetry on (issue 12): answers POST /v1/traces, /v1/metrics and
/v1/logs with 200 and an empty protobuf body (an empty Export*ServiceResponse: full success), counts requests and
bytes per signal, and with --decode (default) the spans, metric data points and log records they carry. It prints
the counts at exit (SIGTERM/SIGINT) and writes them to --out as JSON.

    .venv/bin/python -m bench.otlp_sink --port 4318 --out /tmp/sink.json

Loopback only. Gzip-encoded bodies (OTEL_EXPORTER_OTLP_COMPRESSION=gzip) are inflated before decoding.
"""
from __future__ import annotations

import argparse
import gzip
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNALS = {"/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs"}
MAX_BODY = 64 * 1024 * 1024
MAX_NAMES = 200


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_signal = {s: {"requests": 0, "bytes": 0, "items": 0} for s in SIGNALS.values()}
        self.rejected = 0
        self.undecodable = 0
        self.points_by_metric: dict[str, int] = {}  # metric name -> data points received (bounded by MAX_NAMES)

    def add(self, signal_name: str, size: int, items: int, names: dict[str, int] | None = None) -> None:
        with self.lock:
            for name, n in (names or {}).items():
                if name in self.points_by_metric or len(self.points_by_metric) < MAX_NAMES:
                    self.points_by_metric[name] = self.points_by_metric.get(name, 0) + n
            c = self.by_signal[signal_name]
            c["requests"] += 1
            c["bytes"] += size
            c["items"] += items

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {**{k: dict(v) for k, v in self.by_signal.items()}, "rejected": self.rejected,
                    "undecodable": self.undecodable, "points_by_metric": dict(sorted(self.points_by_metric.items()))}


def count_items(signal_name: str, body: bytes) -> tuple[int, dict[str, int]]:
    """Spans, metric data points or log records in one export request (and the points per metric name)."""
    if signal_name == "traces":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        req = ExportTraceServiceRequest.FromString(body)
        return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans), {}
    if signal_name == "metrics":
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

        req = ExportMetricsServiceRequest.FromString(body)
        names: dict[str, int] = {}
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind:
                        names[m.name] = names.get(m.name, 0) + len(getattr(m, kind).data_points)
        return sum(names.values()), names
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    req = ExportLogsServiceRequest.FromString(body)
    return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs), {}


def handler(counts: Counts, decode: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the exporters' sessions expect

        def do_POST(self) -> None:  # noqa: N802 — the http.server API
            signal_name = SIGNALS.get(self.path.split("?", 1)[0])
            length = int(self.headers.get("content-length") or 0)
            if signal_name is None or not 0 <= length <= MAX_BODY:
                with counts.lock:
                    counts.rejected += 1
                self._reply(404 if signal_name is None else 413)
                return
            body = self.rfile.read(length)
            items, names = 0, None
            if decode:
                try:
                    raw = gzip.decompress(body) if self.headers.get("content-encoding") == "gzip" else body
                    items, names = count_items(signal_name, raw)
                except Exception as exc:  # a malformed body is counted, never fatal to the sink
                    with counts.lock:
                        counts.undecodable += 1
                    print(f"otlp_sink: undecodable {signal_name} body: {exc!r}", file=sys.stderr)
            counts.add(signal_name, length, items, names)
            self._reply(200)

        def _reply(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:  # no line per request
            pass

    return Handler


def serve(port: int, decode: bool = True) -> tuple[ThreadingHTTPServer, Counts]:
    counts = Counts()
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(counts, decode))
    server.daemon_threads = True
    return server, counts


def main(argv: list[str] | None = None) -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--port", type=int, default=4318)
    args.add_argument("--out", help="JSON file written at exit")
    args.add_argument("--no-decode", action="store_true", help="count requests and bytes only")
    a = args.parse_args(argv)
    server, counts = serve(a.port, decode=not a.no_decode)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"otlp_sink: listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()
    result = counts.snapshot()
    print("otlp_sink: " + json.dumps(result), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
