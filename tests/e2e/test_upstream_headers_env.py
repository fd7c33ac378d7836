"""Issue 11, point 3: a Streamable HTTP upstream's `headers` with a `${NAME}` value, end to
end. A real `warden serve`, started with the variable in its environment, sends the header to
an HTTP MCP server (the real Python MCP SDK, `auth_upstream.py`) that refuses every request
without it; the agent's calls succeed, and the value is in no ledger record, no log line and
no answer the agent gets."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

import httpx2
import pytest

from conftest import WARDEN_BIN, Gateway, free_port, mcp_http, text_of

pytestmark = pytest.mark.anyio

VARIABLE = "E2E_UPSTREAM_TOKEN"
TOKEN = "upstream-env-token-5e1d"
UPSTREAM = Path(__file__).with_name("auth_upstream.py")

CHARTER = """\
version: 1
identity:
  id: e2e-agent
  name: End-to-end test agent
  purpose: Reach an HTTP tool server that needs a token.
  serves: The warden test suite
inventory:
  servers:
    - id: auth
      url: "{url}"
      tools: [echo, whoami]
      headers: {{ Authorization: "Bearer ${{{variable}}}" }}
actions:
  default_posture: deny
  rules:
    - {{ id: auth-any, tool: "auth.*", tier: autonomous }}
authority:
  roles:
    - {{ id: engineer, approve: [default] }}
  principals:
    - {{ id: alice, name: Alice, roles: [engineer] }}
"""


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The token-checking MCP server on a free loopback port: its `/mcp` URL and the file of
    the `Authorization` headers it received."""
    seen = tmp_path / "seen.txt"
    seen.touch()
    port = free_port()
    log = open(tmp_path / "upstream.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(UPSTREAM), str(port)],
        env={**os.environ, "AUTH_UPSTREAM_TOKEN": TOKEN, "AUTH_UPSTREAM_SEEN": str(seen)},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "upstream.log").read_text()
            try:
                # Unauthenticated: refused, which shows it is up (and checks).
                if httpx2.post(url, json={}, timeout=2).status_code == 401:
                    break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "the upstream did not start"
            time.sleep(0.1)
        seen.write_text("")
        yield url, seen
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


async def test_an_env_header_reaches_the_upstream_and_nobody_else(
    start_gateway: Callable[..., Gateway], upstream: tuple[str, Path]
) -> None:
    url, seen = upstream
    # Debug logging: the value must stay out of the log at every level an operator may set.
    gw = start_gateway(
        charter=CHARTER.format(url=url, variable=VARIABLE),
        env={VARIABLE: TOKEN, "WARDEN_LOG": "debug"},
    )
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        tools = await session.list_tools()
        echoed = await session.call_tool("auth.echo", {"text": "hello"})
        whoami = await session.call_tool("auth.whoami", {})
    assert not echoed.is_error, text_of(echoed)
    assert text_of(echoed) == "hello"
    # The upstream got the header (it refuses requests without it) and told the agent what it
    # got: the gateway replaced the value before the agent saw it.
    assert not whoami.is_error, text_of(whoami)
    assert text_of(whoami) == "[REDACTED]", text_of(whoami)
    received = [line for line in seen.read_text().splitlines() if line]
    assert received, "the upstream received nothing"
    assert set(received) == {f"Bearer {TOKEN}"}, received
    # Nowhere else: not in what the agent got, the ledger, or the gateway's log.
    answers = json.dumps(
        [tools.model_dump(mode="json"), echoed.model_dump(mode="json"), whoami.model_dump(mode="json")]
    )
    assert TOKEN not in answers
    records = gw.records()
    assert any("auth.whoami" in json.dumps(r) for r in records), "the call was not recorded"
    assert not any(TOKEN in json.dumps(r) for r in records), "the value is in the ledger"
    code = gw.stop()
    assert code == 0, gw.log()
    log = gw.log()
    assert "auth" in log and log.strip(), "the gateway logged nothing"
    assert TOKEN not in log, "the value is in the gateway's log"


async def test_an_unset_env_header_stops_start_up_naming_the_variable(
    tmp_path: Path, upstream: tuple[str, Path]
) -> None:
    url, seen = upstream
    charter = tmp_path / "charter.yaml"
    charter.write_text(CHARTER.format(url=url, variable=VARIABLE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_") and k != VARIABLE}
    out = subprocess.run(
        [
            str(WARDEN_BIN),
            "serve",
            "--charter",
            str(charter),
            "--data",
            str(tmp_path / "data"),
            "--agent-listen",
            "127.0.0.1:0",
            "--operator-listen",
            "127.0.0.2:0",
        ],
        env={**env, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0, out.stdout + out.stderr
    assert f"`{VARIABLE}`" in out.stderr and "server `auth`" in out.stderr, out.stderr
    assert seen.read_text() == "", "the upstream was called without the header"


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain HTTP forward proxy: a request in absolute form is sent on to its server and the
    whole answer relayed; what passed is recorded as (HTTP method, JSON-RPC method)."""

    passed: list[tuple[str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _relay(self) -> None:
        target = urlsplit(self.path)
        if not target.hostname:
            self.send_error(400, "not a proxy request")
            return
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            method = json.loads(body).get("method") or "reply" if body else ""
        except ValueError:
            method = "?"
        type(self).passed.append((self.command, method))
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("proxy-connection", "connection", "keep-alive", "host")
        }
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        conn.request(self.command, target.path or "/", body=body, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(k, v)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_POST = _relay
    do_DELETE = _relay

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        # No standalone event stream through this proxy (allowed by the protocol).
        self.send_response(405)
        self.send_header("content-length", "0")
        self.end_headers()


async def test_a_proxy_named_in_the_environment_carries_every_call(
    start_gateway: Callable[..., Gateway], upstream: tuple[str, Path]
) -> None:
    """warden's fast path to an HTTP tool server (its direct client) never goes around an
    egress proxy the operator named in `HTTP_PROXY`: every call passes through the proxy."""
    url, _ = upstream
    _ForwardProxy.passed = []
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        gw = start_gateway(
            charter=CHARTER.format(url=url, variable=VARIABLE),
            env={
                VARIABLE: TOKEN,
                "HTTP_PROXY": f"http://127.0.0.1:{proxy.server_address[1]}",
                "NO_PROXY": "",
                "no_proxy": "",
            },
        )
        token = gw.open_session()
        async with mcp_http(gw.mcp_url, token) as session:
            for i in range(3):
                echoed = await session.call_tool("auth.echo", {"text": f"hello {i}"})
                assert not echoed.is_error, text_of(echoed)
                assert text_of(echoed) == f"hello {i}"
    finally:
        proxy.shutdown()
    calls = [p for p in _ForwardProxy.passed if p == ("POST", "tools/call")]
    assert len(calls) == 3, _ForwardProxy.passed
