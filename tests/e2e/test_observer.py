"""The independent observer end to end (issue 12): a real `warden serve`, a real `warden observe`
process with its own `observer` credential and data directory, the npm filesystem server, the
scripted mock provider answering with tool calls, and the Python `mcp` and `openai` SDKs as the
agent.

Each scenario asserts the intervention (the control in force, set by the observer or by the
gateway's dead man's switch, with its evidence) AND that the gateway enforces it on the very
next call (the decision names the control), and the fixture runs `warden audit verify` after
every gateway that was not tampered with on purpose.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import httpx2
import pytest

from conftest import (
    Gateway,
    Workspace,
    find_attempt,
    mcp_http,
    tamper_record,
    text_of,
    wait_for,
)
from observer_support import (  # noqa: F401 — fixtures
    Observer,
    controls,
    decision_of,
    files,
    gateway_with_history,
    burst,
    in_force,
    kinds,
    operator,
    session_of,
    start_observer,
    with_observer,
)

pytestmark = pytest.mark.anyio

# --------------------------------------------------------------------------------------------
# b. The dead man's switch
# --------------------------------------------------------------------------------------------

DEAD_MANS_SWITCH = """\
observer:
  required: true
  heartbeat_deadline: 2s
  detectors:
    - { id: ledger, kind: ledger_integrity, response: frozen }
