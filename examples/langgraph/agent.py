"""A LangGraph ReAct agent governed by warden.

Its tools come from warden's MCP endpoint (`langchain-mcp-adapters`' `MultiServerMCPClient`,
the session token as a bearer header) and its model calls go through warden's model proxy
(`langchain-openai`'s `ChatOpenAI` with warden's agent plane `/v1` as its base URL and the
session token as its API key), so every model turn, every tool call the model proposes and
every tool call the agent makes is decided and recorded by warden, in one session.

    python examples/langgraph/agent.py ["PROMPT"]

Environment:
    WARDEN_TOKEN      the session token (`warden session open --agent langgraph-demo --user alice`)
    WARDEN_AGENT_URL  warden's agent plane (default http://127.0.0.1:8700)
    WARDEN_MODEL      the charter's model alias (default `agent`; `mock` for the mock provider)

It prints the tools warden lists for the session on stderr and the agent's final answer on
stdout; it exits 1 with a one-line error when warden or the provider refuses, 2 when it is
misconfigured.
"""

from __future__ import annotations

import asyncio
import os
import sys

from langchain_core.messages import HumanMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_openai import ChatOpenAI
from langgraph.prebuilt import create_react_agent
from openai import APIError

DEFAULT_PROMPT = "What is 1234 plus 5678? Use the sum tool, then answer in one sentence."

#: How long one tool call may take before the client gives up on it. A call that needs a
#: human's approval waits in warden until the approval is decided or its deadline passes: keep
#: this above the charter's approval timeout so the agent gets warden's answer, not a timeout.
TOOL_TIMEOUT_SECONDS = 300.0


def settings() -> tuple[str, str, str]:
    token = os.environ.get("WARDEN_TOKEN", "").strip()
    if not token:
        print(
            "error: set WARDEN_TOKEN to a session token "
            "(warden session open --agent langgraph-demo --user alice)",
            file=sys.stderr,
        )
        sys.exit(2)
    url = os.environ.get("WARDEN_AGENT_URL", "http://127.0.0.1:8700").strip().rstrip("/")
    model = os.environ.get("WARDEN_MODEL", "agent").strip()
    return url, token, model


async def run(prompt: str) -> str:
    url, token, model = settings()
    mcp = MultiServerMCPClient(
        {
            "warden": {
                "transport": "streamable_http",
                "url": f"{url}/mcp",
                "headers": {"Authorization": f"Bearer {token}"},
                "timeout": 30,
                "sse_read_timeout": TOOL_TIMEOUT_SECONDS,
            }
        }
    )
    tools = await mcp.get_tools()
    print("tools:", ", ".join(t.name for t in tools), file=sys.stderr)
    llm = ChatOpenAI(model=model, base_url=f"{url}/v1", api_key=token, timeout=120)
    agent = create_react_agent(
        llm,
        tools,
        prompt=(
            "You answer with the tools you have. When a tool result says warden refused the "
            "call, say so and do not try to get around it."
        ),
    )
    state = await agent.ainvoke(
        {"messages": [HumanMessage(prompt)]}, config={"recursion_limit": 12}
    )
    return str(state["messages"][-1].content)


def innermost(e: BaseException) -> BaseException:
    """The first leaf of an exception group (the MCP client's task groups wrap its errors)."""
    while getattr(e, "exceptions", None):
        e = e.exceptions[0]  # type: ignore[attr-defined]
    return e


def main() -> None:
    prompt = " ".join(sys.argv[1:]) or DEFAULT_PROMPT
    try:
        answer = asyncio.run(run(prompt))
    except APIError as e:
        # warden's refusals (a spent budget, a frozen posture, a revoked session…) and the
        # provider's errors come back in OpenAI's error shape.
        sys.exit(f"error: the model call failed: {e}")
    except Exception as e:
        # The MCP endpoint: warden refused the session token, or is not there.
        cause = innermost(e)
        sys.exit(f"error: {type(cause).__name__}: {cause}")
    print(answer)


if __name__ == "__main__":
    main()
