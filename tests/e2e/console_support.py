"""What tests/e2e/test_console.py needs: a gateway with the console's charter and a mock model
provider, operator credentials, an agent that calls tools through the real `mcp` client and the
model proxy through the real `openai` SDK, and headless Chromium driven by Playwright.

The browser is Debian's `chromium` (`/usr/bin/chromium`, or `$WARDEN_CHROMIUM`), installed by
scripts/test.sh; Playwright for Python (requirements-test.txt) drives it and never downloads a
browser of its own. Without it the tests fail, they never pass silently.

The tests are synchronous (Playwright's sync API owns the main thread's event loop); the agent's
MCP calls run with `anyio.run` in a thread of their own, so a call can wait for an approval
while the browser decides it.

Screenshots: with `WARDEN_SCREENSHOTS=docs/console` (a folder, relative to the repository), each
`shot(page, name)` writes `<folder>/<name>.png`; without it nothing is written.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Callable, Iterator

import anyio
import openai
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from conftest import (
    EVERYTHING_SERVER,
    FS_SERVER,
    REPO,
    Gateway,
    mcp_http,
    run_warden,
    store_args,
    text_of,
)
from test_model_proxy import KEY_ENV, PROVIDER_KEY, MockLlm

#: Debian's chromium (scripts/test.sh installs it).
CHROMIUM = Path(os.environ.get("WARDEN_CHROMIUM") or "/usr/bin/chromium")
#: Where screenshots go (unset: none are taken).
SCREENSHOTS = os.environ.get("WARDEN_SCREENSHOTS") or ""
#: How long the browser waits for something to appear on a page (milliseconds).
UI_TIMEOUT_MS = 20_000
#: The viewport of every page (and so of every screenshot).
VIEWPORT = {"width": 1280, "height": 860}

#: The console tests' charter: the filesystem and everything servers, one model alias routed to
#: the mock provider, a rule one approver decides, a rule two must (quorum), and three principals
#: (alice, for whom the agent acts, may not approve her own agent's requests: separation of
#: duties). `$root` is the demo folder, `$base` its parent.
CHARTER = Template(
    """\
version: 1

identity:
  id: e2e-agent
  name: Console test agent
  purpose: Show the operator console what an agent does.
  serves: The warden test suite

inventory:
  servers:
    - id: fs
      command: [node, "$fs_server", "$base"]
      sandbox: { mode: off }
      tools: [read_text_file, list_directory, create_directory, write_file]
    - id: everything
      command: [node, "$everything_server", stdio]
      tools: [echo]
  models:
    - alias: fast
      routes:
        - { provider: openai, base_url: "$model_url/v1", model: gpt-console, api_key_env: $key_env, timeout: 10s }

actions:
  default_posture: deny
  approval: { timeout: 5m }
  rules:
    - id: read-root
      tool: [fs.read_text_file, fs.list_directory]
      tier: autonomous
      args: { path: { glob: ["$root", "$root/**"] } }
    - id: echo
      tool: everything.echo
      tier: autonomous
    - id: mkdir-needs-approval
      description: A new folder needs one engineer's approval.
      tool: fs.create_directory
      tier: approval
      args: { path: { glob: "$root/single-*" } }
    - id: shared-needs-two
      description: A shared folder needs two engineers.
      tool: fs.create_directory
      tier: approval
      approval: { quorum: 2 }
      args: { path: { glob: "$root/shared-*" } }
    - id: no-writes
      tool: fs.write_file
      tier: prohibited

authority:
  separation_of_duties: true
  roles:
    - { id: engineer, approve: [default, mkdir-needs-approval, shared-needs-two] }
  principals:
    - { id: alice, name: Alice, roles: [engineer] }
    - { id: bob, name: Bob, roles: [engineer] }
    - { id: carol, name: Carol, roles: [engineer] }

context:
  organisation: warden tests
  environment: test