"""


async def test_the_observer_killed_puts_the_gateway_in_the_conservative_posture(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace: Workspace,
) -> None:
    gw = start_gateway(charter=with_observer(workspace, DEAD_MANS_SWITCH))
    observer = start_observer(gw)
    # The observer's heartbeats keep the gateway permissive (the switch may have engaged
    # before the observer started: its heartbeat lifts it). Past one deadline, with the
    # observer heard, no switch is in force.
    time.sleep(2.5)
    wait_for("no switch control", lambda: in_force(gw, action="conservative") is None)
    token = gw.open_session()
    readme = {"path": str(workspace.root / "README.md")}
    async with mcp_http(gw.mcp_url, token) as s:
        r = await s.call_tool("fs.read_text_file", readme)
        assert not r.is_error, text_of(r)

        observer.kill()
        switch = wait_for(
            "the dead man's switch",
            lambda: in_force(gw, action="conservative", scope="gateway"),
            timeout=15,
        )
        assert switch["set_by"]["role"] == "gateway", switch
        assert "observer has not been heard from" in switch["reason"], switch
        # It stays in force while the observer is silent (one switch, recorded once).
        time.sleep(2.5)
        assert in_force(gw, id=switch["id"]) is not None
        missed = kinds(gw).count("observer_heartbeat_missed")
        restored = kinds(gw).count("observer_heartbeat_restored")
        assert missed == restored + 1, (missed, restored)

        # The very next call: conservative, so it waits for approval (and times out, denied).
        plan = {"path": str(workspace.root / "docs" / "plan.md")}
        r = await s.call_tool("fs.read_text_file", plan)
        assert r.is_error, text_of(r)
    decided = decision_of(gw, "fs.read_text_file", plan)
    assert decided.get("control") == switch["id"], decided
    assert "approval_requested" in kinds(gw), (decided, kinds(gw), text_of(r))

    # The observer back: the switch lifts itself.
    start_observer(gw)
    wait_for("the switch lifted", lambda: in_force(gw, id=switch["id"]) is None, timeout=15)
    assert "observer_heartbeat_restored" in kinds(gw)
    async with mcp_http(gw.mcp_url, token) as s:
        r = await s.call_tool("fs.read_text_file", readme)
        assert not r.is_error, text_of(r)


# --------------------------------------------------------------------------------------------
# c. The ledger modified under the running observer
# --------------------------------------------------------------------------------------------


async def test_the_ledger_modified_under_the_running_observer_freezes_the_gateway(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace: Workspace,
) -> None:
    gw = start_gateway(charter=with_observer(workspace, DEAD_MANS_SWITCH.replace("  required: true\n  heartbeat_deadline: 2s\n", "")))
    token = gw.open_session()
    readme = {"path": str(workspace.root / "README.md")}
    async with mcp_http(gw.mcp_url, token) as s:
        r = await s.call_tool("fs.read_text_file", readme)
        assert not r.is_error, text_of(r)
    observer = start_observer(gw, "--sweep-interval", "1s")
    observer.caught_up()
    assert in_force(gw) is None

    # Someone with the database edits a record the observer has already read.
    gw.tampered = True
    seq = find_attempt(gw.records(), "fs.read_text_file", readme)["seq"]
    assert tamper_record(gw.data, seq, edit=True, replace=("README.md", "notes/harmless.md")) == 1

    frozen = wait_for("the frozen posture", lambda: in_force(gw, action="frozen"), timeout=20)
    assert frozen["set_by"]["role"] == "observer", frozen
    assert frozen["detector"] == "ledger", frozen
    assert seq in frozen["evidence"], frozen
    assert observer.metric("warden_observer_chain_breaks_total") >= 1

    # The very next call is refused by the frozen posture.
    async with mcp_http(gw.mcp_url, token) as s:
        r = await s.call_tool("fs.read_text_file", readme)
        assert r.is_error, text_of(r)
    records = gw.records()
    last = [r for r in records if r["kind"] == "action_decided"][-1]["payload"]
    assert last.get("control") == frozen["id"], last
    assert last["decision"]["verdict"] == "deny", last

    # `warden audit verify` names the same record.
    verified = gw.verify()
    assert verified.returncode == 3, verified.stdout + verified.stderr
    assert f"record {seq}" in verified.stdout + verified.stderr


# --------------------------------------------------------------------------------------------
# g. The agent cannot reach the stream, the controls or the observer
# --------------------------------------------------------------------------------------------


async def test_the_agents_token_reaches_neither_the_stream_nor_the_controls_nor_the_observer(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace: Workspace,
) -> None:
    gw = start_gateway(charter=with_observer(workspace, DEAD_MANS_SWITCH.replace("  required: true\n  heartbeat_deadline: 2s\n", "")))
    observer = start_observer(gw)
    agent = gw.open_session()
    body = {"action": "frozen", "scope": "gateway", "reason": "the agent tries"}

    # The operator plane refuses the agent's token on every observer route.
    for method, path, kw in [
        ("GET", "/v1/ledger/stream?from=1", {}),
        ("GET", "/v1/controls", {}),
        ("POST", "/v1/controls", {"json": body}),
        ("POST", "/v1/controls/00000000-0000-0000-0000-000000000000/lift", {"json": {"reason": "x"}}),
        ("POST", "/v1/observer/heartbeat", {"json": {"head": 1}}),
        ("GET", "/metrics", {}),
    ]:
        r = operator(gw, method, path, token=agent, **kw)
        assert r.status_code in (401, 403), f"{method} {path}: {r.status_code} {r.text}"
    # Nor are these routes on the agent plane.
    for method, path in [("GET", "/v1/ledger/stream"), ("POST", "/v1/controls"), ("GET", "/metrics")]:
        r = httpx2.request(
            method, gw.agent_url + path, headers={"Authorization": f"Bearer {agent}"}, json=body, timeout=10
        )
        assert r.status_code in (401, 403, 404, 405), f"agent plane {method} {path}: {r.status_code}"
    # The observer's metrics answer only its own token.
    assert observer.metrics_text(token=agent).status_code == 401
    assert observer.metrics_text(token=gw.operator_token).status_code == 401
    assert observer.metrics_text().status_code == 200

    # The observer's credential sets a control but never lifts one, approves or opens sessions.
    r = operator(gw, "POST", "/v1/controls", token=observer.token, json={**body, "action": "alert", "reason": "an observer alert"})
    assert r.status_code == 201, r.text
    control = operator(gw, "POST", "/v1/controls", token=observer.token, json={"action": "conservative", "scope": "gateway", "reason": "test"}).json()["control"]
    r = operator(gw, "POST", f"/v1/controls/{control['id']}/lift", token=observer.token, json={"reason": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "observer_only", r.text
    r = operator(gw, "POST", "/v1/sessions", token=observer.token, json={"agent": "e2e-agent", "user": "alice"})
    assert r.status_code == 403, r.text
    r = operator(gw, "GET", "/v1/approvals", token=observer.token)
    assert r.status_code == 403, r.text
    # An admin lifts it.
    r = operator(gw, "POST", f"/v1/controls/{control['id']}/lift", json={"reason": "done"})
    assert r.status_code == 200, r.text
    assert in_force(gw) is None
    # Nothing the agent tried is in force, and none of its attempts was recorded as a control.
    assert "control_set" in kinds(gw) and kinds(gw).count("control_set") == 1


# --------------------------------------------------------------------------------------------
# d. A denial storm; a sensitive read then an outbound send
# --------------------------------------------------------------------------------------------

STORM_AND_EXFIL = """\
observer:
  detectors:
    - { id: denials, kind: denial_storm, threshold: 3, window: 1m, response: revoke_session, alone: true }
    - { id: secret-then-send, kind: sensitive_then_send, labels: [confidential], tools: [everything.echo], response: freeze_tool, alone: true }
