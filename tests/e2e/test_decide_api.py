"""The decide API, for agents not on MCP: `POST /v1/decide` decides and records an action,
the agent runs it itself and reports with `POST /v1/actions/{id}/result`; the ledger holds the
same record kinds as for an MCP call."""

from __future__ import annotations

from typing import Any, Iterator

import httpx2
import pytest

from conftest import (
    SECRET_TEXT,
    Gateway,
    actions_by_id,
    assert_recorded,
    assert_refused_before_decision,
    find_attempt,
    wait_for,
)


@pytest.fixture
def api(gateway: Gateway) -> Iterator[httpx2.Client]:
    token = gateway.open_session()
    with httpx2.Client(
        base_url=gateway.agent_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


def decide(api: httpx2.Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/v1/decide", json={"tool": tool, "arguments": arguments})
    assert r.status_code == 200, r.text
    return r.json()


def test_allow_then_report_the_result(gateway: Gateway, api: httpx2.Client) -> None:
    args = {"amount": 42.5, "to": "ACME GmbH"}
    d = decide(api, "pay.create_payment", args)
    assert d["verdict"] == "allow", d
    action = d["action"]
    assert d["decision"]["tier"] == "autonomous"
    assert [r["id"] for r in d["decision"]["rules"]] == ["small-payments"]
    assert d["arguments"] == args

    r = api.post(
        f"/v1/actions/{action}/result", json={"status": "ok", "output": "payment p-1 created"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] is True and r.json()["action"] == action

    # A result is reported once.
    r = api.post(f"/v1/actions/{action}/result", json={"status": "ok", "output": "again"})
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "unknown_action"

    kinds = assert_recorded(gateway.records(), "pay.create_payment", args, allowed=True)
    assert kinds["action_attempted"][0]["payload"]["via"] == "decide_api"
    assert kinds["action_attempted"][0]["payload"]["action"] == action
    result = kinds["action_result"][0]["payload"]
    assert result["status"] == "ok" and result["size_bytes"] == len("payment p-1 created")


def test_a_denied_action_has_no_result_to_report(gateway: Gateway, api: httpx2.Client) -> None:
    args = {"amount": 5000, "to": "ACME GmbH"}
    d = decide(api, "pay.create_payment", args)
    assert d["verdict"] == "deny", d
    assert d["refusal"] == "denied"
    assert "large-payments" in d["message"]
    assert [r["id"] for r in d["decision"]["rules"]] == ["large-payments"]
    r = api.post(f"/v1/actions/{d['action']}/result", json={"status": "ok"})
    assert r.status_code == 404, r.text
    assert_recorded(gateway.records(), "pay.create_payment", args, allowed=False)


def test_same_semantics_as_mcp(gateway: Gateway, api: httpx2.Client) -> None:
    """The decide API governs MCP tools too: the same rules, labels and record kinds."""
    root = gateway.ws.root
    # Prohibited as over MCP, with the same rule.
    outside = {"path": str(gateway.ws.outside / "secret.txt")}
    d = decide(api, "fs.read_text_file", outside)
    assert d["verdict"] == "deny" and "outside-root" in d["message"], d
    # A tool the inventory does not name is refused before any decision, as over MCP.
    d = decide(api, "pay.void", {"payment": "p-1"})
    assert d["verdict"] == "deny", d
    assert d["refusal"] == "not_inventoried" and d["decision"] is None, d
    assert_refused_before_decision(gateway.records(), "pay.void", {"payment": "p-1"})

    # An allowed read of a confidential file labels the session …
    secret = {"path": str(root / "secret" / "plan.txt")}
    d = decide(api, "fs.read_text_file", secret)
    assert d["verdict"] == "allow", d
    r = api.post(f"/v1/actions/{d['action']}/result", json={"status": "ok", "output": SECRET_TEXT})
    assert r.status_code == 200, r.text
    # (A path source's label attached when the read was allowed, not with the result.)
    assert r.json()["labels_added"] == []
    # … and a write it would have been allowed before is denied now.
    d = decide(api, "fs.write_file", {"path": str(root / "notes" / "x.md"), "content": "x"})
    assert d["verdict"] == "deny" and "no-copies-of-secrets" in d["message"], d

    records = gateway.records()
    kinds = assert_recorded(records, "fs.read_text_file", secret, allowed=True)
    assert kinds["labels_added"][0]["payload"]["labels"] == ["confidential"]
    assert_recorded(records, "fs.read_text_file", outside, allowed=False)
    # An error result is recorded as a tool error.
    d = decide(api, "pay.create_payment", {"amount": 1, "to": "x"})
    r = api.post(
        f"/v1/actions/{d['action']}/result", json={"status": "error", "error": "card declined"}
    )
    assert r.status_code == 200, r.text
    attempt = find_attempt(gateway.records(), "pay.create_payment", {"amount": 1, "to": "x"})
    (result,) = actions_by_id(gateway.records())[attempt["payload"]["action"]]["action_result"]
    assert result["payload"]["status"] == "tool_error"
    assert result["payload"]["error"] == "card declined"


def test_the_decide_api_refuses_bad_requests(gateway: Gateway, api: httpx2.Client) -> None:
    for body in [
        {"arguments": {}},  # no tool
        {"tool": "pay.create_payment", "arguments": [1, 2]},  # arguments not an object
        {"tool": "pay.create_payment", "extra": 1},  # unknown field
    ]:
        r = api.post("/v1/decide", json=body)
        assert 400 <= r.status_code < 500, (body, r.text)
        assert r.json()["error"]["message"], r.text
    r = api.post("/v1/decide", content=b"{not json", headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500 and r.json()["error"]["message"], r.text
    d = decide(api, "pay.create_payment", {"amount": 1, "to": "x"})
    r = api.post(f"/v1/actions/{d['action']}/result", json={"status": "maybe"})
    assert r.status_code == 400 and "`status`" in r.json()["error"]["message"], r.text
    # Another session cannot report this session's action.
    other = gateway.open_session(user="bob")
    r = httpx2.post(
        f"{gateway.agent_url}/v1/actions/{d['action']}/result",
        headers={"Authorization": f"Bearer {other}"},
        json={"status": "ok"},
    )
    assert r.status_code == 404, r.text
    r = api.post(f"/v1/actions/{d['action']}/result", json={"status": "ok"})
    assert r.status_code == 200, r.text


def test_preapproved_scopes_count_per_session_and_per_day(gateway: Gateway) -> None:
    """`refunds`: two a session, three a day; the day's count survives a restart."""
    gw = gateway

    def refund(token: str, n: int) -> dict[str, Any]:
        r = httpx2.post(
            f"{gw.agent_url}/v1/decide",
            headers={"Authorization": f"Bearer {token}"},
            json={"tool": "pay.refund", "arguments": {"order": n}},
            timeout=30,
        )
        body = r.json()
        # An escalated action is answered at once with 202 `ask`: it waits for a human.
        assert r.status_code == (202 if body["verdict"] == "ask" else 200), r.text
        return body

    def escalated(over: dict[str, Any]) -> None:
        assert over["verdict"] == "ask" and over["refusal"] == "approval_pending", over
        assert over["decision"]["reason"] == "scope_exceeded", over
        assert over["approval"]["status"] == "pending", over

    first, second = gw.open_session(), gw.open_session(user="bob")
    assert refund(first, 1)["verdict"] == "allow"
    assert refund(first, 2)["verdict"] == "allow"
    escalated(refund(first, 3))  # the session's scope is spent: escalated to a human
    assert refund(second, 4)["verdict"] == "allow"  # another session: the third of the day
    escalated(refund(second, 5))  # the day's scope is spent

    gw.restart()
    third = gw.open_session()
    escalated(refund(third, 6))
    records = gw.records()
    requested = [r for r in records if r["kind"] == "approval_requested"]
    assert len(requested) == 3
    # The refunds rule gives approvers 1s; nobody approves, and each request times out.
    wait_for(
        "three timeouts",
        lambda: len([r for r in gw.records() if r["kind"] == "approval_timed_out"]) == 3,
    )