"""
)


def rule_line(charter: str, rule: str) -> int:
    """The 1-based line of `- id: RULE` in the charter text (what the console shows as the
    rule's location)."""
    for n, line in enumerate(charter.splitlines(), start=1):
        if re.fullmatch(rf"\s*- id: {re.escape(rule)}\s*", line):
            return n
    raise AssertionError(f"rule {rule} not in the charter")


# --------------------------------------------------------------------------------------------
# The gateway, its credentials and the agent
# --------------------------------------------------------------------------------------------


@dataclass
class Console:
    """A gateway for the console tests, with what a test needs around it."""

    gw: Gateway
    model: MockLlm
    charter: str
    #: Session tokens of the sessions the agent opened, by task.
    sessions: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The console's address (the operator plane's `/ui`)."""
        return f"{self.gw.operator_url}/ui"

    @property
    def admin_token(self) -> str:
        """The first operator token (an admin), from the data directory."""
        return self.gw.operator_token

    def operator_token(self, name: str, principal: str | None = None, observer: bool = False) -> str:
        """A new operator credential, made offline with access to the data directory: an
        approver acting as `principal`, the observer's, or else an admin's."""
        args = ["operator", "create-token", "--name", name, "--data", str(self.gw.data)]
        args += store_args(self.gw.data)
        if principal:
            args += ["--principal", principal]
        if observer:
            args += ["--observer"]
        r = run_warden(*args)
        assert r.returncode == 0, r.stderr
        token = r.stdout.strip()
        assert token.startswith("wo_"), token
        return token

    def open_session(self, task: str, user: str = "alice") -> str:
        """An agent session acting for `user` on `task`; its token."""
        token = self.gw.open_session(user=user, task=task)
        self.sessions[task] = token
        return token

    def session_id(self, task: str) -> str:
        """The id of the session opened for `task` (from its `session_opened` record)."""
        ids = [
            r["session"]
            for r in self.records("session_opened")
            if r["payload"].get("task") == task
        ]
        assert len(ids) == 1, f"sessions opened for {task!r}: {ids}"
        return ids[0]

    # -- the agent --------------------------------------------------------------------------

    def call_tool(self, token: str, tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
        """One MCP `tools/call` through the real `mcp` client, to its end; (is_error, text)."""
        return self.call_tool_in_thread(token, tool, arguments).result()

    def call_tool_in_thread(
        self, token: str, tool: str, arguments: dict[str, Any]
    ) -> "Waiting":
        """Starts an MCP call in a thread of its own (Playwright's loop owns this one; the call
        may wait for an approval); `Waiting.result()` joins it."""
        waiting = Waiting()

        async def call() -> tuple[bool, str]:
            async with mcp_http(self.gw.mcp_url, token) as session:
                r = await session.call_tool(tool, arguments)
                return bool(r.is_error), text_of(r)

        def run() -> None:
            try:
                waiting.value = anyio.run(call)
            except BaseException as e:  # noqa: BLE001 — handed to the test
                waiting.error = e

        waiting.thread = threading.Thread(target=run, daemon=True)
        waiting.thread.start()
        return waiting

    def openai(self, token: str) -> openai.OpenAI:
        """The OpenAI SDK on the model proxy, with the session token as its key."""
        return openai.OpenAI(
            api_key=token, base_url=f"{self.gw.agent_url}/v1", max_retries=0, timeout=30
        )

    def model_turn(self, token: str, prompt: str) -> Any:
        """One chat completion through the model proxy (the mock obeys `[tool:NAME {json}]`
        directives in `prompt`: the model proposes that tool call)."""
        return self.openai(token).chat.completions.create(
            model="fast",
            messages=[{"role": "user", "content": prompt}],
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "read_text_file",
                        "description": "Read a text file.",
                        "parameters": {
                            "type": "object",
                            "properties": {"path": {"type": "string"}},
                        },
                    },
                }
            ],
        )

    # -- the ledger -------------------------------------------------------------------------

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.gw.records() if kind is None or r["kind"] == kind]

    def set_control(self, *args: str) -> str:
        """`warden control set ARGS` as the admin; the control's id."""
        r = run_warden(
            "control", "set", *args,
            "--operator-url", self.gw.operator_url, "--token", self.admin_token,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().split()[-1]

    def controls(self, all_: bool = False) -> list[dict[str, Any]]:
        args = ["control", "list", "--json"] + (["--all"] if all_ else [])
        r = run_warden(*args, "--operator-url", self.gw.operator_url, "--token", self.admin_token)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["controls"]


@dataclass
class Waiting:
    """An MCP call running in a thread."""

    thread: threading.Thread | None = None
    value: tuple[bool, str] | None = None
    error: BaseException | None = None

    def result(self, timeout: float = 60) -> tuple[bool, str]:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the MCP call did not complete within {timeout}s"
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value

    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()


@pytest.fixture
def model_provider() -> Iterator[MockLlm]:
    mock = MockLlm.start("console")
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def console(start_gateway: Callable[..., Gateway], workspace: Any, model_provider: MockLlm) -> Console:
    """A gateway on the console tests' charter, with the mock model provider."""
    text = CHARTER.substitute(
        fs_server=FS_SERVER,
        everything_server=EVERYTHING_SERVER,
        base=workspace.base,
        root=workspace.root,
        model_url=model_provider.url,
        key_env=KEY_ENV,
    )
    gw = start_gateway(charter=text, env={KEY_ENV: PROVIDER_KEY})
    return Console(gw=gw, model=model_provider, charter=text)


# --------------------------------------------------------------------------------------------
# The browser
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian chromium, one per test module (started once: about a second)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console's browser tests need Debian's chromium "
            "(scripts/test.sh installs it; or set WARDEN_CHROMIUM)"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield b
        finally:
            b.close()


@dataclass
class Watched:
    """What a page said on its console and what went wrong on it."""

    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def csp_violations(self) -> list[str]:
        return [
            m
            for m in self.messages + self.errors
            if "Content Security Policy" in m or "Content-Security-Policy" in m
        ]


@dataclass
class Tab:
    """A browser page on the console, with what it logged."""

    page: Page
    context: BrowserContext
    watched: Watched
    base: str

    def goto(self, path: str) -> Any:
        return self.page.goto(f"{self.base}{path}")


@pytest.fixture
def new_tab(browser: Browser, console: Console) -> Iterator[Callable[[], Tab]]:
    """Opens pages in fresh browser contexts (no cookies shared): one per operator."""
    opened: list[BrowserContext] = []

    def open_tab() -> Tab:
        context = browser.new_context(viewport=VIEWPORT, base_url=console.gw.operator_url)
        context.set_default_timeout(UI_TIMEOUT_MS)
        opened.append(context)
        page = context.new_page()
        watched = Watched()

        def on_console(msg: ConsoleMessage) -> None:
            watched.messages.append(f"{msg.type}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda e: watched.errors.append(str(e)))
        return Tab(page=page, context=context, watched=watched, base=console.gw.operator_url)

    yield open_tab
    for c in opened:
        c.close()


def shot(page: Page, name: str, full: bool = False) -> None:
    """A screenshot of the page (the viewport, or the whole page with `full`) to
    `$WARDEN_SCREENSHOTS/NAME.png` when that is set."""
    if not SCREENSHOTS:
        return
    folder = Path(SCREENSHOTS)
    if not folder.is_absolute():
        folder = REPO / folder
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full)


# --------------------------------------------------------------------------------------------
# Signing in, and what every page must carry
# --------------------------------------------------------------------------------------------

#: The headers every console response carries (crates/warden-console/src/headers.rs).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def assert_secure_headers(response: Any) -> None:
    """The console's security headers on a Playwright response."""
    assert response is not None
    h = response.headers
    assert h.get("content-security-policy") == CSP, h
    assert h.get("x-frame-options") == "DENY", h
    assert h.get("cache-control") == "no-store", h
    assert h.get("x-content-type-options") == "nosniff", h
    assert h.get("referrer-policy") == "same-origin", h


def sign_in(tab: Tab, token: str) -> Any:
    """Signs in on `/ui/login` with `token`; the response of the page it lands on."""
    assert_secure_headers(tab.goto("/ui/login"))
    tab.page.fill("input[name='token']", token)
    with tab.page.expect_navigation() as nav:
        tab.page.locator("form[action='/ui/login'] [type='submit']").click()
    return nav.value
