#!/usr/bin/env python3
"""Detection to intervention, end to end: from the commit of the anomalous ledger record to
the first decision that sees the observer's control, under sustained traffic through the
gateway.

Starts warden-echo-server, `warden serve` (an echo server behind it, and a `probe` server the
agent calls itself through the decide API) and `warden observe` with its own observer
credential. `warden-load` drives `echo.echo` through the gateway in a closed loop with
`--concurrency` clients for the whole run (the highest rate the machine sustains with that
many clients; its calls/s is reported). Meanwhile, `--detections` times, a probe session reads
a labelled resource (`probe.read_secret`, label `secret`) and then sends (`probe.send`): the
charter's `sensitive_then_send` detector answers `freeze_tool` for that session. The probe
keeps deciding `probe.send` until a decision is refused by the control.

The figure for each detection is taken from the ledger alone (both times are stamped by the
ledger's one writer, so no clocks are compared): the time of the send's `action_attempted`
record (the anomalous record the observer reacts to) to the time of the first
`action_decided` record carrying `"control": <id>`. It includes the stream's delivery, the
observer's verification and engine, the control API's durable `control_set` commit, and up to
one probe round trip (the probe decides back to back).

Usage: bench/observer_latency.py [--bin DIR] [--detections N] [--concurrency C]
Prints one JSON line; exits 1 when a detection is not enforced within 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, token: str, body: object | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else {}


def wait_healthy(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    sys.exit(f"{what} did not come up")


def ledger_ms(t: str) -> float:
    # `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`: keep microseconds for datetime.
    return datetime.fromisoformat(t[:26] + "+00:00").timestamp() * 1000.0


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[round((len(s) - 1) * p)] if s else 0.0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "target" / "release"))
    ap.add_argument("--detections", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    bin_dir = Path(args.bin)
    tmp = Path(tempfile.mkdtemp(prefix="warden-observer-latency-"))
    procs: list[subprocess.Popen] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["WARDEN_LOG"] = "warn"
    try:
        echo_port, agent_port, op_port = free_port(), free_port(), free_port()
        log = (tmp / "echo.log").open("wb")
        procs.append(
            subprocess.Popen(
                [str(bin_dir / "warden-echo-server"), "--listen", f"127.0.0.1:{echo_port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        charter = tmp / "charter.yaml"
        charter.write_text(f"""\
version: 1
identity: {{ id: bench-agent, name: Bench, purpose: benchmarks, serves: the benchmark }}
inventory:
  servers:
    - {{ id: echo, url: "http://127.0.0.1:{echo_port}/mcp", tools: [echo] }}
    - {{ id: probe, description: called by the agent itself, tools: [read_secret, send] }}
actions:
  rules:
    - {{ id: echo, tool: echo.echo, tier: autonomous, args: {{ text: {{ regex: "hello [0-9]+ [0-9]+" }} }} }}
    - {{ id: probe, tool: [probe.read_secret, probe.send], tier: autonomous }}
authority:
  roles: [{{ id: ops, approve: [default] }}]
  principals: [{{ id: bench, roles: [ops] }}]
