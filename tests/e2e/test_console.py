"""The operator console (`/ui`) in headless Chromium, driven by Playwright for Python, against a
real `warden serve` whose agent is the real `mcp` client and the real `openai` SDK (through the
model proxy, on the mock model provider). The fixtures are in console_support.py.

What each test shows, as issue 14 lists it: sign-in (and what is refused there: an agent token,
an observer credential); a session appears live on the overview and the sessions list, with no
reload; its timeline shows the model turn, the tool call the model proposed, the attempt and the
decision with the rule's location; an approval requested by a waiting MCP call is approved in
the inbox and the call completes; a quorum rule needs a second approver; an admin lifts a
control; a forged CSRF token is refused; the CSP header is on every page and no injected script
runs.

Run with `WARDEN_SCREENSHOTS=docs/console` to refresh the screenshots docs/console.md shows.
"""

from __future__ import annotations

import re
from typing import Callable

import pytest
from playwright.sync_api import expect

from console_support import (  # noqa: F401 — fixtures
    Console,
    Tab,
    assert_secure_headers,
    browser,
    console,
    model_provider,
    new_tab,
    rule_line,
    shot,
    sign_in,
)
from conftest import STORE, wait_for

NewTab = Callable[[], Tab]


def mark_page(tab: Tab) -> None:
    """Marks the page's window: a reload or a navigation loses the mark."""
    tab.page.evaluate("window.__loadedOnce = 'yes'")


def assert_not_reloaded(tab: Tab) -> None:
    assert tab.page.evaluate("window.__loadedOnce") == "yes", "the page was reloaded"


# --------------------------------------------------------------------------------------------
# Sign-in
# --------------------------------------------------------------------------------------------


def test_sign_in_lands_each_role_on_its_page_and_sign_out_ends_the_session(
    console: Console, new_tab: NewTab
) -> None:
    admin = new_tab()
    # Not signed in: a page leads to the sign-in form.
    admin.goto("/ui/approvals")
    expect(admin.page).to_have_url(re.compile(r"/ui/login"))
    shot(admin.page, "sign-in")
    landed = sign_in(admin, console.admin_token)
    assert_secure_headers(landed)
    expect(admin.page).to_have_url(re.compile(r"/ui/?$"))
    expect(admin.page.locator("header")).to_contain_text("admin")
    cookies = {c["name"]: c for c in admin.context.cookies()}
    cookie = cookies.get("warden_console")
    assert cookie is not None, cookies
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie
    assert cookie["expires"] > 0, "the cookie has an expiry"

    # An approver lands on its inbox and sees no admin tab.
    bob = new_tab()
    sign_in(bob, console.operator_token("bob-console", principal="bob"))
    expect(bob.page).to_have_url(re.compile(r"/ui/approvals"))
    expect(bob.page.locator("header nav")).not_to_contain_text("Sessions")

    # Signing out ends the console session: the same cookie, replayed, is refused.
    admin.page.locator("form.signout [type='submit']").click()
    expect(admin.page).to_have_url(re.compile(r"/ui/login"))
    replay = new_tab()
    replay.context.add_cookies(
        [{"name": "warden_console", "value": cookie["value"], "url": console.gw.operator_url + "/ui"}]
    )
    replay.goto("/ui/sessions")
    expect(replay.page).to_have_url(re.compile(r"/ui/login"))
    kinds = [r["kind"] for r in console.records()]
    assert kinds.count("console_signed_in") == 2 and kinds.count("console_signed_out") == 1, kinds


def test_an_agent_token_and_an_observer_credential_are_refused_at_sign_in(
    console: Console, new_tab: NewTab
) -> None:
    tab = new_tab()
    agent_token = console.open_session("refused at the console")
    response = sign_in(tab, agent_token)
    assert response.status in (401, 403), response.status
    expect(tab.page.locator("main")).to_contain_text(re.compile("agent", re.I))
    assert not any(c["name"] == "warden_console" for c in tab.context.cookies())

    response = sign_in(tab, console.operator_token("watcher", observer=True))
    assert response.status in (401, 403), response.status
    expect(tab.page.locator("main")).to_contain_text(re.compile("observer", re.I))
    assert not any(c["name"] == "warden_console" for c in tab.context.cookies())
    assert not console.records("console_signed_in")


