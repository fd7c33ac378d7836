"""Path tricks in arguments never reach the upstream outside the allowed glob.

The filesystem server runs on the parent of the allowed root (`$base`), which also holds
`$base/outside`: the server would read and write there if warden let a call through, so each
test checks both warden's answer and the disk, and that the ledger has no `action_forwarded`
for the call."""

from __future__ import annotations

import os
from typing import Any

import pytest

from conftest import (
    OUTSIDE_SECRET,
    REFUSED,
    Gateway,
    actions_by_id,
    attempts,
    mcp_http,
    text_of,
)

pytestmark = pytest.mark.anyio


def tricks(start: str, up: str, outside: str, link: str, name: str) -> list[str]:
    """Spellings of `$base/outside/<name>` that begin inside the allowed folder `start`: `up`
    is the relative path from `start` to `$base` (`..` or `../..`), `link` a symbolic link in
    `start` that points to `$base/outside`."""
    enc = up.replace("..", "%2e%2e")
    return [
        f"{start}/{up}/{outside}/{name}",  # plain ..
        f"{start}/x/../{up}/{outside}/{name}",  # .. after a directory that does not exist
        f"{start}/{enc}/{outside}/{name}",  # percent-encoded ..
        f"{start}/{enc.upper()}/{outside}/{name}",
        f"{start}/{up.replace('..', '%252e%252e')}/{outside}/{name}",  # double-encoded
        f"{start}/{up.replace('/', '%2f')}%2f{outside}/{name}",  # encoded slash
        f"{start}//{up.replace('/', '//')}//{outside}//{name}",  # doubled slashes
        f"{start}/.//{up}/{outside}/{name}",
        f"{start}/{up.replace('..', chr(0xFF0E) * 2)}/{outside}/{name}",  # fullwidth ．．
        f"{start}{chr(0xFF0F)}{up}{chr(0xFF0F)}{outside}/{name}",  # fullwidth solidus ／
        f"{start}/{up.replace('..', chr(0x2024) * 2)}/{outside}/{name}",  # one-dot leaders ․․
        f"{start}/{up.replace('..', chr(0x2025))}/{outside}/{name}",  # two-dot leader ‥
        f"{start}/{up.replace('/', chr(92))}{chr(92)}{outside}{chr(92)}{name}",  # backslashes
        f"{start}/{link}/{name}",  # a symbolic link inside the folder to the outside
        f"{start}/{link}/../{link}/{name}",
        f"{start}/x/../{link}/{name}",
        f"{start}/./{link}//{name}",
    ]


@pytest.fixture
def linked(gateway: Gateway) -> Gateway:
    os.symlink(gateway.ws.outside, gateway.ws.root / "link")
    os.symlink(gateway.ws.outside, gateway.ws.root / "notes" / "escape")
    return gateway


def assert_never_forwarded(gw: Gateway, tool: str, arguments: dict[str, Any]) -> None:
    recs = gw.records()
    found = [r for r in attempts(recs, tool) if r["payload"]["arguments"] == arguments]
    assert len(found) == 1, f"the attempt {tool} {arguments!r} is recorded once"
    kinds = actions_by_id(recs)[found[0]["payload"]["action"]]
    decision = kinds["action_decided"][0]["payload"]["decision"]
    assert decision["verdict"] == "deny", decision
    assert "action_forwarded" not in kinds and "action_result" not in kinds, kinds.keys()


async def test_reads_through_path_tricks_are_refused(linked: Gateway) -> None:
    gw = linked
    root = str(gw.ws.root)
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        # A plain read inside the root goes through.
        r = await session.call_tool("fs.read_text_file", {"path": f"{root}/README.md"})
        assert not r.is_error, text_of(r)
        relative = [
            f"../{gw.ws.outside.name}/secret.txt",
            f"{gw.ws.outside.name}/secret.txt",
            "~/secret.txt",
            f"{gw.ws.base}/{gw.ws.outside.name}/secret.txt",  # and plainly outside
        ]
        for path in tricks(root, "..", gw.ws.outside.name, "link", "secret.txt") + relative:
            args = {"path": path}
            r = await session.call_tool("fs.read_text_file", args)
            assert r.is_error, f"{path!r} was allowed: {text_of(r)}"
            assert text_of(r).startswith(REFUSED), (path, text_of(r))
            assert OUTSIDE_SECRET not in text_of(r), path
            assert_never_forwarded(gw, "fs.read_text_file", args)
        # A list may not smuggle one outside path in with an inside one.
        args = {"paths": [f"{root}/README.md", f"{root}/link/secret.txt"]}
        r = await session.call_tool("fs.read_multiple_files", args)
        assert r.is_error and OUTSIDE_SECRET not in text_of(r), text_of(r)
        assert_never_forwarded(gw, "fs.read_multiple_files", args)


async def test_writes_through_path_tricks_never_touch_the_disk(linked: Gateway) -> None:
    gw = linked
    root = str(gw.ws.root)
    outside = gw.ws.outside
    before = sorted(p.name for p in outside.iterdir())
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        for path in tricks(f"{root}/notes", "../..", outside.name, "escape", "pwned.txt") + [
            f"{root}/notes/escape/secret.txt",  # overwrite an existing file through the link
        ]:
            args = {"path": path, "content": "pwned"}
            r = await session.call_tool("fs.write_file", args)
            assert r.is_error, f"{path!r} was allowed: {text_of(r)}"
            assert text_of(r).startswith(REFUSED), (path, text_of(r))
            assert_never_forwarded(gw, "fs.write_file", args)
        # A note inside the root can be written; the link target cannot be reached.
        ok = {"path": f"{root}/notes/fine.txt", "content": "fine"}
        r = await session.call_tool("fs.write_file", ok)
        assert not r.is_error, text_of(r)
    assert sorted(p.name for p in outside.iterdir()) == before
    assert (outside / "secret.txt").read_text().strip() == OUTSIDE_SECRET
    assert not [p for p in gw.ws.base.rglob("*") if "pwned" in p.name]


async def test_a_symlink_is_decided_and_forwarded_as_its_target(linked: Gateway) -> None:
    """The resolved path is what is decided, recorded and forwarded: a link inside the root to
    a file inside the root works, and the ledger shows where it really pointed."""
    gw = linked
    root = gw.ws.root
    os.symlink(root / "docs" / "plan.md", root / "notes" / "plan-link.md")
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        args = {"path": str(root / "notes" / "plan-link.md")}
        r = await session.call_tool("fs.read_text_file", args)
        assert not r.is_error, text_of(r)
        assert text_of(r) == (root / "docs" / "plan.md").read_text()
    recs = gw.records()
    (attempt,) = [
        r for r in attempts(recs, "fs.read_text_file") if r["payload"]["arguments"] == args
    ]
    assert attempt["payload"]["resolved_arguments"] == {"path": str(root / "docs" / "plan.md")}


async def test_a_dangling_symlink_out_of_the_root_is_not_forwarded(gateway: Gateway) -> None:
    gw = gateway
    link = gw.ws.root / "notes" / "dangle"
    os.symlink(gw.ws.outside / "new.txt", link)  # the target does not exist (yet)
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        args = {"path": str(link), "content": "written through a dangling link"}
        r = await session.call_tool("fs.write_file", args)
        # The reference server happens to refuse this write itself; warden must not rely on it.
        assert r.is_error, text_of(r)
    assert not (gw.ws.outside / "new.txt").exists()
    assert_never_forwarded(gw, "fs.write_file", args)
