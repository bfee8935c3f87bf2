"""`make run`'s local reference MCP server (official `mcp` Python SDK, streamable HTTP on 127.0.0.1)."""
from __future__ import annotations

import argparse

from mcp.server.mcpserver import MCPServer

GLOSSARY = {"toolbox": "A curated set of approved tools served as one MCP endpoint.",
            "quarantine": "A tool whose definition changed upstream: not listed, not callable until re-approved."}
app = MCPServer("demo-glossary")


@app.tool()
def lookup(term: str) -> str:
    """Looks a term up in the gateway glossary."""
    return GLOSSARY.get(term.lower(), f"No entry for {term!r}.")


@app.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9101)
    app.run("streamable-http", host="127.0.0.1", port=ap.parse_args().port)