def test_a_forged_csrf_token_is_refused_and_changes_nothing(
    console: Console, new_tab: NewTab
) -> None:
    token = console.open_session("a folder nobody approved")
    target = console.gw.ws.root / "single-forged"
    waiting = console.call_tool_in_thread(token, "fs.create_directory", {"path": str(target)})
    (request,) = wait_for("the approval request", lambda: console.records("approval_requested"))
    approval = request["payload"]["id"]

    bob = new_tab()
    sign_in(bob, console.operator_token("bob-console", principal="bob"))
    bob.goto(f"/ui/approvals/{approval}")
    # The form's hidden token, replaced as a page of another site would have to guess it.
    bob.page.locator("form input[name='csrf']").evaluate_all(
        "inputs => inputs.forEach(e => e.value = 'forged-' + e.value.slice(7))"
    )
    bob.page.locator("[name='reason']").fill("a forged approval")
    with bob.page.expect_navigation() as nav:
        bob.page.locator("button[name='choice'][value='approve']").click()
    assert nav.value.status == 403, nav.value.status
    assert_secure_headers(nav.value)
    expect(bob.page.locator("main")).to_contain_text(re.compile("CSRF", re.I))
    # Nothing changed: no vote, the call still waits, nothing was created.
    assert not console.records("approval_granted")
    assert not waiting.done() and not target.exists()

    # The same form with its own token goes through.
    bob.goto(f"/ui/approvals/{approval}")
    decide(bob, "deny", "not this one")
    is_error, text = waiting.result()
    assert is_error and not target.exists(), text


# --------------------------------------------------------------------------------------------
# Live views and the timeline
# --------------------------------------------------------------------------------------------


def test_a_session_appears_live_and_its_timeline_shows_the_decision_trace(
    console: Console, new_tab: NewTab
) -> None:
    overview, sessions = new_tab(), new_tab()
    sign_in(overview, console.admin_token)
    sign_in(sessions, console.admin_token)
    mark_page(overview)

    # The agent: a session, a model turn proposing a read, then the read through MCP.
    task = "summarise the demo folder"
    token = console.open_session(task)
    session = console.session_id(task)
    readme = str(console.gw.ws.root / "README.md")
    turn = console.model_turn(token, f'read it [tool:read_text_file {{"path": "{readme}"}}]')
    assert turn.choices[0].message.tool_calls, turn
    is_error, text = console.call_tool(token, "fs.read_text_file", {"path": readme})
    assert not is_error and "Demo folder" in text, text

    # The overview, open all along, shows the session without a reload (its live part).
    expect(overview.page.locator("main")).to_contain_text(session)
    assert_not_reloaded(overview)
    shot(overview.page, "overview")
    # The sessions list has it too.
    sessions.goto("/ui/sessions")
    expect(sessions.page.locator("main")).to_contain_text(session)
    shot(sessions.page, "sessions")

    # Its timeline: the model turn, the intent, the attempt and the decision with its rule.
    sessions.page.locator(f"a[href='/ui/sessions/{session}']").first.click()
    expect(sessions.page).to_have_url(re.compile(f"/ui/sessions/{session}"))
    main = sessions.page.locator("main")
    expect(main).to_contain_text("read it")  # the prompt
    expect(main).to_contain_text("read_text_file")  # the tool call the model proposed
    expect(main).to_contain_text("fs.read_text_file")  # the attempt
    expect(main).to_contain_text("allow")
    expect(main).to_contain_text("autonomous")
    expect(main).to_contain_text("read-root")
    expect(main).to_contain_text(f"charter.yaml:{rule_line(console.charter, 'read-root')}")
    # The attempt links the intent it came from.
    intent = console.records("model_intent")[0]
    expect(sessions.page.locator(f"a[href='#seq-{intent['seq']}']").first).to_be_visible()
    attempt = console.records("action_attempted")[-1]
    expect(sessions.page.locator(f"#seq-{attempt['seq']}")).to_be_visible()
    shot(sessions.page, "timeline", full=True)

    # A new call appends to the open timeline, live.
    mark_page(sessions)
    console.call_tool(token, "everything.echo", {"message": "appended while watching"})
    expect(main).to_contain_text("appended while watching")
    assert_not_reloaded(sessions)


