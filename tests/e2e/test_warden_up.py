"""`warden up`, the README's one-command start: the gateway with the demo charter, whose
upstream is the npm filesystem server on a demo folder, and a demo session whose URL and token
it prints. On SQLite (the data directory), or with `WARDEN_E2E_STORE=postgres` on a fresh
PostgreSQL database (`warden up --store URL`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

from conftest import (
    REFUSED,
    REPO,
    STORE,
    WARDEN_BIN,
    free_port,
    mcp_http,
    new_postgres_database,
    run_warden,
    text_of,
)

pytestmark = pytest.mark.anyio


async def test_warden_up_serves_the_demo_folder(tmp_path: Path) -> None:
    data = Path(os.path.realpath(tmp_path)) / "warden-data"
    store = ["--store", new_postgres_database()] if STORE == "postgres" else []
    proc = subprocess.Popen(
        [
            str(WARDEN_BIN),
            "up",
            "--data",
            str(data),
            "--agent-listen",
            f"127.0.0.1:{free_port()}",
            "--operator-listen",
            f"127.0.0.1:{free_port()}",
            *store,
        ],
        cwd=REPO,  # where node_modules holds the filesystem server
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")},
            "NO_COLOR": "1",
        },
    )
    try:
        printed = []
        deadline = time.monotonic() + 45
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"warden up exited {proc.poll()}:\n{''.join(printed)}"
            printed.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        out = "".join(printed)
        url = re.search(r"MCP endpoint\s+(\S+)", out)
        token = re.search(r"session token\s+(wa_\S+)", out)
        assert url and token, out
        assert '"mcpServers"' in out and "connect" in out, "client configuration snippets"
        demo = data.parent / "warden-data-demo"  # beside the data directory, never in it
        async with mcp_http(url.group(1), token.group(1)) as session:
            names = {t.name for t in (await session.list_tools()).tools}
            assert "fs__read_text_file" in names, names
            r = await session.call_tool("fs.read_text_file", {"path": str(demo / "README.md")})
            assert not r.is_error and "Demo folder" in text_of(r), text_of(r)
            r = await session.call_tool("fs.read_text_file", {"path": "/etc/passwd"})
            assert r.is_error and text_of(r).startswith(REFUSED), text_of(r)
            r = await session.call_tool(
                "fs.write_file", {"path": str(demo / "notes" / "hello.md"), "content": "hi"}
            )
            assert not r.is_error, text_of(r)
        assert (demo / "notes" / "hello.md").read_text() == "hi"

        # A write elsewhere in the demo folder waits for `reviewer`, with the printed command.
        approve = re.search(r"(warden approvals approve ID .*)", out)
        listing = re.search(r"warden approvals list (.*)", out)
        assert approve and listing, out
        cli = listing.group(1).split()
        target = demo / "plan.md"
        result: dict[str, object] = {}
        async with mcp_http(url.group(1), token.group(1)) as session:

            async def write() -> None:
                result["r"] = await session.call_tool(
                    "fs.write_file", {"path": str(target), "content": "approved"}
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(write)
                ids: list[str] = []
                for _ in range(200):
                    listed = await anyio.to_thread.run_sync(
                        lambda: run_warden("approvals", "list", "--json", *cli)
                    )
                    assert listed.returncode == 0, listed.stderr
                    ids = [a["id"] for a in json.loads(listed.stdout)["approvals"]]
                    if ids:
                        break
                    await anyio.sleep(0.05)
                assert ids, "no approval request"
                approved = await anyio.to_thread.run_sync(
                    lambda: run_warden("approvals", "approve", ids[0], *cli)
                )
                assert approved.returncode == 0, approved.stderr
        r = result["r"]
        assert not r.is_error, text_of(r)  # type: ignore[attr-defined]
        assert target.read_text() == "approved"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
    if store:
        assert not (data / "ledger.db").exists(), "the ledger is in the store, not in the data directory"
        ledger = [*store, "--instance", (data / "instance").read_text().strip()]
    else:
        ledger = ["--data", str(data)]
    ok = run_warden("audit", "verify", *ledger)
    assert ok.returncode == 0, ok.stdout + ok.stderr
