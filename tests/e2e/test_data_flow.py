"""Data flow: a confidential read labels the session, and the charter then forbids writing
anywhere but secret/ (the exfiltration chain of issue 3, item 7)."""

from __future__ import annotations

import pytest

from conftest import (
    REFUSED,
    SECRET_TEXT,
    Gateway,
    actions_by_id,
    assert_recorded,
    find_attempt,
    mcp_http,
    run_warden,
    text_of,
)

pytestmark = pytest.mark.anyio


async def test_a_confidential_read_blocks_the_write_that_was_allowed_before(
    gateway: Gateway,
) -> None:
    gw = gateway
    root = gw.ws.root
    summary = root / "notes" / "summary.md"
    secret = {"path": str(root / "secret" / "plan.txt")}
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        # Before the read: the write is allowed.
        before = {"path": str(summary), "content": "summary, take 1\n"}
        r = await session.call_tool("fs.write_file", before)
        assert not r.is_error, text_of(r)
        assert summary.read_text() == "summary, take 1\n"

        # A read that is not confidential adds no label.
        r = await session.call_tool("fs.read_text_file", {"path": str(root / "docs" / "plan.md")})
        assert not r.is_error, text_of(r)
        assert not [x for x in gw.records() if x["kind"] == "labels_added"]

        # The confidential read itself is allowed, and labels the session.
        r = await session.call_tool("fs.read_text_file", secret)
        assert not r.is_error, text_of(r)
        assert SECRET_TEXT in text_of(r)

        # The same write, now carrying the secret, is refused and does not reach the disk.
        after = {"path": str(summary), "content": f"summary, take 2: {SECRET_TEXT}\n"}
        r = await session.call_tool("fs.write_file", after)
        assert r.is_error
        assert text_of(r).startswith(REFUSED) and "no-copies-of-secrets" in text_of(r), text_of(r)
        assert summary.read_text() == "summary, take 1\n"

        # So is any other write outside secret/ for the rest of the session.
        r = await session.call_tool(
            "fs.write_file", {"path": str(root / "notes" / "other.md"), "content": "x"}
        )
        assert r.is_error and "no-copies-of-secrets" in text_of(r), text_of(r)

    records = gw.records()
    assert_recorded(records, "fs.write_file", before, allowed=True)
    kinds = assert_recorded(records, "fs.read_text_file", secret, allowed=True)
    (labels,) = kinds["labels_added"]
    assert labels["payload"]["labels"] == ["confidential"]
    forwarded_seq = kinds["action_forwarded"][0]["seq"]
    assert labels["seq"] == forwarded_seq - 1, (
        "a path source's label is recorded with the decision, before the forward"
    )
    assert labels["seq"] < kinds["action_result"][0]["seq"]
    # What the agent read is in the ledger (issue 10, point 8): the server's text content.
    content = kinds["action_result"][0]["payload"]["content"]
    assert content[0]["type"] == "text" and SECRET_TEXT in content[0]["text"], content
    denied = assert_recorded(records, "fs.write_file", after, allowed=False)
    decision = denied["action_decided"][0]["payload"]["decision"]
    assert decision["verdict"] == "deny"
    assert [r["id"] for r in decision["rules"]] == ["no-copies-of-secrets"]
    assert len([r for r in records if r["kind"] == "labels_added"]) == 1

    # The operator sees the label on the session.
    out = run_warden(
        "session", "list", "--operator-url", gw.operator_url, "--token", gw.operator_token
    )
    assert out.returncode == 0, out.stderr
    assert '"confidential"' in out.stdout


async def test_labels_belong_to_one_session(gateway: Gateway) -> None:
    """Another session of the same agent, which never read the secret, may still write."""
    gw = gateway
    root = gw.ws.root
    reader, writer = gw.open_session(), gw.open_session(user="bob")
    async with mcp_http(gw.mcp_url, reader) as session:
        r = await session.call_tool(
            "fs.read_text_file", {"path": str(root / "secret" / "plan.txt")}
        )
        assert not r.is_error, text_of(r)
        r = await session.call_tool(
            "fs.write_file", {"path": str(root / "notes" / "a.md"), "content": "a"}
        )
        assert r.is_error, text_of(r)
    async with mcp_http(gw.mcp_url, writer) as session:
        args = {"path": str(root / "notes" / "b.md"), "content": "b"}
        r = await session.call_tool("fs.write_file", args)
        assert not r.is_error, text_of(r)
    assert (root / "notes" / "b.md").read_text() == "b"
    assert not (root / "notes" / "a.md").exists()
    records = gw.records()
    b = find_attempt(
        records, "fs.write_file", {"path": str(root / "notes" / "b.md"), "content": "b"}
    )
    assert "labels_added" not in actions_by_id(records)[b["payload"]["action"]]
