"""The MCP client configurations of docs/integrations.md (Claude Desktop, Claude Code, Cursor,
VS Code): each snippet is valid against its client's documented schema (written down below as
a JSON schema, citing the documentation), and each is used as written — the stdio command line,
which must start `warden connect`, or the Streamable HTTP URL and headers — with the client's
own variable substitution, for an MCP `initialize` and `tools/list` against a real gateway."""

from __future__ import annotations

import os
import re
import shlex
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import anyio
import httpx2
import jsonschema
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO, WARDEN_BIN, Gateway, mcp_error_in

pytestmark = pytest.mark.anyio

DOC = REPO / "docs" / "integrations.md"
#: The gateway address the snippets are written for.
DOC_AGENT_URL = "http://127.0.0.1:8700"

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_ARGS = {"type": "array", "items": {"type": "string"}}

#: Claude Desktop, `claude_desktop_config.json`: `mcpServers` → `{command, args, env}` (local
#: servers only). https://modelcontextprotocol.io/docs/develop/connect-local-servers
CLAUDE_DESKTOP = {
    "type": "object",
    "required": ["mcpServers"],
    "properties": {
        "mcpServers": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["command"],
                "additionalProperties": False,
                "properties": {"command": {"type": "string"}, "args": _ARGS, "env": _STRINGS},
            },
        }
    },
}

#: Claude Code, `.mcp.json` / `~/.claude.json`: `mcpServers` → `{type: stdio, command, args,
#: env}` or `{type: http, url, headers}`; `${VAR}` expanded from the environment.
#: https://docs.anthropic.com/en/docs/claude-code/mcp
CLAUDE_CODE = {
    "type": "object",
    "required": ["mcpServers"],
    "properties": {
        "mcpServers": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["command"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "stdio"},
                            "command": {"type": "string"},
                            "args": _ARGS,
                            "env": _STRINGS,
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type", "url"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "http"},
                            "url": {"type": "string"},
                            "headers": _STRINGS,
                        },
                    },
                ]
            },
        }
    },
}

#: Cursor, `~/.cursor/mcp.json` / `.cursor/mcp.json`: `mcpServers` → `{command, args, env}` or
#: `{url, headers}`; `${env:NAME}` read from the environment. https://cursor.com/docs/context/mcp
CURSOR = {
    "type": "object",
    "required": ["mcpServers"],
    "properties": {
        "mcpServers": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["command"],
                        "additionalProperties": False,
                        "properties": {"command": {"type": "string"}, "args": _ARGS, "env": _STRINGS},
                    },
                    {
                        "type": "object",
                        "required": ["url"],
                        "additionalProperties": False,
                        "properties": {"url": {"type": "string"}, "headers": _STRINGS},
                    },
                ]
            },
        }
    },
}

#: VS Code, `.vscode/mcp.json`: `servers` → `{type: stdio, command, args, env}` or `{type:
#: http, url, headers}`; `inputs` → `{type: promptString, id, description, password}`, used as
#: `${input:ID}`. https://code.visualstudio.com/docs/copilot/reference/mcp-configuration
VSCODE = {
    "type": "object",
    "required": ["servers"],
    "additionalProperties": False,
    "properties": {
        "inputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "id"],
                "additionalProperties": False,
                "properties": {
                    "type": {"enum": ["promptString", "pickString"]},
                    "id": {"type": "string"},
                    "description": {"type": "string"},
                    "password": {"type": "boolean"},
                },
            },
        },
        "servers": {
            "type": "object",
            "additionalProperties": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "command"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"const": "stdio"},
                            "command": {"type": "string"},
                            "args": _ARGS,
                            "env": _STRINGS,
                        },
                    },
                    {
                        "type": "object",
                        "required": ["type", "url"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"enum": ["http", "sse"]},
                            "url": {"type": "string"},
                            "headers": _STRINGS,
                        },
                    },
                ]
            },
        },
    },
}


