"""Export end to end: a real `warden serve` copies its ledger, as it commits, to a file sink
(rotating JSON-lines files), an HTTP sink (`export_receiver.py`, a small receiver of our own)
and an OTLP logs sink (`otlp_receiver.py`, built on the official protobuf definitions), while
the real `mcp` client calls tools through it.

The gateway is `kill -9`ed mid-export (the HTTP sink refusing, so it is certainly behind) and
started again: every export ends complete and in order — the file export without a single
repeat, the HTTP and OTLP ones with exact repeats at most (at-least-once) — and each holds
exactly the ledger's records, chained. A cursor edited past the ledger's head stops the start,
naming the file; the header credential comes from the environment and is never logged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import Gateway, ledger_args, mcp_http, run_warden, store_args
from export_receiver import ExportReceiver
from otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.anyio

SECRET = "Bearer export-secret-5e7a"


def export_config(tmp_path: Path, files: Path, receiver: ExportReceiver | None = None,
                  otlp: OtlpReceiver | None = None, key: Path | None = None) -> Path:
    text = ""
    if key is not None:
        text += f"""
[checkpoints]
key = "{key}"
every_records = 20
"""
    text += f"""
[[export]]
name = "files"
type = "file"
dir = "{files}"
max_file_bytes = 8192
"""
    if receiver is not None:
        text += f"""
[[export]]
name = "siem"
type = "http"
url = "{receiver.url}"
headers = {{ authorization = "env:E2E_EXPORT_AUTH" }}
"""
    if otlp is not None:
        text += f"""
[[export]]
name = "collector"
type = "otlp_logs"
endpoint = "{otlp.url}"
"""
    config = tmp_path / "warden.toml"
    config.write_text(text)
    return config


def ledger_lines(gw: Gateway) -> list[str]:
    """The ledger's records, exactly as `Record::to_json_line` writes them."""
    out = run_warden("audit", "tail", *ledger_args(gw.data), "-n", "1000000")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    if store_args(gw.data):
        # From the shared store each line names its instance first; the record follows.
        instance = (gw.data / "instance").read_text().strip()
        prefix = '{"instance":' + json.dumps(instance) + ","
        assert all(line.startswith(prefix) for line in lines), lines[:1]
        lines = ["{" + line[len(prefix):] for line in lines]
    return lines


def file_lines(files: Path) -> list[str]:
    lines: list[str] = []
    names = sorted(p.name for p in files.iterdir())
    for name in names:
        text = (files / name).read_text()
        assert text == "" or text.endswith("\n"), f"{name} ends in a torn line"
        first = json.loads(text.splitlines()[0])["seq"] if text else None
        if first is not None:
            assert name == f"ledger-{first:020d}.jsonl", name
        lines.extend(text.splitlines())
    return lines


def check_copy(copy: list[dict[str, Any]], ledger: list[str], repeats: bool) -> int:
    """The copy holds exactly the ledger's records, in order, chained; an exact repeat (same
    seq, same hash, within the last 4096 records) only when `repeats`. Returns the repeats."""
    seen: list[tuple[int, str]] = []
    kept: list[dict[str, Any]] = []
    repeated = 0
    for r in copy:
        if seen and r["seq"] <= seen[-1][0]:
            assert repeats, f"record {r['seq']} repeated in a copy that allows none"
            earlier = [h for s, h in seen[-4096:] if s == r["seq"]]
            assert earlier == [r["hash"]], f"record {r['seq']} out of order after {seen[-1][0]}"
            repeated += 1
            continue
        seen.append((r["seq"], r["hash"]))
        kept.append(r)
    want = [json.loads(line) for line in ledger]
    assert [r["seq"] for r in kept] == [r["seq"] for r in want], "records missing or reordered"
    assert kept == want
    for a, b in zip(kept, kept[1:]):
        assert b["prev_hash"] == a["hash"], f"the copy's chain breaks at {b['seq']}"
    return repeated


async def call_tools(gw: Gateway, n: int, tag: str) -> None:
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as mcp:
        for i in range(n):
            await mcp.call_tool("everything__echo", {"message": f"{tag} {i}"})


def kill_9_and_start_again(gw: Gateway) -> None:
    assert gw.proc is not None
    gw.proc.kill()
    gw.proc.wait()
    gw._copier.join(timeout=5)
    gw.proc, gw.exit_code = None, None
    gw.start()


