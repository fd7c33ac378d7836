"""Sessions (expiry, a restart, concurrent calls, a bad token through `warden connect`) and
resources (the charter as `warden://charter`, upstream resource reads decided as
`server.resources/read`)."""

from __future__ import annotations

import json
import time
from typing import Callable

import anyio
import pytest
from mcp import MCPError

from conftest import (
    AGENT,
    REFUSED,
    SECRET_TEXT,
    Gateway,
    assert_recorded,
    attempts,
    http_client,
    mcp_error_in,
    mcp_http,
    mcp_stdio,
    run_warden,
    text_of,
)

pytestmark = pytest.mark.anyio

DOC = "demo://resource/static/document/architecture.md"


async def test_the_charter_is_offered_as_a_resource(gateway: Gateway) -> None:
    token = gateway.open_session()
    async with mcp_http(gateway.mcp_url, token) as session:
        uris = [str(r.uri) for r in (await session.list_resources()).resources]
        assert uris[0] == "warden://charter"
        doc = json.loads((await session.read_resource("warden://charter")).contents[0].text)
        assert doc["identity"]["id"] == AGENT
        assert doc["identity"]["boundaries"] == ["Stays inside the demo folder."]
        assert doc["context"]["environment"] == "test"
        assert doc["session"]["principal"] == "alice"
        assert doc["charter"].startswith("blake3:")
        init = session._initialize_result
        assert init is not None and "warden://charter" in (init.instructions or "")


async def test_upstream_resource_reads_are_decided(gateway: Gateway) -> None:
    gw = gateway
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        uris = [str(r.uri) for r in (await session.list_resources()).resources]
        assert DOC in uris, uris
        r = await session.read_resource(DOC)
        assert "architecture" in r.contents[0].text.lower()

        denied = "demo://resource/static/document/startup.md"
        assert denied in uris
        with pytest.raises(MCPError) as refused:
            await session.read_resource(denied)
        assert refused.value.message.startswith(REFUSED), refused.value.message

        with pytest.raises(MCPError) as unknown:
            await session.read_resource("file:///etc/passwd")
        assert "passwd" in unknown.value.message
    records = gw.records()
    assert_recorded(records, "everything.resources/read", {"uri": DOC}, allowed=True)
    assert_recorded(records, "everything.resources/read", {"uri": denied}, allowed=False)


async def test_an_expired_session_is_refused(gateway: Gateway) -> None:
    gw = gateway
    token = gw.open_session(ttl="2s")
    args = {"message": "too late"}
    async with mcp_http(gw.mcp_url, token) as session:
        r = await session.call_tool("everything.echo", {"message": "in time"})
        assert not r.is_error, text_of(r)
    # Once expired, the session is refused at authentication (401), on every request.
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "everything.echo", "arguments": args},
    }
    headers = {"accept": "application/json, text/event-stream"}
    async with http_client(token) as http:
        deadline = time.monotonic() + 15
        while True:
            r = await http.post(gw.mcp_url, json=call, headers=headers)
            if r.status_code == 401:
                break
            assert r.status_code == 200, r.text
            assert time.monotonic() < deadline, "the session did not expire"
            await anyio.sleep(0.25)
        for _ in range(20):
            again = await http.post(gw.mcp_url, json=call, headers=headers)
            assert again.status_code == 401, again.text
    assert "expired" in r.json()["error"]["message"], r.text
    records = gw.records()
    # The refusals at authentication. A call that passed authentication just before the
    # expiry and reached the governor just after it is an action refused as expired, recorded
    # with its attempt (its `session_expired` names the `action`): a separate event.
    expired = [
        x for x in records if x["kind"] == "session_expired" and "action" not in x["payload"]
    ]
    assert len(expired) == 1, "the expiry is recorded, once however often it is refused"
    assert expired[0]["payload"]["request"] == "POST /mcp"
    # Nothing of the refused requests reached the governor.
    late = [a for a in attempts(records, "everything.echo") if a["seq"] > expired[0]["seq"]]
    assert not late, late