def snippets() -> dict[str, str]:
    """`<!-- snippet: NAME -->` followed by a fenced block, in docs/integrations.md."""
    found = re.findall(r"<!-- snippet: ([\w-]+) -->\n```\w+\n(.*?)```", DOC.read_text(), re.S)
    return {name: body for name, body in found}


def client_config(name: str) -> dict[str, Any]:
    import json

    return json.loads(snippets()[name])


# Each client's substitution of the token, as its documentation describes it.
def desktop(value: str, token: str) -> str:
    return value.replace("wa_…", token)


def claude_code(value: str, token: str) -> str:
    return value.replace("${WARDEN_TOKEN}", token)


def cursor(value: str, token: str) -> str:
    return value.replace("${env:WARDEN_TOKEN}", token)


def vscode(value: str, token: str) -> str:
    return value.replace("${input:warden-token}", token)


CASES: list[tuple[str, dict[str, Any], str, Callable[[str, str], str]]] = [
    ("claude-desktop-stdio", CLAUDE_DESKTOP, "mcpServers", desktop),
    ("claude-code-stdio", CLAUDE_CODE, "mcpServers", claude_code),
    ("claude-code-http", CLAUDE_CODE, "mcpServers", claude_code),
    ("cursor-stdio", CURSOR, "mcpServers", cursor),
    ("cursor-http", CURSOR, "mcpServers", cursor),
    ("vscode-stdio", VSCODE, "servers", vscode),
    ("vscode-http", VSCODE, "servers", vscode),
]


def test_every_client_has_both_snippets_and_they_match_their_schemas() -> None:
    found = snippets()
    assert set(found) == {c[0] for c in CASES} | {"claude-code-stdio-cli", "claude-code-http-cli"}
    for name, schema, key, _ in CASES:
        config = client_config(name)
        jsonschema.validate(config, schema)
        (server,) = config[key].values()
        text = found[name]
        if name != "claude-desktop-stdio":
            # The token is read from the environment or asked for, never written in the file.
            assert "wa_" not in text.replace("(wa_…)", ""), name
        if "command" in server:
            assert [server["command"], *server["args"][:1]] == ["warden", "connect"], name
            assert "--token" not in server["args"], f"{name}: the token goes in the environment"
        else:
            assert server["url"] == f"{DOC_AGENT_URL}/mcp", name
            assert server["headers"]["Authorization"].startswith("Bearer "), name


def test_a_schema_refuses_what_its_client_would_not_read() -> None:
    """The schemas are not vacuous: the usual mistakes are refused."""
    bad = [
        (CLAUDE_DESKTOP, {"mcpServers": {"w": {"url": "http://x/mcp"}}}),  # no remote servers
        (VSCODE, {"mcpServers": {"w": {"type": "stdio", "command": "warden"}}}),  # VS Code: `servers`
        (CURSOR, {"mcpServers": {"w": {"command": "warden", "url": "http://x"}}}),
        (CLAUDE_CODE, {"mcpServers": {"w": {"url": "http://x/mcp"}}}),  # http needs `type`
    ]
    for schema, config in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(config, schema)


@asynccontextmanager
async def stdio_session(command: str, args: list[str], env: dict[str, str]) -> AsyncIterator[ClientSession]:
    # `warden` is found on the PATH, as the snippets expect.
    path = f"{WARDEN_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    params = StdioServerParameters(command=command, args=args, env={**env, "PATH": path})
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                yield session


def _at(gw: Gateway, value: str) -> str:
    return value.replace(DOC_AGENT_URL, gw.agent_url)


async def _tools(session: ClientSession) -> list[str]:
    return sorted(t.name for t in (await session.list_tools()).tools)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_each_snippet_initializes_and_lists_tools_with_a_real_gateway(
    gateway: Gateway, case: tuple[str, dict[str, Any], str, Callable[[str, str], str]]
) -> None:
    name, _, key, substitute = case
    token = gateway.open_session()
    (server,) = client_config(name)[key].values()
    if "command" in server:
        env = {k: substitute(v, token) for k, v in server.get("env", {}).items()}
        args = [_at(gateway, a) for a in server["args"]]
        async with stdio_session(server["command"], args, env) as session:
            tools = await _tools(session)
    else:
        headers = {k: substitute(v, token) for k, v in server["headers"].items()}
        async with http_session(_at(gateway, server["url"]), headers) as session:
            tools = await _tools(session)
    assert tools, name
    assert all("get-env" not in t for t in tools), tools  # prohibited outright: not listed