# --------------------------------------------------------------------------------------------
# Approvals
# --------------------------------------------------------------------------------------------


def decide(tab: Tab, choice: str, reason: str) -> None:
    """Fills the reason on an approval's page and presses approve or deny."""
    tab.page.locator("[name='reason']").fill(reason)
    with tab.page.expect_navigation():
        tab.page.locator(f"button[name='choice'][value='{choice}']").click()


def test_a_waiting_mcp_call_is_approved_in_the_inbox_and_completes(
    console: Console, new_tab: NewTab
) -> None:
    bob = new_tab()
    sign_in(bob, console.operator_token("bob-console", principal="bob"))
    expect(bob.page).to_have_url(re.compile(r"/ui/approvals"))
    mark_page(bob)

    token = console.open_session("make a folder")
    target = console.gw.ws.root / "single-approved"
    # The model turn that leads to the call: the approver sees it.
    console.model_turn(
        token, f'make the folder [tool:create_directory {{"path": "{target}"}}]'
    )
    waiting = console.call_tool_in_thread(token, "fs.create_directory", {"path": str(target)})

    # The request appears in bob's inbox without a reload.
    row = bob.page.locator("main").get_by_text("fs.create_directory").first
    expect(row).to_be_visible()
    assert_not_reloaded(bob)
    shot(bob.page, "approvals-inbox")
    (request,) = console.records("approval_requested")
    approval = request["payload"]["id"]
    bob.page.locator(f"a[href='/ui/approvals/{approval}']").first.click()
    main = bob.page.locator("main")
    for shown in ("alice", "make a folder", "fs.create_directory", str(target),
                  "mkdir-needs-approval", "make the folder",
                  f"charter.yaml:{rule_line(console.charter, 'mkdir-needs-approval')}"):
        expect(main).to_contain_text(shown)
    shot(bob.page, "approval-detail", full=True)
    assert not waiting.done() and not target.exists(), "nothing runs before approval"

    decide(bob, "approve", "the folder is needed")
    is_error, text = waiting.result()
    assert not is_error, text
    assert target.is_dir()
    (granted,) = console.records("approval_granted")
    assert granted["payload"]["approver"] == "bob"
    assert granted["payload"]["reason"] == "the folder is needed"
    assert granted["payload"].get("channel") == "console", granted


def test_a_quorum_rule_needs_a_second_approver(console: Console, new_tab: NewTab) -> None:
    bob, carol = new_tab(), new_tab()
    sign_in(bob, console.operator_token("bob-console", principal="bob"))
    sign_in(carol, console.operator_token("carol-console", principal="carol"))

    token = console.open_session("make a shared folder")
    target = console.gw.ws.root / "shared-two"
    waiting = console.call_tool_in_thread(token, "fs.create_directory", {"path": str(target)})
    (request,) = wait_for("the approval request", lambda: console.records("approval_requested"))
    approval = request["payload"]["id"]

    bob.goto(f"/ui/approvals/{approval}")
    expect(bob.page.locator("main")).to_contain_text("shared-needs-two")
    decide(bob, "approve", "first of two")
    # One vote of two: the call still waits.
    bob.goto(f"/ui/approvals/{approval}")
    expect(bob.page.locator("main")).to_contain_text(re.compile(r"1\s*(of|/)\s*2"))
    assert not waiting.done() and not target.exists()

    carol.goto(f"/ui/approvals/{approval}")
    expect(carol.page.locator("main")).to_contain_text("bob")
    decide(carol, "approve", "second of two")
    is_error, text = waiting.result()
    assert not is_error, text
    assert target.is_dir()
    votes = console.records("approval_granted")
    assert sorted(v["payload"]["approver"] for v in votes) == ["bob", "carol"], votes
    assert {v["payload"].get("channel") for v in votes} == {"console"}, votes


