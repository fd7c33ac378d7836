"""The Python client of the decide API (`clients/python`, installed into the test venv by
scripts/test.sh) against a real `warden serve`: the `governed` decorator runs an allowed
function and records its result, never runs a denied one, waits for a human approval (saying
whom it waits for) and then runs, and fails clearly with a forged token or no server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any

import httpx2
import pytest
import warden_client
from warden_client import (
    ApprovalPending,
    AuthenticationError,
    Refused,
    WaitStatus,
    Warden,
    WardenUnavailable,
)

from conftest import REPO, Gateway, actions_by_id, assert_recorded, find_attempt, free_port, wait_for
from test_approval import approver_token, approvals, pending_ids

CLIENT_SRC = REPO / "clients" / "python" / "src" / "warden_client"


def test_the_installed_client_is_this_checkout() -> None:
    """scripts/test.sh reinstalls the client when its sources change; a stale install would
    test other code than the repository's."""
    installed = Path(warden_client.__file__).parent
    for src in sorted(CLIENT_SRC.glob("*.py")):
        copy = installed / src.name
        assert copy.exists() and hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(
            src.read_bytes()
        ).digest(), f"{copy} differs from {src}: run scripts/test.sh to reinstall the client"
    assert (installed / "py.typed").exists()


def client(gw: Gateway, **kwargs: Any) -> Warden:
    return Warden(gw.agent_url, gw.open_session(), **kwargs)


def test_an_allowed_call_runs_and_its_result_is_recorded(gateway: Gateway) -> None:
    ran: list[tuple[float, str]] = []
    with client(gateway) as w:

        @w.governed("pay.create_payment")
        def create_payment(amount: float, to: str, memo: str = "none") -> dict[str, Any]:
            ran.append((amount, to))
            return {"payment": "p-1", "amount": amount}

        assert create_payment(42.5, to="ACME GmbH") == {"payment": "p-1", "amount": 42.5}
        assert create_payment.__name__ == "create_payment"
    assert ran == [(42.5, "ACME GmbH")]
    args = {"amount": 42.5, "to": "ACME GmbH", "memo": "none"}
    kinds = assert_recorded(gateway.records(), "pay.create_payment", args, allowed=True)
    assert kinds["action_attempted"][0]["payload"]["via"] == "decide_api"
    result = kinds["action_result"][0]["payload"]
    assert result["status"] == "ok"
    # The output as JSON text (compact, as the gateway writes it).
    assert result["size_bytes"] == len(json.dumps({"payment": "p-1", "amount": 42.5}, separators=(",", ":")))


def test_a_failing_call_is_recorded_with_the_exception_text(gateway: Gateway) -> None:
    with client(gateway) as w:

        @w.governed("pay.create_payment")
        def create_payment(amount: float, to: str) -> None:
            raise ValueError("card declined")

        with pytest.raises(ValueError, match="card declined"):
            create_payment(1, "x")
    attempt = find_attempt(gateway.records(), "pay.create_payment", {"amount": 1, "to": "x"})
    (result,) = actions_by_id(gateway.records())[attempt["payload"]["action"]]["action_result"]
    assert result["payload"]["status"] == "tool_error"
    assert result["payload"]["error"] == "ValueError: card declined"


def test_a_denied_call_raises_and_does_not_run(gateway: Gateway) -> None:
    ran = []
    with client(gateway) as w:

        @w.governed("pay.create_payment")
        def create_payment(amount: float, to: str) -> None:
            ran.append(amount)

        with pytest.raises(Refused) as refused:
            create_payment(5000, "ACME GmbH")
        assert refused.value.reason == "denied"
        assert "large-payments" in refused.value.message
        assert "large-payments" in str(refused.value)
        assert not isinstance(refused.value, ApprovalPending)
        # A tool the inventory does not name: refused before any decision.
        @w.governed("pay.void")
        def void(payment: str) -> None:
            ran.append(payment)

        with pytest.raises(Refused) as refused:
            void("p-1")
        assert refused.value.reason == "not_inventoried"
    assert ran == []
    assert_recorded(gateway.records(), "pay.create_payment", {"amount": 5000, "to": "ACME GmbH"}, allowed=False)


