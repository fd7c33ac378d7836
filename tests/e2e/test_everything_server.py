"""The second real upstream, `@modelcontextprotocol/server-everything` over stdio: its tools
through warden, a prohibited one hidden and refused, and the upstream dying in the middle of a
call (a JSON-RPC error to the agent, the result recorded, the server restarted)."""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any, Callable

import anyio
import pytest
from mcp import MCPError

from conftest import (
    REFUSED,
    Gateway,
    actions_by_id,
    assert_recorded,
    assert_refused_before_decision,
    attempts,
    mcp_http,
    text_of,
    wait_for,
)

pytestmark = pytest.mark.anyio

EVERYTHING = "server-everything"


async def test_echo_is_allowed_and_get_env_is_hidden_and_refused(gateway: Gateway) -> None:
    gw = gateway
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        # Listed as `server__tool`, a function name model providers accept.
        assert "everything__echo" in tools
        assert "everything__get-env" not in tools
        assert "message" in tools["everything__echo"].input_schema["properties"]
        assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", n) for n in tools), sorted(tools)
        # Tools the charter does not inventory are not offered either.
        assert not [
            n
            for n in tools
            if n.startswith("everything__")
            and n
            not in (
                "everything__echo",
                "everything__get-sum",
                "everything__trigger-long-running-operation",
            )
        ], sorted(tools)

        r = await session.call_tool("everything.echo", {"message": "hello warden"})
        assert not r.is_error, text_of(r)
        assert text_of(r) == "Echo: hello warden"

        r = await session.call_tool("everything.get-sum", {"a": 2, "b": 40})
        assert not r.is_error and "42" in text_of(r), text_of(r)

        r = await session.call_tool("everything.get-env", {})
        assert r.is_error
        assert text_of(r).startswith(f"{REFUSED} `everything.get-env`"), text_of(r)
        assert "never-env" in text_of(r)
        assert "PATH" not in text_of(r), "no environment leaked"

        # A tool the upstream offers and the inventory does not name is refused before any
        # decision.
        r = await session.call_tool("everything.get-tiny-image", {})
        assert r.is_error and text_of(r).startswith(REFUSED), text_of(r)

    records = gw.records()
    assert_recorded(records, "everything.echo", {"message": "hello warden"}, allowed=True)
    assert_recorded(records, "everything.get-sum", {"a": 2, "b": 40}, allowed=True)
    assert_recorded(records, "everything.get-env", {}, allowed=False)
    assert_refused_before_decision(records, "everything.get-tiny-image", {})


async def test_the_upstream_dies_mid_call(gateway: Gateway) -> None:
    gw = gateway
    (first,) = wait_for("the everything server", lambda: gw.upstream_pids(EVERYTHING))
    token = gw.open_session()
    args = {"duration": 30, "steps": 3}
    async with mcp_http(gw.mcp_url, token) as session:
        outcome: dict[str, Any] = {}

        async def long_call() -> None:
            started = time.monotonic()
            try:
                outcome["result"] = await session.call_tool(
                    "everything.trigger-long-running-operation", args
                )
            except MCPError as e:
                outcome["error"] = e
            outcome["seconds"] = time.monotonic() - started

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)

            # Wait until the call has been forwarded, then kill the server under it.
            def forwarded() -> bool:
                recs = gw.records()
                return any(
                    r["kind"] == "action_forwarded"
                    and r["payload"]["tool"] == "everything.trigger-long-running-operation"
                    for r in recs
                )

            while not await anyio.to_thread.run_sync(forwarded):
                await anyio.sleep(0.05)
            os.kill(first, signal.SIGKILL)

        assert "result" not in outcome, f"the call did not fail: {outcome.get('result')}"
        error = outcome["error"]
        assert "upstream error" in error.message, error.message
        assert error.data == {"warden": "upstream_error"}, error.data
        assert outcome["seconds"] < 20, "the error came when the server died, not at the end"

        records = gw.records()
        (attempt,) = attempts(records, "everything.trigger-long-running-operation")
        kinds = actions_by_id(records)[attempt["payload"]["action"]]
        (result,) = kinds["action_result"]
        assert result["payload"]["status"] == "upstream_error", result
        assert result["payload"]["error"], result

        # The supervisor restarts the server; the same session works again.
        (second,) = wait_for(
            "a restarted everything server", lambda: gw.upstream_pids(EVERYTHING), timeout=30
        )
        assert second != first
        deadline = time.monotonic() + 30
        while True:
            try:
                r = await session.call_tool("everything.echo", {"message": "back"})
                if not r.is_error:
                    break
            except MCPError as e:
                assert "unavailable" in e.message, e.message  # down or reconnecting
            assert time.monotonic() < deadline, "the server was not restarted"
            await anyio.sleep(0.2)
        assert text_of(r) == "Echo: back"
        # The tools are listed again after the restart.
        names = {t.name for t in (await session.list_tools()).tools}
        assert "everything__echo" in names
    ok = gw.verify()
    assert ok.returncode == 0, ok.stdout + ok.stderr


async def test_an_upstream_that_does_not_answer_in_time(
    start_gateway: Callable[..., Gateway],
) -> None:
    gw = start_gateway("--upstream-timeout", "1s")
    token = gw.open_session()
    args = {"duration": 20, "steps": 2}
    async with mcp_http(gw.mcp_url, token) as session:
        started = time.monotonic()
        with pytest.raises(MCPError) as failed:
            await session.call_tool("everything.trigger-long-running-operation", args)
        waited = time.monotonic() - started
        assert "did not answer within 1s" in failed.value.message, failed.value.message
        assert failed.value.data == {"warden": "upstream_error"}
        assert 0.9 <= waited < 10, waited
        # The server is still up for the next call.
        r = await session.call_tool("everything.echo", {"message": "next"})
        assert text_of(r) == "Echo: next"
    kinds = assert_recorded(
        gw.records(), "everything.trigger-long-running-operation", args, allowed=True
    )
    result = kinds["action_result"][0]["payload"]
    assert result["status"] == "upstream_error" and "1s" in result["error"], result
