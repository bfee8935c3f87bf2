"""A real MCP server on the official `mcp` Python SDK, for the approval/pinning tests. `argv[1]`: port. The
description of `lookup` comes from TOOL_DESCRIPTION, so a test can change it "upstream" by restarting."""
from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

app = MCPServer("tools-ops-test")


@app.tool(description=os.environ.get("TOOL_DESCRIPTION", "Look a word up in the glossary."))
def lookup(word: str) -> str:
    return f"{word}: a term of the glossary"


@app.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
