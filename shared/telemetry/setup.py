"""Choosing and starting the exporters, once per worker.

- `azure_monitor`: the Azure Monitor OpenTelemetry distro, to the Application Insights resource named by
  APPLICATIONINSIGHTS_CONNECTION_STRING; with TELEMETRY_ENTRA_AUTH=true ingestion authenticates with the app's
  managed identity (for a resource with local authentication disabled) instead of the connection string's key;
- `otlp`: OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (the exporter reads the standard OTEL_* variables);
- `console`: spans and metrics printed to stdout (local debugging);
- `auto` (default): azure_monitor when a connection string is set, else otlp when an OTLP endpoint is, else console.
The distro also instruments libraries globally; our own spans and metrics come from the providers returned here.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("gateway.telemetry")
SERVICE_NAME = "ai-gateway"


@dataclass(frozen=True)
class Sampling:
    """Which calls' traces are kept: `ratio` (0–1) when set, else at most `per_second` traces per second."""
    ratio: float | None = None
    per_second: float = 5.0

    def sampler(self) -> Any:
        """The tracer provider's sampler for the OTLP and console exporters; a caller's sampled flag is honoured
        (parent-based), the gateway decides for the calls that start a trace."""
        from opentelemetry.sdk.trace.sampling import ParentBased, ParentBasedTraceIdRatio

        if self.ratio is not None:
            return ParentBasedTraceIdRatio(self.ratio)
        from azure.monitor.opentelemetry.exporter.export.trace._rate_limited_sampling import RateLimitedSampler

        return ParentBased(RateLimitedSampler(self.per_second))

    def azure_monitor_options(self) -> dict[str, float]:
        """The distro's own options for the same choice (it builds its sampler itself)."""
        return {"sampling_ratio": self.ratio} if self.ratio is not None else {"traces_per_second": self.per_second}


@dataclass
class Providers:
    tracer_provider: Any
    meter_provider: Any
    exporter: str


def choose(exporter: str, connection_string: str | None, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if exporter != "auto":
        return exporter
    if connection_string:
        return "azure_monitor"
    return "otlp" if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "console"


def start(exporter: str, *, connection_string: str | None, entra_auth: bool, credential: Any = None,
          sampling: Sampling = Sampling()) -> Providers:
    kind = choose(exporter, connection_string)
    if kind == "azure_monitor":
        if entra_auth and credential is None:  # the exporter wants a sync credential (it sends from a thread)
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return _azure_monitor(connection_string, credential if entra_auth else None, sampling)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": SERVICE_NAME})
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        spans, metrics = OTLPSpanExporter(), OTLPMetricExporter()
    else:
        spans, metrics = ConsoleSpanExporter(), ConsoleMetricExporter()
    tracer_provider = TracerProvider(resource=resource, sampler=sampling.sampler())
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))  # exported off the request path
    meter_provider = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(metrics)])
    log.info("telemetry on: %s exporter", kind)
    return Providers(tracer_provider, meter_provider, kind)


def _azure_monitor(connection_string: str | None, credential: Any, sampling: Sampling) -> Providers:
    from azure.monitor.opentelemetry import configure_azure_monitor
    from opentelemetry import metrics, trace

    options: dict[str, Any] = {
        "connection_string": connection_string, **sampling.azure_monitor_options(),
        # Not a span per Tables/Cosmos request (the request log alone would double the span volume); logs already
        # reach Application Insights through the Functions host, so the distro's log export gets its own logger.
        "instrumentation_options": {"azure_sdk": {"enabled": False}}, "logger_name": "gateway.otel"}
    if credential is not None:
        options["credential"] = credential  # Entra ID ingestion (local auth off on the App Insights resource)
    os.environ.setdefault("OTEL_SERVICE_NAME", SERVICE_NAME)
    configure_azure_monitor(**options)
    log.info("telemetry on: Azure Monitor%s", " (Entra ID ingestion)" if credential is not None else "")
    return Providers(trace.get_tracer_provider(), metrics.get_meter_provider(), "azure_monitor")
