"""The observer end to end with the model proxy (issue 12): the scripted mock provider answers
with tool calls and the `openai` SDK is the agent, so the observer sees what the model proposed
(intents) beside what the agent attempted. The design's scenario, an unproposed send, and benign
realistic sessions. Helpers in observer_support.py."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import pytest

from conftest import Gateway, Workspace, find_attempt, mcp_http, text_of, wait_for
from observer_support import (  # noqa: F401 — fixtures
    Observer,
    ask_model,
    controls,
    decision_of,
    files,
    in_force,
    kinds,
    mock_llm,
    model_env,
    models_yaml,
    session_of,
    start_observer,
    with_observer,
)

pytestmark = pytest.mark.anyio

# --------------------------------------------------------------------------------------------
# a. The design's scenario
# --------------------------------------------------------------------------------------------

#: The window is short so the test need not wait minutes: the agent's history must be older
#: than it before anything is "never touched before".
DESIGN = """\
observer:
  detectors:
    - { id: unfamiliar-directory, kind: new_resource_burst, threshold: 15, window: 6s, response: conservative }
    - { id: unproposed-actions, kind: intent_mismatch, threshold: 3, window: 5m, response: conservative }
  correlate:
    - id: exploring-unasked
      signals: [unfamiliar-directory, unproposed-actions]
      within: 5m
      response: conservative
"""


async def test_the_design_scenario_puts_the_session_in_the_conservative_posture(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace: Workspace,
    mock_llm: Any,
) -> None:
    gw = start_gateway(
        charter=with_observer(workspace, DESIGN, models=models_yaml(mock_llm)), env=model_env()
    )
    observer = start_observer(gw)
    # History: the agent's usual reads, older than the detector's window.
    earlier = gw.open_session()
    async with mcp_http(gw.mcp_url, earlier) as s:
        for p in ("README.md", "docs/plan.md"):
            r = await s.call_tool("fs.read_file", {"path": str(workspace.root / p)})
            assert not r.is_error, text_of(r)
    time.sleep(6.5)

    token = gw.open_session()
    archive = files(workspace, "archive", 16)
    # The model proposes one read.
    resp = ask_model(gw, token, f'let me look [tool:read_file {{"path": "{archive[0]}"}}]')
    assert resp.choices[0].message.tool_calls[0].function.name == "read_file"
    async with mcp_http(gw.mcp_url, token) as s:
        # The agent reads fifteen files of a directory it never touched: the charter allows
        # each one.
        for p in archive[:15]:
            r = await s.call_tool("fs.read_file", {"path": str(p)})
            assert not r.is_error, text_of(r)
        sid = session_of(gw, "fs.read_file", {"path": str(archive[0])})
        control = wait_for(
            "the conservative posture for the session",
            lambda: in_force(gw, action="conservative", scope="session", target=sid),
            timeout=15,
        )
        assert control["set_by"]["role"] == "observer", control
        assert control["detector"] == "exploring-unasked", control
        reads = [find_attempt(gw.records(), "fs.read_file", {"path": str(p)})["seq"] for p in archive[:15]]
        assert set(control["evidence"]) & set(reads), control

        # The sixteenth read: the charter alone would allow it; now it waits for approval.
        sixteenth = {"path": str(archive[15])}
        r = await s.call_tool("fs.read_file", sixteenth)
        assert r.is_error and "conservative" in text_of(r), text_of(r)
    decided = decision_of(gw, "fs.read_file", sixteenth)
    assert decided["decision"]["verdict"] == "ask", decided
    assert decided.get("control") == control["id"], decided
    assert "approval_requested" in kinds(gw)
    # Another session of the same agent is not affected.
    async with mcp_http(gw.mcp_url, earlier) as s:
        r = await s.call_tool("fs.read_file", {"path": str(workspace.root / "README.md")})
        assert not r.is_error, text_of(r)
    assert observer.metric("warden_observer_responses_total", 'action="conservative",outcome="sent"') == 1
    assert observer.metric("warden_observer_detection_to_intervention_seconds_count") >= 1


# --------------------------------------------------------------------------------------------
# e. The model proposed a read, the agent attempted a send: intent mismatch, correlated
# --------------------------------------------------------------------------------------------

UNPROPOSED_SEND = """\
observer:
  detectors:
    - { id: unproposed, kind: intent_mismatch, threshold: 1, window: 5m, response: conservative }
    - { id: secret-then-send, kind: sensitive_then_send, labels: [confidential], tools: [everything.echo], response: conservative, alone: false }
  correlate:
    - { id: unasked-exfiltration, signals: [unproposed, secret-then-send], within: 5m, response: conservative }
