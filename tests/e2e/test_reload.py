"""Live reload of the charter on a real `warden serve`, with the Python MCP SDK as the agent:
`warden charter reload` after the charter file is edited changes the decision of the next
call in the same MCP session; a broken file is refused with its diagnostics and the old
decision holds; `SIGHUP` does the same; the observer follows a live reload (it re-reads its
charter file)."""

from __future__ import annotations

import signal
from typing import Any, Callable

import httpx2
import pytest

from conftest import REFUSED, Gateway, mcp_http, run_warden, text_of, wait_for
from observer_support import Observer, start_observer  # noqa: F401 (a fixture)

pytestmark = pytest.mark.anyio

#: The rule that allows `everything.echo`, and the same rule prohibiting it.
ALLOWING = "tool: [everything.echo, everything.get-sum, everything.trigger-long-running-operation]\n      tier: autonomous"
DENYING = "tool: [everything.echo, everything.get-sum, everything.trigger-long-running-operation]\n      tier: prohibited"


def charter_cli(gw: Gateway, *args: str) -> Any:
    return run_warden(
        "charter", *args, "--operator-url", gw.operator_url, "--token", gw.operator_token
    )


def in_force(gw: Gateway) -> dict[str, Any]:
    r = httpx2.get(
        gw.operator_url + "/v1/charter",
        headers={"Authorization": f"Bearer {gw.operator_token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return r.json()


def kinds(gw: Gateway, kind: str) -> list[dict[str, Any]]:
    return [r["payload"] for r in gw.records() if r["kind"] == kind]


async def echo(gw: Gateway, session: Any, message: str) -> tuple[bool, str]:
    r = await session.call_tool("everything.echo", {"message": message})
    return (not r.is_error, text_of(r))


async def test_warden_charter_reload_changes_the_next_decision(gateway: Gateway) -> None:
    good = gateway.charter.read_text()
    assert ALLOWING in good
    token = gateway.open_session()
    first = in_force(gateway)
    async with mcp_http(gateway.mcp_url, token) as s:
        allowed, text = await echo(gateway, s, "before")
        assert allowed, text

        gateway.charter.write_text(good.replace(ALLOWING, DENYING))
        out = charter_cli(gateway, "reload")
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"charter reloaded: {first['charter']} -> "), out.stdout
        assert "rules ~1: echo" in out.stdout, out.stdout
        allowed, text = await echo(gateway, s, "after")
        assert not allowed and REFUSED in text, text

        # Broken: refused with its diagnostics, the old (denying) decision holds.
        gateway.charter.write_text(good.replace(ALLOWING, DENYING.replace("prohibited", "forbidden")))
        out = charter_cli(gateway, "reload")
        assert out.returncode == 64, out.stdout + out.stderr
        assert "charter.yaml:" in out.stderr and "forbidden" in out.stderr, out.stderr
        allowed, text = await echo(gateway, s, "still")
        assert not allowed and REFUSED in text, text

    loaded = kinds(gateway, "charter_loaded")
    assert len(loaded) == 2
    assert loaded[1]["via"] == "cli" and loaded[1]["previous"] == first["charter"], loaded[1]
    refused = kinds(gateway, "charter_refused")
    assert len(refused) == 1 and refused[0]["via"] == "cli", refused
    assert any("charter.yaml:" in e for e in refused[0]["errors"]), refused[0]
    # Each call names the charter that decided it.
    decided = [r["payload"]["decision"] for r in gateway.records() if r["kind"] == "action_decided"]
    assert [d["charter"] for d in decided[-3:]] == [first["charter"], loaded[1]["charter"], loaded[1]["charter"]]


async def test_sighup_reloads_the_charter(gateway: Gateway) -> None:
    good = gateway.charter.read_text()
    token = gateway.open_session()
    async with mcp_http(gateway.mcp_url, token) as s:
        gateway.charter.write_text(good.replace(ALLOWING, DENYING))
        gateway.proc.send_signal(signal.SIGHUP)
        wait_for("the reload on SIGHUP", lambda: in_force(gateway)["generation"] == 1)
        allowed, text = await echo(gateway, s, "after sighup")
        assert not allowed and REFUSED in text, text

        gateway.charter.write_text("version: 1\nidentity: [not, a, mapping]\n")
        gateway.proc.send_signal(signal.SIGHUP)
        wait_for("the refusal on SIGHUP", lambda: kinds(gateway, "charter_refused"))
        assert in_force(gateway)["generation"] == 1
        allowed, text = await echo(gateway, s, "still refused")
        assert not allowed and REFUSED in text, text
    assert kinds(gateway, "charter_loaded")[1]["via"] == "sighup"
    assert kinds(gateway, "charter_refused")[0]["via"] == "sighup"
    # The process is still serving after both signals.
    assert gateway.proc.poll() is None


async def test_the_observer_follows_a_live_reload(
    gateway: Gateway, start_observer: Callable[..., Observer]  # noqa: F811
) -> None:
    observer = start_observer(gateway)
    good = gateway.charter.read_text()
    gateway.charter.write_text(good.replace(ALLOWING, DENYING))
    out = charter_cli(gateway, "reload")
    assert out.returncode == 0, out.stderr
    observer.caught_up()
    wait_for(
        "the observer to follow the new charter",
        lambda: "the observer follows" in observer.log(),
    )
    assert "does not have" not in observer.log()