async def test_the_claude_code_command_lines_work(gateway: Gateway) -> None:
    token = gateway.open_session()
    found = snippets()
    stdio = shlex.split(found["claude-code-stdio-cli"].replace('"$WARDEN_TOKEN"', token))
    assert stdio[:3] == ["claude", "mcp", "add"]
    command = stdio[stdio.index("--") + 1 :]
    assert command[:2] == ["warden", "connect"]
    env = dict(stdio[i + 1].split("=", 1) for i, a in enumerate(stdio) if a == "--env")
    assert env == {"WARDEN_TOKEN": token}
    async with stdio_session(command[0], [_at(gateway, a) for a in command[1:]], env) as session:
        assert await _tools(session)

    http = shlex.split(found["claude-code-http-cli"].replace("$WARDEN_TOKEN", token))
    assert http[:5] == ["claude", "mcp", "add", "--transport", "http"]
    url = http[6]
    header = http[http.index("--header") + 1]
    key, value = (part.strip() for part in header.split(":", 1))
    async with http_session(_at(gateway, url), {key: value}) as session:
        assert await _tools(session)


async def test_a_snippet_with_a_wrong_token_fails_at_initialize(gateway: Gateway) -> None:
    """A configuration with a forged token (or a stale one) gets nowhere, on both transports."""
    forged = "wa_" + "C" * 43
    (server,) = client_config("claude-desktop-stdio")["mcpServers"].values()
    env = {"WARDEN_TOKEN": forged}
    with pytest.raises(BaseException) as stdio_err:
        async with stdio_session(server["command"], [_at(gateway, a) for a in server["args"]], env):
            pass
    assert mcp_error_in(stdio_err.value) is not None or "401" in str(stdio_err.value), stdio_err.value
    with pytest.raises(BaseException):
        async with http_session(f"{gateway.agent_url}/mcp", {"Authorization": f"Bearer {forged}"}):
            pass


async def test_a_stdio_call_abandoned_by_its_client_leaves_the_approval_for_the_retry(
    start_gateway: Callable[..., Gateway],
) -> None:
    """A client whose tool-call timeout is shorter than the approval gives up on the call (the
    Python SDK, like the others, sends `notifications/cancelled`). `warden connect` abandons the
    call's HTTP request, so the gateway stops waiting for it; the approval then goes to the same
    call, retried — not to the abandoned one, whose result nobody would read."""
    from test_approval import approvals, approver_token, pending_ids

    gw = start_gateway(approval_timeout="60s")
    bob = approver_token(gw, "bob")
    token = gw.open_session()
    target = str(gw.ws.root / "after-a-timeout")
    (server,) = client_config("claude-desktop-stdio")["mcpServers"].values()
    args = [_at(gw, a) for a in server["args"]]
    async with stdio_session(server["command"], args, {"WARDEN_TOKEN": token}) as session:
        with pytest.raises(BaseException) as gave_up:
            await session.call_tool("fs.create_directory", {"path": target}, read_timeout_seconds=1.0)
        assert mcp_error_in(gave_up.value) is not None, gave_up.value
        (approval,) = pending_ids(gw, bob)
        # The gateway sees the abandoned call go (its connection closes) before bob approves.
        await anyio.sleep(1.0)
        approved = approvals(gw, bob, "approve", approval)
        assert approved.returncode == 0, approved.stderr
        result = await session.call_tool(
            "fs.create_directory", {"path": target}, read_timeout_seconds=15.0
        )
        assert not result.is_error, result
    assert os.path.isdir(target)
    records = gw.records()
    assert len([r for r in records if r["kind"] == "approval_requested"]) == 1
    (used,) = [r for r in records if r["kind"] == "approval_used"]
    assert used["payload"]["approval"] == approval