# --------------------------------------------------------------------------------------------
# Controls
# --------------------------------------------------------------------------------------------


def test_an_admin_lifts_a_control(console: Console, new_tab: NewTab) -> None:
    token = console.open_session("echo things")
    control = console.set_control(
        "freeze_tool", "--scope", "gateway", "--tool", "everything.echo",
        "--reason", "echo misbehaved",
    )
    is_error, text = console.call_tool(token, "everything.echo", {"message": "frozen?"})
    assert is_error and "echo misbehaved" in text, text

    # An approver cannot lift it.
    bob = new_tab()
    sign_in(bob, console.operator_token("bob-console", principal="bob"))
    response = bob.goto("/ui/controls")
    assert response.status == 403 or "/ui/approvals" in bob.page.url, response.status

    # An alert (as the observer raises them) with the refused attempt as its evidence.
    session = console.session_id("echo things")
    refused = console.records("action_attempted")[-1]["seq"]
    console.set_control(
        "alert", "--scope", "session", "--target", session,
        "--reason", "echo refused while frozen", "--evidence", str(refused),
    )

    admin = new_tab()
    sign_in(admin, console.admin_token)
    admin.goto("/ui/controls")
    main = admin.page.locator("main")
    expect(main).to_contain_text("echo misbehaved")
    expect(main).to_contain_text("echo refused while frozen")
    shot(admin.page, "alerts-and-controls")
    # The alert's evidence leads into the session's timeline, at that record.
    main.locator(f"a[href='/ui/records/{refused}']").first.click()
    expect(admin.page).to_have_url(re.compile(f"/ui/sessions/{session}.*#seq-{refused}$"))
    expect(admin.page.locator(f"#seq-{refused}")).to_be_visible()
    admin.goto("/ui/controls")
    form = admin.page.locator(f"form[action='/ui/controls/{control}/lift']")
    form.locator("[name='reason']").fill("fixed upstream")
    # The ledger moves while the admin types: the alerts refresh live, the form being typed
    # into is left alone (replacing it would lose the reason, and under a busy ledger a lift
    # could never be sent).
    console.set_control(
        "alert", "--scope", "session", "--target", session, "--reason", "raised while typing",
    )
    expect(main).to_contain_text("raised while typing")
    expect(form.locator("[name='reason']")).to_have_value("fixed upstream")
    with admin.page.expect_navigation():
        form.locator("[type='submit']").click()
    assert console.controls() == []
    (lifted,) = console.records("control_lifted")
    assert lifted["payload"]["reason"] == "fixed upstream", lifted
    is_error, text = console.call_tool(token, "everything.echo", {"message": "thawed"})
    assert not is_error, text


# --------------------------------------------------------------------------------------------
# Content-Security-Policy: hostile text is shown as text and never runs
# --------------------------------------------------------------------------------------------

#: What an agent (or what it read) could put in a prompt or an argument.
HOSTILE_PROMPT = "<script>window.__pwned = 'prompt'</script> please"
HOSTILE_ARG = "\"><img src=x onerror=\"window.__pwned='argument'\"><script>window.__pwned='arg'</script>"


