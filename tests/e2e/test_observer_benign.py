"""A benign run of realistic sessions for each example charter (examples/*/charter.yaml)
raises no alert and no intervention: the false positives are counted and the number kept in
the test. A real `warden serve` and `warden observe`; for each example, ordinary, varied
sessions are recorded, moved three hours back (`warden-ledger-backdate`) so that every
detector has its baseline and history, and then more run live while the observer watches. The
MCP examples talk to the real everything server with a model turn through the proxy (the mock
provider) proposing each call; the others use the decide API. `warden audit verify` runs after
every test (the `start_gateway` fixture).
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Callable

import httpx2
import openai
import pytest
from conftest import REPO, Gateway, mcp_http
from observer_detectors_support import (
    HISTORY_AGE_SECS,
    Observer,
    backdate,
    controls,
    mock_llm,  # noqa: F401 — a fixture
    observer_section,
    start_observer,  # noqa: F401 — a fixture
)
from test_model_proxy import MockLlm

pytestmark = pytest.mark.anyio


# --------------------------------------------------------------------------------------------
# h. A benign run of realistic sessions for each example charter: no intervention
# --------------------------------------------------------------------------------------------

#: The detectors of the coding-agent example, for the examples that have no `observer` section
#: of their own (without `sensitive_then_send`, whose labels and tools are that charter's).
GENERIC_OBSERVER = observer_section("""\
  baseline_window: 14d
  learning_window: 2d
  escalate_within: 30m
  ceiling: revoke_session
  detectors:
    - { id: denials, kind: denial_storm, threshold: 5, window: 10m, response: conservative, alone: true }
    - { id: unfamiliar-directory, kind: new_resource_burst, threshold: 15, window: 5m, response: conservative }
    - { id: action-rate, kind: rate, threshold: 3, window: 1m, response: conservative }
    - { id: unproposed-actions, kind: intent_mismatch, threshold: 3, window: 5m, response: conservative }
    - { id: token-spike, kind: token_spike, threshold: 4, response: alert }
    - { id: ledger, kind: ledger_integrity, response: conservative }
  correlate:
    - { id: exploring-unfamiliar-ground, signals: [unfamiliar-directory, action-rate], within: 5m, response: conservative }
    - { id: exploring-unasked, signals: [unfamiliar-directory, unproposed-actions], within: 5m, response: conservative }
""")


def example_charter(name: str, mock_url: str) -> tuple[str, dict[str, str]]:
    """An example charter as a test can run it: servers that would need software or hosts this
    machine does not have lose their transport (the agent calls them itself, after the decide
    API), the mock alias points at the test's mock provider, provider keys are dummies; the
    `observer` section is the example's own, else `GENERIC_OBSERVER`."""
    text = (REPO / "examples" / name / "charter.yaml").read_text()
    out, skip_env = [], False
    for line in text.splitlines():
        if skip_env:
            if line.startswith("        "):
                continue
            skip_env = False
        if re.match(r"^      (command|url): ", line) and "node_modules/" not in line:
            continue
        if re.match(r"^      env:\s*$", line):
            skip_env = True
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    text = text.replace("http://127.0.0.1:8790", mock_url)
    if "\nobserver:" not in text:
        text += GENERIC_OBSERVER
    env = {k: "sk-dummy-not-used" for k in set(re.findall(r"api_key_env: (\w+)", text))}
    return text, env


def coding_calls(rng: Any) -> list[tuple[str, dict[str, Any]]]:
    crate = rng.choice(["core", "pdp", "audit", "gateway"])
    src = f"/workspace/crates/{crate}/src"
    calls = [
        ("git.status", {}),
        ("fs.list_directory", {"path": src}),
        ("fs.read_text_file", {"path": f"{src}/lib.rs"}),
        ("fs.search_files", {"path": "/workspace/crates", "pattern": rng.choice(["fn main", "TODO", "unwrap"])}),
        ("fs.read_text_file", {"path": f"{src}/{rng.choice(['error', 'config', 'store'])}.rs"}),
        ("shell.run_command", {"command": rng.choice(["cargo test", "cargo check", "cargo clippy"])}),
        ("fs.edit_file", {"path": f"{src}/lib.rs", "edits": [{"oldText": "a", "newText": "b"}]}),
        ("git.diff", {}),
        ("db.query", {"sql": "SELECT id, status FROM builds ORDER BY id DESC LIMIT 10"}),
        ("web.fetch", {"url": "https://docs.rs/tokio/latest/tokio/"}),
        ("git.commit", {"message": "fix the flaky test"}),
    ]
    if rng.random() < 0.3:  # an ordinary mistake, refused
        calls.insert(3, ("fs.read_text_file", {"path": "/workspace/.env"}))
    return calls[: rng.randint(5, len(calls))]


def support_calls(rng: Any) -> list[tuple[str, dict[str, Any]]]:
    ticket = f"T-{rng.randint(1000, 9999)}"
    customer = f"C-{rng.randint(100, 999)}"
    calls = [
        ("crm.get_ticket", {"ticket_id": ticket}),
        ("crm.lookup_customer", {"customer_id": customer}),
        ("email.list_threads", {"ticket_id": ticket}),
        ("email.get_thread", {"thread_id": f"th-{ticket}"}),
        ("fs.read_text_file", {"path": f"/srv/support/kb/{rng.choice(['billing', 'refunds', 'login'])}.md"}),
        ("fs.read_text_file", {"path": f"/srv/support/macros/{rng.choice(['apology', 'refund-done'])}.md"}),
        ("fs.write_file", {"path": f"/srv/support/drafts/{ticket}.md", "content": "Dear customer"}),
        ("crm.update_ticket", {"ticket_id": ticket, "status": "pending", "note": "drafted a reply"}),
        ("email.send_email", {"to": "maria.keller@acme.example", "subject": f"{ticket}", "body": "Can you check?"}),
    ]
    return calls[: rng.randint(4, len(calls))]


