"""Human approval with real peers: the Python `mcp` client's call waits (with progress
notifications) until `warden approvals approve` releases it; denial, timeout, and a restart with
a request pending."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from typing import Any, Callable

import anyio
import pytest

from conftest import (
    REFUSED,
    Gateway,
    actions_by_id,
    assert_recorded,
    find_attempt,
    mcp_http,
    run_warden,
    store_args,
    text_of,
    wait_for,
)

pytestmark = pytest.mark.anyio


def approver_token(gw: Gateway, principal: str) -> str:
    """An approver's credential, made offline as an admin with access to the data directory."""
    r = run_warden(
        "operator", "create-token", "--name", f"{principal}-cli", "--principal", principal,
        "--data", str(gw.data), *store_args(gw.data),
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def approvals(gw: Gateway, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_warden(
        "approvals", *args, "--operator-url", gw.operator_url, "--token", token
    )


def pending_ids(gw: Gateway, token: str) -> list[str]:
    r = approvals(gw, token, "list", "--json")
    assert r.returncode == 0, r.stderr
    return [a["id"] for a in json.loads(r.stdout)["approvals"]]


async def wait_pending(gw: Gateway, token: str) -> str:
    for _ in range(400):
        ids = await anyio.to_thread.run_sync(pending_ids, gw, token)
        if ids:
            return ids[0]
        await anyio.sleep(0.05)
    raise AssertionError("no approval request became pending")


async def test_a_waiting_mcp_call_is_released_by_warden_approvals_approve(
    start_gateway: Callable[..., Gateway],
) -> None:
    gw = start_gateway("--approval-progress-interval", "1s", approval_timeout="5m")
    target = gw.ws.root / "approved-folder"
    args = {"path": str(target)}
    token = gw.open_session()
    bob = approver_token(gw, "bob")
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append((p, total, message))

    result: dict[str, Any] = {}
    async with mcp_http(gw.mcp_url, token) as session:

        async def call() -> None:
            result["r"] = await session.call_tool(
                "fs.create_directory", args, progress_callback=on_progress
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            approval = await wait_pending(gw, bob)
            # What the approver sees, through the CLI.
            shown = await anyio.to_thread.run_sync(lambda: approvals(gw, bob, "show", approval))
            assert shown.returncode == 0, shown.stderr
            assert "fs.create_directory" in shown.stdout and "alice" in shown.stdout, shown.stdout
            assert "mkdir-needs-approval" in shown.stdout, shown.stdout
            assert "model turns: none recorded" in shown.stdout, shown.stdout
            # Let a progress notification or two arrive while the call waits.
            with anyio.fail_after(15):
                while not progress:
                    await anyio.sleep(0.1)
            assert not target.exists(), "nothing runs before approval"
            # The requester cannot approve her own agent's request (separation of duties).
            alice = approver_token(gw, "alice")
            refused = await anyio.to_thread.run_sync(
                lambda: approvals(gw, alice, "approve", approval)
            )
            assert refused.returncode == 1 and "separation of duties" in refused.stderr
            approved = await anyio.to_thread.run_sync(
                lambda: approvals(gw, bob, "approve", approval, "--reason", "needed for the demo")
            )
            assert approved.returncode == 0, approved.stderr
            assert "granted" in approved.stdout, approved.stdout
    r = result["r"]
    assert not r.is_error, text_of(r)
    assert target.is_dir()
    assert progress[0][1] is not None and progress[0][1] > 200, progress
    assert "waiting for approval" in (progress[0][2] or ""), progress

    records = gw.records()
    # Decided `ask`, then — once approved — forwarded and its result recorded.
    action = find_attempt(records, "fs.create_directory", args)["payload"]["action"]
    kinds = actions_by_id(records)[action]
    assert kinds["action_decided"][0]["payload"]["decision"]["verdict"] == "ask"
    assert len(kinds["action_forwarded"]) == 1 and len(kinds["action_result"]) == 1, kinds.keys()
    assert kinds["action_result"][0]["payload"]["status"] == "ok"
    (requested,) = kinds["approval_requested"]
    (granted,) = [x for x in records if x["kind"] == "approval_granted"]
    (used,) = [x for x in records if x["kind"] == "approval_used"]
    assert requested["payload"]["id"] == approval
    assert granted["payload"]["approver"] == "bob"
    assert granted["payload"]["reason"] == "needed for the demo"
    assert used["payload"]["approval"] == approval
    refusals = [x["payload"]["refusal"] for x in records if x["kind"] == "approval_refused"]
    assert refusals == ["self_approval"]
    assert requested["seq"] < granted["seq"] < used["seq"]
    assert gw.verify().returncode == 0


async def test_warden_approvals_deny_refuses_the_waiting_call(
    start_gateway: Callable[..., Gateway],
) -> None:
    gw = start_gateway(approval_timeout="5m")
    target = gw.ws.root / "denied-folder"
    token = gw.open_session()
    bob = approver_token(gw, "bob")
    result: dict[str, Any] = {}
    async with mcp_http(gw.mcp_url, token) as session:

        async def call() -> None:
            result["r"] = await session.call_tool("fs.create_directory", {"path": str(target)})

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            approval = await wait_pending(gw, bob)
            denied = await anyio.to_thread.run_sync(
                lambda: approvals(gw, bob, "deny", approval, "--reason", "not in this sprint")
            )
            assert denied.returncode == 0, denied.stderr
    r = result["r"]
    assert r.is_error
    assert "denied by `bob`: not in this sprint" in text_of(r), text_of(r)
    assert not target.exists()


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
    assert "none was given before the deadline (2s" in message, message
    assert waited >= 1.9, f"answered after {waited:.2f}s"
    assert not target.exists()

    records = gw.records()
    kinds = assert_recorded(records, "fs.create_directory", args, allowed=False)
    decision = kinds["action_decided"][0]["payload"]["decision"]
    assert decision["verdict"] == "ask" and decision["tier"] == "approval", decision
    assert [r["id"] for r in decision["rules"]] == ["mkdir-needs-approval"]
    (requested,) = kinds["approval_requested"]
    (timed_out,) = [x for x in records if x["kind"] == "approval_timed_out"]
    assert requested["seq"] < timed_out["seq"]
    assert requested["payload"]["approvers"] == ["bob"]
    assert timed_out["payload"]["approval"] == requested["payload"]["id"]
    assert timed_out["payload"]["was"] == "pending"


async def test_a_pending_approval_survives_a_restart(
    start_gateway: Callable[..., Gateway],
) -> None:
    """SIGTERM during an approval wait answers the call at once (exit 0); the request stays
    pending, is approved after the restart, and the same call retried picks up the grant."""
    gw = start_gateway(approval_timeout="10m")
    target = gw.ws.root / "x"
    token = gw.open_session()
    bob = approver_token(gw, "bob")
    async with mcp_http(gw.mcp_url, token) as session:
        result: dict[str, Any] = {}

        async def call() -> None:
            result["r"] = await session.call_tool("fs.create_directory", {"path": str(target)})

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            approval = await wait_pending(gw, bob)
            assert gw.proc is not None
            stopping = time.monotonic()
            gw.proc.send_signal(signal.SIGTERM)
    assert time.monotonic() - stopping < 10, "the wait ended at shutdown, not at its deadline"
    r = result["r"]
    assert r.is_error and "shutting down" in text_of(r), text_of(r)
    assert gw.stop() == 0
    assert not [x for x in gw.records() if x["kind"] == "approval_timed_out"]

    gw.proc, gw.exit_code = None, None
    gw.start()
    assert pending_ids(gw, bob) == [approval]
    approved = approvals(gw, bob, "approve", approval)
    assert approved.returncode == 0, approved.stderr
    async with mcp_http(gw.mcp_url, token) as session:
        r = await session.call_tool("fs.create_directory", {"path": str(target)})
    assert not r.is_error, text_of(r)
    assert target.is_dir()
    wait_for("the grant used", lambda: [x for x in gw.records() if x["kind"] == "approval_used"])
