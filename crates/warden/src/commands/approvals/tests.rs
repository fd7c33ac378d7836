//! The approvals command's parsing and rendering.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

use clap::Parser;
use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::{Cli, Command};

fn sample() -> Value {
    json!({
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "status": "pending",
        "action_hash": "blake3:abc123",
        "action": "act-1",
        "session": "sess-1",
        "agent": "claude-code",
        "principal": "alice",
        "task": "tidy the reports folder",
        "tool": "files.delete",
        "arguments": { "path": "/reports/q3.pdf", "recursive": false },
        "reason": "rule",
        "why": "rule `deletes-need-approval` requires approval",
        "rules": [{
            "id": "deletes-need-approval",
            "tier": "approval",
            "location": { "file": "charter.yaml", "line": 12, "column": 5 }
        }],
        "authority_for": ["deletes-need-approval"],
        "approvers": ["bob", "carol"],
        "quorum": 2,
        "requested_at": "2025-06-01T10:00:00Z",
        "deadline": "2025-06-01T10:15:00Z",
        "approvals": [{
            "approver": "bob",
            "reason": "looks fine",
            "channel": "api",
            "at": "2025-06-01T10:02:00Z"
        }],
        "denial": null,
        "decided_at": null,
        "used_at": null,
        "used_by": null,
        "model_turns": []
    })
}

#[test]
fn list_renders_a_table_with_votes_and_a_header() {
    let mut other = sample();
    other["id"] = json!("short");
    other["tool"] = json!("mail.send");
    other["approvals"] = json!([]);
    other["quorum"] = json!(1);
    other["status"] = json!("granted");
    let table = render_list(
        &json!({ "approvals": [sample(), other] }),
        StatusFilter::All,
    )
    .unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("id "), "{table}");
    for col in ["tool", "on behalf of", "votes", "deadline", "status"] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(lines[1].contains("files.delete"));
    assert!(lines[1].contains("alice"));
    assert!(lines[1].contains("1/2"));
    assert!(lines[1].contains("2025-06-01T10:15:00Z"));
    assert!(lines[1].ends_with("pending"));
    assert!(lines[2].contains("0/1"));
    assert!(lines[2].ends_with("granted"));
    // Columns line up: every line has `tool` values at the same offset.
    let at = lines[0].find("tool").unwrap();
    assert_eq!(lines[1].find("files.delete"), Some(at));
    assert_eq!(lines[2].find("mail.send"), Some(at));
}

#[test]
fn an_empty_list_says_so() {
    let empty = json!({ "approvals": [] });
    assert_eq!(
        render_list(&empty, StatusFilter::Pending).unwrap(),
        "no pending approval requests\n"
    );
    assert_eq!(
        render_list(&empty, StatusFilter::All).unwrap(),
        "no approval requests\n"
    );
    assert!(render_list(&json!({}), StatusFilter::Pending).is_err());
}

