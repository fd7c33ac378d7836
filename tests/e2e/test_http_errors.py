"""Fail closed on the wire: missing, invalid and wrong-plane tokens, malformed JSON-RPC, unknown
methods and oversized bodies get clear errors, and the gateway stays healthy.

Plain HTTP (httpx2), not an MCP client, so that the requests can be as broken as needed. One
gateway serves the whole module, started with `--max-body-bytes 4096`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import httpx2
import pytest

from conftest import Gateway, Workspace, attempts, run_warden

MAX_BODY = 4096
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PROTOCOL = {"MCP-Protocol-Version": "2025-06-18"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp: Path = tmp_path_factory.mktemp("http")
    gateway = Gateway(
        tmp=tmp, ws=Workspace.create(tmp), extra_args=["--max-body-bytes", str(MAX_BODY)]
    )
    gateway.start()
    yield gateway
    assert gateway.stop() == 0, gateway.log()


@pytest.fixture(scope="module")
def token(gw: Gateway) -> str:
    return gw.open_session()


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    # A new connection for every request: a server may close a connection after refusing a
    # request whose body it did not read, and reusing it would fail the next request.
    with httpx2.Client(timeout=30, limits=httpx2.Limits(max_keepalive_connections=0)) as client:
        yield client


def rpc(method: str, id: int = 1, **params: Any) -> bytes:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params:
        msg["params"] = params
    return json.dumps(msg).encode()


def auth(token: str) -> dict[str, str]:
    return {**HEADERS, **PROTOCOL, "Authorization": f"Bearer {token}"}


def assert_jsonrpc_error(r: httpx2.Response, code: int | None = None) -> dict[str, Any]:
    assert r.headers.get("content-type", "").startswith("application/json"), (r.status_code, r.text)
    body = r.json()
    assert body["jsonrpc"] == "2.0", body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


def assert_healthy(gw: Gateway, http: httpx2.Client, token: str) -> None:
    assert http.get(f"{gw.agent_url}/healthz").json() == {"status": "ok"}
    r = http.post(gw.mcp_url, headers=auth(token), content=rpc("tools/list", id=99))
    assert r.status_code == 200, r.text
    assert "fs__read_text_file" in {t["name"] for t in r.json()["result"]["tools"]}


def test_a_missing_token_is_401_with_a_jsonrpc_error(gw: Gateway, http: httpx2.Client) -> None:
    r = http.post(gw.mcp_url, headers=HEADERS, content=rpc("tools/list"))
    assert r.status_code == 401
    body = assert_jsonrpc_error(r)
    assert "session token is required" in body["error"]["message"]
    r = http.post(f"{gw.agent_url}/v1/decide", json={"tool": "fs.read_text_file"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    "value",
    [
        "Bearer wa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer not-a-warden-token",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer " + "wa_" + "x" * 5000,
    ],
)
def test_an_invalid_token_is_401_with_a_jsonrpc_error(
    gw: Gateway, http: httpx2.Client, token: str, value: str
) -> None:
    r = http.post(
        gw.mcp_url, headers={**HEADERS, "Authorization": value}, content=rpc("tools/list")
    )
    assert r.status_code == 401, r.text
    assert_jsonrpc_error(r)
    assert_healthy(gw, http, token)


def test_a_revoked_session_token_is_refused(gw: Gateway, http: httpx2.Client) -> None:
    op = ["--operator-url", gw.operator_url, "--token", gw.operator_token]
    out = run_warden("session", "open", "--agent", "e2e-agent", "--user", "bob", "--json", *op)
    assert out.returncode == 0, out.stderr
    opened = json.loads(out.stdout)
    args = {"path": str(gw.ws.root / "README.md")}
    call = rpc("tools/call", name="fs.read_text_file", arguments=args)
    r = http.post(gw.mcp_url, headers=auth(opened["token"]), content=call)
    assert r.status_code == 200 and not r.json()["result"].get("isError"), r.text

    out = run_warden("session", "revoke", opened["id"], *op)
    assert out.returncode == 0, out.stderr
    out = run_warden("session", "list", *op)
    listed = {s["id"]: s for s in json.loads(out.stdout)["sessions"]}
    assert listed[opened["id"]]["status"] == "revoked"

    r = http.post(gw.mcp_url, headers=auth(opened["token"]), content=call)
    if r.status_code == 200:
        body = r.json()
        assert body.get("error") or body["result"].get("isError"), body
    else:
        assert r.status_code in (401, 403), r.text
        assert_jsonrpc_error(r)
    assert "Demo folder" not in r.text, "the revoked session read nothing"
    revoked = [x for x in gw.records() if x["kind"] == "session_revoked"]
    assert [x["payload"]["session"] for x in revoked] == [opened["id"]]


def test_an_operator_token_on_the_agent_plane_is_403(gw: Gateway, http: httpx2.Client) -> None:
    r = http.post(gw.mcp_url, headers=auth(gw.operator_token), content=rpc("tools/list"))
    assert r.status_code == 403
    body = assert_jsonrpc_error(r)
    assert "operator tokens are refused on the agent plane" in body["error"]["message"]
    r = http.post(
        f"{gw.agent_url}/v1/decide",
        headers={"Authorization": f"Bearer {gw.operator_token}"},
        json={"tool": "fs.read_text_file", "arguments": {}},
    )
    assert r.status_code == 403


def test_an_agent_token_on_the_operator_plane_is_403(
    gw: Gateway, http: httpx2.Client, token: str
) -> None:
    for method, path in [("GET", "/v1/sessions"), ("POST", "/v1/sessions")]:
        r = http.request(
            method,
            f"{gw.operator_url}{path}",
            headers={"Authorization": f"Bearer {token}"},
            json={"agent": "e2e-agent", "user": "alice"},
        )
        assert r.status_code == 403, (path, r.text)
        assert "agent session tokens are refused" in r.json()["error"]["message"]
    # Nor can an agent open itself a session with a missing or made-up operator token.
    r = http.post(f"{gw.operator_url}/v1/sessions", json={"agent": "e2e-agent", "user": "alice"})
    assert r.status_code == 401
    r = http.post(
        f"{gw.operator_url}/v1/sessions",
        headers={"Authorization": "Bearer wo_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
        json={"agent": "e2e-agent", "user": "alice"},
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    "body, code",
    [
        (b'{"jsonrpc": "2.0", "id": 1, "method": ', -32700),
        (b"hello", -32700),
        (b'{"jsonrpc": "2.0", "id": 1}', -32600),
        (b"[1, 2, 3]", -32600),
    ],
    ids=["truncated", "not-json", "no-method", "not-a-message"],
)
def test_malformed_jsonrpc_is_a_jsonrpc_error(
    gw: Gateway, http: httpx2.Client, token: str, body: bytes, code: int
) -> None:
    r = http.post(gw.mcp_url, headers=auth(token), content=body)
    assert r.status_code in (200, 400), (r.status_code, r.text)
    assert_jsonrpc_error(r, code)


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc": "2.0", "id": 1, "method": ',
        b"hello",
        b'{"jsonrpc": "2.0", "id": 1}',
        b"[1, 2, 3]",
        b"\xff\xfe\x00garbage",
        b"",
    ],
)
def test_malformed_jsonrpc_is_refused_and_the_gateway_stays_healthy(
    gw: Gateway, http: httpx2.Client, token: str, body: bytes
) -> None:
    """What holds today: a 4xx with a message, never a 5xx or a dropped connection."""
    r = http.post(gw.mcp_url, headers=auth(token), content=body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.text.strip(), "the refusal says why"
    assert_healthy(gw, http, token)


@pytest.mark.parametrize(
    "params",
    [{}, {"name": "everything.echo", "arguments": [1]}],
    ids=["no-name", "arguments-not-an-object"],
)
def test_invalid_params_are_an_invalid_params_error(
    gw: Gateway, http: httpx2.Client, token: str, params: dict[str, Any]
) -> None:
    r = http.post(gw.mcp_url, headers=auth(token), content=rpc("tools/call", **params))
    assert r.status_code == 200, r.text
    assert_jsonrpc_error(r, -32602)


@pytest.mark.parametrize(
    "method, params",
    [
        ("foo/bar", {}),
        ("logging/setLevel", {"level": "debug"}),
        ("resources/subscribe", {"uri": "warden://charter"}),
        ("sampling/createMessage", {"messages": [], "maxTokens": 1}),
    ],
)
def test_unknown_methods_are_refused_not_passed_through(
    gw: Gateway, http: httpx2.Client, token: str, method: str, params: dict[str, Any]
) -> None:
    r = http.post(gw.mcp_url, headers=auth(token), content=rpc(method, id=7, **params))
    assert r.status_code == 200, r.text
    body = assert_jsonrpc_error(r, -32601)
    assert body["id"] == 7
    assert_healthy(gw, http, token)


def test_a_tool_no_server_offers_is_refused_and_recorded(
    gw: Gateway, http: httpx2.Client, token: str
) -> None:
    for name in ["echo", "nosuchserver.echo", "everything"]:
        r = http.post(
            gw.mcp_url, headers=auth(token), content=rpc("tools/call", name=name, arguments={})
        )
        assert r.status_code == 200, r.text
        body = r.json()
        refused = body.get("error", {}).get("message") or (
            body["result"]["isError"] and body["result"]["content"][0]["text"]
        )
        assert refused and "warden refused" in refused, body
        recorded = attempts(gw.records(), name)
        assert recorded, f"the attempt to call {name!r} is in the ledger"


def test_an_oversized_body_is_413_with_a_clear_error(
    gw: Gateway, http: httpx2.Client, token: str
) -> None:
    big = rpc("tools/call", name="everything.echo", arguments={"message": "x" * 10240})
    assert len(big) > 10_000
    r = http.post(gw.mcp_url, headers=auth(token), content=big)
    assert r.status_code == 413
    body = assert_jsonrpc_error(r)
    assert f"limit of {MAX_BODY} bytes" in body["error"]["message"], body
    # Streamed without a Content-Length, the limit still holds.
    r = http.post(gw.mcp_url, headers=auth(token), content=iter([big[:3000], big[3000:]]))
    assert r.status_code == 413, r.text
    assert str(MAX_BODY) in r.text, r.text
    # The decide API has the same limit.
    r = http.post(
        f"{gw.agent_url}/v1/decide",
        headers=auth(token),
        json={"tool": "everything.echo", "arguments": {"message": "x" * 10240}},
    )
    assert r.status_code == 413, r.text
    # Nothing of it was decided or forwarded.
    assert not [
        a
        for a in attempts(gw.records(), "everything.echo")
        if len(json.dumps(a["payload"])) > 10_000
    ]
    assert_healthy(gw, http, token)


def test_other_http_methods_on_the_mcp_endpoint_are_refused(
    gw: Gateway, http: httpx2.Client, token: str
) -> None:
    for method in ["GET", "PUT", "DELETE", "PATCH"]:
        r = http.request(method, gw.mcp_url, headers=auth(token))
        assert 400 <= r.status_code < 500, (method, r.status_code, r.text)
    r = http.get(f"{gw.agent_url}/no/such/endpoint", headers=auth(token))
    assert r.status_code == 404
    assert_healthy(gw, http, token)
