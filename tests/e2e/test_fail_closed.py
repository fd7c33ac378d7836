"""Fail closed: when the ledger cannot write, or deciding fails, the action is refused.

The full disk is simulated with a file-size limit (RLIMIT_FSIZE, set with prlimit on the
running gateway): every write past the limit fails with EFBIG, as on a full file system. The
gateway ignores SIGXFSZ (see `conftest._ignore_sigxfsz`), so the write fails instead of killing
it, and its log goes through a pipe, which the limit does not touch.

On PostgreSQL (`WARDEN_E2E_STORE=postgres`) the ledger is the gateway's chain in its database,
written by the PostgreSQL server, which no limit on the gateway reaches: there the full disk is
what PostgreSQL answers when its disk is full, an error of class `disk_full` (53100) on every
write to the ledger's table, raised by a trigger the test adds and drops (the state store, in
the same database, keeps working, as on SQLite). The store going away altogether (the database
refusing connections) is a test of its own, PostgreSQL only."""

from __future__ import annotations

import resource
from contextlib import contextmanager
from typing import Iterator

import httpx2
import pytest

from conftest import (
    PG_BASE,
    REFUSED,
    STORE,
    Gateway,
    assert_recorded,
    attempts,
    mcp_error_in,
    mcp_http,
    psql,
    text_of,
)

pytestmark = pytest.mark.anyio

LEDGER_REFUSAL = "the ledger cannot record it"


@contextmanager
def disk_full(gw: Gateway) -> Iterator[None]:
    """Every write of the gateway's ledger fails, until the block ends: on SQLite every write
    of the gateway past the first byte of a file; on PostgreSQL every statement that writes
    the ledger's records, with PostgreSQL's own full-disk error."""
    if gw.store:
        with store_disk_full(gw.store):
            yield
        return
    soft, hard = resource.prlimit(gw.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(gw.pid, resource.RLIMIT_FSIZE, (1, hard))
    try:
        yield
    finally:
        resource.prlimit(gw.pid, resource.RLIMIT_FSIZE, (soft, hard))


@contextmanager
def store_disk_full(store: str) -> Iterator[None]:
    """In the database at `store`, every INSERT or UPDATE of `ledger_records` fails with
    SQLSTATE 53100 (`disk_full`), as PostgreSQL fails a write when its disk is full."""
    psql(
        store,
        "CREATE FUNCTION e2e_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'could not extend file: No space left on device' "
        "USING ERRCODE = 'disk_full'; END $$; "
        "CREATE TRIGGER e2e_disk_full BEFORE INSERT OR UPDATE ON ledger_records "
        "FOR EACH STATEMENT EXECUTE FUNCTION e2e_disk_full()",
    )
    try:
        yield
    finally:
        psql(store, "DROP TRIGGER e2e_disk_full ON ledger_records; DROP FUNCTION e2e_disk_full()")


@contextmanager
def store_down(store: str) -> Iterator[None]:
    """The database at `store` refuses new connections and its open ones are ended (the
    cluster, shared with the other tests, stays up), until the block ends."""
    name = store.rsplit("/", 1)[1]
    admin = f"{PG_BASE}/postgres"
    psql(admin, f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    try:
        psql(
            admin,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        yield
    finally:
        psql(admin, f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


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


@pytest.mark.skipif(STORE != "postgres", reason="the shared store going away: PostgreSQL only")
async def test_the_store_going_away_refuses_every_call_and_is_survived(gateway: Gateway) -> None:
    """The gateway's database refuses connections (its open ones ended): every call is
    refused with an error that says the store is unavailable, nothing runs and nothing of it
    is recorded; once the database is back, calls run again without a restart."""
    gw = gateway
    assert gw.store
    note = gw.ws.root / "notes" / "while-down.md"
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        r = await session.call_tool("everything.echo", {"message": "before"})
        assert not r.is_error, text_of(r)
    with store_down(gw.store):
        try:
            async with mcp_http(gw.mcp_url, token) as session:
                r = await session.call_tool("fs.write_file", {"path": str(note), "content": "x"})
                refusal = text_of(r)
                assert r.is_error, refusal
        except BaseException as e:  # the MCP error, inside anyio's exception groups
            found = mcp_error_in(e)
            if found is None:
                raise
            refusal = str(found)
        assert "store is unavailable" in refusal, refusal
        d = httpx2.post(
            f"{gw.agent_url}/v1/decide",
            headers={"Authorization": f"Bearer {token}"},
            json={"tool": "pay.create_payment", "arguments": {"amount": 1, "to": "x"}},
            timeout=30,
        )
        assert d.status_code == 503, d.text
        assert d.json()["error"]["code"] == "store_unavailable", d.text
    assert not note.exists(), "the refused write did not run"
    answered = []
    async with mcp_http(gw.mcp_url, token) as session:
        for i in range(3):
            args = {"message": f"after {i}"}
            r = await session.call_tool("everything.echo", args)
            if not r.is_error:
                answered.append(args)
    assert answered, "no call ran once the store was back"
    assert gw.stop() == 0
    records = gw.records()
    assert_recorded(records, "everything.echo", {"message": "before"}, allowed=True)
    for args in answered:
        assert_recorded(records, "everything.echo", args, allowed=True)
    assert not attempts(records, "fs.write_file"), "nothing of what was refused is recorded"
    assert not attempts(records, "pay.create_payment")