"""


def mcp_status(gw: Gateway, token: str) -> int:
    """The HTTP status of an MCP `initialize` with `token`."""
    r = httpx2.post(
        gw.mcp_url,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"},
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
        },
        timeout=10,
    )
    return r.status_code


async def test_a_denial_storm_revokes_the_session(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace: Workspace,
) -> None:
    gw = start_gateway(charter=with_observer(workspace, STORM_AND_EXFIL))
    start_observer(gw)
    token, other = gw.open_session(), gw.open_session()
    async with mcp_http(gw.mcp_url, token) as s:
        for i in range(3):
            r = await s.call_tool("fs.read_text_file", {"path": str(workspace.outside / "secret.txt") + f"?{i}"})
            assert r.is_error, text_of(r)
        sid = session_of(gw, "fs.read_text_file", {"path": str(workspace.outside / "secret.txt") + "?0"})
        control = wait_for(
            "the session revoked",
            lambda: in_force(gw, action="revoke_session", scope="session", target=sid),
            timeout=15,
        )
        assert control["detector"] == "denials", control
        assert len(control["evidence"]) >= 3, control
    # The very next call: the agent's token no longer opens anything.
    assert mcp_status(gw, token) == 401
    wait_for("the session revoked the usual way", lambda: "session_revoked" in kinds(gw))
    assert "session_refused" in kinds(gw)
    # Another session is untouched.
    assert mcp_status(gw, other) == 200


async def test_a_sensitive_read_then_an_outbound_send_freezes_the_send_tool_for_the_session(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace: Workspace,
) -> None:
    gw = start_gateway(charter=with_observer(workspace, STORM_AND_EXFIL))
    start_observer(gw)
    token, other = gw.open_session(), gw.open_session()
    secret = {"path": str(workspace.root / "secret" / "plan.txt")}
    async with mcp_http(gw.mcp_url, token) as s:
        r = await s.call_tool("fs.read_text_file", secret)
        assert not r.is_error, text_of(r)
        # The send that follows the confidential read (the charter alone allows it).
        r = await s.call_tool("everything.echo", {"message": "launch code"})
        sid = session_of(gw, "fs.read_text_file", secret)
        control = wait_for(
            "the send tool frozen for the session",
            lambda: in_force(gw, action="freeze_tool", scope="session", target=sid),
            timeout=15,
        )
        assert control["tool"] == "everything.echo", control
        assert control["detector"] == "secret-then-send", control
        # The very next send is refused; the session can still read.
        again = {"message": "second try"}
        r = await s.call_tool("everything.echo", again)
        assert r.is_error, text_of(r)
        decided = decision_of(gw, "everything.echo", again)
        assert decided["decision"]["verdict"] == "deny" and decided.get("control") == control["id"], decided
        r = await s.call_tool("fs.read_text_file", {"path": str(workspace.root / "README.md")})
        assert not r.is_error, text_of(r)
    # Another session may still send.
    async with mcp_http(gw.mcp_url, other) as s:
        r = await s.call_tool("everything.echo", {"message": "hello"})
        assert not r.is_error, text_of(r)


# --------------------------------------------------------------------------------------------
# f. A rate far above a baseline learned from recorded history; the learning window
# --------------------------------------------------------------------------------------------

RATE = """\
observer:
  learning_window: 1h
  detectors:
    - { id: action-rate, kind: rate, threshold: 3, window: 1m, response: conservative, alone: true }
"""


async def test_a_rate_far_above_the_learned_baseline_is_conservative_but_only_an_alert_while_learning(
    gateway_with_history: Callable[[str, bool], Gateway],
    start_observer: Callable[..., Observer],
) -> None:
    # Recorded under this charter: the baseline holds (2 reads an active minute).
    gw = gateway_with_history(RATE, False)
    observer = start_observer(gw)
    token = gw.open_session()
    args, refused = await burst(gw, token, 12)
    sid = session_of(gw, "fs.read_file", args[0])
    control = wait_for(
        "the conservative posture",
        lambda: in_force(gw, action="conservative", scope="session", target=sid),
        timeout=15,
    )
    assert control["detector"] == "action-rate", control
    assert control["evidence"], control
    if refused is None:
        # The burst ended before the control came: the very next read sees it.
        refused = {"path": str(gw.ws.root / "README.md")}
        async with mcp_http(gw.mcp_url, token) as s:
            r = await s.call_tool("fs.read_file", refused)
            assert r.is_error, text_of(r)
    decided = decision_of(gw, "fs.read_file", refused)
    assert decided["decision"]["verdict"] == "ask" and decided.get("control") == control["id"], decided
    observer.stop()

    # The same behaviour after a charter change, inside the learning window: an alert only.
    gw2 = gateway_with_history(RATE, True)
    observer2 = start_observer(gw2)
    token2 = gw2.open_session()
    args2, refused2 = await burst(gw2, token2, 12)
    assert refused2 is None, "nothing is refused while the observer learns"
    sid2 = session_of(gw2, "fs.read_file", args2[0])
    alert = wait_for(
        "the alert",
        lambda: [r["payload"] for r in gw2.records() if r["kind"] == "observer_alert" and r["payload"].get("target") == sid2],
        timeout=15,
    )[0]
    assert alert["detector"] == "action-rate", alert
    observer2.caught_up()
    assert in_force(gw2) is None
    async with mcp_http(gw2.mcp_url, token2) as s:
        r = await s.call_tool("fs.read_file", {"path": str(gw2.ws.root / "README.md")})
        assert not r.is_error, text_of(r)

