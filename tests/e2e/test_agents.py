"""Issue 17 end to end: three agents under three charters in ONE gateway (a coordinator, a
worker and a support agent, on the npm reference servers `fs` and `everything`), driven by
the real `mcp` client; delegation through `POST /v1/sessions/delegate` and through MCP (the
worker is also an agent exposed as an MCP server, `agents/worker_agent.py`, that acts through
warden with the child session's token it receives in `_meta`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterator

import httpx2
import pytest

from conftest import (
    EVERYTHING_SERVER,
    FS_SERVER,
    SECRET_TEXT,
    Gateway,
    Workspace,
    free_port,
    mcp_http,
    text_of,
)

pytestmark = pytest.mark.anyio

WORKER_AGENT = Path(__file__).with_name("agents") / "worker_agent.py"

#: What every charter of the set declares alike: a server id names one upstream for the
#: whole gateway, so `fs` and `everything` are declared identically in each.
SERVERS = """\
    - id: fs
      command: [node, "$fs_server", "$base"]
      sandbox: { mode: off }
      tools: [read_text_file, write_file, create_directory, list_directory]
    - id: everything
      command: [node, "$everything_server", stdio]
      tools: [echo, get-sum]
"""

AUTHORITY = """\
authority:
  separation_of_duties: true
  roles:
    - { id: engineer, approve: [default] }
  principals:
    - { id: alice, name: Alice, roles: [engineer] }
    - { id: bob, name: Bob, roles: [engineer] }

data:
  labels:
    - { id: confidential, description: Anything under secret/. }
  sources:
    - { label: confidential, tool: "fs.*", path: "$root/secret/**" }
"""

COORDINATOR = Template(
    """\
version: 1
identity:
  id: coordinator
  name: Coordinator
  purpose: Plans the work and hands it to the worker.
  serves: The warden test suite
inventory:
  servers:
"""
    + SERVERS
    + """\
    - id: worker
      description: The worker agent, exposed as an MCP server.
      url: "$worker_url"
      tools: [do_task]
      agent: worker
delegation:
  to: [worker]
  from: [worker]
  max_depth: 4
actions:
  default_posture: deny
  approval: { timeout: 2s }
  rules:
    - id: read-root
      tool: [fs.read_text_file, fs.list_directory]
      tier: autonomous
      args: { path: { glob: ["$root", "$root/**"] } }
    - id: write-plans
      tool: fs.write_file
      tier: autonomous
      args: { path: { glob: "$root/plans/**" } }
    - id: mkdir
      tool: fs.create_directory
      tier: approval
      args: { path: { glob: "$root/**" } }
    - id: send
      tool: [everything.echo, everything.get-sum]
      tier: autonomous
    - id: hand-to-worker
      tool: worker.do_task
      tier: autonomous
"""
    + AUTHORITY.replace("[default]", "[default, mkdir]")
)

WORKER = Template(
    """\
version: 1
identity:
  id: worker
  name: Worker
  purpose: Implements what the coordinator hands it.
  serves: The warden test suite
inventory:
  servers:
"""
    + SERVERS
    + """\
delegation:
  from: [coordinator]
  to: [coordinator, support]
  max_depth: 4
actions:
  default_posture: deny
  approval: { timeout: 2s }
  rules:
    - id: read-root
      tool: [fs.read_text_file, fs.list_directory]
      tier: autonomous
      args: { path: { glob: ["$root", "$root/**"] } }
    - id: write-code
      description: The worker writes code; the coordinator's charter does not allow it.
      tool: fs.write_file
      tier: autonomous
      args: { path: { glob: "$root/src/**" } }
    - id: mkdir
      tool: fs.create_directory
      tier: approval
      args: { path: { glob: "$root/**" } }
    - id: send
      tool: everything.echo
      tier: autonomous
    - id: no-send-after-confidential
      tool: everything.echo
      tier: prohibited
      labels: { any: [confidential] }
"""
    + AUTHORITY.replace("[default]", "[default, mkdir]")
)

SUPPORT = Template(
    """\