"""


async def test_a_send_the_model_never_proposed_is_an_intent_mismatch_correlated(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace: Workspace,
    mock_llm: Any,
) -> None:
    gw = start_gateway(
        charter=with_observer(workspace, UNPROPOSED_SEND, models=models_yaml(mock_llm)), env=model_env()
    )
    observer = start_observer(gw)
    token = gw.open_session()
    secret = workspace.root / "secret" / "plan.txt"
    resp = ask_model(gw, token, f'read the plan [tool:read_file {{"path": "{secret}"}}]')
    assert resp.choices[0].message.tool_calls[0].function.name == "read_file"
    async with mcp_http(gw.mcp_url, token) as s:
        r = await s.call_tool("fs.read_file", {"path": str(secret)})
        assert not r.is_error, text_of(r)
        # Nothing proposed a send.
        r = await s.call_tool("everything.echo", {"message": "exfiltrated"})
        sid = session_of(gw, "fs.read_file", {"path": str(secret)})
        control = wait_for(
            "the correlated response",
            lambda: in_force(gw, action="conservative", scope="session", target=sid),
            timeout=15,
        )
        assert control["detector"] == "unasked-exfiltration", control
        send = find_attempt(gw.records(), "everything.echo", {"message": "exfiltrated"})["seq"]
        intent = [r["seq"] for r in gw.records() if r["kind"] == "model_intent"][0]
        assert send in control["evidence"], control
        # Each signal alone was only an alert, recorded.
        alerts = [r["payload"] for r in gw.records() if r["kind"] == "observer_alert"]
        assert {a.get("detector") for a in alerts} >= {"unproposed"}, alerts
        # The very next action waits for approval.
        nxt = {"message": "again"}
        r = await s.call_tool("everything.echo", nxt)
        assert r.is_error, text_of(r)
    decided = decision_of(gw, "everything.echo", nxt)
    assert decided["decision"]["verdict"] == "ask" and decided.get("control") == control["id"], decided
    assert intent < send
    assert observer.metric("warden_observer_detections_total", 'kind="intent_mismatch"') >= 1


# --------------------------------------------------------------------------------------------
# h. Benign, realistic sessions: no intervention
# --------------------------------------------------------------------------------------------

#: The example charters' observer sections (examples/coding-agent, customer-support,
#: finance-ops: every detector kind, the correlation rules, escalation), on this inventory.
EXAMPLE_OBSERVER = """\
observer:
  baseline_window: 14d
  learning_window: 2d
  escalate_within: 30m
  ceiling: revoke_session
  detectors:
    - { id: denials, kind: denial_storm, threshold: 5, window: 10m, response: conservative, alone: true }
    - { id: secret-then-send, kind: sensitive_then_send, labels: [confidential], tools: [everything.echo], response: freeze_tool }
    - { id: unfamiliar-directory, kind: new_resource_burst, threshold: 15, window: 5m, response: conservative }
    - { id: action-rate, kind: rate, threshold: 3, window: 1m, response: conservative }
    - { id: unproposed-actions, kind: intent_mismatch, threshold: 3, window: 5m, response: conservative }
    - { id: token-spike, kind: token_spike, threshold: 4, response: alert }
    - { id: ledger, kind: ledger_integrity, response: frozen }
  correlate:
    - { id: exploring, signals: [unfamiliar-directory, action-rate], within: 5m, response: conservative }
    - { id: exploring-unasked, signals: [unfamiliar-directory, unproposed-actions], within: 5m, response: conservative }
"""

#: False positives of the benign run below: alerts the observer raised (kept in the test; an
#: intervention is never acceptable).
BENIGN_ALERTS = 0


async def test_benign_realistic_sessions_are_never_intervened_in(
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    workspace: Workspace,
    mock_llm: Any,
) -> None:
    gw = start_gateway(
        charter=with_observer(workspace, EXAMPLE_OBSERVER, models=models_yaml(mock_llm)),
        env=model_env(),
    )
    observer = start_observer(gw)
    root = workspace.root
    docs = files(workspace, "docs", 4)
    # Four sessions of ordinary work, each action proposed by the model first.
    plans: list[list[tuple[str, str, dict[str, Any]]]] = [
        [("read_file", "fs.read_file", {"path": str(root / "README.md")}),
         ("list_directory", "fs.list_directory", {"path": str(root / "docs")}),
         ("read_file", "fs.read_file", {"path": str(docs[0])}),
         ("write_file", "fs.write_file", {"path": str(root / "notes" / "summary.md"), "content": "done\n"})],
        [("read_file", "fs.read_file", {"path": str(root / "docs" / "plan.md")}),
         ("read_file", "fs.read_file", {"path": str(docs[1])}),
         ("read_file", "fs.read_file", {"path": str(docs[2])}),
         # An honest mistake: a write outside notes/ (prohibited, one denial).
         ("write_file", "fs.write_file", {"path": str(root / "README.md"), "content": "x"}),
         ("write_file", "fs.write_file", {"path": str(root / "notes" / "todo.md"), "content": "- a\n"})],
        [("read_file", "fs.read_file", {"path": str(root / "secret" / "plan.txt")}),
         ("write_file", "fs.write_file", {"path": str(root / "notes" / "reviewed.md"), "content": "ok\n"})],
        [("list_directory", "fs.list_directory", {"path": str(root)}),
         ("read_file", "fs.read_file", {"path": str(docs[3])}),
         ("read_file", "fs.read_file", {"path": str(root / "notes" / "summary.md")})],
    ]
    for plan in plans:
        token = gw.open_session()
        async with mcp_http(gw.mcp_url, token) as s:
            for proposed, tool, args in plan:
                ask_model(gw, token, f"next step [tool:{proposed} {json.dumps(args)}]")
                await s.call_tool(tool, args)
                time.sleep(0.3)
    observer.caught_up()
    time.sleep(1.0)
    records = gw.records()
    interventions = [r["payload"] for r in records if r["kind"] == "control_set"]
    alerts = [r["payload"] for r in records if r["kind"] == "observer_alert"]
    assert interventions == [], interventions
    assert len(alerts) == BENIGN_ALERTS, alerts
    assert controls(gw) == []
    assert observer.metric("warden_observer_records_read_total") >= len(records) - 5