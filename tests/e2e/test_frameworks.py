"""The agent frameworks end to end: the examples under `examples/` run as they are, with the
real framework packages, against a real `warden serve` with the example's own charter.

- `examples/openai-agents/agent.py`: the OpenAI Agents SDK (`openai-agents`), its tools from
  warden's MCP endpoint (`MCPServerStreamableHttp`), its model through warden's model proxy
  (`OpenAIChatCompletionsModel`); run with this interpreter (.venv, requirements-test.txt).
- `examples/langgraph/agent.py`: LangGraph's prebuilt ReAct agent with `langchain-mcp-adapters`
  and `langchain-openai`; run with the interpreter of .venv-langgraph
  (examples/langgraph/requirements.txt; `langchain-mcp-adapters` needs the MCP SDK 1.x, this
  venv has 2.x), or `$WARDEN_LANGGRAPH_PYTHON`.

The model is the scripted mock provider (`warden-mock-llm`; the charter's `mock` alias, whose
route the test points at the mock it started): the prompt carries `[tool:NAME {json}]`, so the
first turn proposes that tool call; the framework makes the call through warden; the second
turn's last message is the tool's result, which the mock echoes as the final answer.

Tool names: the test calls the tool by the name warden lists in `tools/list` — `server__tool`
once the names are made valid function names (issue 11, point 4), `server.tool` before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import anyio
import pytest
from conftest import REPO, Gateway, actions_by_id, mcp_http, wait_for
from test_model_proxy import MockLlm

EXAMPLES = REPO / "examples"
#: The mock provider's address in the examples' charters (`warden-mock-llm --listen
#: 127.0.0.1:8790`, as their READMEs run it); the test puts its own mock's address there.
MOCK_URL_IN_CHARTERS = "http://127.0.0.1:8790"
#: The tool every scenario calls, as the charters name it.
SUM_TOOL = "everything.get-sum"
#: How long an agent may take for its whole run.
AGENT_TIMEOUT = 90


def _langgraph_python() -> Path:
    configured = os.environ.get("WARDEN_LANGGRAPH_PYTHON")
    return Path(configured) if configured else REPO / ".venv-langgraph/bin/python"


@dataclass(frozen=True)
class Framework:
    #: The example's directory under `examples/`.
    name: str
    #: The example charter's `identity.id`.
    agent: str
    #: The interpreter that has the framework installed.
    python: Path

    @property
    def script(self) -> Path:
        return EXAMPLES / self.name / "agent.py"

    @property
    def charter(self) -> Path:
        return EXAMPLES / self.name / "charter.yaml"


FRAMEWORKS = [
    Framework("openai-agents", "agents-sdk-demo", Path(sys.executable)),
    Framework("langgraph", "langgraph-demo", _langgraph_python()),
]


@pytest.fixture(params=FRAMEWORKS, ids=[f.name for f in FRAMEWORKS])
def framework(request: pytest.FixtureRequest) -> Framework:
    fw: Framework = request.param
    if not fw.python.exists():
        pytest.fail(
            f"{fw.python} does not exist: run scripts/test.sh, which creates .venv-langgraph "
            "from examples/langgraph/requirements.txt (or set WARDEN_LANGGRAPH_PYTHON)"
        )
    return fw


@pytest.fixture
def mock_llm() -> Iterator[MockLlm]:
    mock = MockLlm.start("")
    try:
        yield mock
    finally:
        mock.stop()


@dataclass
class Example:
    """A gateway serving an example's charter, and a session on it for the example's agent."""

    fw: Framework
    gw: Gateway
    token: str

    def listed_tools(self) -> list[str]:
        """The tool names warden lists for the session (what the framework sees)."""

        async def names() -> list[str]:
            async with mcp_http(self.gw.mcp_url, self.token) as session:
                return [t.name for t in (await session.list_tools()).tools]

        return anyio.run(names)

    def sum_tool(self) -> str:
        """The listed name of `everything.get-sum` (either form, see the module's docs)."""
        listed = self.listed_tools()
        found = [n for n in listed if n in (SUM_TOOL, SUM_TOOL.replace(".", "__"))]
        assert len(found) == 1, f"{SUM_TOOL} is not listed once: {listed}"
        return found[0]

    def run(self, prompt: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """Runs the example's agent script, as its README does, against this gateway."""
        # Nothing of the caller's that would send the framework elsewhere (a provider key, a
        # base URL, tracing to a hosted service).
        drop = ("WARDEN_", "OPENAI_", "LANGSMITH_", "LANGCHAIN_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            WARDEN_AGENT_URL=self.gw.agent_url,
            WARDEN_TOKEN=token if token is not None else self.token,
            WARDEN_MODEL="mock",
            PYTHONDONTWRITEBYTECODE="1",
        )
        return subprocess.run(
            [str(self.fw.python), str(self.fw.script), prompt],
            capture_output=True,
            text=True,
            timeout=AGENT_TIMEOUT,
            cwd=REPO,
            env=env,
        )


@pytest.fixture
def example(
    framework: Framework, mock_llm: MockLlm, start_gateway: Callable[..., Gateway]
) -> Example:
    charter = framework.charter.read_text()
    assert charter.count(MOCK_URL_IN_CHARTERS) == 1, "the mock alias's route is in the charter"
    gw = start_gateway(charter=charter.replace(MOCK_URL_IN_CHARTERS, mock_llm.url))
    return Example(fw=framework, gw=gw, token=gw.open_session(agent=framework.agent))


def by_kind(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == kind]


def _two_turns(gw: Gateway) -> list[dict[str, Any]] | None:
    records = gw.records()
    return records if len(by_kind(records, "model_completed")) >= 2 else None


def assert_one_governed_session(
    ex: Example, listed: str, arguments: dict[str, Any], allowed: bool
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The ledger tells the run's story in one session: a model turn whose tool call is an
    intent, the action that carried it out (attempted, decided, and — when allowed — forwarded
    with a result), and a second model turn that got the tool's answer back. Returns the second
    turn's `model_requested` record and the action's records by kind."""
    records = wait_for("the agent's two model turns", lambda: _two_turns(ex.gw))
    opened = by_kind(records, "session_opened")
    assert len(opened) == 1, opened
    session = opened[0]["session"]
    assert session and opened[0]["payload"]["agent"] == ex.fw.agent, opened[0]

    requested = by_kind(records, "model_requested")
    completed = by_kind(records, "model_completed")
    assert len(requested) == 2 and len(completed) == 2, [r["kind"] for r in records]
    first, second = requested
    # The model was offered warden's tools, by the names warden lists.
    offered = [t["function"]["name"] for t in first["payload"]["request"].get("tools", [])]
    assert listed in offered, offered
    assert all(r["payload"]["alias"] == "mock" for r in requested)

    intents = by_kind(records, "model_intent")
    assert len(intents) == 1, intents
    intent = intents[0]
    assert intent["payload"]["call"] == first["payload"]["call"]
    assert (intent["payload"]["tool"], intent["payload"]["arguments"]) == (listed, arguments)
    turn_of = {c["payload"]["call"]: c["payload"] for c in completed}
    assert turn_of[first["payload"]["call"]]["intents"] == 1
    assert turn_of[second["payload"]["call"]]["intents"] == 0

    # The action: recorded under the charter's name (or the listed one), with the arguments
    # the model proposed.
    attempts = [
        r
        for r in by_kind(records, "action_attempted")
        if r["payload"]["tool"] in (SUM_TOOL, listed)
    ]
    assert len(attempts) == 1, attempts
    attempt = attempts[0]
    assert attempt["payload"]["arguments"] == arguments
    action = actions_by_id(records)[attempt["payload"]["action"]]
    assert len(action.get("action_decided", [])) == 1, action.keys()
    verdict = action["action_decided"][0]["payload"]["decision"]["verdict"]
    if allowed:
        assert verdict == "allow", action["action_decided"][0]
        assert len(action.get("action_forwarded", [])) == 1, action.keys()
        assert len(action.get("action_result", [])) == 1, action.keys()
    else:
        assert verdict == "deny", action["action_decided"][0]
        assert "action_forwarded" not in action and "action_result" not in action, action.keys()

    # One session: the turns, the intent and the action.
    story = [*requested, *completed, intent, *(r for rs in action.values() for r in rs)]
    assert {r["session"] for r in story} == {session}, [(r["kind"], r["session"]) for r in story]
    # In order: the proposal, then the action, then the turn that reads its answer.
    assert intent["seq"] < attempt["seq"] < second["seq"]
    last = max(r["seq"] for rs in action.values() for r in rs)
    assert last < second["seq"], "the action was over before the second turn was asked"
    # Secrets: the session token is in no record.
    assert ex.token not in json.dumps(records)
    return second, action


def test_the_agent_turn_intent_and_action_are_one_session(example: Example) -> None:
    tool = example.sum_tool()
    arguments = {"a": 1234, "b": 5678}
    run = example.run(f"What is 1234 plus 5678? [tool:{tool} {json.dumps(arguments)}]")
    assert run.returncode == 0, f"{example.fw.script} failed:\n{run.stdout}\n{run.stderr}"
    # The tool's answer went back to the model, which (the mock) echoes it as the final answer.
    assert "6912" in run.stdout, run.stdout + run.stderr
    assert tool in run.stderr  # the script shows the tools warden listed

    second, action = assert_one_governed_session(example, tool, arguments, allowed=True)
    result = action["action_result"][0]["payload"]
    assert "6912" in json.dumps(result)
    # The tool's result is what the second turn gave the model.
    tail = json.dumps(second["payload"]["request"]["messages"][-1])
    assert "6912" in tail and "tool" in tail


def test_a_refused_action_reaches_the_model_as_the_tool_result(example: Example) -> None:
    """Outside the charter's envelope (a million at most): warden refuses the call, the
    framework hands the refusal to the model as the tool's result, and the run goes on."""
    tool = example.sum_tool()
    arguments = {"a": 5000000, "b": 1}
    run = example.run(f"What is 5000000 plus 1? [tool:{tool} {json.dumps(arguments)}]")
    assert run.returncode == 0, f"{example.fw.script} failed:\n{run.stdout}\n{run.stderr}"
    assert "warden refused" in run.stdout, run.stdout + run.stderr
    assert "5000001" not in run.stdout

    second, _ = assert_one_governed_session(example, tool, arguments, allowed=False)
    assert "warden refused" in json.dumps(second["payload"]["request"]["messages"][-1])


def test_a_forged_session_token_is_refused_before_anything_runs(example: Example) -> None:
    forged = "wa_" + "0" * 40
    run = example.run("[tool:everything__get-sum {}]", token=forged)
    assert run.returncode == 1, run.stdout + run.stderr
    # One line saying why (the Agents SDK's MCP client reads warden's JSON-RPC error, the
    # adapter's its HTTP status), not a traceback.
    error = run.stderr.strip().splitlines()
    assert any(
        line.startswith("error: ") and ("invalid session token" in line or "401" in line)
        for line in error
    ), run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert "6912" not in run.stdout
    assert forged not in run.stdout
    records = example.gw.records()
    kinds = {r["kind"] for r in records}
    assert not kinds & {"model_requested", "model_intent", "action_attempted"}, kinds
    assert forged not in json.dumps(records)