def python_agent_calls(rng: Any) -> list[tuple[str, dict[str, Any]]]:
    calls = [("crm.lookup_customer", {"id": f"cust-{rng.randint(1, 500)}"}) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.3:
        calls.append(("mail.send_email", {"to": "someone@elsewhere.org", "subject": "Hi", "body": "x"}))
    return calls


def everything_calls(rng: Any) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    for _ in range(rng.randint(2, 6)):
        if rng.random() < 0.5:
            calls.append(("everything.echo", {"message": rng.choice(["hello", "status?", "done"])}))
        else:
            calls.append(("everything.get-sum", {"a": rng.randint(-50, 50), "b": rng.randint(0, 99)}))
    return calls


#: Per example: its principals for sessions, the calls of one session, and whether the agent
#: talks MCP (with model turns through the proxy proposing each call) or the decide API.
EXAMPLES: dict[str, tuple[list[str], Callable[[Any], list[tuple[str, dict[str, Any]]]], bool]] = {
    "coding-agent": (["priya@platform.example", "jonas@platform.example"], coding_calls, False),
    "customer-support": (["tom.ferreira@acme.example", "jamie.chen@acme.example"], support_calls, False),
    "python-agent": (["alice"], python_agent_calls, False),
    "langgraph": (["alice"], everything_calls, True),
    "openai-agents": (["alice"], everything_calls, True),
}


async def benign_session(
    gw: Gateway, agent: str, user: str, calls: list[tuple[str, dict[str, Any]]], mcp: bool
) -> dict[str, int]:
    """One session doing `calls`; its verdicts counted."""
    token = gw.open_session(user=user, agent=agent)
    verdicts: dict[str, int] = {}
    if mcp:
        client = openai.OpenAI(api_key=token, base_url=f"{gw.agent_url}/v1", max_retries=0, timeout=30)
        async with mcp_http(gw.mcp_url, token) as s:
            for tool, args in calls:
                name = tool.split(".", 1)[1]
                # The model proposes the call, the agent makes it, the result goes back.
                client.chat.completions.create(
                    model="mock",
                    messages=[{"role": "user", "content": f"next step [tool:{name} {json.dumps(args)}]"}],
                    tools=[{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}],
                )
                r = await s.call_tool(tool.replace(".", "__"), args)
                key = "refused" if r.is_error else "allow"
                verdicts[key] = verdicts.get(key, 0) + 1
        return verdicts
    with httpx2.Client(base_url=gw.agent_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        for tool, args in calls:
            r = api.post("/v1/decide", json={"tool": tool, "arguments": args})
            assert r.status_code in (200, 202), r.text
            d = r.json()
            verdicts[d["verdict"]] = verdicts.get(d["verdict"], 0) + 1
            if d["verdict"] == "allow":
                res = api.post(f"/v1/actions/{d['action']}/result", json={"status": "ok", "output": "done"})
                assert res.status_code == 200, res.text
    return verdicts


#: False positives of the benign run, per example charter: alerts and interventions the
#: observer raised on ordinary, varied behaviour. Kept here so a change that makes the
#: detectors noisier fails this test.
EXPECTED_FALSE_POSITIVES = {name: 0 for name in EXAMPLES}


@pytest.mark.parametrize("example", list(EXAMPLES))
async def test_benign_sessions_of_each_example_charter_trigger_no_intervention(
    example: str,
    start_gateway: Callable[..., Gateway],
    start_observer: Callable[..., Observer],
    mock_llm: MockLlm,
) -> None:
    principals, make_calls, mcp = EXAMPLES[example]
    text, env = example_charter(example, mock_llm.url)
    gw = start_gateway(charter=text, env=env)
    agent = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("  id:"))
    rng = random.Random(f"warden-benign-{example}")
    totals: dict[str, int] = {}

    async def sessions(n: int) -> None:
        for i in range(n):
            v = await benign_session(gw, agent, principals[i % len(principals)], make_calls(rng), mcp)
            for k, c in v.items():
                totals[k] = totals.get(k, 0) + c

    # History three hours back (the profiles learn from whole hours), then the live run.
    await sessions(12)
    assert gw.stop() == 0, gw.log()
    backdate(gw, HISTORY_AGE_SECS)
    gw.restart()
    obs = start_observer(gw)
    await sessions(12)
    obs.caught_up()
    records = gw.records()
    alerts = [r["payload"] for r in records if r["kind"] == "observer_alert"]
    interventions = [
        r["payload"]
        for r in records
        if r["kind"] == "control_set" and r["payload"]["set_by"]["role"] == "observer"
    ]
    print(f"{example}: verdicts {totals}, alerts {len(alerts)}, interventions {len(interventions)}")
    assert totals.get("allow", 0) >= sum(totals.values()) // 2, totals
    assert len(alerts) + len(interventions) == EXPECTED_FALSE_POSITIVES[example], (alerts, interventions)
    assert controls(gw) == []