async def test_sessions_labels_and_the_ledger_survive_a_restart(gateway: Gateway) -> None:
    gw = gateway
    root = gw.ws.root
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        r = await session.call_tool(
            "fs.read_text_file", {"path": str(root / "secret" / "plan.txt")}
        )
        assert SECRET_TEXT in text_of(r)
    first_run = gw.records()
    operator_token = gw.operator_token

    gw.restart()
    assert gw.operator_token == operator_token, "the operator token is not replaced"
    async with mcp_http(gw.mcp_url, token) as session:
        # The same token works, and the session still carries its label.
        r = await session.call_tool("everything.echo", {"message": "still here"})
        assert not r.is_error, text_of(r)
        r = await session.call_tool(
            "fs.write_file", {"path": str(root / "notes" / "leak.md"), "content": SECRET_TEXT}
        )
        assert r.is_error and "no-copies-of-secrets" in text_of(r), text_of(r)
    assert not (root / "notes" / "leak.md").exists()
    records = gw.records()
    assert records[: len(first_run)] == first_run, "the first run's records are unchanged"
    kinds = [r["kind"] for r in records]
    assert kinds.count("charter_loaded") == 2 and kinds.count("gateway_stopped") >= 1
    ok = gw.verify()
    assert ok.returncode == 0, ok.stdout + ok.stderr


async def test_concurrent_calls_are_all_recorded(start_gateway: Callable[..., Gateway]) -> None:
    gw = start_gateway()
    tokens = [gw.open_session(), gw.open_session(user="bob")]
    n = 20

    async def agent(token: str, who: int) -> None:
        async with mcp_http(gw.mcp_url, token) as session:
            async with anyio.create_task_group() as tg:
                for i in range(n):

                    async def one(i: int = i) -> None:
                        r = await session.call_tool("everything.echo", {"message": f"{who}-{i}"})
                        assert text_of(r) == f"Echo: {who}-{i}"

                    tg.start_soon(one)

    async with anyio.create_task_group() as tg:
        for who, token in enumerate(tokens):
            tg.start_soon(agent, token, who)
    records = gw.records()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    for who in range(len(tokens)):
        for i in range(n):
            assert_recorded(records, "everything.echo", {"message": f"{who}-{i}"}, allowed=True)
    ok = gw.verify()
    assert ok.returncode == 0, ok.stdout + ok.stderr


async def test_warden_connect_with_a_bad_token_fails_cleanly(gateway: Gateway) -> None:
    with anyio.fail_after(30):  # an error, not a hang
        with pytest.raises(BaseException) as failed:
            async with mcp_stdio(gateway.mcp_url, "wa_not-a-session-token"):
                pass
    error = mcp_error_in(failed.value)
    assert error is not None, repr(failed.value)
    assert "invalid session token" in error.message, error.message


def test_sessions_are_only_opened_for_the_charters_agent_and_principals(gateway: Gateway) -> None:
    op = ["--operator-url", gateway.operator_url, "--token", gateway.operator_token]
    out = run_warden("session", "open", "--agent", AGENT, "--user", "mallory", *op)
    assert out.returncode != 0 and "not a principal" in out.stderr, out.stderr
    out = run_warden("session", "open", "--agent", "other-agent", "--user", "alice", *op)
    assert out.returncode != 0 and "e2e-agent" in out.stderr, out.stderr
    out = run_warden("session", "open", "--agent", AGENT, "--user", "alice", "--ttl", "90d", *op)
    assert out.returncode != 0 and "ttl" in out.stderr, out.stderr
    bad = ["--operator-url", gateway.operator_url, "--token", "wo_not-a-token"]
    out = run_warden("session", "open", "--agent", AGENT, "--user", "alice", *bad)
    assert out.returncode != 0 and "invalid operator token" in out.stderr, out.stderr
    assert not [r for r in gateway.records() if r["kind"] == "session_opened"]