#[test]
fn show_renders_what_an_approver_needs() {
    let text = render_show(&sample(), datetime!(2025-06-01 10:10:30 UTC)).unwrap();
    for expected in [
        "approval      0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\n",
        "status        pending\n",
        "tool          files.delete\n",
        "arguments     {\n",
        "                \"path\": \"/reports/q3.pdf\",\n",
        "agent         claude-code\n",
        "on behalf of  alice\n",
        "task          tidy the reports folder\n",
        "why           rule `deletes-need-approval` requires approval\n",
        "reason        rule\n",
        "rules         deletes-need-approval (approval) at charter.yaml:12:5\n",
        "requested at  2025-06-01T10:00:00Z\n",
        "deadline      2025-06-01T10:15:00Z (in 4m 30s)\n",
        "quorum        1 of 2 approvals\n",
        "approvals     bob at 2025-06-01T10:02:00Z via api: \"looks fine\"\n",
        "may approve   bob, carol\n",
        "action hash   blake3:abc123\n",
        "model turns: none recorded\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(!text.contains("denied by"));
}

#[test]
fn show_prints_decisions_and_model_turns() {
    let mut v = sample();
    v["status"] = json!("denied");
    v["approvals"] = json!([]);
    v["denial"] = json!({ "approver": "carol", "reason": null, "channel": "link", "at": "2025-06-01T10:03:00Z" });
    v["decided_at"] = json!("2025-06-01T10:03:00Z");
    v["model_turns"] = json!([
        { "role": "user", "text": "clean up q3", "tokens": 4 },
        { "kind": "tool_result" }
    ]);
    let text = render_show(&v, datetime!(2025-06-01 11:00 UTC)).unwrap();
    assert!(
        text.contains("deadline      2025-06-01T10:15:00Z (passed)\n"),
        "{text}"
    );
    assert!(text.contains("approvals     (none yet)\n"), "{text}");
    assert!(
        text.contains("denied by     carol at 2025-06-01T10:03:00Z via link\n"),
        "{text}"
    );
    assert!(
        text.contains("decided at    2025-06-01T10:03:00Z\n"),
        "{text}"
    );
    assert!(
        text.contains("model turns:\n  {\"role\":\"user\",\"text\":\"clean up q3\"}\n"),
        "{text}"
    );
    assert!(text.contains("  {\"kind\":\"tool_result\"}\n"), "{text}");
}

#[test]
fn outcomes_read_as_sentences() {
    let id = "a1";
    assert_eq!(
        render_outcome(id, &json!({ "outcome": "granted", "approval": sample() })),
        "approved a1: granted — the action is released\n"
    );
    assert_eq!(
        render_outcome(id, &json!({ "outcome": "counted", "approval": sample() })),
        "approved a1: 1 of 2 approvals recorded\n"
    );
    assert_eq!(
        render_outcome(id, &json!({ "outcome": "denied", "approval": sample() })),
        "denied a1\n"
    );
}

#[test]
fn ids_cannot_change_the_route() {
    assert_eq!(
        warden_core::text::percent_encode("0190-ab_c.d~"),
        "0190-ab_c.d~"
    );
    assert_eq!(warden_core::text::percent_encode("../x?y"), "..%2Fx%3Fy");
}

#[test]
fn the_command_line_parses() {
    let cli =
        Cli::try_parse_from(["warden", "approvals", "list", "--status", "timed_out"]).unwrap();
    let Command::Approvals(a) = cli.command else {
        panic!("parsed as another command")
    };
    assert!(matches!(
        a.command,
        ApprovalsCommand::List {
            status: StatusFilter::TimedOut,
            all: false,
            json: false
        }
    ));
    assert!(
        Cli::try_parse_from(["warden", "approvals", "list", "--all", "--status", "used"]).is_err()
    );
    let cli = Cli::try_parse_from([
        "warden",
        "approvals",
        "approve",
        "a1",
        "--reason",
        "ok",
        "--token",
        "t",
    ])
    .unwrap();
    let Command::Approvals(a) = cli.command else {
        panic!("parsed as another command")
    };
    assert_eq!(a.client.token.as_deref(), Some("t"));
    assert!(matches!(
        a.command,
        ApprovalsCommand::Approve {
            reason: Some(_),
            ..
        }
    ));
}

/// Issue 13: `approve --remember`, `reverse --reason`, and what `show` and `list` say about
/// earlier refusals and provenance.
mod teach {
    use super::*;

    #[test]
    fn remember_and_reverse_parse_and_build_their_bodies() {
        let cli =
            Cli::try_parse_from(["warden", "approvals", "approve", "a1", "--remember"]).unwrap();
        let Command::Approvals(a) = cli.command else {
            panic!("parsed as another command")
        };
        assert!(matches!(
            a.command,
            ApprovalsCommand::Approve { remember: true, .. }
        ));
        let cli = Cli::try_parse_from(["warden", "approvals", "reverse", "a1", "--reason", "mine"])
            .unwrap();
        let Command::Approvals(a) = cli.command else {
            panic!("parsed as another command")
        };
        assert!(matches!(
            a.command,
            ApprovalsCommand::Reverse { reason: Some(ref r), .. } if r == "mine"
        ));
        // `--remember` is an approval's, not a denial's nor a reversal's.
        assert!(Cli::try_parse_from(["warden", "approvals", "deny", "a1", "--remember"]).is_err());
        assert!(
            Cli::try_parse_from(["warden", "approvals", "reverse", "a1", "--remember"]).is_err()
        );
        assert_eq!(
            decide_body(Some("ok"), true),
            json!({"reason": "ok", "remember": true})
        );
        assert_eq!(decide_body(None, false), json!({}));
        assert_eq!(
            render_outcome(
                "a1",
                &json!({ "outcome": "reversed", "approval": sample() })
            ),
            "reversed the denial of a1: it is pending again\n"
        );
    }

    #[test]
    fn show_and_list_carry_earlier_refusals_and_provenance() {
        let mut v = sample();
        v["remember"] = json!(["iban"]);
        v["earlier"] = json!([
            { "id": "e2", "status": "timed_out", "at": "2025-06-01T09:30:00Z" },
            { "id": "e1", "status": "denied", "at": "2025-06-01T09:00:00Z" }
        ]);
        v["provenance"] = json!([
            { "rule": "payee-planted", "argument": "iban", "value": "NL91ABNA0417164300",
              "found": [{ "part": "nl91abna0417164300", "kind": "iban", "seq": 42, "labels": ["untrusted_mail"] }] },
            { "rule": "payee-planted", "argument": "memo", "value": "rent",
              "trusted": { "kind": "approval", "approval": "a0", "argument": "memo" } }
        ]);
        v["reversals"] = json!([{
            "denial": { "approver": "carol", "channel": "api", "at": "2025-06-01T10:01:00Z" },
            "by": { "approver": "bob", "reason": "my mistake", "channel": "api", "at": "2025-06-01T10:02:00Z" }
        }]);
        let text = render_show(&v, datetime!(2025-06-01 10:10:30 UTC)).unwrap();
        for expected in [
            "may remember  iban\n",
            "earlier       e2 timed_out at 2025-06-01T09:30:00Z\n              e1 denied at 2025-06-01T09:00:00Z\n",
            "provenance    iban = \"NL91ABNA0417164300\" (rule payee-planted): found in untrusted content: \"nl91abna0417164300\" in record 42 (untrusted_mail)\n",
            "              memo = \"rent\" (rule payee-planted): stated in approval a0 (memo)\n",
            "reversed      bob at 2025-06-01T10:02:00Z via api: \"my mistake\" (denied by carol)\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        // An old gateway's answer (no such fields) still renders.
        let old = render_show(&sample(), datetime!(2025-06-01 10:10:30 UTC)).unwrap();
        assert!(
            old.contains("earlier       (no earlier refusal of this action)\n"),
            "{old}"
        );
        let table = render_list(&json!({ "approvals": [v] }), StatusFilter::All).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].contains("earlier"), "{table}");
        assert!(lines[1].contains(" 2 "), "{table}");
    }
}
