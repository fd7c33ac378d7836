//! The operator command's parsing and rendering.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use clap::Parser;
use serde_json::json;

use super::*;
use crate::{Cli, Command};

#[test]
fn list_and_revoke_parse_with_the_operator_plane_flags() {
    let cli = Cli::try_parse_from([
        "warden",
        "operator",
        "revoke-token",
        "0199-abc",
        "--token",
        "wo_x",
    ])
    .unwrap();
    let Command::Operator(OperatorArgs {
        command: OperatorCommand::RevokeToken { id, client },
    }) = cli.command
    else {
        panic!("not revoke-token");
    };
    assert_eq!(id, "0199-abc");
    assert_eq!(client.token.as_deref(), Some("wo_x"));
    let cli = Cli::try_parse_from(["warden", "operator", "list-tokens", "--json"]).unwrap();
    assert!(matches!(
        cli.command,
        Command::Operator(OperatorArgs {
            command: OperatorCommand::ListTokens { json: true, .. }
        })
    ));
}

#[test]
fn the_token_table_shows_state_and_never_a_token() {
    let v = json!({ "operator_tokens": [
        { "id": "t1", "name": "bootstrap", "role": "admin", "principal": null,
          "created_at": "2026-01-01T00:00:00Z", "revoked_at": null, "recorded_at": "2026-01-01T00:00:01Z" },
        { "id": "t2", "name": "bob-laptop", "role": "approver", "principal": "bob",
          "created_at": "2026-01-02T00:00:00Z", "revoked_at": "2026-01-03T00:00:00Z", "recorded_at": null },
        { "id": "t3", "name": "ci", "role": "admin", "principal": null,
          "created_at": "2026-01-04T00:00:00Z", "revoked_at": null, "recorded_at": null },
    ]});
    let table = render_tokens(&v);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("id"), "{table}");
    assert!(lines[1].ends_with("active"), "{table}");
    assert!(
        lines[2].contains("bob") && lines[2].contains("revoked 2026-01-03"),
        "{table}"
    );
    assert!(lines[3].contains("made offline"), "{table}");
}
