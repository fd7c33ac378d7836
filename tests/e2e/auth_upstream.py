"""A Streamable HTTP MCP server built on the real Python MCP SDK that demands a bearer token:
every request without `Authorization: Bearer $AUTH_UPSTREAM_TOKEN` gets 401, and the
`Authorization` header of every request is appended to the file `$AUTH_UPSTREAM_SEEN`. Its
tools: `echo` (returns `text`) and `whoami` (returns the `Authorization` header it was called
with, so a test can check what an agent would see of it).

Usage: python auth_upstream.py PORT
"""

from __future__ import annotations

import os
import sys
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.responses import Response

EXPECTED = "Bearer " + os.environ["AUTH_UPSTREAM_TOKEN"]
SEEN = os.environ["AUTH_UPSTREAM_SEEN"]

server = MCPServer("auth-upstream")


@server.tool()
def echo(text: str) -> str:
    """Returns its `text` argument."""
    return text


@server.tool()
def whoami(ctx: Context) -> str:
    """Returns the `Authorization` header of the call."""
    return dict(ctx.headers or {}).get("authorization", "")


class RequireBearer:
    """Refuses, with 401, every HTTP request without the expected bearer token."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            got = headers.get("authorization", "")
            with open(SEEN, "a", encoding="utf-8") as f:
                f.write(got + "\n")
            if got != EXPECTED:
                await Response(status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


if __name__ == "__main__":
    app = server.streamable_http_app(json_response=True, stateless_http=True)
    uvicorn.run(RequireBearer(app), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
