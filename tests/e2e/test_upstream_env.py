"""Issue 10, point 9: a stdio server does not inherit the gateway's environment. The real
everything server's `get-env` tool prints its whole environment; called through warden, it
shows the passed-through variables and the charter's `env`, and none of the provider keys (or
anything else) that the gateway was started with; the token the charter passes on is redacted
from what comes back."""

from __future__ import annotations

import json
import os
from typing import Callable

import pytest

from conftest import EVERYTHING_SERVER, Gateway, mcp_http, text_of

pytestmark = pytest.mark.anyio

SECRETS = {
    "OPENAI_API_KEY": "sk-e2e-openai-do-not-leak",
    "ANTHROPIC_API_KEY": "sk-ant-e2e-do-not-leak",
    # The charter's route reads its key from here.
    "E2E_PROVIDER_KEY": "sk-e2e-route-key-do-not-leak",
    "E2E_UNRELATED": "unrelated-do-not-leak",
}
TOOL_TOKEN = "tool-token-for-the-server"

CHARTER = f"""\
version: 1
identity:
  id: e2e-agent
  name: End-to-end test agent
  purpose: Show what environment a stdio server gets.
  serves: The warden test suite
inventory:
  servers:
    - id: everything
      command: [node, "{EVERYTHING_SERVER}", stdio]
      env: {{ FROM_CHARTER: literal-value, FROM_GATEWAY: "${{E2E_TOOL_TOKEN}}" }}
      tools: [get-env]
  models:
    - alias: fast
      routes:
        - {{ provider: openai, base_url: "http://127.0.0.1:9/v1", model: m, api_key_env: E2E_PROVIDER_KEY }}
actions:
  default_posture: deny
  rules:
    - {{ id: env, tool: everything.get-env, tier: autonomous }}
authority:
  roles:
    - {{ id: engineer, approve: [default] }}
  principals:
    - {{ id: alice, name: Alice, roles: [engineer] }}
"""


async def test_a_stdio_server_gets_no_provider_key(
    start_gateway: Callable[..., Gateway],
) -> None:
    gw = start_gateway(charter=CHARTER, env={**SECRETS, "E2E_TOOL_TOKEN": TOOL_TOKEN})
    token = gw.open_session()
    async with mcp_http(gw.mcp_url, token) as session:
        r = await session.call_tool("everything.get-env", {})
    assert not r.is_error, text_of(r)
    text = text_of(r)
    for name, secret in SECRETS.items():
        assert secret not in text, f"{name} reached the tool server"
    seen = json.loads(text)
    allowed = {"PATH", "HOME", "LANG", "TMPDIR", "FROM_CHARTER", "FROM_GATEWAY"}
    assert set(seen) <= allowed, sorted(set(seen) - allowed)
    assert seen["FROM_CHARTER"] == "literal-value"
    # The server got the token (its answer held exactly that value), and the gateway replaced
    # it before the agent or the ledger saw it: a credential given to a tool server is one of
    # the secrets warden redacts from everything it relays and records (issue 10, point 23).
    assert seen["FROM_GATEWAY"] == "[REDACTED]"
    assert TOOL_TOKEN not in text
    assert not any(TOOL_TOKEN in json.dumps(r) for r in gw.records()), "the token is in the ledger"
    assert seen["PATH"] == os.environ["PATH"]
