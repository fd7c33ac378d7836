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

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import anyio
import httpx2
import openai
import pytest
from conftest import (
    AGENT,
    REFUSED,
    REPO,
    WARDEN_BIN,
    Gateway,
    charter_text,
    free_port,
    mcp_error_in,
    mcp_http,
    text_of,
    wait_for,
)
from test_model_proxy import KEY_ENV, PROVIDER_KEY, MockLlm

pytestmark = pytest.mark.anyio

#: The testkit tool that moves a stopped gateway's ledger back in time (beside the binary).
BACKDATE_BIN = (
    Path(os.environ["WARDEN_BACKDATE_BIN"])
    if os.environ.get("WARDEN_BACKDATE_BIN")
    else WARDEN_BIN.parent / "warden-ledger-backdate"
)
#: How long an intervention may take to be in force once its record is committed.
INTERVENTION_TIMEOUT = 15.0


# --------------------------------------------------------------------------------------------
# The observer process
# --------------------------------------------------------------------------------------------


@dataclass
class Observer:
    """One `warden observe` process watching `gw`."""

    gw: Gateway
    dir: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int

    @classmethod
    def start(cls, gw: Gateway, dir: Path) -> "Observer":
        dir.mkdir(parents=True, exist_ok=True)
        r = httpx2.post(
            f"{gw.operator_url}/v1/operator-tokens",
            headers={"Authorization": f"Bearer {gw.operator_token}"},
            json={"name": "observer-e2e", "role": "observer"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        token_file = dir / "observer.token"
        token_file.write_text(r.json()["token"])
        token_file.chmod(0o600)
        log_path = dir / "observe.log"
        metrics_port = free_port()
        proc = subprocess.Popen(
            [
                str(WARDEN_BIN),
                "observe",
                "--gateway",
                gw.operator_url,
                "--token-file",
                str(token_file),
                "--charter",
                str(gw.charter),
                "--data",
                str(dir / "data"),
                "--checkpoint-interval",
                "1s",
                "--metrics-listen",
                f"127.0.0.1:{metrics_port}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")},
                "NO_COLOR": "1",
                "RUST_LOG": "info",
            },
        )

        def copy() -> None:
            assert proc.stdout is not None
            with log_path.open("ab") as out:
                for line in iter(proc.stdout.readline, b""):
                    out.write(line)
                    out.flush()

        threading.Thread(target=copy, daemon=True).start()
        return cls(gw=gw, dir=dir, proc=proc, log_path=log_path, metrics_port=metrics_port)

    def metric(self, name: str) -> float | None:
        """One unlabelled figure of the observer's own `/metrics`."""
        token = (self.dir / "observer.token").read_text().strip()
        try:
            r = httpx2.get(
                f"http://127.0.0.1:{self.metrics_port}/metrics",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
        except httpx2.HTTPError:
            return None
        for line in r.text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def caught_up(self, timeout: float = 30.0) -> None:
        """Waits until the observer has read every record the gateway has committed so far."""
        head = max(r["seq"] for r in self.gw.records())
        wait_for(
            f"the observer to read up to {head}",
            lambda: (self.metric("warden_observer_last_read") or 0) >= head,
            timeout=timeout,
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"warden observe did not stop:\n{self.log()}") from None


@pytest.fixture
def start_observer(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Observer]]:
    started: list[Observer] = []

    def start(gw: Gateway, again: Observer | None = None) -> Observer:
        """A new observer of `gw`; with `again`, one on the store of that (stopped) observer,
        which resumes from its checkpoint."""
        obs = Observer.start(gw, again.dir if again else tmp_path / f"observer{len(started)}")
        started.append(obs)
        return obs

    yield start
    report = getattr(request.node, "rep_call", None)
    codes = []
    for obs in started:
        codes.append(obs.stop())
        if report is not None and report.failed:
            tail = "\n".join(obs.log().splitlines()[-60:])
            print(f"--- warden observe log ({obs.log_path}), last lines ---\n{tail}")
    assert all(c == 0 for c in codes), f"warden observe exited {codes}"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def admin(gw: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gw.operator_token}"}


