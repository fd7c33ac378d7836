"""OpenTelemetry export end to end: a gateway exports its ledger as OTLP/HTTP protobuf spans
to a real receiver built on the official protobuf definitions (`otlp_receiver.py`, the
`opentelemetry-proto` package), while the real `mcp` client, the decide API and the `openai`
SDK (against the mock model provider) drive it — with the agent's `traceparent` in HTTP
headers and in MCP `_meta`, and without.

Asserted: the span names, the GenAI attributes, warden's decision attributes, the parent from
the incoming trace context (and the session's own trace without one), content absent by
default and present when the operator opts in, header credentials from the environment, and
that a dead collector (a closed port, or one that accepts and never answers) changes no
decision and adds no latency beyond a generous bound. Malformed trace context is ignored:
never recorded, never an error.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Iterator

import httpx2
import openai
import pytest
from conftest import Gateway, free_port, mcp_http, text_of
from otlp_receiver import OtlpReceiver
from test_model_proxy import KEY_ENV, PROVIDER_KEY, MockLlm

pytestmark = pytest.mark.anyio

#: Trace contexts an agent framework would send (W3C examples).
TP_HEADER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TP_META = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TP_MODEL = "00-5d0e5a6b3a1f4c2e8f9a0b1c2d3e4f50-1122334455667788-01"
TP_DECIDE = "00-aaaabbbbccccddddeeeeffff00001111-2222333344445555-00"


def trace_of(tp: str) -> tuple[str, str]:
    _, trace_id, parent, _ = tp.split("-")
    return trace_id, parent


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


@pytest.fixture
def provider() -> Iterator[MockLlm]:
    m = MockLlm.start("primary")
    try:
        yield m
    finally:
        m.stop()


def models_yaml(provider: MockLlm) -> str:
    return f"""\
  models:
    - alias: fast
      routes:
        - {{ provider: openai, base_url: "{provider.url}/v1", model: gpt-primary, api_key_env: {KEY_ENV} }}
