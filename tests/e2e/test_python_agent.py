"""examples/python-agent: the plain Python agent of its README, run as a process against a real
`warden serve` with the example's charter. One function runs at once, the other waits for bob's
approval; the ledger holds both governed actions, of one session, with their results."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable

from conftest import REPO, Gateway, actions_by_id, wait_for
from test_approval import approvals, approver_token, pending_ids

EXAMPLE = REPO / "examples" / "python-agent"


def test_the_python_agent_example(start_gateway: Callable[..., Gateway]) -> None:
    gw = start_gateway(charter=(EXAMPLE / "charter.yaml").read_text())
    token = gw.open_session(user="alice", agent="python-agent")
    bob = approver_token(gw, "bob")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    agent = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "agent.py")],
        env={**env, "WARDEN_URL": gw.agent_url, "WARDEN_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        approval = wait_for("the mail's approval request", lambda: (pending_ids(gw, bob) or [None])[0])
        # alice's own approver credential may not approve her agent's mail.
        alice = approver_token(gw, "alice")
        assert approvals(gw, alice, "approve", approval).returncode != 0
        approved = approvals(gw, bob, "approve", approval, "--reason", "reviewed")
        assert approved.returncode == 0, approved.stderr
        out, _ = agent.communicate(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, out
    assert "looked up Ada Lovelace (ticket T-77)" in out, out
    assert f"waiting for approval {approval} by bob" in out, out
    assert "queued mail 1 to ada@example.com" in out, out
    assert token not in out

    records = gw.records()
    attempts = [r for r in records if r["kind"] == "action_attempted"]
    # The governed actions, all of one session: the lookup, the mail that waited, and the mail
    # retried once approved (the client's long poll may add retries while it waits).
    assert {r["session"] for r in attempts} == {attempts[0]["session"]}, attempts
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for r in attempts:
        by_tool.setdefault(r["payload"]["tool"], []).append(r)
    assert set(by_tool) == {"crm.lookup_customer", "mail.send_email"}, by_tool.keys()
    assert all(r["payload"]["via"] == "decide_api" for r in attempts)
    actions = actions_by_id(records)
    (lookup,) = by_tool["crm.lookup_customer"]
    kinds = actions[lookup["payload"]["action"]]
    assert kinds["action_decided"][0]["payload"]["decision"]["verdict"] == "allow"
    assert kinds["action_result"][0]["payload"]["status"] == "ok"
    sent = [
        actions[r["payload"]["action"]]
        for r in by_tool["mail.send_email"]
        if "action_forwarded" in actions[r["payload"]["action"]]
    ]
    assert len(sent) == 1, by_tool["mail.send_email"]
    assert sent[0]["action_decided"][0]["payload"]["decision"]["verdict"] == "ask"
    assert "approval_used" in sent[0], sent[0].keys()
    assert sent[0]["action_result"][0]["payload"]["status"] == "ok"
    granted = [r for r in records if r["kind"] == "approval_granted"]
    assert len(granted) == 1 and granted[0]["payload"]["approver"] == "bob", granted