def controls(gw: Gateway, all_: bool = False) -> list[dict[str, Any]]:
    r = httpx2.get(
        f"{gw.operator_url}/v1/controls" + ("?all=true" if all_ else ""),
        headers=admin(gw),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()["controls"]


def wait_control(gw: Gateway, action: str, **match: Any) -> dict[str, Any]:
    """The first control in force with this action (and these fields), once there is one."""

    def found() -> dict[str, Any] | None:
        for c in controls(gw):
            if c["action"] == action and all(c.get(k) == v for k, v in match.items()):
                return c
        return None

    return wait_for(f"a `{action}` control {match}", found, timeout=INTERVENTION_TIMEOUT)


def kinds(gw: Gateway, kind: str) -> list[dict[str, Any]]:
    return [r for r in gw.records() if r["kind"] == kind]


def session_of(gw: Gateway, token: str) -> str:
    """The id of the session the agent token belongs to (the newest `session_opened`)."""
    return kinds(gw, "session_opened")[-1]["session"]


def decisions(gw: Gateway, session: str, tool: str) -> list[dict[str, Any]]:
    by_action = {
        r["payload"]["action"]: r["payload"]["tool"]
        for r in gw.records()
        if r["kind"] == "action_attempted" and r["session"] == session
    }
    return [
        r
        for r in gw.records()
        if r["kind"] == "action_decided"
        and r["session"] == session
        and by_action.get(r["payload"].get("action")) == tool
    ]


def observer_section(body: str) -> str:
    return "\nobserver:\n" + body


async def call(url: str, token: str, tool: str, args: dict[str, Any]) -> tuple[bool, str]:
    """One tool call in its own MCP session: (refused or failed, text)."""
    try:
        async with mcp_http(url, token) as s:
            result = await s.call_tool(tool, args)
            return bool(result.is_error), text_of(result)
    except Exception as exc:  # noqa: BLE001 — a revoked token fails the session itself
        err = mcp_error_in(exc)
        return True, str(err if err is not None else exc)


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
#: How far the recorded history is moved back: whole hours before the present one.
HISTORY_AGE_SECS = 3 * 3600


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


def first_decision_after_control(gw: Gateway, session: str, control: dict[str, Any]) -> dict[str, Any]:
    """The decision of the session's first action attempted after the control's `control_set`
    record (an action attempted before it may be decided while the control is being set)."""
    records = gw.records()
    set_at = [r["seq"] for r in records if r["kind"] == "control_set" and r["payload"]["id"] == control["id"]]
    assert set_at, "no control_set record"
    attempted = [
        r["payload"]["action"]
        for r in records
        if r["kind"] == "action_attempted" and r["session"] == session and r["seq"] > set_at[0]
    ]
    assert attempted, "no action after the control"
    decided = [
        r["payload"]
        for r in records
        if r["kind"] == "action_decided" and r["payload"].get("action") == attempted[0]
    ]
    assert len(decided) == 1, decided
    return decided[0]


def backdate(gw: Gateway, secs: int) -> None:
    if not BACKDATE_BIN.exists():
        pytest.fail(f"{BACKDATE_BIN} is not built: `cargo build -p warden-testkit`")
    out = subprocess.run(
        [str(BACKDATE_BIN), "--ledger", str(gw.data / "ledger.db"), "--by-secs", str(secs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


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


@pytest.fixture
def mock_llm() -> Iterator[MockLlm]:
    m = MockLlm.start("primary")
    try:
        yield m
    finally:
        m.stop()


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
    import re

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
    import json as _json

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
                    messages=[{"role": "user", "content": f"next step [tool:{name} {_json.dumps(args)}]"}],
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
    import random

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
