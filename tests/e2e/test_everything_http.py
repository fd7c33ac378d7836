"""The npm reference server `@modelcontextprotocol/server-everything` over Streamable HTTP
(the TypeScript SDK's server: a session per client, every answer an event stream) as an
upstream: warden's direct client opens a session of its own beside the connection's, reads
each call's answer out of the server's event stream, and ends its session when warden stops."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from conftest import EVERYTHING_SERVER, Gateway, free_port, mcp_http, text_of

pytestmark = pytest.mark.anyio

CHARTER = """\
version: 1
identity:
  id: e2e-agent
  name: End-to-end test agent
  purpose: Call the reference server over Streamable HTTP.
  serves: The warden test suite
inventory:
  servers:
    - id: ev
      url: "{url}"
      tools: [echo, get-sum]
actions:
  default_posture: deny
  rules:
    - {{ id: ev-tools, tool: [ev.echo, ev.get-sum], tier: autonomous }}
authority:
  roles:
    - {{ id: engineer, approve: [default] }}
  principals:
    - {{ id: alice, name: Alice, roles: [engineer] }}
"""


@pytest.fixture
def everything(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The reference server on a free loopback port: its `/mcp` URL and its log."""
    port = free_port()
    log_path = tmp_path / "everything.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        ["node", str(EVERYTHING_SERVER), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the reference server did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp", log_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


async def test_calls_are_answered_out_of_the_servers_event_streams(
    start_gateway: Callable[..., Gateway], everything: tuple[str, Path]
) -> None:
    url, log = everything
    gw = start_gateway(charter=CHARTER.format(url=url))
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        for i in range(5):
            r = await session.call_tool("ev.echo", {"message": f"hello {i}"})
            assert not r.is_error, text_of(r)
            assert text_of(r) == f"Echo: hello {i}"
        r = await session.call_tool("ev.get-sum", {"a": 2, "b": 40})
        assert not r.is_error, text_of(r)
        assert "42" in text_of(r), text_of(r)
    # Two sessions with the server: the connection's (listing the tools) and the direct
    # client's (the calls). Had the calls gone through the connection, there would be one.
    opened = [line for line in log.read_text().splitlines() if "Session initialized" in line]
    assert len(opened) == 2, log.read_text()
    records = gw.records()
    results = [r for r in records if r["kind"] == "action_result"]
    assert len(results) == 6, results
    assert all(r["payload"].get("status") == "ok" for r in results), results
