"""The model proxy end to end, driven by the real `openai` and `anthropic` Python SDKs.

The agent talks to warden's agent plane (`/v1/chat/completions`, `/v1/messages`, `/v1/models`)
with its session token as the API key; warden routes each alias of the charter to scripted mock
providers (`warden-mock-llm`, two or three processes per test: `primary`, `backup`, `flaky`),
with a provider key of its own taken from its environment. A small recording provider in front
of a mock shows what a provider receives.

The mock answers `[NAME] echo: <last user text>` and obeys directives in that text
(`[tool:NAME {json}]`, `[error:CODE]`, `[retry-after:N]`, `[drop-mid-stream]`, ...; see
crates/warden-testkit/src/mock_llm.rs). Its usage figures: prompt tokens are the words of every
message plus one per message, completion tokens the words of the reply (plus, per tool call,
one and the words of its arguments JSON).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import anthropic
import httpx2
import openai
import pytest
from conftest import REPO, STORE, WARDEN_BIN, Gateway, free_port, run_warden, wait_for

#: The mock provider (`cargo build -p warden-testkit`): `$WARDEN_MOCK_LLM_BIN`, else beside
#: the warden binary.
MOCK_LLM_BIN = (
    Path(os.environ["WARDEN_MOCK_LLM_BIN"])
    if os.environ.get("WARDEN_MOCK_LLM_BIN")
    else WARDEN_BIN.parent / "warden-mock-llm"
)
#: The variable the charter's routes name in `api_key_env`, and the provider key it holds.
KEY_ENV = "WARDEN_E2E_PROVIDER_KEY"
PROVIDER_KEY = "sk-e2e-provider-key-0b5e"
#: Tools an agent may offer the model, in each SDK's shape.
OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "read_text_file",
            "description": "Read a text file.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
        },
    }
]
ANTHROPIC_TOOLS = [
    {
        "name": "create_payment",
        "description": "Pay someone.",
        "input_schema": {
            "type": "object",
            "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
        },
    }
]


# --------------------------------------------------------------------------------------------
# Providers
# --------------------------------------------------------------------------------------------


@dataclass
class MockLlm:
    """One `warden-mock-llm` process."""

    name: str
    proc: subprocess.Popen[str]
    url: str

    @classmethod
    def start(cls, name: str, fail_first: int = 0) -> "MockLlm":
        if not MOCK_LLM_BIN.exists():
            pytest.fail(
                f"the mock model provider {MOCK_LLM_BIN} is not built: run "
                "`cargo build -p warden-testkit` (or set WARDEN_MOCK_LLM_BIN)"
            )
        proc = subprocess.Popen(
            [
                str(MOCK_LLM_BIN),
                "--listen",
                "127.0.0.1:0",
                "--name",
                name,
                "--fail-first",
                str(fail_first),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=15)
        except queue.Empty:
            proc.kill()
            proc.wait()
            raise AssertionError(f"warden-mock-llm {name} did not announce its address") from None
        prefix = "listening on "
        assert first.startswith(prefix), f"warden-mock-llm {name} printed {first!r}"
        return cls(name=name, proc=proc, url=first[len(prefix) :].strip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Seen:
    """A request as a provider received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class RecordingProvider:
    """A provider that keeps every request it receives (headers lower-cased, JSON body) and
    answers with what the upstream mock answers."""

    upstream: str
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer = field(init=False)

    def __post_init__(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                provider.seen.append(
                    Seen(
                        method=self.command,
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                forward = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                r = httpx2.request(
                    self.command,
                    provider.upstream + self.path,
                    headers=forward,
                    content=raw,
                    timeout=30,
                )
                self.send_response(r.status_code)
                for name in ("content-type", "retry-after", "x-mock-name"):
                    if name in r.headers:
                        self.send_header(name, r.headers[name])
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = _relay
            do_POST = _relay

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Providers:
    primary: MockLlm
    backup: MockLlm
    #: Answers 503 to its first two model requests.
    flaky: MockLlm
    #: Records, then relays to `primary`.
    recorder: RecordingProvider
    #: A loopback port nothing listens on.
    dead_port: int

    def models_yaml(self, budgets: str = "") -> str:
        """The charter's `inventory.models` (and `token_budgets`) for these providers.

        `fast` and `claude`: primary, then backup. `flaky` and `resilient`: a failing provider
        (503 / connection refused), then backup, for each protocol. `recorded`: through the
        recording provider."""
        key = f"api_key_env: {KEY_ENV}, timeout: 10s"
        p, b, f, r = self.primary.url, self.backup.url, self.flaky.url, self.recorder.url
        dead = f"http://127.0.0.1:{self.dead_port}"
        return f"""\
  models:
    - alias: fast
      routes:
        - {{ provider: openai, base_url: "{p}/v1", model: gpt-primary, {key} }}
        - {{ provider: openai, base_url: "{b}/v1", model: gpt-backup, {key} }}
    - alias: claude
      routes:
        - {{ provider: anthropic, base_url: "{p}", model: claude-primary, {key} }}
        - {{ provider: anthropic, base_url: "{b}", model: claude-backup, {key} }}
    - alias: flaky
      routes:
        - {{ provider: openai, base_url: "{f}/v1", model: gpt-flaky, {key} }}
        - {{ provider: openai, base_url: "{b}/v1", model: gpt-backup, {key} }}
    - alias: flaky-claude
      routes:
        - {{ provider: anthropic, base_url: "{f}", model: claude-flaky, {key} }}
        - {{ provider: anthropic, base_url: "{b}", model: claude-backup, {key} }}
    - alias: resilient
      routes:
        - {{ provider: openai, base_url: "{dead}/v1", model: gpt-dead, timeout: 2s }}
        - {{ provider: openai, base_url: "{b}/v1", model: gpt-backup, {key} }}
    - alias: resilient-claude
      routes:
        - {{ provider: anthropic, base_url: "{dead}", model: claude-dead, timeout: 2s }}
        - {{ provider: anthropic, base_url: "{b}", model: claude-backup, {key} }}
    - alias: recorded
      routes:
        - {{ provider: openai, base_url: "{r}/v1", model: gpt-recorded, {key} }}
    - alias: recorded-claude
      routes:
        - {{ provider: anthropic, base_url: "{r}", model: claude-recorded, {key} }}
{budgets}"""


@pytest.fixture
def providers() -> Iterator[Providers]:
    started: list[MockLlm] = []
    recorder = None
    try:
        for name, fail_first in (("primary", 0), ("backup", 0), ("flaky", 2)):
            started.append(MockLlm.start(name, fail_first))
        recorder = RecordingProvider(upstream=started[0].url)
        yield Providers(*started, recorder=recorder, dead_port=free_port())
    finally:
        if recorder is not None:
            recorder.stop()
        for m in started:
            m.stop()


@dataclass
class ModelGateway:
    """A gateway with models, a session on it and SDK clients that use the session token."""

    gw: Gateway
    token: str

    def openai(self, api_key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=api_key or self.token,
            base_url=f"{self.gw.agent_url}/v1",
            max_retries=0,
            timeout=30,
        )

    def anthropic(self, api_key: str | None = None, x_api_key: bool = False) -> anthropic.Anthropic:
        """This SDK sends its key as `Authorization: Bearer`; with `x_api_key`, in `x-api-key`
        instead (as Anthropic's API documents it, and older SDKs and curl examples send it)."""
        key = api_key or self.token
        return anthropic.Anthropic(
            api_key=key,
            base_url=self.gw.agent_url,
            max_retries=0,
            timeout=30,
            default_headers={"x-api-key": key, "Authorization": anthropic.omit}
            if x_api_key
            else None,
        )

    def records(self, kind: str) -> list[dict[str, Any]]:
        return [r["payload"] for r in self.gw.records() if r["kind"] == kind]

    def wait_records(self, kind: str, n: int) -> list[dict[str, Any]]:
        """The payloads of `kind` records once there are at least `n` (completions are recorded
        just after the answer is sent)."""
        return wait_for(f"{n} `{kind}` records", lambda: _at_least(self.records(kind), n))

    def completions(self, n: int) -> list[dict[str, Any]]:
        """The `model_completed` payloads once there are `n`, in the order of the calls (each
        call's request is recorded before it is answered; its completion may be recorded after
        the agent's next call started)."""
        completed = {c["call"]: c for c in self.wait_records("model_completed", n)}
        order = [r["call"] for r in self.records("model_requested")]
        return [completed[c] for c in order if c in completed]


def _at_least(items: list[Any], n: int) -> list[Any] | None:
    return items if len(items) >= n else None


@pytest.fixture
def start_model_gateway(
    start_gateway: Callable[..., Gateway], providers: Providers
) -> Callable[..., ModelGateway]:
    def start(budgets: str = "") -> ModelGateway:
        gw = start_gateway(models=providers.models_yaml(budgets), env={KEY_ENV: PROVIDER_KEY})
        return ModelGateway(gw=gw, token=gw.open_session())

    return start


@pytest.fixture
def mg(start_model_gateway: Callable[..., ModelGateway]) -> ModelGateway:
    return start_model_gateway()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def by_call(payloads: list[dict[str, Any]], call: str) -> dict[str, Any]:
    found = [p for p in payloads if p["call"] == call]
    assert len(found) == 1, f"expected one record of call {call}, found {found}"
    return found[0]


# --------------------------------------------------------------------------------------------
# OpenAI
# --------------------------------------------------------------------------------------------


def test_openai_chat_completion(mg: ModelGateway) -> None:
    resp = mg.openai().chat.completions.create(
        model="fast", messages=user("the quick brown fox"), temperature=0.2
    )
    choice = resp.choices[0]
    assert choice.message.content == "[primary] echo: the quick brown fox"
    assert choice.finish_reason == "stop"
    assert resp.model == "gpt-primary"
    # 1 message of 4 words; 5 words answered.
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 6)

    requested = mg.wait_records("model_requested", 1)[0]
    completed = mg.wait_records("model_completed", 1)[0]
    assert requested["call"] == completed["call"]
    assert requested["protocol"] == "openai" and requested["alias"] == "fast"
    assert requested["stream"] is False
    assert requested["request"]["messages"] == user("the quick brown fox")
    assert requested["request"]["temperature"] == 0.2
    assert completed["status"] == 200
    assert completed["route"]["model"] == "gpt-primary"
    assert completed["completion"]["text"] == "[primary] echo: the quick brown fox"
    assert completed["usage"] == {"input_tokens": 5, "output_tokens": 6, "estimated": False}
    assert completed["attempts"] == [{"route": 0, "status": 200}]
    assert completed["response"]["id"] == resp.id


def test_openai_streaming_is_reassembled_by_the_sdk(mg: ModelGateway) -> None:
    client = mg.openai()
    stream = client.chat.completions.create(
        model="fast", messages=user("stream these five words please"), stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[primary] echo: stream these five words please"
    assert chunks[-1].choices[0].finish_reason == "stop"
    # warden asks the provider for usage on the agent's behalf, but does not relay what the
    # agent did not ask for.
    assert all(c.usage is None for c in chunks), [c.usage for c in chunks]
    completed = mg.wait_records("model_completed", 1)[0]
    assert completed["stream"] is True
    assert completed["completion"]["text"] == text
    assert completed["attempts"][0]["stream"] == {"outcome": "ok", "complete": True}
    assert completed["usage"] == {"input_tokens": 6, "output_tokens": 7, "estimated": False}

    # An agent that asks for usage gets it, as the final chunk.
    stream = client.chat.completions.create(
        model="fast",
        messages=user("count me"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 4, 7)

    # The SDK's stream helper assembles the same answer.
    with client.chat.completions.stream(model="fast", messages=user("helper text")) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content == "[primary] echo: helper text"


def test_openai_tool_calls_are_parsed_and_recorded_as_intents(mg: ModelGateway) -> None:
    client = mg.openai()
    prompt = 'read it [tool:read_text_file {"path": "/demo/README.md"}]'
    resp = client.chat.completions.create(model="fast", messages=user(prompt), tools=OPENAI_TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].function.name == "read_text_file"
    assert json.loads(calls[0].function.arguments) == {"path": "/demo/README.md"}

    completed = mg.wait_records("model_completed", 1)[0]
    assert completed["intents"] == 1
    intent = mg.wait_records("model_intent", 1)[0]
    assert intent == {
        "call": completed["call"],
        "id": calls[0].id,
        "tool": "read_text_file",
        "arguments": {"path": "/demo/README.md"},
    }
    requested = by_call(mg.records("model_requested"), completed["call"])
    assert requested["request"]["tools"] == OPENAI_TOOLS

    # Streamed: the SDK assembles the call from its deltas, warden records it all the same.
    prompt = '[tool:read_text_file {"path": "/demo/docs/plan.md"}] [tool:list_directory]'
    with client.chat.completions.stream(
        model="fast", messages=user(prompt), tools=OPENAI_TOOLS
    ) as s:
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("read_text_file", {"path": "/demo/docs/plan.md"}),
        ("list_directory", {}),
    ]
    intents = mg.wait_records("model_intent", 3)
    assert [(i["tool"], i["arguments"], i["id"]) for i in intents[1:]] == [
        ("read_text_file", {"path": "/demo/docs/plan.md"}, calls[0].id),
        ("list_directory", {}, calls[1].id),
    ]


# --------------------------------------------------------------------------------------------
# Anthropic
# --------------------------------------------------------------------------------------------


def test_anthropic_message(mg: ModelGateway) -> None:
    msg = mg.anthropic().messages.create(
        model="claude",
        max_tokens=200,
        system="You are terse.",
        messages=user("hello from anthropic"),
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert [b.type for b in msg.content] == ["text"]
    assert msg.content[0].text == "[primary] echo: hello from anthropic"
    assert msg.stop_reason == "end_turn"
    assert msg.model == "claude-primary"
    # The top-level system prompt is not counted by the mock: 1 message of 3 words.
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (4, 5)

    requested = mg.wait_records("model_requested", 1)[0]
    completed = mg.wait_records("model_completed", 1)[0]
    assert requested["protocol"] == "anthropic" and requested["alias"] == "claude"
    assert requested["request"]["system"] == "You are terse."
    assert requested["request"]["max_tokens"] == 200
    assert completed["completion"] == {
        "text": "[primary] echo: hello from anthropic",
        "finish_reason": "end_turn",
    }
    assert completed["usage"] == {"input_tokens": 4, "output_tokens": 5, "estimated": False}
    assert completed["route"]["provider"] == "anthropic"

    # The session token in `x-api-key` works the same.
    msg = mg.anthropic(x_api_key=True).messages.create(
        model="claude", max_tokens=20, messages=user("keyed by header")
    )
    assert msg.content[0].text == "[primary] echo: keyed by header"


def test_anthropic_streaming_text_and_final_usage(mg: ModelGateway) -> None:
    client = mg.anthropic()
    with client.messages.stream(
        model="claude", max_tokens=200, messages=user("stream from claude now")
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "[primary] echo: stream from claude now"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 6)
    completed = mg.wait_records("model_completed", 1)[0]
    assert completed["stream"] is True
    assert completed["completion"]["text"] == text
    assert completed["usage"] == {"input_tokens": 5, "output_tokens": 6, "estimated": False}
    assert completed["attempts"][0]["stream"] == {"outcome": "ok", "complete": True}

    # The raw event stream (`stream=True`) ends with message_stop.
    events = list(
        client.messages.create(
            model="claude", max_tokens=50, messages=user("raw events"), stream=True
        )
    )
    assert events[0].type == "message_start" and events[-1].type == "message_stop"


def test_anthropic_tool_use(mg: ModelGateway) -> None:
    client = mg.anthropic()
    prompt = 'pay bob [tool:create_payment {"amount": 42.5, "to": "bob"}]'
    msg = client.messages.create(
        model="claude", max_tokens=200, messages=user(prompt), tools=ANTHROPIC_TOOLS
    )
    assert msg.stop_reason == "tool_use"
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert len(uses) == 1
    assert uses[0].name == "create_payment"
    assert uses[0].input == {"amount": 42.5, "to": "bob"}
    intent = mg.wait_records("model_intent", 1)[0]
    assert (intent["id"], intent["tool"], intent["arguments"]) == (
        uses[0].id,
        "create_payment",
        {"amount": 42.5, "to": "bob"},
    )

    # Streamed: input_json_delta pieces assembled by the SDK.
    prompt = '[tool:create_payment {"amount": 7, "to": "carol"}]'
    with client.messages.stream(
        model="claude", max_tokens=200, messages=user(prompt), tools=ANTHROPIC_TOOLS
    ) as s:
        final = s.get_final_message()
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("create_payment", {"amount": 7, "to": "carol"})]
    intents = mg.wait_records("model_intent", 2)
    assert (intents[1]["id"], intents[1]["arguments"]) == (uses[0].id, {"amount": 7, "to": "carol"})
    completed = mg.wait_records("model_completed", 2)
    assert [c["completion"]["finish_reason"] for c in completed] == ["tool_use", "tool_use"]


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------


def test_fallback_to_the_next_route_is_invisible_to_the_sdk(mg: ModelGateway) -> None:
    oa, an = mg.openai(), mg.anthropic()
    # `flaky` answers 503 to its first two requests: the backup answers both.
    resp = oa.chat.completions.create(model="flaky", messages=user("first try"))
    assert resp.choices[0].message.content == "[backup] echo: first try"
    msg = an.messages.create(model="flaky-claude", max_tokens=50, messages=user("second try"))
    assert msg.content[0].text == "[backup] echo: second try"
    # Connection refused on the first route, streaming: the backup answers.
    chunks = list(
        oa.chat.completions.create(model="resilient", messages=user("dead first"), stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "[backup] echo: dead first"
    )
    with an.messages.stream(
        model="resilient-claude", max_tokens=50, messages=user("dead too")
    ) as s:
        assert "".join(s.text_stream) == "[backup] echo: dead too"
    # `flaky` is healthy again: its own answer.
    resp = oa.chat.completions.create(model="flaky", messages=user("third try"))
    assert resp.choices[0].message.content == "[flaky] echo: third try"

    completed = mg.completions(5)
    attempts = [c["attempts"] for c in completed]
    assert attempts[0] == [{"route": 0, "status": 503}, {"route": 1, "status": 200}]
    assert attempts[1] == [{"route": 0, "status": 503}, {"route": 1, "status": 200}]
    assert attempts[2][0] == {"route": 0, "error": "connection failed"}
    assert attempts[2][1]["route"] == 1 and attempts[2][1]["status"] == 200
    assert attempts[3][0] == {"route": 0, "error": "connection failed"}
    assert attempts[3][1]["route"] == 1 and attempts[3][1]["status"] == 200
    assert attempts[4] == [{"route": 0, "status": 200}]
    assert [c["route"]["model"] for c in completed] == [
        "gpt-backup",
        "claude-backup",
        "gpt-backup",
        "claude-backup",
        "gpt-flaky",
    ]
    assert not mg.records("model_failed")


def test_every_route_rate_limited_raises_rate_limit_error(mg: ModelGateway) -> None:
    oa = mg.openai()
    with pytest.raises(openai.RateLimitError) as raised:
        oa.chat.completions.create(model="fast", messages=user("[error:429] [retry-after:7]"))
    err = raised.value
    assert err.status_code == 429
    assert err.code == "rate_limited"
    assert "rate limited" in err.message
    assert int(err.response.headers["retry-after"]) == 7
    failed = mg.wait_records("model_failed", 1)[0]
    assert failed["alias"] == "fast"
    assert failed["attempts"] == [
        {"route": 0, "status": 429, "retry_after_seconds": 7},
        {"route": 1, "status": 429, "retry_after_seconds": 7},
    ]
    # Within the Retry-After, neither provider is asked again.
    with pytest.raises(openai.RateLimitError) as raised:
        oa.chat.completions.create(model="fast", messages=user("a plain question"))
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 7
    failed = mg.wait_records("model_failed", 2)[1]
    assert [a.get("skipped") for a in failed["attempts"]] == ["rate limited (Retry-After)"] * 2

    # In Anthropic's shape on the Anthropic endpoint.
    with pytest.raises(anthropic.RateLimitError) as raised:
        mg.anthropic().messages.create(
            model="claude", max_tokens=50, messages=user("[error:429] [retry-after:3]")
        )
    assert raised.value.status_code == 429
    assert raised.value.body["error"]["type"] == "rate_limit_error"
    assert int(raised.value.response.headers["retry-after"]) == 3


def test_a_spent_token_budget_raises_rate_limit_error(
    start_model_gateway: Callable[..., ModelGateway],
) -> None:
    mg = start_model_gateway("  token_budgets:\n    - { per: session, tokens: 30 }\n")
    oa = mg.openai()
    spent = 0
    refused = None
    for i in range(20):
        try:
            resp = oa.chat.completions.create(
                model="fast", messages=user(f"spend some tokens please, call {i}")
            )
        except openai.RateLimitError as e:
            refused = e
            break
        spent += resp.usage.total_tokens
        # Tokens count once the completion is recorded.
        mg.wait_records("model_completed", i + 1)
    assert refused is not None, "the budget was never spent"
    assert spent >= 30
    assert refused.code == "budget_exceeded"
    assert "budget" in refused.message
    assert "session token budget of 30" in refused.message
    exceeded = mg.wait_records("budget_exceeded", 1)[0]
    assert (exceeded["per"], exceeded["limit"], exceeded["alias"]) == ("session", 30, "fast")
    assert exceeded["used"] >= 30
    # The refused call never reached a provider.
    assert exceeded["call"] not in {r["call"] for r in mg.records("model_requested")}
    # The same budget holds on the Anthropic endpoint.
    with pytest.raises(anthropic.RateLimitError) as raised:
        mg.anthropic().messages.create(model="claude", max_tokens=20, messages=user("more"))
    assert "budget" in raised.value.message
    # Another session has a budget of its own.
    other = mg.openai(api_key=mg.gw.open_session())
    resp = other.chat.completions.create(model="fast", messages=user("fresh session"))
    assert resp.choices[0].message.content == "[primary] echo: fresh session"


def test_a_call_right_after_the_budget_is_spent_is_refused(
    start_model_gateway: Callable[..., ModelGateway],
) -> None:
    mg = start_model_gateway("  token_budgets:\n    - { per: session, tokens: 10 }\n")
    for _ in range(10):  # a fresh session each time
        oa = mg.openai(api_key=mg.gw.open_session())
        # This call spends the budget of 10 many times over; the long text (recorded twice,
        # request and response) widens the window.
        resp = oa.chat.completions.create(model="fast", messages=user("spend " * 20000))
        assert resp.usage.total_tokens > 10
        # Sent as soon as the answer is in: the budget is spent, so it must be refused.
        with pytest.raises(openai.RateLimitError):
            oa.chat.completions.create(model="fast", messages=user("one more"))


# --------------------------------------------------------------------------------------------
# Pass-through, errors, models
# --------------------------------------------------------------------------------------------


def test_unknown_fields_pass_through_both_ways(mg: ModelGateway, providers: Providers) -> None:
    resp = mg.openai().chat.completions.create(
        model="recorded",
        messages=user("extra fields"),
        extra_body={"x_unknown": 1, "x_nested": {"a": [1, 2]}},
    )
    # The provider received the agent's unknown fields, with its own model name.
    seen = providers.recorder.seen[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.body["x_unknown"] == 1 and seen.body["x_nested"] == {"a": [1, 2]}
    assert seen.body["model"] == "gpt-recorded"
    # The provider's unknown fields reach the SDK.
    assert resp.model_extra == {"x_mock_extra": {"kept": True}}
    assert resp.to_dict()["x_mock_extra"] == {"kept": True}
    requested = mg.wait_records("model_requested", 1)[0]
    assert requested["request"]["x_unknown"] == 1
    assert requested["request"]["model"] == "recorded"

    msg = mg.anthropic().messages.create(
        model="recorded-claude",
        max_tokens=20,
        messages=user("extra fields too"),
        extra_body={"x_unknown": 2},
    )
    seen = providers.recorder.seen[-1]
    assert seen.path == "/v1/messages"
    assert (seen.body["x_unknown"], seen.body["model"]) == (2, "claude-recorded")
    assert msg.model_extra == {"x_mock_extra": {"kept": True}}
    assert mg.wait_records("model_requested", 2)[1]["request"]["x_unknown"] == 2


def test_errors_in_the_sdks_shapes(mg: ModelGateway) -> None:
    oa, an = mg.openai(), mg.anthropic()
    with pytest.raises(openai.NotFoundError) as nf:
        oa.chat.completions.create(model="gpt-nonexistent", messages=user("x"))
    assert nf.value.code == "model_not_found"
    assert "gpt-nonexistent" in nf.value.message and "fast" in nf.value.message
    with pytest.raises(anthropic.NotFoundError) as anf:
        an.messages.create(model="claude-nonexistent", max_tokens=5, messages=user("x"))
    assert anf.value.body["error"]["type"] == "not_found_error"
    assert "claude-nonexistent" in anf.value.message

    bad = "wa_" + "0" * 40
    with pytest.raises(openai.AuthenticationError):
        mg.openai(api_key=bad).chat.completions.create(model="fast", messages=user("x"))
    with pytest.raises(anthropic.AuthenticationError) as auth:
        mg.anthropic(api_key=bad).messages.create(model="claude", max_tokens=5, messages=user("x"))
    assert auth.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        mg.anthropic(api_key=bad, x_api_key=True).messages.create(
            model="claude", max_tokens=5, messages=user("x")
        )
    # An operator token is no model key either.
    with pytest.raises(openai.PermissionDeniedError):
        mg.openai(api_key=mg.gw.operator_token).models.list()

    # The provider's own 4xx passes through with its status and message.
    with pytest.raises(openai.BadRequestError) as br:
        oa.chat.completions.create(model="fast", messages=user("[error:400]"))
    assert br.value.status_code == 400
    assert br.value.message.endswith("mock error 400")
    with pytest.raises(anthropic.UnprocessableEntityError) as abr:
        an.messages.create(model="claude", max_tokens=5, messages=user("[error:422]"))
    assert abr.value.status_code == 422
    assert abr.value.body["error"]["message"] == "mock error 422"
    # Every route failing with 5xx: 502 in the caller's shape.
    with pytest.raises(openai.InternalServerError) as ise:
        oa.chat.completions.create(model="fast", messages=user("[error:503]"))
    assert ise.value.status_code == 502
    assert ise.value.code == "upstream_unavailable"
    # An alias whose routes speak the other protocol: translated there and back.
    translated = an.messages.create(model="fast", max_tokens=5, messages=user("across"))
    assert translated.type == "message"
    assert "across" in translated.content[0].text
    # A request the SDK would never send, refused in the OpenAI shape.
    r = httpx2.post(
        f"{mg.gw.agent_url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {mg.token}", "content-type": "application/json"},
        content=b"{not json",
    )
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"

    failed = mg.wait_records("model_failed", 1)
    assert [a["status"] for a in failed[0]["attempts"]] == [503, 503]


def test_provider_side_actions_and_echoed_keys_in_the_sdks_shapes(mg: ModelGateway) -> None:
    """Issue 10, points 1 and 23: a hosted tool no rule allows is refused in each SDK's error
    shape (nothing reaches a provider), and a provider key a provider echoes is redacted."""
    oa, an = mg.openai(), mg.anthropic()
    with pytest.raises(openai.PermissionDeniedError) as denied:
        oa.chat.completions.create(
            model="fast",
            messages=user("x"),
            tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],  # type: ignore[list-item]
        )
    assert denied.value.code == "provider_action_denied"
    assert "model.code_execution" in denied.value.message
    with pytest.raises(anthropic.PermissionDeniedError) as adenied:
        an.messages.create(
            model="claude",
            max_tokens=5,
            messages=user("x"),
            extra_body={"mcp_servers": [{"type": "url", "url": "https://evil.example/sse", "name": "e"}]},
        )
    assert adenied.value.body["error"]["type"] == "permission_error"
    assert "model.mcp" in adenied.value.message
    assert len(mg.wait_records("model_refused", 2)) == 2

    with pytest.raises(openai.AuthenticationError) as echoed:
        oa.chat.completions.create(model="fast", messages=user("[error:401] [echo-key]"))
    assert PROVIDER_KEY not in echoed.value.message
    assert "[REDACTED]" in echoed.value.message


def test_models_list_shows_the_charters_aliases(mg: ModelGateway) -> None:
    aliases = [
        "fast",
        "claude",
        "flaky",
        "flaky-claude",
        "resilient",
        "resilient-claude",
        "recorded",
        "recorded-claude",
    ]
    assert [m.id for m in mg.openai().models.list()] == aliases
    page = mg.anthropic().models.list()
    assert [m.id for m in page.data] == aliases
    assert page.has_more is False


# --------------------------------------------------------------------------------------------
# Capture and secrets
# --------------------------------------------------------------------------------------------


def search(gw: Gateway, phrase: str) -> list[dict[str, Any]]:
    out = run_warden("audit", "search", phrase, "--data", str(gw.data), "--json")
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def three_captured_calls(mg: ModelGateway) -> None:
    """An OpenAI call, a streamed Anthropic one and one proposing a tool call; returns once
    all three are recorded."""
    mg.openai().chat.completions.create(
        model="fast", messages=user("the periwinkle aardvark plays oboe")
    )
    with mg.anthropic().messages.stream(
        model="claude", max_tokens=50, messages=user("a saffron narwhal hums")
    ) as s:
        s.until_done()
    mg.openai().chat.completions.create(
        model="fast", messages=user('[tool:book_flight {"to": "reykjavik"}]'), tools=OPENAI_TOOLS
    )
    mg.wait_records("model_completed", 3)
    mg.wait_records("model_intent", 1)


def test_calls_are_captured_and_the_ledger_verifies(mg: ModelGateway) -> None:
    three_captured_calls(mg)
    verified = mg.gw.verify()
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ledger intact" in verified.stdout
    # The prompt is in the request and in the completion that echoes it, the streamed
    # completion and the proposed tool call in theirs.
    kinds_with = lambda text: {  # noqa: E731
        r["kind"] for r in mg.gw.records() if text in json.dumps(r["payload"])
    }
    assert kinds_with("periwinkle aardvark") == {"model_requested", "model_completed"}
    assert kinds_with("echo: a saffron narwhal") == {"model_completed"}
    assert kinds_with("calling book_flight") == {"model_completed"}
    assert "model_intent" in kinds_with("reykjavik")
    assert kinds_with("never said by anyone") == set()


@pytest.mark.skipif(
    STORE != "sqlite",
    reason="`warden audit search` reads the search index beside a data directory's ledger; "
    "it does not read the shared PostgreSQL store",
)
def test_captured_calls_are_searchable(mg: ModelGateway) -> None:
    three_captured_calls(mg)
    # A phrase of a prompt: the request, and the completion that echoes it.
    hits = search(mg.gw, "periwinkle aardvark")
    assert {h["kind"] for h in hits} == {"model_requested", "model_completed"}
    assert all("[periwinkle aardvark]" in h["snippet"] for h in hits)
    # Phrases only a completion holds (a streamed one; a proposed tool call).
    hits = search(mg.gw, "primary echo a saffron narwhal")
    assert [h["kind"] for h in hits] == ["model_completed"]
    hits = search(mg.gw, "calling book_flight")
    assert [h["kind"] for h in hits] == ["model_completed"]
    assert {h["kind"] for h in search(mg.gw, "reykjavik")} >= {"model_intent"}
    assert search(mg.gw, "never said by anyone") == []


def test_the_session_token_never_reaches_a_provider_or_the_ledger(
    mg: ModelGateway, providers: Providers
) -> None:
    mg.openai().chat.completions.create(model="recorded", messages=user("who holds the key"))
    chunks = list(
        mg.openai().chat.completions.create(
            model="recorded", messages=user("streamed key check"), stream=True
        )
    )
    assert chunks
    mg.anthropic().messages.create(
        model="recorded-claude", max_tokens=20, messages=user("and here")
    )
    mg.anthropic(x_api_key=True).messages.create(
        model="recorded-claude", max_tokens=20, messages=user("and by header")
    )
    mg.anthropic().models.list()

    seen = providers.recorder.seen
    assert [s.path for s in seen] == [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/messages",
    ]
    # The provider got warden's provider key, in its protocol's header; never the agent's.
    assert seen[0].headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert seen[1].headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    for s in seen[2:]:
        assert s.headers["x-api-key"] == PROVIDER_KEY
        assert "authorization" not in s.headers
        assert s.headers["anthropic-version"]
    for s in seen:
        text = json.dumps(s.headers) + json.dumps(s.body)
        assert mg.token not in text and "wa_" not in text, s

    mg.wait_records("model_completed", 4)
    records = mg.gw.records()
    everything = json.dumps(records)
    assert mg.token not in everything
    assert PROVIDER_KEY not in everything
    for r in records:
        if r["kind"].startswith("model_"):
            assert "wa_" not in json.dumps(r["payload"]), r


# --------------------------------------------------------------------------------------------
# Broken streams
# --------------------------------------------------------------------------------------------


#: What the SDKs raise for a body cut short (wrapped, or the transport's own error mid-stream).
BROKEN_STREAM_ERRORS = (openai.APIError, anthropic.APIError, httpx2.HTTPError)


def test_a_stream_broken_upstream_is_recorded_incomplete_without_fallback(
    mg: ModelGateway,
) -> None:
    text = ""
    try:
        for c in mg.openai().chat.completions.create(
            model="fast", messages=user("[drop-mid-stream] one two three"), stream=True
        ):
            text += (c.choices[0].delta.content or "") if c.choices else ""
    except BROKEN_STREAM_ERRORS:
        pass  # what the SDK sees (the tests below); and the record:
    completed = mg.wait_records("model_completed", 1)[0]
    assert completed["attempts"] == [
        {"route": 0, "status": 200, "stream": {"outcome": "upstream_error", "complete": False}}
    ]
    assert completed["completion"]["finish_reason"] is None
    # What was recorded is what was relayed: the first words, then nothing. The SDK may raise
    # before it yields those words (the abort can arrive in the same read), so what it yielded
    # is a prefix of the record.
    assert completed["completion"]["text"] == "[primary]"
    assert completed["completion"]["text"].startswith(text)
    # Bytes had reached the agent: no second route.
    assert completed["route"]["model"] == "gpt-primary"
    assert completed["usage"]["estimated"] is True


def test_a_stream_broken_upstream_is_an_error_for_the_openai_sdk(
    mg: ModelGateway, providers: Providers
) -> None:
    prompt = user("[drop-mid-stream] one two three")
    # Straight from the provider, the SDK raises: the connection broke mid-body.
    direct = openai.OpenAI(api_key="x", base_url=f"{providers.primary.url}/v1", max_retries=0)
    with pytest.raises(BROKEN_STREAM_ERRORS):
        list(direct.chat.completions.create(model="m", messages=prompt, stream=True))
    # Through warden it must raise too.
    with pytest.raises(BROKEN_STREAM_ERRORS):
        list(mg.openai().chat.completions.create(model="fast", messages=prompt, stream=True))


def test_a_stream_broken_upstream_is_an_error_for_the_anthropic_sdk(
    mg: ModelGateway, providers: Providers
) -> None:
    prompt = user("[drop-mid-stream] one two three")
    direct = anthropic.Anthropic(
        api_key="x",
        base_url=providers.primary.url,
        max_retries=0,
        default_headers={"x-api-key": "x"},
    )
    with pytest.raises(BROKEN_STREAM_ERRORS):
        with direct.messages.stream(model="m", max_tokens=50, messages=prompt) as s:
            s.until_done()
    with pytest.raises(BROKEN_STREAM_ERRORS):
        with mg.anthropic().messages.stream(model="claude", max_tokens=50, messages=prompt) as s:
            s.until_done()
