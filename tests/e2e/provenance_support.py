"""Helpers of tests/e2e/test_provenance.py: the personal-assistant example charter as a test
runs it, an agent on the decide API that reports what it read, and the checks of a decision's
provenance (in the answer and in the ledger's `action_decided`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from conftest import (
    FS_SERVER,
    REPO,
    Gateway,
    actions_by_id,
    find_attempt,
    mcp_http,
    run_warden,
    store_args,
    text_of,
)

#: The example under test, as it is in the repository.
EXAMPLE = REPO / "examples" / "personal-assistant" / "charter.yaml"
#: Where the example keeps its bills.
EXAMPLE_BILLS = "/home/alex/bills"
EXAMPLE_FS_COMMAND = f'command: [npx, -y, "@modelcontextprotocol/server-filesystem", {EXAMPLE_BILLS}]'
#: The principal the assistant works for, and the one who approves payments when Alex is away.
ALEX, SAM = "alex", "sam"
AGENT = "personal-assistant"
#: Every untrusted label of the example.
UNTRUSTED = {"untrusted_mail", "untrusted_web", "untrusted_chat", "untrusted_bill"}


def assistant_charter(bills: Path) -> str:
    """The example charter unchanged but for where its bills are: the filesystem server runs
    from node_modules (no `npx` download) on `bills`."""
    text = EXAMPLE.read_text()
    assert EXAMPLE_FS_COMMAND in text, "the example's filesystem server line changed"
    text = text.replace(EXAMPLE_FS_COMMAND, f'command: [node, "{FS_SERVER}", "{bills}"]')
    return text.replace(EXAMPLE_BILLS, str(bills))


def result_seq(gw: Gateway, action: str) -> int:
    """The ledger sequence of the `action_result` of `action`."""
    (result,) = actions_by_id(gw.records())[action]["action_result"]
    assert result["payload"]["status"] == "ok", result
    return int(result["seq"])


def decided(gw: Gateway, action: str) -> dict[str, Any]:
    """The decision of `action` as the ledger's `action_decided` records it."""
    (record,) = actions_by_id(gw.records())[action]["action_decided"]
    return record["payload"]["decision"]


def approver_token(gw: Gateway, principal: str) -> str:
    r = run_warden(
        "operator", "create-token", "--name", f"{principal}-phone", "--principal", principal,
        "--data", str(gw.data), *store_args(gw.data),
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def operator(gw: Gateway, token: str, path: str, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(
        f"{gw.operator_url}{path}",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        timeout=30,
    )


@dataclass
class Assistant:
    """An assistant in one session: it asks warden before every call (the decide API), runs
    the calls itself, and reports what it read."""

    gw: Gateway
    token: str
    api: httpx2.Client

    @classmethod
    def open(cls, gw: Gateway, task: str) -> "Assistant":
        token = gw.open_session(user=ALEX, agent=AGENT, task=task)
        api = httpx2.Client(
            base_url=gw.agent_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        return cls(gw=gw, token=token, api=api)

    def close(self) -> None:
        self.api.close()

    def decide(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        r = self.api.post("/v1/decide", json={"tool": tool, "arguments": arguments})
        body = r.json()
        assert r.status_code == (202 if body.get("verdict") == "ask" else 200), r.text
        return body

    def read(self, tool: str, arguments: dict[str, Any], output: str) -> int:
        """A read (which runs on its own), reported with what it returned: the ledger sequence
        of its `action_result`."""
        d = self.decide(tool, arguments)
        assert d["verdict"] == "allow" and d["decision"]["tier"] == "autonomous", d
        r = self.api.post(
            f"/v1/actions/{d['action']}/result", json={"status": "ok", "output": output}
        )
        assert r.status_code == 200, r.text
        return result_seq(self.gw, d["action"])

    async def read_bill(self, path: Path) -> tuple[str, int]:
        """Reads a bill through MCP (the real filesystem server behind the gateway): its text
        and the ledger sequence of the read's `action_result`."""
        async with mcp_http(self.gw.mcp_url, self.token) as s:
            r = await s.call_tool("bills__read_text_file", {"path": str(path)})
        assert not r.is_error, text_of(r)
        attempt = find_attempt(self.gw.records(), "bills.read_text_file", {"path": str(path)})
        return text_of(r), result_seq(self.gw, attempt["payload"]["action"])

    def session_id(self, action: str) -> str:
        """The session's id, from the ledger record of one of its actions."""
        (attempt,) = actions_by_id(self.gw.records())[action]["action_attempted"]
        return str(attempt["session"])


# --------------------------------------------------------------------------------------------
# What a decision says about provenance
# --------------------------------------------------------------------------------------------


def entries(decision: dict[str, Any], argument: str) -> list[dict[str, Any]]:
    found = [p for p in decision.get("provenance", []) if p["argument"] == argument]
    assert found, f"the decision explains no provenance of `{argument}`: {decision}"
    return found


def assert_planted(
    gw: Gateway, answer: dict[str, Any], argument: str, seq: int, label: str
) -> None:
    """The decisive value of `argument` was found in the result recorded at `seq`, under
    `label` — in the answer and in the ledger alike."""
    for decision in (answer["decision"], decided(gw, answer["action"])):
        found = [f for p in entries(decision, argument) for f in p.get("found", [])]
        assert any(f["seq"] == seq and label in f["labels"] for f in found), (seq, label, decision)
        assert all(set(f["labels"]) <= UNTRUSTED for f in found), found
    assert answer["decision"].get("provenance") == decided(gw, answer["action"]).get("provenance")


def assert_trusted(
    gw: Gateway, answer: dict[str, Any], argument: str, source: dict[str, Any]
) -> None:
    """The decisive value of `argument` is stated by trusted text from `source` (a subset of
    the `trusted` object: `{"kind": "task"}`, …), in the answer and in the ledger."""
    for decision in (answer["decision"], decided(gw, answer["action"])):
        trusted = [p.get("trusted") or {} for p in entries(decision, argument)]
        assert any(all(t.get(k) == v for k, v in source.items()) for t in trusted), (
            source,
            decision,
        )


def assert_ran_without_approval(gw: Gateway, answer: dict[str, Any], rule: str) -> None:
    assert answer["verdict"] == "allow", answer
    assert answer["decision"]["verdict"] == "allow", answer
    assert answer["decision"]["tier"] == "autonomous", answer
    assert rule in [r["id"] for r in answer["decision"]["rules"]], answer
    kinds = actions_by_id(gw.records())[answer["action"]]
    assert "approval_requested" not in kinds, kinds.keys()


def assert_stopped(answer: dict[str, Any], rule: str) -> None:
    """Denied, or waiting for a human; `rule` among the determining rules."""
    assert answer["verdict"] in ("deny", "ask"), answer
    assert rule in [r["id"] for r in answer["decision"]["rules"]], answer
