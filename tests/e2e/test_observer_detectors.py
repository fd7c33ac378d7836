"""The observer's detectors end to end: a real `warden serve`, a real `warden observe` with its
own `observer` credential, the npm filesystem and everything servers, the scripted mock model
provider answering with tool calls (`warden-mock-llm`), the Python `mcp` and `openai` SDKs as
the agent.

Each test provokes one of the issue's scenarios, waits for the observer's intervention to be in
force (`GET /v1/controls`), checks its evidence and detector, and then checks that the gateway
enforces it on the very next call (the decision names the control). `warden audit verify` runs
after every test (the `start_gateway` fixture).

Rate baselines are learned from whole hours before the present one, so the rate scenario
records ordinary sessions first, stops the gateway and moves that history three hours back
(`warden-ledger-backdate`, a testkit tool that rehashes the chain), then starts the gateway
again on the same data: the observer reads the whole ledger from seq 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import openai
import pytest
from conftest import REFUSED, Gateway, charter_text, mcp_http, text_of, wait_for
from observer_detectors_support import (
    INTERVENTION_TIMEOUT,
    HISTORY_AGE_SECS,
    Observer,
    backdate,
    call,
    controls,
    decisions,
    first_decision_after_control,
    kinds,
    mock_llm,  # noqa: F401 — a fixture
    observer_section,
    session_of,
    start_observer,  # noqa: F401 — a fixture
    wait_control,
)
from test_model_proxy import KEY_ENV, PROVIDER_KEY, MockLlm

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------------------------
# d. A denial storm; a sensitive read followed by an outbound send
# --------------------------------------------------------------------------------------------

#: `everything.echo` stands for the outbound send (it is what leaves the session's data).
STORM_AND_SEND = observer_section("""\
  detectors:
    - { id: denials, kind: denial_storm, threshold: 5, window: 10m, response: revoke_session, alone: true }
    - id: secret-then-send
      kind: sensitive_then_send
      labels: [confidential]
      tools: [everything.echo]
      response: freeze_tool
