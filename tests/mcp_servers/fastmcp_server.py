"""A server on `fastmcp` (streamable HTTP)."""
from __future__ import annotations

import sys

from fastmcp import FastMCP

app = FastMCP("fastmcp-math")


@app.tool
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@app.tool
def wire_transfer(account: str, amount: int) -> str:
    """Moves money (a sensitive tool in the tests)."""
    return f"sent {amount} to {account}"


@app.tool
def big(size: int) -> str:
    """Returns `size` characters."""
    return "x" * size


if __name__ == "__main__":
    app.run("http", host="127.0.0.1", port=int(sys.argv[1]), path="/mcp", show_banner=False)