def test_an_async_function_is_governed(gateway: Gateway) -> None:
    ran = []
    w = client(gateway)

    @w.governed("pay.create_payment")
    async def create_payment(amount: float, to: str) -> str:
        await asyncio.sleep(0)
        ran.append(amount)
        return f"paid {amount}"

    assert asyncio.run(create_payment(7, "B")) == "paid 7"
    with pytest.raises(Refused):
        asyncio.run(create_payment(700, "B"))
    assert ran == [7]
    kinds = assert_recorded(gateway.records(), "pay.create_payment", {"amount": 7, "to": "B"}, allowed=True)
    assert kinds["action_result"][0]["payload"]["status"] == "ok"


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_call_that_needs_approval_waits_until_an_approver_approves(
    start_gateway: Any, tmp_path: Path, flavour: str
) -> None:
    gw = start_gateway(approval_timeout="60s")
    bob = approver_token(gw, "bob")
    statuses: list[WaitStatus] = []
    ran: list[str] = []
    target = str(gw.ws.root / "approved-folder")
    w = client(gw, poll=1, on_status=statuses.append)

    if flavour == "sync":

        @w.governed("fs.create_directory")
        def mkdir(path: str) -> str:
            ran.append(path)
            return f"created {path}"

        call = lambda: mkdir(target)  # noqa: E731
    else:

        @w.governed("fs.create_directory")
        async def amkdir(path: str) -> str:
            ran.append(path)
            return f"created {path}"

        call = lambda: asyncio.run(amkdir(target))  # noqa: E731

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as e:  # noqa: BLE001 — handed to the test thread
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    approval = wait_for("a pending approval", lambda: (pending_ids(gw, bob) or [None])[0])
    wait_for("the status callback", lambda: statuses)
    assert ran == [], "the function ran before the approval"
    first = statuses[0]
    assert first.decision.pending and first.decision.approval is not None
    assert first.decision.approval.id == approval
    # Separation of duties: alice's agent waits for bob.
    assert first.decision.approval.approvers == ("bob",)
    assert first.message.startswith(f"waiting for approval {approval} by bob"), first.message
    approved = approvals(gw, bob, "approve", approval, "--reason", "fine")
    assert approved.returncode == 0, approved.stderr
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome
    assert outcome["result"] == f"created {target}"
    assert ran == [target]
    records = gw.records()
    used = [r for r in records if r["kind"] == "approval_used"]
    assert len(used) == 1, [r["kind"] for r in records]
    action = used[0]["payload"]["action"]
    kinds = actions_by_id(records)[action]
    assert kinds["action_result"][0]["payload"]["status"] == "ok", kinds.keys()


def test_a_call_still_pending_after_the_clients_timeout_raises_and_does_not_run(
    start_gateway: Any,
) -> None:
    gw = start_gateway(approval_timeout="60s")
    ran = []
    w = client(gw, poll=1, approval_timeout=1.5)

    @w.governed("fs.create_directory")
    def mkdir(path: str) -> None:
        ran.append(path)

    with pytest.raises(ApprovalPending) as pending:
        mkdir(str(gw.ws.root / "never"))
    assert pending.value.reason == "approval_pending"
    assert pending.value.decision.approval is not None
    assert ran == []
    # The request stays open for the same call, retried.
    bob = approver_token(gw, "bob")
    assert pending_ids(gw, bob) == [pending.value.decision.approval.id]


def test_a_forged_token_is_a_clear_error_and_nothing_runs(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ran = []
    real = gateway.open_session()
    forged = "wa_" + "A" * (len(real) - 3)
    for token, code, status in [
        (forged, "unauthenticated", 401),
        (gateway.operator_token, "wrong_plane", 403),  # the operator's token on the agent plane
    ]:
        w = Warden(gateway.agent_url, token)
        assert token not in repr(w)

        @w.governed("pay.create_payment")
        def create_payment(amount: float, to: str) -> None:
            ran.append(amount)

        with pytest.raises(AuthenticationError) as err:
            create_payment(1, "x")
        assert err.value.status == status and err.value.code == code
        assert "refused the session token" in str(err.value)
        assert token not in str(err.value)
        with pytest.raises(AuthenticationError):
            w.report("0199-not-an-action", "ok", "x")
    assert ran == []
    assert forged not in caplog.text and gateway.operator_token not in caplog.text


def test_a_revoked_session_is_a_clear_error(gateway: Gateway) -> None:
    w = client(gateway)
    admin = {"Authorization": f"Bearer {gateway.operator_token}"}
    sessions = httpx2.get(f"{gateway.operator_url}/v1/sessions", headers=admin).json()["sessions"]
    (session,) = [s["id"] for s in sessions]
    r = httpx2.post(f"{gateway.operator_url}/v1/sessions/{session}/revoke", headers=admin)
    assert r.status_code == 200, r.text
    with pytest.raises(AuthenticationError) as err:
        w.decide("pay.create_payment", {"amount": 1, "to": "x"})
    assert err.value.code == "session_revoked"


def test_no_server_is_a_clear_error_and_nothing_runs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = "wa_" + "B" * 43
    w = Warden(f"http://127.0.0.1:{free_port()}", token, timeout=2)
    ran = []

    @w.governed("pay.create_payment")
    def create_payment(amount: float, to: str) -> None:
        ran.append(amount)

    @w.governed("pay.create_payment")
    async def acreate_payment(amount: float, to: str) -> None:
        ran.append(amount)

    with pytest.raises(WardenUnavailable, match="cannot reach warden at http://127.0.0.1:"):
        create_payment(1, "x")
    with pytest.raises(WardenUnavailable, match="cannot reach warden"):
        asyncio.run(acreate_payment(1, "x"))
    assert ran == []
    assert token not in caplog.text


def test_bad_input_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValueError):
        Warden("127.0.0.1:8700", "wa_x")
    with pytest.raises(ValueError):
        Warden("http://127.0.0.1:8700", "wa_x\r\nX-Evil: 1")
    with pytest.raises(ValueError, match="base URL"):
        Warden("http://127.0.0.1:8700/mcp", "wa_x")
    w = Warden("http://127.0.0.1:1", "wa_x", timeout=1)
    with pytest.raises(ValueError):
        w.decide("no_server_part", {})
    with pytest.raises(ValueError):
        w.decide("pay.create_payment", {}, wait=301)
    with pytest.raises(TypeError, match="must be JSON"):
        w.decide("pay.create_payment", {"when": object()})
    with pytest.raises(ValueError):
        Warden("http://127.0.0.1:8700", "wa_x", approval_timeout=float("inf"))
