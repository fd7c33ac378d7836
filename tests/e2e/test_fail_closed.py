"""Fail closed: when the ledger cannot write, or deciding fails, the action is refused.

The full disk is simulated with a file-size limit (RLIMIT_FSIZE, set with prlimit on the
running gateway): every write past the limit fails with EFBIG, as on a full file system. The
gateway ignores SIGXFSZ (see `conftest._ignore_sigxfsz`), so the write fails instead of killing
it, and its log goes through a pipe, which the limit does not touch."""

from __future__ import annotations

import resource
from contextlib import contextmanager
from typing import Iterator

import httpx2
import pytest

from conftest import REFUSED, Gateway, assert_recorded, attempts, mcp_http, text_of

pytestmark = pytest.mark.anyio

LEDGER_REFUSAL = "the ledger cannot record it"


@contextmanager
def disk_full(gw: Gateway) -> Iterator[None]:
    """Every write of the gateway past the first byte of a file fails, until the block ends."""
    soft, hard = resource.prlimit(gw.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(gw.pid, resource.RLIMIT_FSIZE, (1, hard))
    try:
        yield
    finally:
        resource.prlimit(gw.pid, resource.RLIMIT_FSIZE, (soft, hard))


async def test_an_unwritable_ledger_refuses_the_action(gateway: Gateway) -> None:
    gw = gateway
    note = gw.ws.root / "notes" / "while-full.md"
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        r = await session.call_tool("everything.echo", {"message": "before"})
        assert not r.is_error, text_of(r)
        with disk_full(gw):
            r = await session.call_tool("fs.write_file", {"path": str(note), "content": "x"})
            assert r.is_error, text_of(r)
            assert LEDGER_REFUSAL in text_of(r), text_of(r)
            # The decide API refuses too.
            d = httpx2.post(
                f"{gw.agent_url}/v1/decide",
                headers={"Authorization": f"Bearer {token}"},
                json={"tool": "pay.create_payment", "arguments": {"amount": 1, "to": "x"}},
                timeout=30,
            ).json()
            assert d["verdict"] == "deny" and d["refusal"] == "ledger_unavailable", d
            assert httpx2.get(f"{gw.agent_url}/healthz", timeout=10).status_code == 200
    assert not note.exists(), "the refused write did not run"
    assert gw.stop() == 0
    records = gw.records()
    assert_recorded(records, "everything.echo", {"message": "before"}, allowed=True)
    assert not attempts(records, "fs.write_file"), "nothing of what was refused is recorded"
    assert not attempts(records, "pay.create_payment")
    ok = gw.verify()
    assert ok.returncode == 0, ok.stdout + ok.stderr


# Regression: a COMMIT that failed on a full disk once left sqlx's transaction depth at 1, so
# later appends were acknowledged inside a transaction never committed (warden-audit
# `Writer::write` now drives BEGIN/COMMIT/ROLLBACK itself).
async def test_a_full_disk_refuses_every_action_not_only_the_first_ones(gateway: Gateway) -> None:
    gw = gateway
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        with disk_full(gw):
            for i in range(4):
                path = str(gw.ws.root / "notes" / f"while-full-{i}.md")
                r = await session.call_tool("fs.write_file", {"path": path, "content": "x"})
                assert r.is_error and LEDGER_REFUSAL in text_of(r), (i, text_of(r))
    assert not list((gw.ws.root / "notes").iterdir())


async def test_after_the_disk_recovers_every_answered_call_is_in_the_ledger(
    gateway: Gateway,
) -> None:
    gw = gateway
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        with disk_full(gw):
            for i in range(2):
                r = await session.call_tool("everything.echo", {"message": f"full {i}"})
                assert r.is_error and LEDGER_REFUSAL in text_of(r), text_of(r)
        answered = []
        for i in range(3):
            args = {"message": f"after {i}"}
            r = await session.call_tool("everything.echo", args)
            if not r.is_error:
                answered.append(args)
    # Whatever the gateway does once the disk has room again, a call it answered is recorded:
    # live, to a reader of the ledger …
    live = gw.records()
    for args in answered:
        assert_recorded(live, "everything.echo", args, allowed=True)
    # … and after shutdown.
    assert gw.stop() == 0
    records = gw.records()
    for args in answered:
        assert_recorded(records, "everything.echo", args, allowed=True)
    ok = gw.verify()
    assert ok.returncode == 0, ok.stdout + ok.stderr


async def test_a_decision_error_denies(gateway: Gateway) -> None:
    """An argument of the wrong type makes a restrictive rule err, and an error denies."""
    gw = gateway
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        for args in ({"path": 42}, {"path": {"nested": "/"}}):
            r = await session.call_tool("fs.read_text_file", args)
            assert r.is_error and text_of(r).startswith(REFUSED), (args, text_of(r))
            assert "error" in text_of(r), text_of(r)
            kinds = assert_recorded(gw.records(), "fs.read_text_file", args, allowed=False)
            decision = kinds["action_decided"][0]["payload"]["decision"]
            assert decision["reason"] == "evaluation_error", decision
            assert decision["errors"], decision
        # `null` counts as absent (issue 13): no rule about the path matches it, so no
        # permissive rule allows it, and the default posture decides.
        args = {"path": None}
        r = await session.call_tool("fs.read_text_file", args)
        assert r.is_error and text_of(r).startswith(REFUSED), (args, text_of(r))
        kinds = assert_recorded(gw.records(), "fs.read_text_file", args, allowed=False)
        decision = kinds["action_decided"][0]["payload"]["decision"]
        assert decision["verdict"] == "deny" and decision["reason"] == "default_posture", decision
    with httpx2.Client(
        base_url=gw.agent_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        for amount in ("lots", None, -5, "1e400"):
            d = api.post(
                "/v1/decide",
                json={"tool": "pay.create_payment", "arguments": {"amount": amount, "to": "x"}},
            ).json()
            assert d["verdict"] == "deny", (amount, d)
    records = gw.records()
    decided = [r for r in records if r["kind"] == "action_decided"]
    assert len(decided) == 7
    assert all(r["payload"]["decision"]["verdict"] == "deny" for r in decided)
    assert not [r for r in records if r["kind"] == "action_forwarded"]
