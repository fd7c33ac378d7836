"""The MCP protocol the agent frameworks' clients speak, against a real `warden serve`.

The MCP Python SDK 2.x (which the OpenAI Agents SDK runs on) talks protocol 2026-07-28 without
`initialize`: each request carries the version and the client's info in `_meta` and in
headers, and each result must carry `resultType`. The other suites' clients negotiate an older
version with `initialize`; these requests are written out by hand, and every answer is checked
with the MCP SDK's own validator.
"""

from __future__ import annotations

from typing import Any

import httpx2
from conftest import Gateway
from mcp_types.methods import validate_server_result

#: The protocol version the MCP SDK 2.x (under the Agents SDK) negotiates with `server/discover`.
STATELESS_PROTOCOL = "2026-07-28"


def post_stateless(gw: Gateway, token: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One request of protocol 2026-07-28 (no `initialize`: the version, the client's info and
    capabilities travel in `_meta` and headers); returns the JSON-RPC `result`."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": STATELESS_PROTOCOL,
        "io.modelcontextprotocol/clientInfo": {"name": "e2e", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": STATELESS_PROTOCOL,
        "Mcp-Method": method,
    }
    named = {"tools/call": "name", "resources/read": "uri"}.get(method)
    if named:
        headers["Mcp-Name"] = params[named]
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}
    r = httpx2.post(gw.mcp_url, json=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert "result" in answer, answer
    return answer["result"]


def test_forwarded_results_are_valid_for_clients_of_protocol_2026_07_28(gateway: Gateway) -> None:
    """Issue 11, point 5 (found running the Agents SDK): an upstream on an older protocol
    answers without `resultType`, which protocol 2026-07-28 requires, and warden relayed its
    results as they came, so the MCP SDK 2.x behind the Agents SDK rejected every forwarded
    tool result ("Error invoking MCP tool"; warden's own refusals passed). Each answer is
    checked with the MCP SDK's own validator."""
    token = gateway.open_session()
    listed = post_stateless(gateway, token, "tools/list", {})
    validate_server_result("tools/list", STATELESS_PROTOCOL, listed)
    names = [t["name"] for t in listed["tools"]]
    echo = [n for n in names if n in ("everything.echo", "everything__echo")]
    assert len(echo) == 1, names

    called = post_stateless(
        gateway, token, "tools/call", {"name": echo[0], "arguments": {"message": "hello"}}
    )
    validate_server_result("tools/call", STATELESS_PROTOCOL, called)
    assert called["resultType"] == "complete"
    assert called["content"][0]["text"] == "Echo: hello"

    uri = "demo://resource/static/document/architecture.md"
    read = post_stateless(gateway, token, "resources/read", {"uri": uri})
    validate_server_result("resources/read", STATELESS_PROTOCOL, read)
    assert read["resultType"] == "complete"
    assert read["contents"][0]["uri"] == uri
