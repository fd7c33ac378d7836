"""Detection to intervention, end to end: from the commit of the anomalous record to the first
decision that sees the observer's control, while other sessions keep the gateway busy.

Started by bench/observer.sh, which runs the gateway (`warden serve`), the observer (`warden
observe`) and the background load (`warden-load`: MCP `tools/call` through the gateway), and
passes their addresses. Each iteration opens a fresh session and makes it trip the charter's
`denial_storm` detector (prohibited payments through the decide API; the anomalous record is
the decision that reaches the threshold), then keeps deciding an allowed payment as fast as it
can until one is refused. The latency of an iteration is the ledger time of the first decision
that carries the observer's control minus the ledger time of the anomalous record: both are
stamped by the gateway's ledger writer, so one clock measures both. Prints one JSON line.

Usage: python3 bench/observer_latency.py --agent URL --operator URL --data DIR [--iterations N]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone


def post(url: str, token: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, {}


def ledger_seconds(text: str) -> float:
    """`2026-12-06T10:00:00.123456789Z` as seconds since the epoch (to the nanosecond digit
    kept by a float: microseconds are exact)."""
    base, frac = text.rstrip("Z").split(".")
    whole = datetime.fromisoformat(base).replace(tzinfo=timezone.utc).timestamp()
    return whole + int(frac.ljust(9, "0")[:9]) / 1e9


def session_records(db: sqlite3.Connection, sid: str) -> list[tuple[int, str, str, dict]]:
    rows = db.execute(
        "SELECT seq, time, kind, payload FROM records WHERE session = ? ORDER BY seq", (sid,)
    ).fetchall()
    return [(seq, t, kind, json.loads(p)) for seq, t, kind, p in rows]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agent", required=True)
    p.add_argument("--operator", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--agent-id", default="bench-agent")
    p.add_argument("--user", default="bench")
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--storm", type=int, default=3, help="the detector's threshold")
    a = p.parse_args()
    admin = open(f"{a.data}/operator.token").read().strip()
    db = sqlite3.connect(f"file:{a.data}/ledger.db?mode=ro", uri=True, timeout=30)

    latencies: list[float] = []
    polls: list[int] = []
    for i in range(a.iterations):
        status, session = post(
            f"{a.operator}/v1/sessions",
            admin,
            {"agent": a.agent_id, "user": a.user, "task": f"latency {i}", "ttl": "1h"},
        )
        assert status == 201, (status, session)
        token, sid = session["token"], session["id"]
        for _ in range(a.storm):
            post(f"{a.agent}/v1/decide", token, {"tool": "pay.create_payment", "arguments": {"amount": 1000}})
        deadline = time.monotonic() + 10
        n = 0
        refused = False
        while time.monotonic() < deadline:
            n += 1
            status, d = post(f"{a.agent}/v1/decide", token, {"tool": "pay.create_payment", "arguments": {"amount": 1}})
            if status != 200 or d.get("verdict") != "allow":
                refused = True
                break
        if not refused:
            print(f"iteration {i}: no control within 10s", file=sys.stderr)
            continue
        polls.append(n)
        records = session_records(db, sid)
        decided = [(seq, t, pl) for seq, t, kind, pl in records if kind == "action_decided"]
        denied = [(seq, t) for seq, t, pl in decided if pl.get("decision", {}).get("verdict") == "deny" and "control" not in pl]
        controlled = [(seq, t) for seq, t, pl in decided if "control" in pl]
        if len(denied) < a.storm or not controlled:
            print(f"iteration {i}: the records are not there ({len(denied)} denials, {len(controlled)} controlled)", file=sys.stderr)
            continue
        anomalous = denied[a.storm - 1]
        latencies.append(ledger_seconds(controlled[0][1]) - ledger_seconds(anomalous[1]))

    latencies.sort()

    def q(f: float) -> float | None:
        if not latencies:
            return None
        return round(latencies[min(len(latencies) - 1, int(f * len(latencies)))] * 1000, 1)

    print(json.dumps({
        "iterations": len(latencies),
        "p50_ms": q(0.50),
        "p90_ms": q(0.90),
        "p99_ms": q(0.99),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "allowed_decisions_before_the_control": sorted(polls)[len(polls) // 2] if polls else None,
    }))


if __name__ == "__main__":
    main()