""")


async def test_denial_storm_revokes_the_session(
    start_gateway: Callable[..., Gateway], start_observer: Callable[..., Observer], workspace
) -> None:
    gw = start_gateway(charter=charter_text(workspace) + STORM_AND_SEND)
    start_observer(gw)
    token = gw.open_session()
    sid = session_of(gw, token)
    outside = str(workspace.outside / "secret.txt")
    async with mcp_http(gw.mcp_url, token) as s:
        ok = await s.call_tool("fs__read_text_file", {"path": str(workspace.root / "README.md")})
        assert not ok.is_error, text_of(ok)
        for _ in range(5):
            r = await s.call_tool("fs__read_text_file", {"path": outside})
            assert r.is_error and REFUSED in text_of(r), text_of(r)
    control = wait_control(gw, "revoke_session", scope="session", target=sid)
    assert control["detector"] == "denials"
    assert control["set_by"]["role"] == "observer"
    denied = [
        r["seq"]
        for r in decisions(gw, sid, "fs.read_text_file")
        if r["payload"]["decision"]["verdict"] == "deny"
    ]
    assert set(denied) <= set(control["evidence"]) and len(denied) == 5, (denied, control)
    # The very next call: the session is revoked, its token no longer works.
    refused, text = await call(
        gw.mcp_url, token, "fs__read_text_file", {"path": str(workspace.root / "README.md")}
    )
    assert refused and ("401" in text or "revoked" in text.lower()), text
    revoked = kinds(gw, "session_revoked")
    assert [r["session"] for r in revoked] == [sid], revoked
    # Nothing of the session ran after the control: its last allowed read came before.
    forwarded = [r["seq"] for r in kinds(gw, "action_forwarded") if r["session"] == sid]
    set_at = [r["seq"] for r in kinds(gw, "control_set") if r["payload"]["id"] == control["id"]]
    assert set_at and all(f < set_at[0] for f in forwarded), (forwarded, set_at)


async def test_sensitive_read_then_send_freezes_the_send_tool(
    start_gateway: Callable[..., Gateway], start_observer: Callable[..., Observer], workspace
) -> None:
    gw = start_gateway(charter=charter_text(workspace) + STORM_AND_SEND)
    start_observer(gw)
    token = gw.open_session()
    sid = session_of(gw, token)
    async with mcp_http(gw.mcp_url, token) as s:
        # An echo before the confidential read is ordinary: nothing happens.
        before = await s.call_tool("everything__echo", {"message": "hello"})
        assert not before.is_error, text_of(before)
        secret = await s.call_tool(
            "fs__read_text_file", {"path": str(workspace.root / "secret" / "plan.txt")}
        )
        assert not secret.is_error, text_of(secret)
        sent = await s.call_tool("everything__echo", {"message": "the plan"})
        control = wait_control(gw, "freeze_tool", scope="session", target=sid)
        assert control["tool"] in ("everything.echo", "everything__echo"), control
        assert control["detector"] == "secret-then-send"
        labels = [r["seq"] for r in kinds(gw, "labels_added") if r["session"] == sid]
        send = [
            r["seq"]
            for r in kinds(gw, "action_attempted")
            if r["session"] == sid and r["payload"]["arguments"] == {"message": "the plan"}
        ]
        assert labels and send and set(labels[:1] + send) <= set(control["evidence"]), control
        del sent  # decided before the observer saw it: the send itself was not stopped
        # The very next send is denied, naming the control; other tools still work.
        nxt = await s.call_tool("everything__echo", {"message": "again"})
        assert nxt.is_error and REFUSED in text_of(nxt), text_of(nxt)
        assert control["id"] in text_of(nxt) and "observer:" in text_of(nxt), text_of(nxt)
        read = await s.call_tool("fs__read_text_file", {"path": str(workspace.root / "README.md")})
        assert not read.is_error, text_of(read)
    last = decisions(gw, sid, "everything.echo")[-1]["payload"]
    assert last["decision"]["verdict"] == "deny", last
    assert last.get("control") == control["id"], last
    assert last["decision"]["reason"] == "tool_frozen", last
    # Another session is not affected.
    other = gw.open_session()
    refused, text = await call(gw.mcp_url, other, "everything__echo", {"message": "fine"})
    assert not refused, text


# --------------------------------------------------------------------------------------------
# f. A rate far above the baseline learned from recorded history; the same during learning
# --------------------------------------------------------------------------------------------

RATE = observer_section("""\
  baseline_window: 1d
  learning_window: 1h
  detectors:
    - { id: action-rate, kind: rate, threshold: 3, window: 1m, response: conservative, alone: true }