def test_the_csp_header_is_on_every_page_and_no_injected_script_runs(
    console: Console, new_tab: NewTab
) -> None:
    token = console.open_session("hostile <b>task</b>")
    session = console.session_id("hostile <b>task</b>")
    console.model_turn(token, HOSTILE_PROMPT)
    is_error, _ = console.call_tool(token, "everything.echo", {"message": HOSTILE_ARG})
    assert not is_error

    admin = new_tab()
    sign_in(admin, console.admin_token)
    pages = [
        "/ui",
        "/ui/sessions",
        f"/ui/sessions/{session}",
        "/ui/approvals",
        "/ui/controls",
        "/ui/charter",
        "/ui/search?q=pwned",
        "/ui/no-such-page",
        "/ui/sessions/no-such-session",
    ]
    for path in pages:
        response = admin.goto(path)
        assert_secure_headers(response)
        assert admin.page.evaluate("typeof window.__pwned") == "undefined", path
    # The timeline shows the hostile text as text.
    admin.goto(f"/ui/sessions/{session}")
    main = admin.page.locator("main")
    expect(main).to_contain_text("<script>window.__pwned = 'prompt'</script>")
    expect(main).to_contain_text("onerror=")
    assert admin.page.locator("main script").count() == 0
    assert admin.page.locator("main img").count() == 0
    assert admin.page.evaluate("typeof window.__pwned") == "undefined"
    assert not admin.watched.csp_violations(), admin.watched.csp_violations()
    assert not admin.watched.errors, admin.watched.errors

    # And the browser enforces the policy: a script element put in the page by hand (as an
    # injection the escaping missed would be) is blocked and reported.
    violations = admin.page.evaluate(
        """() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation',
                e => resolve(e.violatedDirective), { once: true });
            const s = document.createElement('script');
            s.textContent = "window.__pwned = 'inline'";
            document.body.appendChild(s);
            setTimeout(() => resolve('none'), 2000);
        })"""
    )
    assert violations.startswith("script-src"), violations
    assert admin.page.evaluate("typeof window.__pwned") == "undefined"


# --------------------------------------------------------------------------------------------
# Charter, explain and search (and their screenshots)
# --------------------------------------------------------------------------------------------


def test_charter_and_explain(console: Console, new_tab: NewTab) -> None:
    admin = new_tab()
    sign_in(admin, console.admin_token)
    admin.goto("/ui/charter")
    main = admin.page.locator("main")
    for rule in ("read-root", "mkdir-needs-approval", "shared-needs-two", "no-writes"):
        expect(main).to_contain_text(rule)
    expect(main).to_contain_text(f"charter.yaml:{rule_line(console.charter, 'no-writes')}")

    # Explain an action typed in the page (a GET form: nothing changes).
    before = len(console.records())
    form = admin.page.locator("form[action='/ui/charter/explain']")
    form.locator("[name='tool']").fill("fs.write_file")
    form.locator("[name='args']").fill('{"path": "/tmp/x", "content": "hi"}')
    form.locator("[name='user']").fill("alice")
    with admin.page.expect_navigation():
        form.locator("[type='submit']").click()
    expect(main).to_contain_text("prohibited")
    expect(main).to_contain_text("no-writes")
    shot(admin.page, "charter-explain")
    admin.goto("/ui/charter")
    shot(admin.page, "charter")
    assert len(console.records()) == before, "explain records nothing"


#: The console's search reads the search index beside a data directory's ledger.
search_on_sqlite_only = pytest.mark.skipif(
    STORE != "sqlite",
    reason="the console's search reads the search index beside a data directory's ledger; it "
    "does not search the shared PostgreSQL store",
)


@search_on_sqlite_only
def test_search_finds_captured_prompts_and_shows_hostile_text_as_text(
    console: Console, new_tab: NewTab
) -> None:
    token = console.open_session("look things up")
    console.model_turn(token, "where is the quarterly plan kept")
    console.model_turn(token, HOSTILE_PROMPT)

    admin = new_tab()
    sign_in(admin, console.admin_token)
    main = admin.page.locator("main")
    # Search over captured prompts and completions.
    admin.goto("/ui/search?q=quarterly")
    expect(main).to_contain_text("quarterly")
    shot(admin.page, "search")
    # What an agent put in a prompt is shown as text, never run.
    response = admin.goto("/ui/search?q=please")
    assert_secure_headers(response)
    expect(main).to_contain_text("<script>")
    assert admin.page.locator("main script, main img").count() == 0
    assert admin.page.evaluate("typeof window.__pwned") == "undefined"
    assert not admin.watched.csp_violations(), admin.watched.csp_violations()
    assert not admin.watched.errors, admin.watched.errors
