"""Peers and helpers of the observer's end-to-end tests (test_observer.py,
test_observer_model.py): a real `warden observe` process with its own `observer` credential and
data directory, the scripted mock provider for the model proxy, and recorded history written
into a gateway's ledger before it starts (`warden-ledger-history`)."""


from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import anyio
import httpx2
import pytest

from conftest import (
    REPO,
    WARDEN_BIN,
    Gateway,
    Workspace,
    actions_by_id,
    charter_text,
    find_attempt,
    free_port,
    mcp_http,
    text_of,
    wait_for,
)

pytestmark = pytest.mark.anyio

#: How long an observer may take to start reading.
OBSERVER_START = 30.0


# --------------------------------------------------------------------------------------------
# The observer process
# --------------------------------------------------------------------------------------------


def operator(gw: Gateway, method: str, path: str, token: str | None = None, **kw: Any) -> httpx2.Response:
    """A request to the gateway's operator plane (the admin's token unless `token`)."""
    headers = {"Authorization": f"Bearer {token or gw.operator_token}"}
    return httpx2.request(method, gw.operator_url + path, headers=headers, timeout=15, **kw)


def issue_observer_credential(gw: Gateway, name: str = "e2e-observer") -> str:
    r = operator(gw, "POST", "/v1/operator-tokens", json={"name": name, "role": "observer"})
    assert r.status_code == 201, r.text
    return r.json()["token"]


def controls(gw: Gateway, all_: bool = False) -> list[dict[str, Any]]:
    r = operator(gw, "GET", "/v1/controls" + ("?all=true" if all_ else ""))
    assert r.status_code == 200, r.text
    return r.json()["controls"]


@dataclass
class Observer:
    """One `warden observe` process on a gateway."""

    gw: Gateway
    tmp: Path
    extra_args: list[str] = field(default_factory=list)
    token: str = field(init=False)
    token_file: Path = field(init=False)
    data: Path = field(init=False)
    metrics_port: int = field(init=False)
    proc: subprocess.Popen[bytes] | None = field(init=False, default=None)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.token = issue_observer_credential(self.gw)
        self.token_file = self.tmp / "observer.token"
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.token + "\n")
        self.data = self.tmp / "observer-data"
        self.log_path = self.tmp / "observer.log"

    def start(self) -> "Observer":
        self.metrics_port = free_port()
        self.proc = subprocess.Popen(
            [
                str(WARDEN_BIN),
                "observe",
                "--gateway",
                self.gw.operator_url,
                "--token-file",
                str(self.token_file),
                "--charter",
                str(self.gw.charter),
                "--data",
                str(self.data),
                "--metrics-listen",
                f"127.0.0.1:{self.metrics_port}",
                "--checkpoint-interval",
                "1s",
                *self.extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={
                **{k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")},
                "NO_COLOR": "1",
                "WARDEN_LOG": "info,warden_observer=debug",
            },
        )
        threading.Thread(target=_copy_to, args=(self.proc.stdout, self.log_path), daemon=True).start()
        wait_for(
            "the observer to read the ledger",
            lambda: self._alive() and self.metric("warden_observer_records_read_total") > 0,
            timeout=OBSERVER_START,
        )
        return self

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"warden observe exited {self.proc.returncode}:\n{self.log()}")
        return True

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def metrics_text(self, token: str | None = None) -> httpx2.Response:
        return httpx2.get(
            f"http://127.0.0.1:{self.metrics_port}/metrics",
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=5,
        )

    def metric(self, name: str, labels: str = "") -> float:
        """The value of one sample (0 when absent or the listener is not up yet)."""
        try:
            r = self.metrics_text()
        except httpx2.HTTPError:
            return 0.0
        if r.status_code != 200:
            return 0.0
        total = 0.0
        for line in r.text.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            base, _, rest = key.partition("{")
            if base == name and all(l in rest for l in labels.split(",") if l):
                total += float(value)
        return total

    def caught_up(self) -> None:
        """Waits until the observer has read every record committed now."""
        head = max(r["seq"] for r in self.gw.records())
        wait_for(
            f"the observer to read up to record {head}",
            lambda: self._alive() and self.metric("warden_observer_last_read") >= head,
        )

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)


def _copy_to(pipe: Any, path: Path) -> None:
    with path.open("ab") as out:
        for line in iter(pipe.readline, b""):
            out.write(line)
            out.flush()


@pytest.fixture
def start_observer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Observer]]:
    """Starts observers; stops them at the end of the test (each must exit 0 on SIGTERM unless
    the test killed it) and shows their logs when the test failed."""
    started: list[Observer] = []

    def start(gw: Gateway, *extra_args: str) -> Observer:
        d = tmp_path / f"obs{len(started)}"
        d.mkdir()
        o = Observer(gw=gw, tmp=d, extra_args=list(extra_args))
        started.append(o)
        return o.start()

    yield start
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for o in started:
            tail = "\n".join(o.log().splitlines()[-60:])
            print(f"--- warden observe log ({o.log_path}), last lines ---\n{tail}")
    for o in started:
        if o.proc is not None and o.proc.poll() is None:
            code = o.stop()
            assert code == 0, f"warden observe exited {code} after SIGTERM:\n{o.log()}"


# --------------------------------------------------------------------------------------------
# Charters and helpers
# --------------------------------------------------------------------------------------------