""")


async def ordinary_session(gw: Gateway, ws: Any, reads: int = 2) -> None:
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as s:
        for i in range(reads):
            path = ws.root / ("README.md" if i % 2 == 0 else "docs/plan.md")
            r = await s.call_tool("fs__read_text_file", {"path": str(path)})
            assert not r.is_error, text_of(r)


async def burst(gw: Gateway, token: str, ws: Any, n: int) -> list[str]:
    """`n` reads in the root as fast as the agent can; the refusals' texts (an intervention
    may land in the middle of the burst)."""
    refusals = []
    async with mcp_http(gw.mcp_url, token) as s:
        for i in range(n):
            path = ws.root / ("README.md" if i % 2 == 0 else "docs/plan.md")
            r = await s.call_tool("fs__read_text_file", {"path": str(path)})
            if r.is_error:
                refusals.append(text_of(r))
    return refusals


async def test_rate_far_above_the_learned_baseline_is_conservative_and_only_alerts_while_learning(
    start_gateway: Callable[..., Gateway], start_observer: Callable[..., Observer], workspace
) -> None:
    gw = start_gateway(charter=charter_text(workspace) + RATE)
    # Recorded history: ordinary sessions of two reads each, then moved three hours back.
    for _ in range(6):
        await ordinary_session(gw, workspace)
    assert gw.stop() == 0, gw.log()
    backdate(gw, HISTORY_AGE_SECS)
    assert gw.verify().returncode == 0, gw.verify().stdout
    gw.restart()
    obs = start_observer(gw)

    # Twenty reads within a minute: far above two per active minute.
    token = gw.open_session()
    sid = session_of(gw, token)
    refusals = await burst(gw, token, workspace, 20)
    control = wait_control(gw, "conservative", scope="session", target=sid)
    assert control["detector"] == "action-rate" and control["set_by"]["role"] == "observer"
    assert "learning" not in control["reason"], control
    attempted = {r["seq"] for r in kinds(gw, "action_attempted") if r["session"] == sid}
    assert control["evidence"] and set(control["evidence"]) <= attempted, control
    # The very next decision of the session after the control sees it: the read needs
    # approval (the charter gives nobody but alice herself the authority: refused at once).
    nxt = first_decision_after_control(gw, sid, control)
    assert nxt["decision"]["verdict"] == "ask", nxt
    assert nxt["decision"]["reason"] == "conservative_posture", nxt
    assert nxt["control"] == control["id"], nxt
    assert refusals and control["id"] in refusals[0], refusals
    refused, text = await call(
        gw.mcp_url, token, "fs__read_text_file", {"path": str(workspace.root / "README.md")}
    )
    assert refused, text
    last = decisions(gw, sid, "fs.read_text_file")[-1]["payload"]
    assert last["decision"]["verdict"] == "ask", last
    assert last["decision"]["reason"] == "conservative_posture", last
    assert last["control"] == control["id"], last

    # A legitimate charter change: the observer learns for an hour and only alerts.
    assert obs.stop() == 0, obs.log()
    gw.charter.write_text(
        gw.charter.read_text().replace(
            "Exercise warden against the real MCP reference servers.",
            "Exercise warden against the real MCP reference servers, with a new purpose.",
        )
    )
    gw.restart()
    start_observer(gw, again=obs)
    token2 = gw.open_session()
    sid2 = session_of(gw, token2)
    assert await burst(gw, token2, workspace, 20) == []

    def alert() -> dict[str, Any] | None:
        for r in kinds(gw, "observer_alert"):
            if r["payload"].get("target") == sid2:
                return r["payload"]
        return None

    found = wait_for("the learning-window alert", alert, timeout=INTERVENTION_TIMEOUT)
    assert found["detector"] == "action-rate", found
    assert "learning window: alert only" in found["reason"], found
    assert not [c for c in controls(gw) if c.get("target") == sid2], controls(gw)
    # The very next read runs as the charter says (autonomous): nothing was put in force.
    refused, text = await call(
        gw.mcp_url, token2, "fs__read_text_file", {"path": str(workspace.root / "README.md")}
    )
    assert not refused, text
    last = decisions(gw, sid2, "fs.read_text_file")[-1]["payload"]
    assert last["decision"]["verdict"] == "allow" and "control" not in last, last


# --------------------------------------------------------------------------------------------
# e. The model proposed read_file, the agent attempted a send: intent mismatch, correlated
# --------------------------------------------------------------------------------------------

#: A mismatch alone, or a send after a confidential read alone, only alerts; the two on one
#: session within five minutes put it in the conservative posture.
MISMATCH = observer_section("""\
  detectors:
    - { id: unproposed-actions, kind: intent_mismatch, threshold: 1, window: 5m, response: conservative }
    - id: secret-then-send
      kind: sensitive_then_send
      labels: [confidential]
      tools: [everything.echo]
      response: conservative
      alone: false
  correlate:
    - id: unasked-send-of-secrets
      signals: [unproposed-actions, secret-then-send]
      min: 2
      within: 5m
      on: session
      response: conservative