data:
  labels: [{{ id: secret, description: the probe's secret }}]
  sources: [{{ label: secret, tool: probe.read_secret }}]
observer:
  detectors:
    - {{ id: secret-then-send, kind: sensitive_then_send, labels: [secret], tools: [probe.send], response: freeze_tool }}
""")
        data = tmp / "data"
        wlog = (tmp / "warden.log").open("wb")
        gw = subprocess.Popen(
            [
                str(bin_dir / "warden"), "serve", "--charter", str(charter), "--data", str(data),
                "--agent-listen", f"127.0.0.1:{agent_port}",
                "--operator-listen", f"127.0.0.1:{op_port}",
            ],
            stdout=wlog, stderr=subprocess.STDOUT, env=env, cwd=tmp,
        )
        procs.append(gw)
        agent, op = f"http://127.0.0.1:{agent_port}", f"http://127.0.0.1:{op_port}"
        wait_healthy(f"{agent}/healthz", gw, "warden serve")
        admin = (data / "operator.token").read_text().strip()
        st, issued = http("POST", f"{op}/v1/operator-tokens", admin, {"name": "observer", "role": "observer"})
        assert st == 201, issued
        tok = tmp / "observer.token"
        tok.write_text(issued["token"])
        tok.chmod(0o600)
        olog = (tmp / "observe.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    str(bin_dir / "warden"), "observe", "--gateway", op, "--token-file", str(tok),
                    "--charter", str(charter), "--data", str(tmp / "observer"),
                ],
                stdout=olog, stderr=subprocess.STDOUT, env=env, cwd=tmp,
            )
        )

        def session() -> str:
            st, s = http("POST", f"{op}/v1/sessions", admin, {"agent": "bench-agent", "user": "bench", "task": "bench", "ttl": "2h"})
            assert st == 201, s
            return s["token"]

        # Sustained traffic for as long as the probes take (stopped once they are done).
        load_out = tmp / "load.json"
        load = subprocess.Popen(
            [
                str(bin_dir / "warden-load"), "--url", f"{agent}/mcp", "--token", session(),
                "--tool", "echo.echo", "--concurrency", str(args.concurrency),
                "--seconds", "3600", "--warmup", "1", "--label", "sustained",
            ],
            stdout=load_out.open("wb"), stderr=subprocess.STDOUT,
        )
        procs.append(load)
        time.sleep(3)  # the load is up to speed before the first probe
        head0 = sqlite3.connect(f"file:{data / 'ledger.db'}?mode=ro", uri=True).execute("SELECT max(seq) FROM records").fetchone()[0]
        t0 = time.monotonic()

        sessions: list[str] = []
        failures = 0
        for _ in range(args.detections):
            token = session()
            st, d = http("POST", f"{agent}/v1/decide", token, {"tool": "probe.read_secret", "arguments": {"id": 1}})
            assert st == 200 and d["verdict"] == "allow", d
            http("POST", f"{agent}/v1/actions/{d['action']}/result", token, {"status": "ok", "output": "s3cr3t"})
            st, d = http("POST", f"{agent}/v1/decide", token, {"tool": "probe.send", "arguments": {"to": "x"}})
            assert st == 200, d
            sessions.append(d.get("action"))
            deadline = time.monotonic() + 10
            while True:
                st, d = http("POST", f"{agent}/v1/decide", token, {"tool": "probe.send", "arguments": {"to": "x"}})
                if d.get("verdict") == "deny":
                    break
                if time.monotonic() > deadline:
                    failures += 1
                    break
        elapsed = time.monotonic() - t0
        head1 = sqlite3.connect(f"file:{data / 'ledger.db'}?mode=ro", uri=True).execute("SELECT max(seq) FROM records").fetchone()[0]
        load.terminate()
        load.wait(timeout=30)

        # From the ledger alone: the send's attempt to the first decision naming the control.
        db = sqlite3.connect(f"file:{data / 'ledger.db'}?mode=ro", uri=True)
        attempted: dict[str, tuple[str, float]] = {}
        first_seen: dict[str, float] = {}
        control_session: dict[str, str] = {}
        wanted = set(sessions)
        for _seq, t, sess, kind, payload in db.execute(
            "SELECT seq, time, session, kind, payload FROM records WHERE seq > ? AND kind IN "
            "('action_attempted', 'action_decided', 'control_set') ORDER BY seq",
            (head0,),
        ):
            p = json.loads(payload)
            if kind == "action_attempted" and p.get("action") in wanted:
                attempted[sess] = (p["action"], ledger_ms(t))
            elif kind == "control_set" and p.get("action") == "freeze_tool":
                control_session[p["id"]] = p.get("target")
            elif kind == "action_decided" and "control" in p:
                s = control_session.get(p["control"])
                if s is not None and s not in first_seen:
                    first_seen[s] = ledger_ms(t)
        lat = [first_seen[s] - attempted[s][1] for s in attempted if s in first_seen]
        (echo_calls,) = db.execute(
            "SELECT count(*) FROM records WHERE seq > ? AND seq <= ? AND kind = 'action_attempted' "
            "AND json_extract(payload, '$.tool') = 'echo.echo'",
            (head0, head1),
        ).fetchone()
        print(json.dumps({
            "detections": len(lat),
            "not_enforced_within_10s": failures,
            "p50_ms": round(percentile(lat, 0.50), 1),
            "p90_ms": round(percentile(lat, 0.90), 1),
            "p99_ms": round(percentile(lat, 0.99), 1),
            "max_ms": round(max(lat), 1) if lat else None,
            "load_concurrency": args.concurrency,
            "load_calls_per_second": round(echo_calls / elapsed, 1),
            "ledger_records_per_second": round((head1 - head0) / elapsed, 1),
            "seconds": round(elapsed, 1),
        }))
        return 1 if failures or not lat else 0
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
