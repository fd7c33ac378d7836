"""`warden replay` (issue 16): a real gateway in front of the real filesystem and everything
servers, driven by the Python MCP SDK, records a session (allowed, denied and asking calls, a
label picked up); once it has stopped, its ledger is replayed under the same charter (nothing
changes, exit 0), a tightened one (newly denied and asking, exit 0) and a loosened one (newly
allowed: exit 1, or 0 with `--allow-widening`). Bad input exits 64; the ledger is never
written. With `WARDEN_E2E_STORE=postgres` the ledger replayed is the gateway's chain in the
shared store (`--store URL --instance ID`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import (
    REFUSED,
    Gateway,
    ledger_args,
    ledger_snapshot,
    mcp_http,
    run_warden,
    store_args,
    text_of,
)

pytestmark = pytest.mark.anyio

EXIT_WIDENING = 1
EXIT_USAGE = 64


async def record_session(gw: Gateway) -> int:
    """Scripts one session; returns how many tool calls it made."""
    root = gw.ws.root
    token = gw.open_session(task="tidy the notes")
    calls = 0
    async with mcp_http(gw.mcp_url, token) as session:

        async def call(tool: str, args: dict[str, Any], allowed: bool) -> str:
            nonlocal calls
            calls += 1
            r = await session.call_tool(tool, args)
            assert r.is_error != allowed, (tool, args, text_of(r))
            if not allowed:
                assert text_of(r).startswith(REFUSED), text_of(r)
            return text_of(r)

        await call("fs.read_text_file", {"path": str(root / "README.md")}, True)
        await call("fs.write_file", {"path": str(root / "docs" / "x.md"), "content": "x"}, False)
        await call("fs.write_file", {"path": str(root / "notes" / "todo.md"), "content": "- a\n"}, True)
        # Picks up the `confidential` label.
        await call("fs.read_text_file", {"path": str(root / "secret" / "plan.txt")}, True)
        # Denied by the label: nothing leaves secret/ after a confidential read.
        text = await call(
            "fs.write_file", {"path": str(root / "notes" / "copy.md"), "content": "copy"}, False
        )
        assert "no-copies-of-secrets" in text, text
        # Asks; nobody approves within the timeout.
        await call("fs.create_directory", {"path": str(root / "newdir")}, False)
        await call("everything.echo", {"message": "hello"}, True)
    return calls


def replay(gw: Gateway, charter: Path | None, *args: str) -> tuple[int, dict[str, Any] | str, str]:
    cmd = ["replay", *ledger_args(gw.data)]
    if charter is not None:
        cmd += ["--charter", str(charter)]
    out = run_warden(*cmd, *args)
    if "--format" in args and out.returncode in (0, EXIT_WIDENING):
        return out.returncode, json.loads(out.stdout), out.stderr
    return out.returncode, out.stdout, out.stderr


def changes(report: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    return {
        (g["change"], g["candidate_rule"], g["recorded_rule"]): g["count"]
        for g in report["changes"]
    }


async def test_replay_of_a_recorded_session(
    start_gateway: Callable[..., Gateway], tmp_path: Path
) -> None:
    gw = start_gateway(approval_timeout="1s")
    calls = await record_session(gw)
    assert gw.stop() == 0, gw.log()
    ledger = ledger_snapshot(gw.data)
    live = gw.charter.read_text()

    # The same charter: every recorded decision is reproduced.
    code, report, err = replay(gw, gw.charter, "--format", "json")
    assert code == 0, err
    assert isinstance(report, dict)
    t = report["totals"]
    assert (t["attempts"], t["compared"], t["unchanged"]) == (calls, calls, calls), report
    assert (t["changed"], t["not_reproducible"], t["malformed"]) == (0, 0, 0), report
    assert report["candidate"]["agent"] == "e2e-agent"

    # Tightened: echo prohibited, notes writes need approval.
    tight = re.sub(
        r"(- id: echo\n\s+tool: \[[^\]]*\]\n\s+tier: )autonomous", r"\1prohibited", live
    )
    tight = re.sub(r"(- id: write-notes\n\s+tool: fs.write_file\n\s+tier: )autonomous", r"\1approval", tight)
    assert tight.count("tier: prohibited") == live.count("tier: prohibited") + 1
    path = tmp_path / "tight.yaml"
    path.write_text(tight)
    code, report, err = replay(gw, path, "--format", "json")
    assert code == 0, err
    assert isinstance(report, dict)
    assert changes(report) == {
        ("newly_denied", "echo", "echo"): 1,
        ("newly_asking", "write-notes", "write-notes"): 1,
    }, report
    assert report["totals"]["widening"] == 0
    example = next(g for g in report["changes"] if g["change"] == "newly_asking")["examples"][0]
    assert example["tool"] == "fs.write_file" and "todo.md" in example["arguments"], example

    # Loosened: the label rule removed; the copy after the confidential read would run.
    loose = re.sub(r"    - id: no-copies-of-secrets\n(?:      .*\n)+", "", live)
    assert "no-copies-of-secrets" not in loose
    path = tmp_path / "loose.yaml"
    path.write_text(loose)
    code, report, err = replay(gw, path, "--format", "json")
    assert code == EXIT_WIDENING, err
    assert isinstance(report, dict)
    assert changes(report) == {("newly_allowed", "write-notes", "no-copies-of-secrets"): 1}, report
    code, text, err = replay(gw, path)
    assert code == EXIT_WIDENING, err
    assert "newly_allowed (WIDENS)" in str(text) and "no-copies-of-secrets" in str(text), text
    code, _, err = replay(gw, path, "--allow-widening")
    assert code == 0, err

    # The window: nothing after the last record; only the session asked for.
    code, report, err = replay(gw, path, "--since", "2999-01-01T00:00:00Z", "--format", "json")
    assert code == 0 and isinstance(report, dict) and report["totals"]["attempts"] == 0, err
    code, report, err = replay(gw, path, "--session", "no-such-session", "--format", "json")
    assert code == 0 and isinstance(report, dict) and report["totals"]["attempts"] == 0, err

    # No shadow charter ran: the summary says so.
    code, report, err = replay(gw, None, "--shadow", "--format", "json")
    assert code == 0, err
    assert isinstance(report, dict) and report["mode"] == "shadow"
    assert report["totals"]["attempts"] == 0 and report["notes"], report

    # Bad input: a candidate that does not compile, a bad time, no ledger.
    broken = tmp_path / "broken.yaml"
    broken.write_text(live.replace("tier: prohibited", "tier: forbidden", 1))
    code, _, err = replay(gw, broken)
    assert code == EXIT_USAGE and "broken.yaml:" in err, err
    code, _, err = replay(gw, gw.charter, "--since", "yesterday")
    assert code == EXIT_USAGE and "--since" in err, err
    empty = tmp_path / "empty"
    empty.mkdir()
    out = run_warden("replay", "--charter", str(gw.charter), "--data", str(empty))
    assert out.returncode == EXIT_USAGE, out.stderr
    assert list(empty.iterdir()) == [], "replay created a file in an empty data directory"
    if store_args(gw.data):
        # On the shared store: an instance that never wrote, and a store without `--instance`.
        store = store_args(gw.data)
        out = run_warden("replay", "--charter", str(gw.charter), *store, "--instance", "gw-none")
        assert out.returncode == EXIT_USAGE and "gw-none" in out.stderr, out.stderr
        out = run_warden("replay", "--charter", str(gw.charter), *store)
        assert out.returncode == EXIT_USAGE and "--instance" in out.stderr, out.stderr

    # Read-only: the ledger is what the gateway left.
    assert ledger_snapshot(gw.data) == ledger