""")
READ_FILE_TOOL = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]


def models_yaml(url: str) -> str:
    key = f"api_key_env: {KEY_ENV}, timeout: 10s"
    return f"""\
  models:
    - alias: fast
      routes:
        - {{ provider: openai, base_url: "{url}/v1", model: gpt-primary, {key} }}
"""


def propose_read(gw: Gateway, token: str, path: Path) -> None:
    """One model turn through warden's model proxy: the model proposes `read_file(path)`."""
    client = openai.OpenAI(api_key=token, base_url=f"{gw.agent_url}/v1", max_retries=0, timeout=30)
    reply = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": f'read it [tool:read_file {{"path": "{path}"}}]'}],
        tools=READ_FILE_TOOL,
    )
    calls = reply.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["read_file"], reply


async def test_model_proposed_a_read_agent_sent_instead_correlated_with_a_secret_read(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace,
    mock_llm: MockLlm,
) -> None:
    gw = start_gateway(
        charter=charter_text(workspace, models=models_yaml(mock_llm.url)) + MISMATCH,
        env={KEY_ENV: PROVIDER_KEY},
    )
    start_observer(gw)
    readme, secret = workspace.root / "README.md", workspace.root / "secret" / "plan.txt"

    # One signal alone: the model proposed a read, the agent sent instead. An alert, nothing
    # in force, the next send runs.
    token = gw.open_session()
    sid = session_of(gw, token)
    propose_read(gw, token, readme)
    wait_for("the model's intent", lambda: [r for r in kinds(gw, "model_intent") if r["session"] == sid])
    refused, text = await call(gw.mcp_url, token, "everything__echo", {"message": "hi"})
    assert not refused, text
    alert = wait_for(
        "the mismatch alert",
        lambda: [r["payload"] for r in kinds(gw, "observer_alert") if r["payload"].get("target") == sid],
        timeout=INTERVENTION_TIMEOUT,
    )[0]
    assert alert["detector"] == "unproposed-actions", alert
    assert not [c for c in controls(gw) if c.get("target") == sid], controls(gw)
    refused, text = await call(gw.mcp_url, token, "everything__echo", {"message": "again"})
    assert not refused, text

    # Correlated: the model proposed reading the secret plan, the agent read it (as proposed)
    # and then sent it out, which the model never proposed. Two signals on one session.
    token2 = gw.open_session()
    sid2 = session_of(gw, token2)
    propose_read(gw, token2, secret)
    wait_for("the model's intent", lambda: [r for r in kinds(gw, "model_intent") if r["session"] == sid2])
    async with mcp_http(gw.mcp_url, token2) as s:
        r = await s.call_tool("fs__read_file", {"path": str(secret)})
        assert not r.is_error, text_of(r)
        r = await s.call_tool("everything__echo", {"message": "the plan"})
        control = wait_control(gw, "conservative", scope="session", target=sid2)
        assert control["detector"] == "unasked-send-of-secrets", control
        intent = [r["seq"] for r in kinds(gw, "model_intent") if r["session"] == sid2]
        send = [
            r["seq"]
            for r in kinds(gw, "action_attempted")
            if r["session"] == sid2 and r["payload"]["tool"] == "everything.echo"
        ]
        labels = [r["seq"] for r in kinds(gw, "labels_added") if r["session"] == sid2]
        assert send[0] in control["evidence"] and labels[0] in control["evidence"], (control, intent)
        # The very next call needs approval (nobody but alice could give it: refused at once).
        nxt = await s.call_tool("fs__read_file", {"path": str(readme)})
        assert nxt.is_error and control["id"] in text_of(nxt), text_of(nxt)
    decided = first_decision_after_control(gw, sid2, control)
    assert decided["decision"]["verdict"] == "ask", decided
    assert decided["decision"]["reason"] == "conservative_posture", decided
    assert decided["control"] == control["id"], decided
    # The first session, with only one signal, is still not under any control.
    assert not [c for c in controls(gw) if c.get("target") == sid], controls(gw)
