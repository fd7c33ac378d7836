"""Shadow mode through the real binary: `warden serve --shadow-charter` with the Python MCP
SDK as the agent. The live charter enforces; the shadow's decisions are recorded beside the
live ones (`shadow_decided`, same commit) and nothing they say is enforced; a shadow that does
not compile stops the start (exit 64)."""

from __future__ import annotations

import json

from pathlib import Path
from typing import Callable

import pytest

from conftest import (
    REFUSED,
    Gateway,
    Workspace,
    charter_text,
    ledger_args,
    mcp_http,
    run_warden,
    text_of,
)

pytestmark = pytest.mark.anyio

LIVE_ECHO = (
    "tool: [everything.echo, everything.get-sum, everything.trigger-long-running-operation]\n"
    "      tier: autonomous"
)
LIVE_ENV = "tool: everything.get-env\n      tier: prohibited"


def shadow_text(ws: Workspace) -> str:
    """The live charter with echo prohibited and get-env allowed."""
    live = charter_text(ws)
    assert LIVE_ECHO in live and LIVE_ENV in live
    return live.replace(LIVE_ECHO, LIVE_ECHO.replace("autonomous", "prohibited")).replace(
        LIVE_ENV, LIVE_ENV.replace("prohibited", "autonomous")
    )


async def test_the_shadow_is_recorded_and_never_enforced(
    start_gateway: Callable[..., Gateway], workspace: Workspace, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow.yaml"
    shadow.write_text(shadow_text(workspace))
    gw = start_gateway("--shadow-charter", str(shadow))
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        r = await session.call_tool("everything.echo", {"message": "hello shadow"})
        assert not r.is_error and "hello shadow" in text_of(r), text_of(r)
        r = await session.call_tool("everything.get-env", {})
        assert r.is_error and text_of(r).startswith(REFUSED), text_of(r)

    records = gw.records()
    loaded = [r for r in records if r["kind"] == "charter_loaded"][0]["payload"]
    assert loaded["shadow"].startswith("blake3:") and loaded["shadow"] != loaded["charter"]
    by_seq = {r["seq"]: r for r in records}
    shadowed = [r for r in records if r["kind"] == "shadow_decided"]
    assert len(shadowed) == 2, shadowed
    tools = {}
    for r in shadowed:
        decided = by_seq[r["seq"] - 1]
        attempted = by_seq[r["seq"] - 2]
        assert decided["kind"] == "action_decided", decided
        assert attempted["kind"] == "action_attempted", attempted
        assert decided["payload"]["action"] == r["payload"]["action"]
        assert r["payload"]["charter"] == loaded["shadow"]
        assert r["payload"]["diverged"] is True
        tools[attempted["payload"]["tool"]] = r["payload"]
    echo, env = tools["everything.echo"], tools["everything.get-env"]
    assert echo["live"] == {"verdict": "allow", "tier": "autonomous"}
    assert echo["decision"]["verdict"] == "deny" and echo["decision"]["tier"] == "prohibited"
    assert env["live"] == {"verdict": "deny", "tier": "prohibited"}
    assert env["decision"]["verdict"] == "allow"

    # `warden replay --shadow` summarises exactly these divergences from the gateway's ledger:
    # echo newly denied, get-env newly allowed (a widening: exit 1).
    assert gw.stop() == 0, gw.log()
    out = run_warden("replay", "--shadow", *ledger_args(gw.data), "--format", "json")
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    report = json.loads(out.stdout)
    assert report["mode"] == "shadow", report
    assert report["totals"]["newly_denied"] == 1 and report["totals"]["newly_allowed"] == 1, report
    groups = {g["change"]: g for g in report["changes"]}
    assert set(groups) == {"newly_denied", "newly_allowed"}, report["changes"]
    assert groups["newly_denied"]["count"] == 1 and groups["newly_allowed"]["count"] == 1
    assert groups["newly_denied"]["examples"][0]["tool"] == "everything.echo", groups
    assert groups["newly_allowed"]["examples"][0]["tool"] == "everything.get-env", groups


def test_a_shadow_that_does_not_compile_stops_the_start(
    workspace: Workspace, tmp_path: Path
) -> None:
    charter = tmp_path / "charter.yaml"
    charter.write_text(charter_text(workspace))
    shadow = tmp_path / "shadow.yaml"
    shadow.write_text(shadow_text(workspace).replace("tier: prohibited", "tier: forbidden", 1))
    data = tmp_path / "data"
    r = run_warden(
        "serve", "--charter", str(charter), "--shadow-charter", str(shadow), "--data", str(data)
    )
    assert r.returncode == 64, (r.returncode, r.stdout, r.stderr)
    assert "shadow.yaml" in r.stderr and "shadow charter" in r.stderr, r.stderr
    assert not data.exists()
