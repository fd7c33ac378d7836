use askama::Template;

use super::*;
use crate::views::timeline::tests::charter as test_charter;

fn form(tool: &str, args: &str, user: &str, labels: &str) -> ExplainForm {
    ExplainForm {
        tool: tool.to_owned(),
        args: args.to_owned(),
        user: user.to_owned(),
        labels: labels.to_owned(),
        agent: "agent-1".to_owned(),
    }
}

fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-01-01 12:00:00 UTC)
}

#[test]
fn explain_decides_as_the_cli_does_with_rules_and_locations() {
    let c = test_charter();
    let e = decide_form(
        &c,
        &form("echo.echo", r#"{"text":"hello you"}"#, "alice", ""),
        now(),
    )
    .unwrap();
    assert_eq!(
        (e.verdict.as_str(), e.tier.as_str()),
        ("allow", "autonomous")
    );
    assert_eq!(e.rules.len(), 1);
    assert_eq!(e.rules[0].id, "echo-hello");
    assert!(
        e.rules[0].location.starts_with("charter.yaml:13:"),
        "{:?}",
        e.rules
    );
    let e = decide_form(
        &c,
        &form("echo.echo", r#"{"text":"a secret"}"#, "", ""),
        now(),
    )
    .unwrap();
    assert_eq!(e.verdict, "deny");
    let e = decide_form(
        &c,
        &form("echo.echo", r#"{"text":"ask me"}"#, "", "secret"),
        now(),
    )
    .unwrap();
    assert_eq!(e.verdict, "ask");
    assert!(e.approval.is_some());
    let e = decide_form(&c, &form("nope.tool", "", "", ""), now()).unwrap();
    assert!(e.not_inventoried);
}

#[test]
fn malformed_or_oversized_input_is_refused_with_a_sentence() {
    let c = test_charter();
    let err = |f: ExplainForm| decide_form(&c, &f, now()).unwrap_err();
    assert!(err(form("echo.echo", "{not json", "", "")).contains("not valid JSON"));
    assert!(err(form("echo.echo", "[1]", "", "")).contains("must be a JSON object"));
    assert!(err(form("echo.echo", "{}", "mallory", "")).contains("unknown user `mallory`"));
    assert!(err(form("echo.echo", "{}", "", "web,nope")).contains("unknown label `nope`"));
    assert!(err(form("", "{}", "", "")).contains("give the tool"));
    assert!(err(form(&"t".repeat(300), "{}", "", "")).contains("at most 256 bytes"));
    let big = format!(r#"{{"text":"{}"}}"#, "x".repeat(MAX_ARGS_BYTES));
    assert!(err(form("echo.echo", &big, "", "")).contains("at most 16 KiB"));
    assert!(err(form("echo.echo", "{}", "", &"a,".repeat(600))).contains("labels are at most"));
}

#[test]
fn the_charter_page_lists_rules_by_tier_with_locations_and_approvers() {
    let c = test_charter();
    let view = summary::view(&c);
    let tiers: Vec<&str> = view.tiers.iter().map(|t| t.tier.as_str()).collect();
    assert_eq!(
        tiers,
        ["prohibited", "approval", "preapproved", "autonomous"]
    );
    let ask = &view.tiers[1].rules[0];
    assert_eq!(ask.id, "echo-ask");
    assert_eq!(
        ask.approvers.as_ref().map(|a| a.0.as_str()),
        Some("alice, bob")
    );
    assert!(
        ask.matchers.iter().any(|m| m == "text: prefix \"ask\""),
        "{:?}",
        ask.matchers
    );
    let counted = &view.tiers[2].rules[0];
    assert!(counted.matchers.iter().any(|m| m == "scope: 5 per session"));
    let page = CharterPage {
        layout: crate::page::Layout::default(),
        charter: view,
        agents: vec!["agent-1".to_owned()],
        form: form(
            "echo.echo",
            "{\"a\":\"</textarea><script>x</script>\"}",
            "",
            "",
        ),
        explained: None,
        problem: Some("<img src=x>".to_owned()),
    };
    let html = page.render().unwrap();
    assert!(html.contains("charter.yaml:14:"), "locations shown");
    assert!(!html.contains("<script>x"));
    assert!(!html.contains("<img src=x>"));
    assert!(!html.contains("style="));
}
