"""An agent exposed as an MCP server, built on the real Python MCP SDK: the `worker` of
tests/e2e/test_agents.py.

Its one tool, `do_task(tool, arguments)`, is what a coordinator calls through warden. warden
forwards the call with its delegation context in `_meta` `io.warden/delegation`
(`{token, session, agent, chain}`): the worker connects back to warden's MCP endpoint with
that token as its bearer — it acts in the child session warden opened for this one call — and
calls `tool` with `arguments` there. It answers with JSON: the context it received (never the
token), the `_meta` keys under `io.warden/` it saw, and the result of its own call.

For the test's leak check only, each token received is appended to `$WORKER_AGENT_TOKENS`
(the test then looks for it in warden's ledger and log, where it must never be).

Usage: python worker_agent.py PORT WARDEN_URL_FILE (the file holds warden's `/mcp` URL,
written by the test once the gateway is up).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer

URL_FILE = Path(sys.argv[2]) if len(sys.argv) > 2 else None
TOKENS = os.environ.get("WORKER_AGENT_TOKENS")

server = MCPServer("worker-agent")


@server.tool()
async def do_task(tool: str, arguments: dict[str, Any], ctx: Context) -> str:
    """Does one step of a task: calls `tool` with `arguments` through warden, as the child
    session of the delegation this call carries."""
    meta = dict(ctx.request_context.meta or {})
    warden_keys = sorted(k for k in meta if k.startswith("io.warden/"))
    delegation = meta.get("io.warden/delegation")
    report: dict[str, Any] = {"warden_keys": warden_keys}
    if not isinstance(delegation, dict) or not isinstance(delegation.get("token"), str):
        report["error"] = "no delegation context in _meta"
        return json.dumps(report)
    token = delegation["token"]
    if TOKENS:
        with open(TOKENS, "a", encoding="utf-8") as f:
            f.write(token + "\n")
    report.update({k: delegation.get(k) for k in ("session", "agent", "chain")})
    assert URL_FILE is not None
    url = URL_FILE.read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)) as http:
            async with streamable_http_client(url, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    listed = await session.list_tools()
                    result = await session.call_tool(tool, arguments)
        report["tools"] = sorted(t.name for t in listed.tools)
        report["is_error"] = bool(result.is_error)
        report["text"] = "\n".join(getattr(c, "text", "") for c in result.content)
    except Exception as e:  # noqa: BLE001 — the coordinator reads what went wrong
        report["error"] = f"{type(e).__name__}: {e}"
    return json.dumps(report)


if __name__ == "__main__":
    app = server.streamable_http_app(json_response=True, stateless_http=True)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