async def test_a_gateway_killed_mid_export_ends_with_complete_ordered_exports(
    start_gateway: Any, tmp_path: Path
) -> None:
    files = tmp_path / "export-files"
    key = tmp_path / "keys" / "checkpoint.key"
    key.parent.mkdir(mode=0o700)
    made = run_warden("audit", "keygen", "--out", str(key), "--name", "e2e-export")
    assert made.returncode == 0, made.stderr
    pubkey = f"{key}.pub"
    with ExportReceiver(delay=0.02) as receiver, OtlpReceiver() as otlp:
        config = export_config(tmp_path, files, receiver, otlp, key)
        gw = start_gateway("--config", str(config), env={"E2E_EXPORT_AUTH": SECRET})
        await call_tools(gw, 15, "first")
        receiver.wait_for("the first records", lambda rs: len(rs) > 10)
        # The HTTP sink starts refusing: it falls behind, and the gateway dies mid-export.
        receiver.status = 503
        await call_tools(gw, 15, "second")
        assert len(receiver.snapshot()) < len(ledger_lines(gw)), "the HTTP sink is behind"
        kill_9_and_start_again(gw)
        receiver.status = None
        await call_tools(gw, 10, "third")
        last = json.loads(ledger_lines(gw)[-1])["seq"]
        receiver.wait_for("the HTTP sink caught up", lambda rs: rs and rs[-1]["seq"] >= last)
        otlp_seq = lambda: [int(x["attributes"]["warden.seq"]) for x in otlp.snapshot_logs()]  # noqa: E731
        receiver.wait_for("the OTLP sink caught up", lambda _: otlp_seq() and max(otlp_seq()) >= last)
        assert gw.stop() == 0
        ledger = ledger_lines(gw)
        assert any('"kind":"gateway_stopped"' in line for line in ledger[-3:])

        # The file export: exactly the ledger's lines, byte for byte, no repeat, none torn.
        copied = file_lines(files)
        assert copied == ledger
        assert len(list(files.iterdir())) > 1, "rotated"
        # The HTTP export: complete, in order, exact repeats at most.
        check_copy(receiver.snapshot(), ledger, repeats=True)
        assert len(receiver.ledgers) == 1 and all(receiver.ledgers)
        # The OTLP logs: each body is the record's line.
        logs = otlp.snapshot_logs()
        check_copy([json.loads(x["body"]) for x in logs], ledger, repeats=True)
        for x in logs:
            r = json.loads(x["body"])
            assert x["attributes"]["warden.kind"] == r["kind"]
            assert x["attributes"]["warden.hash"] == r["hash"]
            assert x["resource"]["service.name"] == "warden"
        # The credential went to the sink, from the environment, and nowhere else.
        assert receiver.requests and all(r.get("authorization") == SECRET for r in receiver.requests)
        assert SECRET not in gw.log()
        for path in (gw.data / "export").iterdir():
            assert SECRET not in path.read_text()
        cursors = {p.name: int(p.read_text()) for p in (gw.data / "export").glob("*.cursor")}
        assert cursors == {"files.cursor": len(ledger), "siem.cursor": len(ledger),
                           "collector.cursor": len(ledger)}

        # Signed checkpoints: the ledger ends with one (signed at shutdown), and the ledger,
        # the file export and the HTTP copy (its repeats included) each verify on their own
        # against the public key; an edited line of a copy does not. (On PostgreSQL `audit
        # verify --pubkey` reads exports only: the chain in the store is verified without the
        # key, and the file export, which holds exactly its records, with it.)
        assert json.loads(ledger[-1])["kind"] == "checkpoint_signed"
        targets = [["--file", str(files)]]
        if store_args(gw.data):
            verified = gw.verify()
            assert verified.returncode == 0, verified.stdout + verified.stderr
        else:
            targets.append(["--data", str(gw.data)])
        for target in targets:
            verified = run_warden("audit", "verify", "--pubkey", pubkey, *target)
            assert verified.returncode == 0, verified.stdout + verified.stderr
        http_copy = tmp_path / "http-copy"
        http_copy.mkdir()
        (http_copy / "ledger-00000000000000000001.jsonl").write_text(
            "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in receiver.snapshot()))
        verified = run_warden("audit", "verify", "--pubkey", pubkey, "--file", str(http_copy))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        edited = tmp_path / "edited"
        edited.mkdir()
        lines = list(ledger)
        at = next(i for i, line in enumerate(lines) if "first 0" in line)
        lines[at] = lines[at].replace("first 0", "first X")
        (edited / "ledger-00000000000000000001.jsonl").write_text("\n".join(lines) + "\n")
        refused = run_warden("audit", "verify", "--pubkey", pubkey, "--file", str(edited))
        assert refused.returncode == 3, refused.stdout + refused.stderr


async def test_a_cursor_edited_past_the_head_stops_the_start_naming_it(
    start_gateway: Any, tmp_path: Path
) -> None:
    files = tmp_path / "export-files"
    gw = start_gateway("--config", str(export_config(tmp_path, files)))
    await call_tools(gw, 2, "x")
    assert gw.stop() == 0
    cursor = gw.data / "export" / "files.cursor"
    assert int(cursor.read_text()) == len(ledger_lines(gw))
    cursor.write_text("99999999999\n")
    gw.proc, gw.exit_code = None, None
    with pytest.raises(AssertionError) as refused:
        gw.start()
    message = str(refused.value)
    assert "files.cursor" in message and "ledger ends at" in message, message
    # Removed, the sink starts again: the file export resumes after its last line.
    cursor.unlink()
    gw.proc, gw.exit_code = None, None
    gw.start()
    assert gw.stop() == 0
    assert file_lines(files) == ledger_lines(gw)
