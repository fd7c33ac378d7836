"""The end-to-end test of issue 3: a real agent (the Python MCP SDK) behind warden in front of
the real filesystem server — allowed read, prohibited write, read outside the root, filtered
`tools/list`, every attempt in the ledger, `warden audit verify` passing, and verify naming the
record that was edited (first run) or deleted (second run) directly in the database."""

from __future__ import annotations

import json
import re
from typing import Any, Callable

import pytest

from conftest import (
    OUTSIDE_SECRET,
    REFUSED,
    Gateway,
    assert_recorded,
    find_attempt,
    ledger_args,
    mcp_http,
    mcp_stdio,
    run_warden,
    tamper_record,
    text_of,
)

pytestmark = pytest.mark.anyio

#: Exit code of `warden audit verify` for a broken chain.
EXIT_BROKEN = 3


async def basic_flow(session: Any, gw: Gateway) -> list[tuple[str, dict[str, Any], bool]]:
    """The calls of the issue's end-to-end test; returns (tool, arguments, allowed) per call."""
    root, outside = gw.ws.root, gw.ws.outside
    calls: list[tuple[str, dict[str, Any], bool]] = []

    # tools/list is filtered and namespaced, as `server__tool`: function names model
    # providers accept (`^[a-zA-Z0-9_-]{1,64}$`).
    names = {t.name for t in (await session.list_tools()).tools}
    assert {"fs__read_text_file", "fs__write_file", "everything__echo"} <= names, names
    assert all(n.split("__", 1)[0] in ("fs", "everything") for n in names), names
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", n) for n in names), names
    assert "fs__move_file" not in names, "an unconditionally prohibited tool is hidden"
    assert "everything__get-env" not in names, "an unconditionally prohibited tool is hidden"
    assert "move_file" not in names and "read_text_file" not in names, "names are namespaced"

    # An allowed read, by the listed name, succeeds with the file's content (decided and
    # recorded as the charter's `fs.read_text_file`, with `called_as`).
    args = {"path": str(root / "README.md")}
    r = await session.call_tool("fs__read_text_file", args)
    assert not r.is_error, text_of(r)
    assert text_of(r) == (root / "README.md").read_text()
    calls.append(("fs.read_text_file", args, True))

    # A prohibited write is refused with warden's message and never reaches the disk.
    target = root / "docs" / "overwritten.md"
    args = {"path": str(target), "content": "should never be written"}
    r = await session.call_tool("fs.write_file", args)
    assert r.is_error
    assert text_of(r).startswith(f"{REFUSED} `fs.write_file`"), text_of(r)
    assert "no-writes-outside-notes" in text_of(r), text_of(r)
    assert not target.exists()
    calls.append(("fs.write_file", args, False))

    # An allowed write goes through.
    note = root / "notes" / "todo.md"
    args = {"path": str(note), "content": "- test warden\n"}
    r = await session.call_tool("fs.write_file", args)
    assert not r.is_error, text_of(r)
    assert note.read_text() == "- test warden\n"
    calls.append(("fs.write_file", args, True))

    # A read outside the allowed root is refused (the server itself would serve it).
    args = {"path": str(outside / "secret.txt")}
    r = await session.call_tool("fs.read_text_file", args)
    assert r.is_error
    assert text_of(r).startswith(REFUSED), text_of(r)
    assert "outside-root" in text_of(r), text_of(r)
    assert OUTSIDE_SECRET not in text_of(r)
    calls.append(("fs.read_text_file", args, False))

    # A hidden tool called anyway is refused.
    args = {"source": str(root / "README.md"), "destination": str(root / "moved.md")}
    r = await session.call_tool("fs.move_file", args)
    assert r.is_error and text_of(r).startswith(REFUSED), text_of(r)
    assert (root / "README.md").exists() and not (root / "moved.md").exists()
    calls.append(("fs.move_file", args, False))
    return calls


def assert_ledger(
    gw: Gateway, calls: list[tuple[str, dict[str, Any], bool]]
) -> list[dict[str, Any]]:
    records = gw.records()
    for tool, args, allowed in calls:
        kinds = assert_recorded(records, tool, args, allowed)
        if allowed:
            assert kinds["action_result"][0]["payload"]["status"] == "ok"
    listed = [
        r["payload"]
        for r in records
        if r["kind"] == "action_attempted" and r["payload"].get("called_as")
    ]
    assert [(p["tool"], p["called_as"]) for p in listed] == [
        ("fs.read_text_file", "fs__read_text_file")
    ], listed
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(1, len(records) + 1)), "sequence numbers are dense"
    assert records[0]["kind"] == "charter_loaded"
    assert any(r["kind"] == "session_opened" for r in records)
    return records


@pytest.mark.parametrize("tamper", ["edit", "delete"])
async def test_end_to_end_over_streamable_http(
    start_gateway: Callable[..., Gateway], tamper: str
) -> None:
    gw = start_gateway()
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        init = session._initialize_result
        assert init is not None and init.server_info.name == "warden"
        calls = await basic_flow(session, gw)

    records = assert_ledger(gw, calls)
    ok = gw.verify()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ledger intact" in ok.stdout

    # Stop the gateway, then tamper with the database directly.
    assert gw.stop() == 0, gw.log()
    # The denied write: the record an attacker would most like to rewrite or make disappear.
    denied = find_attempt(
        records,
        "fs.write_file",
        {"path": str(gw.ws.root / "docs" / "overwritten.md"), "content": "should never be written"},
    )
    seq = denied["seq"] + 1  # its action_decided record
    decided = next(r for r in records if r["seq"] == seq)
    assert decided["kind"] == "action_decided"
    assert decided["payload"]["decision"]["verdict"] == "deny"

    gw.tampered = True
    n = tamper_record(gw.data, seq, edit=tamper == "edit")
    assert n == 1

    bad = gw.verify()
    assert bad.returncode == EXIT_BROKEN, (bad.returncode, bad.stdout, bad.stderr)
    if tamper == "edit":
        assert f"record {seq} was changed" in bad.stdout, bad.stdout
    else:
        assert f"record {seq} was removed" in bad.stdout, bad.stdout
    as_json = run_warden("audit", "verify", *ledger_args(gw.data), "--format", "json")
    assert as_json.returncode == EXIT_BROKEN
    report = json.loads(as_json.stdout)
    assert report["intact"] is False
    assert report["problem"]["seq"] == seq
    assert report["problem"]["problem"] == ("changed" if tamper == "edit" else "removed")
    assert report["records"] == seq - 1, "every record before the tampered one verified"


async def test_end_to_end_over_stdio_through_warden_connect(gateway: Gateway) -> None:
    token = gateway.open_session()
    async with mcp_stdio(gateway.mcp_url, token) as session:
        init = session._initialize_result
        assert init is not None and init.server_info.name == "warden"
        calls = await basic_flow(session, gateway)
    assert_ledger(gateway, calls)
    ok = gateway.verify()
    assert ok.returncode == 0, ok.stdout + ok.stderr
