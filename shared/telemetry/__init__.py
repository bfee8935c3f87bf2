"""OpenTelemetry for the gateway (issue 12): exporters (setup), the pipeline's hooks (hooks), trace context to
upstreams (propagation). Off unless TELEMETRY_ENABLED=true; then nothing here is imported on the hot path
except the hooks themselves."""