def with_observer(ws: Workspace, section: str, models: str = "", approval_timeout: str = "2s") -> str:
    """The e2e charter with an `observer` section (YAML, top level). Reads in the root may be
    approved by the other engineer, so a conservative posture makes them wait for approval."""
    text = charter_text(ws, approval_timeout=approval_timeout, models=models)
    text = text.replace(
        "approve: [default, mkdir-needs-approval, refunds]",
        "approve: [default, mkdir-needs-approval, refunds, read-root, echo]",
    )
    assert "read-root, echo]" in text
    return text + "\n" + section


def decision_of(gw: Gateway, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The `action_decided` payload of the one attempt of `tool` with `arguments`."""
    records = gw.records()
    attempt = find_attempt(records, tool, arguments)
    decided = actions_by_id(records)[attempt["payload"]["action"]]["action_decided"]
    assert len(decided) == 1, decided
    return decided[0]["payload"]


def in_force(gw: Gateway, **want: Any) -> dict[str, Any] | None:
    """The control in force whose fields include `want`, if any."""
    for c in controls(gw):
        if all(c.get(k) == v for k, v in want.items()):
            return c
    return None


def kinds(gw: Gateway) -> list[str]:
    return [r["kind"] for r in gw.records()]


def files(ws: Workspace, folder: str, n: int) -> list[Path]:
    d = ws.root / folder
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = d / f"file-{i:02}.txt"
        p.write_text(f"{folder} file {i}\n")
        out.append(p)
    return out


# --------------------------------------------------------------------------------------------
# The model proxy: a scripted mock provider answering with tool calls, the `openai` SDK
# --------------------------------------------------------------------------------------------


@pytest.fixture
def mock_llm() -> Iterator[Any]:
    from test_model_proxy import MockLlm

    m = MockLlm.start("observed")
    try:
        yield m
    finally:
        m.stop()


def models_yaml(mock: Any) -> str:
    from test_model_proxy import KEY_ENV

    return f"""\
  models:
    - alias: fast
      routes:
        - {{ provider: openai, base_url: "{mock.url}/v1", model: gpt-observed, api_key_env: {KEY_ENV}, timeout: 10s }}
"""


def model_env() -> dict[str, str]:
    from test_model_proxy import KEY_ENV, PROVIDER_KEY

    return {KEY_ENV: PROVIDER_KEY}


#: The tools the agent offers the model (OpenAI shape).
AGENT_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} on the demo folder.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
    for name in ("read_file", "write_file")
]


def ask_model(gw: Gateway, token: str, prompt: str) -> Any:
    """One chat completion through the model proxy, as the agent (the `openai` SDK)."""
    import openai

    client = openai.OpenAI(api_key=token, base_url=f"{gw.agent_url}/v1", max_retries=0, timeout=30)
    return client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": prompt}], tools=AGENT_TOOLS
    )


def session_of(gw: Gateway, tool: str, arguments: dict[str, Any]) -> str:
    return find_attempt(gw.records(), tool, arguments)["session"]


# --------------------------------------------------------------------------------------------
# Recorded history
# --------------------------------------------------------------------------------------------

#: `warden-ledger-history` (crate warden-testkit): `$WARDEN_HISTORY_BIN`, else beside warden.
HISTORY_BIN = (
    Path(os.environ["WARDEN_HISTORY_BIN"])
    if os.environ.get("WARDEN_HISTORY_BIN")
    else WARDEN_BIN.parent / "warden-ledger-history"
)


def charter_hash(path: Path) -> str:
    out = subprocess.run([str(WARDEN_BIN), "check", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return "blake3:" + out.stdout.split("blake3:")[1].split()[0]


@pytest.fixture
def gateway_with_history(
    request: pytest.FixtureRequest, tmp_path: Path, workspace: Workspace
) -> Iterator[Callable[[str, bool], Gateway]]:
    """A gateway started on a data directory that already holds three hours of the agent's
    recorded history (two reads a minute, ten minutes an hour, under `docs/`), recorded under
    the same charter or, with `changed`, under another one."""
    started: list[Gateway] = []

    def start(section: str, changed: bool) -> Gateway:
        if not HISTORY_BIN.exists():
            pytest.fail(f"{HISTORY_BIN} is not built: run `cargo build -p warden-testkit`")
        d = tmp_path / f"hist{len(started)}"
        d.mkdir()
        gw = Gateway(tmp=d, ws=workspace, charter_override=with_observer(workspace, section))
        started.append(gw)
        recorded_under = "blake3:" + "0" * 64 if changed else charter_hash(gw.charter)
        # On PostgreSQL: the history goes to the chain of an instance named now, which the
        # tool writes to `DIR/instance`, so the gateway continues it.
        store = ["--store", gw.store, "--instance", f"gw-history-{len(started)}"] if gw.store else []
        out = subprocess.run(
            [str(HISTORY_BIN), "--data", str(gw.data), "--agent", "e2e-agent", "--charter-hash",
             recorded_under, "--dir", str(workspace.root / "docs"), *store],
            capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        return gw.start()

    yield start
    for gw in started:
        assert gw.stop() == 0, gw.log()
        verified = gw.verify()
        assert verified.returncode == 0, verified.stdout + verified.stderr


async def burst(gw: Gateway, token: str, n: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Up to `n` reads as fast as the agent can, in the usual directory; stops at the first
    one refused. Returns the reads made and the refused one, if any."""
    args = [{"path": str(p)} for p in files(gw.ws, "docs", n)]
    async with mcp_http(gw.mcp_url, token) as s:
        for i, a in enumerate(args):
            r = await s.call_tool("fs.read_file", a)
            if r.is_error:
                return args[: i + 1], a
    return args, None