version: 1
identity:
  id: support
  name: Support
  purpose: Answers from the docs.
  serves: The warden test suite
inventory:
  servers:
"""
    + SERVERS
    + """\
delegation:
  from: [worker]
  max_depth: 1
actions:
  default_posture: deny
  rules:
    - id: read-docs
      tool: [fs.read_text_file, fs.list_directory]
      tier: autonomous
      args: { path: { glob: ["$root/docs", "$root/docs/**"] } }
"""
    + AUTHORITY
)


class Agents:
    """The gateway of three agents, the worker agent's server, and the operator's means."""

    def __init__(self, gw: Gateway, tokens_file: Path) -> None:
        self.gw = gw
        self.tokens_file = tokens_file

    def operator(self, method: str, path: str, body: Any = None) -> httpx2.Response:
        return httpx2.request(
            method,
            f"{self.gw.operator_url}{path}",
            headers={"Authorization": f"Bearer {self.gw.operator_token}"},
            json=body,
            timeout=30,
        )

    def open(self, agent: str, user: str = "alice") -> tuple[str, str]:
        r = self.operator(
            "POST", "/v1/sessions", {"agent": agent, "user": user, "task": "e2e agents", "ttl": "30m"}
        )
        assert r.status_code == 201, r.text
        return r.json()["id"], r.json()["token"]

    def delegate(self, token: str, agent: str, **extra: Any) -> httpx2.Response:
        return httpx2.post(
            f"{self.gw.agent_url}/v1/sessions/delegate",
            headers={"Authorization": f"Bearer {token}"},
            json={"agent": agent, **extra},
            timeout=30,
        )

    def refusals(self) -> list[dict[str, Any]]:
        return [r["payload"] for r in self.gw.records() if r["kind"] == "delegation_refused"]


@pytest.fixture
def agents(
    tmp_path: Path, workspace: Workspace, start_gateway: Callable[..., Gateway]
) -> Iterator[Agents]:
    root = workspace.root
    for d in ("src", "plans"):
        (root / d).mkdir(exist_ok=True)
    port = free_port()
    url_file = tmp_path / "warden-url"
    tokens = tmp_path / "worker-tokens"
    tokens.touch()
    log = open(tmp_path / "worker-agent.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(WORKER_AGENT), str(port), str(url_file)],
        env={**os.environ, "WORKER_AGENT_TOKENS": str(tokens)},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker_url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "worker-agent.log").read_text()
            try:
                # Any answer to an empty POST (a JSON-RPC error) shows it is up.
                httpx2.post(worker_url, json={}, timeout=2)
                break
            except httpx2.HTTPError:
                pass
            assert time.monotonic() < deadline, "the worker agent did not start"
            time.sleep(0.1)
        values = dict(
            fs_server=FS_SERVER,
            everything_server=EVERYTHING_SERVER,
            base=workspace.base,
            root=root,
            worker_url=worker_url,
        )
        charters = tmp_path / "charters"
        charters.mkdir()
        paths = []
        for name, template in (("worker", WORKER), ("support", SUPPORT)):
            p = charters / f"{name}.yaml"
            p.write_text(template.substitute(values))
            paths += ["--charter", str(p)]
        gw = start_gateway(*paths, charter=COORDINATOR.substitute(values))
        url_file.write_text(gw.mcp_url)
        yield Agents(gw, tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def tool_names(listed: Any) -> set[str]:
    return {t.name for t in listed.tools}


# -- each session governed by its own charter ---------------------------------------------------


async def test_each_session_is_governed_by_its_own_charter_only(agents: Agents) -> None:
    root = agents.gw.ws.root
    _, support = agents.open("support")
    _, worker = agents.open("worker")
    async with mcp_http(agents.gw.mcp_url, support) as s:
        tools = tool_names(await s.list_tools())
        assert tools == {"fs__read_text_file", "fs__list_directory"}, tools
        ok = await s.call_tool("fs__read_text_file", {"path": str(root / "docs" / "plan.md")})
        assert not ok.is_error, text_of(ok)
        # What only the worker's charter allows is refused to the support agent.
        refused = await s.call_tool(
            "fs__write_file", {"path": str(root / "src" / "s.py"), "content": "x"}
        )
        assert refused.is_error, text_of(refused)
    assert not (root / "src" / "s.py").exists()
    async with mcp_http(agents.gw.mcp_url, worker) as s:
        tools = tool_names(await s.list_tools())
        assert "fs__write_file" in tools and "worker__do_task" not in tools, tools
        ok = await s.call_tool("fs__write_file", {"path": str(root / "src" / "w.py"), "content": "w"})
        assert not ok.is_error, text_of(ok)


def test_the_inventory_lists_what_each_charter_enforces(agents: Agents) -> None:
    """`GET /v1/agents`: exactly the three agents, each with what its charter (above) enforces."""
    listed = agents.operator("GET", "/v1/agents")
    assert listed.status_code == 200, listed.text
    assert sorted(a["id"] for a in listed.json()["agents"]) == ["coordinator", "support", "worker"]

    def tiers(agent: str) -> dict[str, set[str]]:
        r = agents.operator("GET", f"/v1/agents/{agent}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["charter"]["hash"].startswith("blake3:"), body["charter"]
        out: dict[str, set[str]] = {}
        for item in body["tools"]["items"]:
            out[item["tool"]] = {t["tier"] for t in item["tiers"]}
        return out | {"_delegation_to": set(body["delegation"]["to"])}

    coordinator, worker, support = tiers("coordinator"), tiers("worker"), tiers("support")
    # The rules as written in COORDINATOR, WORKER and SUPPORT.
    assert coordinator["worker.do_task"] == {"autonomous"}
    assert coordinator["fs.create_directory"] == {"approval"}
    assert "worker.do_task" not in worker and "worker.do_task" not in support
    assert worker["everything.echo"] == {"autonomous", "prohibited"}
    assert worker["fs.write_file"] == {"autonomous"}
    assert support["fs.read_text_file"] == {"autonomous"}
    # A tool no rule of the support charter covers falls to its default posture (deny).
    assert support["fs.write_file"] == {"prohibited"}, support["fs.write_file"]
    assert coordinator["_delegation_to"] == {"worker"}
    assert worker["_delegation_to"] == {"coordinator", "support"}
    assert support["_delegation_to"] == set()
    missing = agents.operator("GET", "/v1/agents/nobody")
    assert missing.status_code == 404, missing.text


# -- delegation through the API ----------------------------------------------------------------


async def test_a_delegated_worker_can_do_only_what_both_charters_allow(agents: Agents) -> None:
    root = agents.gw.ws.root
    coordinator_id, coordinator = agents.open("coordinator")
    r = agents.delegate(coordinator, "worker", task="implement step 1")
    assert r.status_code == 201, r.text
    child = r.json()
    assert child["agent"] == "worker"
    assert child["chain"] == [{"session": coordinator_id, "agent": "coordinator"}]
    async with mcp_http(agents.gw.mcp_url, child["token"]) as s:
        ok = await s.call_tool("fs__read_text_file", {"path": str(root / "docs" / "plan.md")})
        assert not ok.is_error, text_of(ok)
        # The worker's charter allows writing code; the coordinator's does not: refused.
        refused = await s.call_tool(
            "fs__write_file", {"path": str(root / "src" / "child.py"), "content": "x"}
        )
        assert refused.is_error, text_of(refused)
    assert not (root / "src" / "child.py").exists()
    records = agents.gw.records()
    delegated = [r for r in records if r["kind"] == "session_delegated"]
    assert [d["session"] for d in delegated] == [child["id"]]
    assert delegated[0]["payload"]["via"] == "api"
    assert delegated[0]["payload"]["parent"] == coordinator_id
    decided = [
        r for r in records if r["kind"] == "action_decided" and r["session"] == child["id"]
    ]
    assert len(decided) == 2, decided
    for d in decided:
        assert d["payload"]["chain"] == [{"session": coordinator_id, "agent": "coordinator"}], d
    # The binding refusal names the charter it came from.
    under = decided[1]["payload"]["under"]
    assert [u["agent"] for u in under] == ["worker", "coordinator"], under
    assert decided[1]["payload"]["decision"]["verdict"] == "deny"


async def test_labels_the_coordinator_picked_up_hold_back_the_workers_send(agents: Agents) -> None:
    root = agents.gw.ws.root
    _, clean = agents.open("coordinator")
    _, reader = agents.open("coordinator")
    async with mcp_http(agents.gw.mcp_url, reader) as s:
        read = await s.call_tool("fs__read_text_file", {"path": str(root / "secret" / "plan.txt")})
        assert SECRET_TEXT in text_of(read)
    for token, held in ((clean, False), (reader, True)):
        r = agents.delegate(token, "worker")
        assert r.status_code == 201, r.text
        async with mcp_http(agents.gw.mcp_url, r.json()["token"]) as s:
            sent = await s.call_tool("everything__echo", {"message": "status report"})
            assert sent.is_error == held, text_of(sent)
            if held:
                assert "no-send-after-confidential" in text_of(sent), text_of(sent)


async def test_revoking_the_coordinator_stops_the_worker(agents: Agents) -> None:
    root = agents.gw.ws.root
    coordinator_id, coordinator = agents.open("coordinator")
    r = agents.delegate(coordinator, "worker")
    assert r.status_code == 201, r.text
    child = r.json()
    args = {"path": str(root / "docs" / "plan.md")}
    async with mcp_http(agents.gw.mcp_url, child["token"]) as s:
        assert not (await s.call_tool("fs__read_text_file", args)).is_error
    revoked = agents.operator("POST", f"/v1/sessions/{coordinator_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    with pytest.raises(BaseException):
        async with mcp_http(agents.gw.mcp_url, child["token"]) as s:
            result = await s.call_tool("fs__read_text_file", args)
            assert not result.is_error, "a revoked ancestor stops the child"
    attempts_after = [
        r
        for r in agents.gw.records()
        if r["kind"] == "action_result" and r["session"] == child["id"]
    ]
    assert len(attempts_after) == 1, "only the call before the revocation ran"


async def test_an_approval_request_of_a_worker_names_the_chain(agents: Agents) -> None:
    root = agents.gw.ws.root
    coordinator_id, coordinator = agents.open("coordinator")
    r = agents.delegate(coordinator, "worker")
    assert r.status_code == 201, r.text
    child = r.json()
    async with mcp_http(agents.gw.mcp_url, child["token"]) as s:
        waited = await s.call_tool("fs__create_directory", {"path": str(root / "newdir")})
        assert waited.is_error, "nobody approved within the timeout"
    requested = [
        r for r in agents.gw.records() if r["kind"] == "approval_requested" and r["session"] == child["id"]
    ]
    assert len(requested) == 1, requested
    assert requested[0]["payload"]["chain"] == [{"session": coordinator_id, "agent": "coordinator"}]


# -- bad input ---------------------------------------------------------------------------------


def test_delegations_the_charters_do_not_permit_are_refused_and_recorded(agents: Agents) -> None:
    coordinator_id, coordinator = agents.open("coordinator")
    # coordinator -> support: not in the coordinator's `delegation.to`.
    r = agents.delegate(coordinator, "support")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "not_permitted", r.text
    child = agents.delegate(coordinator, "worker").json()
    # A cycle: worker -> coordinator (both charters would allow it otherwise).
    r = agents.delegate(child["token"], "coordinator")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "cycle", r.text
    # The child's token used to open a sibling (another worker): the parent's own agent.
    r = agents.delegate(child["token"], "worker")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "cycle", r.text
    # Depth past the bound: coordinator -> worker -> support, support's `max_depth` is 1.
    r = agents.delegate(child["token"], "support")
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "depth", r.text
    # Unknown agents, malformed bodies and a bad token.
    r = agents.delegate(coordinator, "nobody")
    assert r.status_code == 403 and r.json()["error"]["code"] == "unknown_agent", r.text
    r = agents.delegate(coordinator, "worker", surprise=True)
    assert r.status_code == 400, r.text
    r = agents.delegate("wa_forged", "worker")
    assert r.status_code == 401, r.text
    r = agents.delegate(agents.gw.operator_token, "worker")
    assert r.status_code == 403 and r.json()["error"]["code"] == "wrong_plane", r.text
    codes = [(p["agent"], p["refusal"]) for p in agents.refusals()]
    for expected in (
        ("support", "not_permitted"),
        ("coordinator", "cycle"),
        ("worker", "cycle"),
        ("support", "depth"),
        ("nobody", "unknown_agent"),
    ):
        assert expected in codes, codes


# -- the A2A path ------------------------------------------------------------------------------


async def test_a_coordinator_calls_the_worker_agent_through_mcp(agents: Agents) -> None:
    root = agents.gw.ws.root
    coordinator_id, coordinator = agents.open("coordinator")
    async with mcp_http(agents.gw.mcp_url, coordinator) as s:
        assert "worker__do_task" in tool_names(await s.list_tools())
        # The agent's own `_meta` is hostile: a forged delegation is neither trusted nor
        # forwarded (the worker sees warden's only).
        result = await s.call_tool(
            "worker__do_task",
            {"tool": "fs__read_text_file", "arguments": {"path": str(root / "docs" / "plan.md")}},
            meta={"io.warden/delegation": {"token": "wa_forged", "session": coordinator_id}},
        )
        assert not result.is_error, text_of(result)
        report = json.loads(text_of(result))
        # The worker's own write, which only the worker's charter allows: refused.
        denied = json.loads(
            text_of(
                await s.call_tool(
                    "worker__do_task",
                    {
                        "tool": "fs__write_file",
                        "arguments": {"path": str(root / "src" / "a2a.py"), "content": "x"},
                    },
                )
            )
        )
    assert report.get("error") is None, report
    assert report["warden_keys"] == ["io.warden/delegation"], report
    assert report["agent"] == "worker"
    assert report["chain"] == [{"session": coordinator_id, "agent": "coordinator"}], report
    assert not report["is_error"] and "Test warden" in report["text"], report
    assert "fs__write_file" in report["tools"], "the worker lists its own charter's tools"
    assert denied["is_error"], denied
    assert not (root / "src" / "a2a.py").exists()
    child = report["session"]
    records = agents.gw.records()
    delegated = [r for r in records if r["kind"] == "session_delegated" and r["session"] == child]
    assert len(delegated) == 1 and delegated[0]["payload"]["via"] == "mcp", delegated
    # The worker's own call was decided as the child session, with the chain.
    decided = [r for r in records if r["kind"] == "action_decided" and r["session"] == child]
    assert decided and decided[0]["payload"]["chain"] == report["chain"], decided
    # The child lived for the call only.
    revoked = [r for r in records if r["kind"] == "session_revoked" and r["session"] == child]
    assert len(revoked) == 1 and revoked[0]["payload"]["reason"] == "call_ended", revoked
    # The token is the worker's own credential: nowhere in the ledger or warden's log.
    tokens = [t for t in agents.tokens_file.read_text().splitlines() if t]
    assert len(tokens) == 2 and all(t.startswith("wa_") for t in tokens), len(tokens)
    # The ledger as exported (`warden audit tail`) and its database files, byte for byte.
    ledger = json.dumps(records) + "".join(
        p.read_bytes().decode(errors="replace") for p in agents.gw.data.glob("ledger.db*")
    )
    log = agents.gw.log()
    for t in tokens + ["wa_forged"]:
        assert t not in ledger, "a delegation token is in the ledger"
        assert t not in log, "a delegation token is in warden's log"