"""


def start_exporting(start_gateway: Any, receiver: OtlpReceiver, provider: MockLlm,
                    config: Path | None = None, env: dict[str, str] | None = None) -> Gateway:
    """A gateway with models that exports to `receiver`: by `OTEL_EXPORTER_OTLP_ENDPOINT`, or
    by the `[otel]` section of the config file `config` when given."""
    env = {KEY_ENV: PROVIDER_KEY, **(env or {})}
    args: list[str] = []
    if config is None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
    else:
        args = ["--config", str(config)]
    return start_gateway(*args, models=models_yaml(provider), env=env)


def decide_and_report(gw: Gateway, token: str, amount: float, traceparent: str | None = None) -> dict[str, Any]:
    """A decide-API call (with the `traceparent` header, when given); an allowed action's
    result is reported, which ends its span."""
    headers = {"Authorization": f"Bearer {token}"}
    if traceparent is not None:
        headers["traceparent"] = traceparent
    r = httpx2.post(f"{gw.agent_url}/v1/decide", json={"tool": "pay.create_payment", "arguments": {"amount": amount}},
                    headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    if body["verdict"] == "allow":
        done = httpx2.post(f"{gw.agent_url}/v1/actions/{body['action']}/result", json={"status": "ok", "output": "paid"},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert done.status_code == 200, done.text
    return body


def by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name]


def openai_client(gw: Gateway, token: str, headers: dict[str, str] | None = None) -> openai.OpenAI:
    return openai.OpenAI(api_key=token, base_url=f"{gw.agent_url}/v1", max_retries=0, timeout=30,
                         default_headers=headers)


async def test_spans_with_genai_attributes_continue_the_agents_trace(
    start_gateway: Any, receiver: OtlpReceiver, provider: MockLlm
) -> None:
    gw = start_exporting(start_gateway, receiver, provider)
    token = gw.open_session()
    # MCP with the agent's traceparent (and tracestate) in the HTTP headers; one call with a
    # traceparent of its own in `_meta`, which wins for that call.
    headers = {"Authorization": f"Bearer {token}", "traceparent": TP_HEADER, "tracestate": "vendor=opaque"}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        from mcp import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async with streamable_http_client(gw.mcp_url, http_client=http) as (read, write):
            async with ClientSession(read, write) as mcp:
                await mcp.initialize()
                ok = await mcp.call_tool("everything__echo", {"message": "hello otel"})
                assert "hello otel" in text_of(ok)
                denied = await mcp.call_tool("everything__get-env", {})
                assert denied.is_error
                via_meta = await mcp.call_tool("everything__echo", {"message": "meta"}, meta={"traceparent": TP_META})
                assert not via_meta.is_error
    # The decide API, with the header.
    assert decide_and_report(gw, token, 5, TP_DECIDE)["verdict"] == "allow"
    # A model call with the openai SDK, with the header.
    answer = openai_client(gw, token, {"traceparent": TP_MODEL}).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "the prompt is private"}]
    )
    assert "echo" in answer.choices[0].message.content

    # Recorded in the ledger as the agent sent it.
    attempts = [r["payload"] for r in gw.records() if r["kind"] == "action_attempted"]
    traces = [a.get("trace") for a in attempts]
    assert traces == [
        {"traceparent": TP_HEADER, "tracestate": "vendor=opaque"},
        {"traceparent": TP_HEADER, "tracestate": "vendor=opaque"},
        {"traceparent": TP_META},
        {"traceparent": TP_DECIDE},
    ], traces
    requested = [r["payload"] for r in gw.records() if r["kind"] == "model_requested"]
    assert requested[0]["trace"] == {"traceparent": TP_MODEL}

    spans = receiver.wait_for(
        "the root, four tool spans and a chat span",
        lambda s: len(by_name(s, "invoke_agent e2e-agent")) == 1
        and len([x for x in s if x["name"].startswith("execute_tool ")]) == 4
        and by_name(s, "chat fast")
        and s,
    )
    root = by_name(spans, "invoke_agent e2e-agent")[0]
    assert root["parent_span_id"] == ""
    assert root["resource"]["service.name"] == "warden"
    assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"

    echo, meta_echo = by_name(spans, "execute_tool everything.echo")
    if echo["trace_id"] != trace_of(TP_HEADER)[0]:
        echo, meta_echo = meta_echo, echo
    assert (echo["trace_id"], echo["parent_span_id"]) == trace_of(TP_HEADER)
    assert echo["trace_state"] == "vendor=opaque"
    a = echo["attributes"]
    assert a["gen_ai.operation.name"] == "execute_tool"
    assert a["gen_ai.tool.name"] == "everything.echo"
    assert a["mcp.method.name"] == "tools/call"
    assert a["warden.decision.verdict"] == "allow"
    assert a["warden.decision.tier"] == "autonomous"
    assert a["warden.decision.rule_ids"] == ["echo"]
    assert isinstance(a["warden.ledger.seq"], int) and a["warden.ledger.seq"] > 0
    assert a["warden.result.status"] == "ok"
    assert echo["status"]["code"] == 0 and echo["kind"] == 3  # unset, client
    assert (meta_echo["trace_id"], meta_echo["parent_span_id"]) == trace_of(TP_META)

    (env,) = by_name(spans, "execute_tool everything.get-env")
    assert env["attributes"]["warden.decision.verdict"] == "deny"
    assert env["attributes"]["warden.decision.tier"] == "prohibited"
    assert env["attributes"]["warden.decision.rule_ids"] == ["never-env"]
    assert env["status"]["code"] == 2  # error

    (pay,) = by_name(spans, "execute_tool pay.create_payment")
    assert pay["attributes"]["mcp.method.name"] == "decide"
    assert (pay["trace_id"], pay["parent_span_id"]) == trace_of(TP_DECIDE)

    (chat,) = by_name(spans, "chat fast")
    c = chat["attributes"]
    assert (chat["trace_id"], chat["parent_span_id"]) == trace_of(TP_MODEL)
    assert c["gen_ai.operation.name"] == "chat"
    assert c["gen_ai.provider.name"] == "openai"
    assert c["gen_ai.request.model"] == "fast"
    assert c["gen_ai.response.model"].startswith("gpt-primary")
    assert c["gen_ai.usage.input_tokens"] > 0 and c["gen_ai.usage.output_tokens"] > 0
    assert c["gen_ai.response.finish_reasons"] == ["stop"]
    # No content by default.
    for s in spans:
        assert "gen_ai.input.messages" not in s["attributes"]
        assert "gen_ai.output.messages" not in s["attributes"]
        assert "gen_ai.tool.call.arguments" not in s["attributes"]
        assert "private" not in str(s)


async def test_without_trace_context_a_session_is_one_trace_and_content_only_when_opted_in(
    start_gateway: Any, receiver: OtlpReceiver, provider: MockLlm, tmp_path: Path
) -> None:
    config = tmp_path / "warden.toml"
    config.write_text(f"""
