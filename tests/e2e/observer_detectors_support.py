"""What the observer's detector scenarios share (tests/e2e/test_observer_detectors.py and
tests/e2e/test_observer_benign.py): a real `warden observe` process with its own `observer`
credential and store, the control API seen by an admin, ledger helpers, and
`warden-ledger-backdate`, which moves a stopped gateway's recorded sessions hours back (the
observer's profiles learn from whole hours before the present one, and a test cannot wait an
hour).
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx2
import pytest
from conftest import REPO, WARDEN_BIN, Gateway, free_port, mcp_error_in, mcp_http, text_of, wait_for
from test_model_proxy import MockLlm

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


#: How far recorded history is moved back: whole hours before the present one.
HISTORY_AGE_SECS = 3 * 3600


def first_decision_after_control(gw: Gateway, session: str, control: dict[str, Any]) -> dict[str, Any]:
    """The decision of the session's first action attempted after the control took effect.

    The control is recorded (`control_set`) before it takes effect, and an attempt is recorded
    with its decision in one commit after it is decided: so the one call a sequential agent
    has in flight while the control is being set can be decided without it and committed after
    its record. That call (only the first attempt after the record, and only when it was
    decided without the control) is passed over; every later one must see the control."""
    records = gw.records()
    set_at = [r["seq"] for r in records if r["kind"] == "control_set" and r["payload"]["id"] == control["id"]]
    assert set_at, "no control_set record"
    attempted = [
        r["payload"]["action"]
        for r in records
        if r["kind"] == "action_attempted" and r["session"] == session and r["seq"] > set_at[0]
    ]
    assert attempted, "no action after the control"
    def decision_of(action: str) -> dict[str, Any]:
        decided = [
            r["payload"]
            for r in records
            if r["kind"] == "action_decided" and r["payload"].get("action") == action
        ]
        assert len(decided) == 1, decided
        return decided[0]

    first = decision_of(attempted[0])
    if first.get("control") != control["id"]:
        # In flight while the control was being set: decided before it was in force.
        assert len(attempted) > 1, "no action decided after the control took effect"
        return decision_of(attempted[1])
    return first


def backdate(gw: Gateway, secs: int) -> None:
    if not BACKDATE_BIN.exists():
        pytest.fail(f"{BACKDATE_BIN} is not built: `cargo build -p warden-testkit`")
    ledger = (
        ["--store", gw.store, "--instance", (gw.data / "instance").read_text().strip()]
        if gw.store
        else ["--ledger", str(gw.data / "ledger.db")]
    )
    out = subprocess.run(
        [str(BACKDATE_BIN), *ledger, "--by-secs", str(secs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture
def mock_llm() -> Iterator[MockLlm]:
    m = MockLlm.start("primary")
    try:
        yield m
    finally:
        m.stop()
