"""A server on the official `mcp` Python SDK (v2: speaks 2026-07-28 and the 2025 handshake revisions)."""
from __future__ import annotations

import json
import sys
from typing import Annotated

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve
from pydantic import BaseModel, Field

app = MCPServer("sdk-weather")


class Forecast(BaseModel):
    city: str
    celsius: float


@app.tool()
def forecast(city: str, days: int = 1) -> Forecast:
    """Weather forecast for a city (structured output)."""
    return Forecast(city=city, celsius=20.0 + days)


@app.tool()
def shout(text: str) -> str:
    """Upper-cases the text."""
    return text.upper()


@app.tool()
def trace_meta(ctx: Context) -> str:
    """The W3C trace context this request carried in `params._meta` (the gateway's telemetry tests read it)."""
    meta = ctx.request_context.meta or {}
    meta = meta if isinstance(meta, dict) else meta.model_dump()
    return json.dumps({k: meta.get(k) for k in ("traceparent", "tracestate")})


class Confirmation(BaseModel):
    confirm: bool


def _ask(city: str) -> Elicit[Confirmation]:
    return Elicit(f"Book a trip to {city}?", Confirmation)


@app.tool()
def book(city: str, answer: Annotated[Confirmation, Resolve(_ask)]) -> str:
    """Books a trip once the user confirms: a 2026-07-28 client is asked through an InputRequiredResult (and
    answers on its retry), a 2025 one through an elicitation request mid-call."""
    return f"booked {city}" if answer.confirm else f"not booked {city}"


@app.tool()
def route(region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], text: str) -> str:
    """Answers from the region it was routed to: `region` is mirrored in the `Mcp-Param-Region` header, which this
    server (2026-07-28) checks against the body."""
    return f"{region}:{text}"


@app.resource("weather://cities")
def cities() -> str:
    """Cities with forecasts."""
    return "Paris,Berlin"


@app.prompt()
def travel(city: str) -> str:
    """A travel prompt."""
    return f"Plan a trip to {city}."


if __name__ == "__main__":
    app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]), json_response="--json" in sys.argv)