[otel]
endpoint = "{receiver.url}"
headers = {{ "authorization" = "env:E2E_OTEL_AUTH" }}
service_name = "warden-e2e"
capture_content = true
""")
    secret = "Bearer otel-secret-9d1c"
    gw = start_exporting(start_gateway, receiver, provider, config=config, env={"E2E_OTEL_AUTH": secret})
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as mcp:
        await mcp.call_tool("everything__echo", {"message": "captured argument"})
    openai_client(gw, token).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "captured prompt"}]
    )
    spans = receiver.wait_for(
        "root, tool and chat spans",
        lambda s: by_name(s, "invoke_agent e2e-agent") and by_name(s, "execute_tool everything.echo")
        and by_name(s, "chat fast") and s,
    )
    (root,) = by_name(spans, "invoke_agent e2e-agent")
    (echo,) = by_name(spans, "execute_tool everything.echo")
    (chat,) = by_name(spans, "chat fast")
    assert root["resource"]["service.name"] == "warden-e2e"
    for s in (echo, chat):
        assert s["trace_id"] == root["trace_id"], "one trace per session"
        assert s["parent_span_id"] == root["span_id"]
    assert "captured argument" in echo["attributes"]["gen_ai.tool.call.arguments"]
    assert "captured prompt" in chat["attributes"]["gen_ai.input.messages"]
    assert "captured prompt" in chat["attributes"]["gen_ai.output.messages"]  # the mock echoes
    # The credential went to the collector, from the environment, and nowhere else.
    assert all(r.get("authorization") == secret for r in receiver.requests)
    assert all(r.get("content-type") == "application/x-protobuf" for r in receiver.requests)
    assert secret not in gw.log()
    assert secret not in str(gw.records())


BAD_TRACEPARENTS = [
    TP_HEADER + "0" * 600,  # too long
    TP_HEADER.upper(),  # uppercase hex
    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  # not hex
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
    "",
]


async def test_malformed_trace_context_is_ignored_never_recorded_never_an_error(
    start_gateway: Any, receiver: OtlpReceiver, provider: MockLlm
) -> None:
    gw = start_exporting(start_gateway, receiver, provider)
    token = gw.open_session()
    n = 0
    for bad in BAD_TRACEPARENTS:
        headers = {"Authorization": f"Bearer {token}", "traceparent": bad, "tracestate": "x" * 2000}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            from mcp import ClientSession
            from mcp.client.streamable_http import streamable_http_client

            async with streamable_http_client(gw.mcp_url, http_client=http) as (read, write):
                async with ClientSession(read, write) as mcp:
                    await mcp.initialize()
                    r = await mcp.call_tool("everything__echo", {"message": "x"})
                    assert not r.is_error
                    n += 1
        assert decide_and_report(gw, token, 1, bad)["verdict"] == "allow"
        n += 1
        answer = openai_client(gw, token, {"traceparent": bad}).chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices
    # Non-string and oversized `_meta` values.
    async with mcp_http(gw.mcp_url, token) as mcp:
        for meta in ({"traceparent": 5}, {"traceparent": [TP_META]}, {"traceparent": {"v": TP_META}},
                     {"traceparent": TP_META + "-00"}, {"traceparent": None}):
            r = await mcp.call_tool("everything__echo", {"message": "m"}, meta=meta)
            assert not r.is_error
            n += 1
        # A valid traceparent with a tracestate over 512 bytes: the tracestate is dropped.
        r = await mcp.call_tool("everything__echo", {"message": "m"},
                                meta={"traceparent": TP_META, "tracestate": "k=" + "v" * 600})
        assert not r.is_error
    records = gw.records()
    attempts = [r["payload"] for r in records if r["kind"] == "action_attempted"]
    assert len(attempts) == n + 1
    assert [a for a in attempts if "trace" in a] == [attempts[-1]]
    assert attempts[-1]["trace"] == {"traceparent": TP_META}
    assert not [r for r in records if r["kind"] == "model_requested" and "trace" in r["payload"]]
    spans = receiver.wait_for("every tool span", lambda s: len([x for x in s if x["name"].startswith("execute_tool")]) == n + 1 and s)
    (root,) = by_name(spans, "invoke_agent e2e-agent")
    untraced = [s for s in spans if s["name"] != root["name"] and s["trace_id"] != trace_of(TP_META)[0]]
    assert untraced and all(s["trace_id"] == root["trace_id"] for s in untraced)


def round_trips(gw: Gateway, token: str, n: int = 15) -> tuple[float, list[str]]:
    """The median round trip of `n` decide-API calls (seconds), and their verdicts."""
    times, verdicts = [], []
    with httpx2.Client(base_url=gw.agent_url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        for i in range(n):
            args = {"amount": 500} if i % 3 == 0 else {"amount": 5}
            started = time.perf_counter()
            r = api.post("/v1/decide", json={"tool": "pay.create_payment", "arguments": args})
            times.append(time.perf_counter() - started)
            verdicts.append(r.json()["verdict"])
    return statistics.median(times), verdicts


def test_a_dead_collector_changes_no_decision_and_adds_no_latency(start_gateway: Any) -> None:
    """A functional bound, not a benchmark: with export to a closed port or to a collector that
    accepts and never answers, decisions are the same and the median round trip stays within
    50 ms of a gateway without export."""
    baseline = start_gateway()
    base_median, base_verdicts = round_trips(baseline, baseline.open_session())
    with OtlpReceiver(mode="hang") as hanging:
        for endpoint in (f"http://127.0.0.1:{free_port()}", hanging.url):
            gw = start_gateway(env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
            token = gw.open_session()
            round_trips(gw, token, n=3)  # the exporter has spans to send from here on
            median, verdicts = round_trips(gw, token)
            assert verdicts == base_verdicts
            assert median <= base_median + 0.050, (endpoint, median, base_median)
            # It stops promptly at SIGTERM even so (the fixture checks the exit code).
            started = time.monotonic()
            assert gw.stop() == 0
            assert time.monotonic() - started < 20
        assert hanging.requests, "the hanging collector was sent spans"
