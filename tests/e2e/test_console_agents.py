"""The agent inventory in the operator console (`/ui/agents`), in headless Chromium driven by
Playwright, against a real `warden serve` governing two charters (the console tests' agent,
whose tools are real npm MCP servers called through the real `mcp` client, and a second agent
given with a second `--charter`): the list names both agents with their tools per tier, an
agent's page shows what its charter enforces and links to its charter and its live sessions,
an approver is refused, and no page breaks the Content-Security-Policy. The fixtures are in
console_support.py (the `console` fixture is replaced here by one with two charters).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest
from playwright.sync_api import expect

from conftest import EVERYTHING_SERVER, FS_SERVER, Gateway
from console_support import (  # noqa: F401 — fixtures
    CHARTER,
    Console,
    Tab,
    assert_secure_headers,
    browser,
    model_provider,
    new_tab,
    shot,
    sign_in,
)
from test_model_proxy import KEY_ENV, PROVIDER_KEY, MockLlm

NewTab = Callable[[], Tab]

#: The second agent: sends mail through the decide API, each send waiting for an engineer.
HELPER = """\
version: 1
identity:
  id: helper
  name: Mail helper
  purpose: Sends the team's reports.
  serves: The release team
inventory:
  servers:
    - id: mail
      tools: [send]
actions:
  default_posture: deny
  rules:
    - id: send-review
      tool: mail.send
      tier: approval
authority:
  roles:
    - { id: engineer, approve: ["send-*"] }
  principals:
    - { id: alice, name: Alice, roles: [engineer] }
    - { id: bob, name: Bob, roles: [engineer] }
"""


@pytest.fixture
def console(
    start_gateway: Callable[..., Gateway], workspace: Any, model_provider: MockLlm, tmp_path: Any
) -> Console:
    """A gateway on the console tests' charter and the helper's (`--charter` twice)."""
    text = CHARTER.substitute(
        fs_server=FS_SERVER,
        everything_server=EVERYTHING_SERVER,
        base=workspace.base,
        root=workspace.root,
        model_url=model_provider.url,
        key_env=KEY_ENV,
    )
    helper = tmp_path / "helper.yaml"
    helper.write_text(HELPER)
    gw = start_gateway("--charter", str(helper), charter=text, env={KEY_ENV: PROVIDER_KEY})
    return Console(gw=gw, model=model_provider, charter=text)


def test_the_inventory_lists_each_agent_and_links_to_its_charter_and_sessions(
    console: Console, new_tab: NewTab
) -> None:
    token = console.open_session("list the demo folder")
    is_error, _ = console.call_tool(token, "everything__echo", {"message": "hi"})
    assert not is_error
    session = console.session_id("list the demo folder")

    admin = new_tab()
    sign_in(admin, console.admin_token)
    response = admin.goto("/ui/agents")
    assert_secure_headers(response)
    expect(admin.page.locator("nav a[aria-current='page']")).to_have_text("Agents")
    rows = admin.page.locator("table.agents-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("e2e-agent")
    expect(rows.nth(1)).to_contain_text("helper")
    expect(rows.nth(1)).to_contain_text("Sends the team's reports.")
    shot(admin.page, "agents")

    # One agent: its tools by tier, its approvers, its live session, linked.
    with admin.page.expect_navigation():
        admin.page.locator("a[href='/ui/agents/e2e-agent']").click()
    expect(admin.page).to_have_url(re.compile(r"/ui/agents/e2e-agent$"))
    tools = admin.page.locator("section.agent-tools")
    expect(tools).to_contain_text("fs.write_file")
    expect(tools.locator("tr", has_text="fs.write_file")).to_contain_text("prohibited (no-writes)")
    expect(tools.locator("tr", has_text="everything.echo")).to_contain_text("autonomous (echo)")
    approvers = admin.page.locator("section.agent-approvers")
    expect(approvers).to_contain_text("shared-needs-two: alice, bob, carol (quorum 2)")
    live = admin.page.locator("section.agent-sessions a")
    expect(live).to_have_count(1)
    expect(live).to_have_text(session)
    shot(admin.page, "agent", full=True)
    with admin.page.expect_navigation():
        live.click()
    expect(admin.page).to_have_url(re.compile(rf"/ui/sessions/{session}$"))

    # Its charter page, from the agent's page.
    admin.goto("/ui/agents/helper")
    expect(admin.page.locator("section.agent-tools tr", has_text="mail.send")).to_contain_text(
        "approval (send-review)"
    )
    expect(admin.page.locator("section.agent-delegation")).to_contain_text(
        re.compile(r"delegates to\s*nobody")
    )
    with admin.page.expect_navigation():
        admin.page.locator("a", has_text="Its charter").click()
    expect(admin.page).to_have_url(re.compile(r"/ui/charter\?agent=helper$"))
    expect(admin.page.locator("body")).to_contain_text("send-review")

    # An unknown agent: a page, with the console's headers.
    response = admin.goto("/ui/agents/..%2F..%2Fetc")
    assert response is not None and response.status == 404
    assert_secure_headers(response)
    expect(admin.page.locator("main")).to_contain_text("is not an agent of this gateway")
    assert admin.watched.csp_violations() == [], admin.watched.messages
    assert admin.watched.errors == []

    # An approver, though the charters name it: refused, and no Agents link for it.
    approver = new_tab()
    sign_in(approver, console.operator_token("bob-laptop", principal="bob"))
    expect(approver.page.locator("nav a", has_text="Agents")).to_have_count(0)
    response = approver.goto("/ui/agents")
    assert response is not None and response.status == 403
    response = approver.goto("/ui/agents/helper")
    assert response is not None and response.status == 403
