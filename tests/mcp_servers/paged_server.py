"""A `fastmcp` server (streamable HTTP) that pages every list two items at a time (`list_page_size`): five
resources, three resource templates, three prompts, one tool. The toolbox must follow `nextCursor` to show them
all (tests/integration/test_mcp_passthrough.py)."""
from __future__ import annotations

import sys

from fastmcp import FastMCP

app = FastMCP("fastmcp-paged", list_page_size=2)


@app.tool
def ping() -> str:
    """Answers pong."""
    return "pong"


def _note(i: int) -> None:
    @app.resource(f"notes://note/{i}", name=f"note-{i}", mime_type="text/plain")
    def note() -> str:
        return f"note number {i}"


def _template(kind: str) -> None:
    @app.resource(f"{kind}://item/{{item_id}}", name=f"{kind}-item")
    def item(item_id: str) -> str:
        return f"{kind} {item_id}"


def _prompt(i: int) -> None:
    @app.prompt(name=f"greet-{i}")
    def greet(who: str) -> str:
        return f"Greeting {i} for {who}."


for n in range(1, 6):
    _note(n)
for k in ("alpha", "beta", "gamma"):
    _template(k)
for n in range(1, 4):
    _prompt(n)


if __name__ == "__main__":
    app.run("http", host="127.0.0.1", port=int(sys.argv[1]), path="/mcp", show_banner=False)
