"""Approval tier before the approval workflow exists: the call waits for the rule's approval
timeout, then is denied (fallback deny), with `approval_requested` and `approval_timed_out`
in the ledger."""

from __future__ import annotations

import signal
import time
from typing import Any, Callable

import anyio
import pytest

from conftest import REFUSED, Gateway, assert_recorded, mcp_http, text_of

pytestmark = pytest.mark.anyio

#: The rule's approval timeout in the test charter.
TIMEOUT = 2.0


async def test_an_approval_tier_call_is_denied_when_nobody_approves(gateway: Gateway) -> None:
    gw = gateway
    target = gw.ws.root / "new-folder"
    args = {"path": str(target)}
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        started = time.monotonic()
        r = await session.call_tool("fs.create_directory", args)
        waited = time.monotonic() - started
    assert r.is_error
    message = text_of(r)
    assert message.startswith(f"{REFUSED} `fs.create_directory`"), message
    assert "needs approval" in message and "2s" in message, message
    assert TIMEOUT - 0.1 <= waited < TIMEOUT + 8, f"answered after {waited:.2f}s"
    assert not target.exists()

    records = gw.records()
    kinds = assert_recorded(records, "fs.create_directory", args, allowed=False)
    decision = kinds["action_decided"][0]["payload"]["decision"]
    assert decision["verdict"] == "ask" and decision["tier"] == "approval", decision
    assert [r["id"] for r in decision["rules"]] == ["mkdir-needs-approval"]
    (requested,) = kinds["approval_requested"]
    (timed_out,) = kinds["approval_timed_out"]
    assert requested["seq"] < timed_out["seq"]
    assert requested["payload"]["approval"]["timeout_seconds"] == 2
    assert timed_out["payload"]["reason"] == "timeout"
    assert timed_out["payload"]["waited_seconds"] == 2


async def test_a_pending_approval_is_denied_at_shutdown(
    start_gateway: Callable[..., Gateway],
) -> None:
    """SIGTERM during an approval wait settles it as denied at once, and the gateway exits 0."""
    gw = start_gateway(approval_timeout="10m")
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        result: dict[str, Any] = {}

        async def call() -> None:
            result["r"] = await session.call_tool(
                "fs.create_directory", {"path": str(gw.ws.root / "x")}
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            # The wait has begun once the request is in the ledger.
            while not [x for x in gw.records() if x["kind"] == "approval_requested"]:
                await anyio.sleep(0.05)
            assert gw.proc is not None
            stopping = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
    assert time.monotonic() - stopping < 10, "the wait ended at shutdown, not at its deadline"
    r = result["r"]
    assert r.is_error and "shutting down" in text_of(r), text_of(r)
    assert gw.stop() == 0
    timed_out = [x for x in gw.records() if x["kind"] == "approval_timed_out"]
    assert [t["payload"]["reason"] for t in timed_out] == ["shutdown"]
