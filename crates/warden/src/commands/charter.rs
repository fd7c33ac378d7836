//! `warden charter show|reload`: the charter in force on a running gateway, and a live reload
//! of it (through the operator plane, with an admin's token; the same client flags as
//! `warden session`).
//!
//! Exit codes: 0 done (or the charter unchanged); 64 the charter was refused (it does not
//! compile — every diagnostic is printed — or it changes what only a restart can change), or
//! the request itself failed; 75 the gateway could not do it now (another reload under way,
//! the ledger unavailable): try again.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::EXIT_USAGE;
use crate::commands::session::OperatorClient;

/// Exit code when the gateway could not reload now (`EX_TEMPFAIL`).
pub const EXIT_TRY_AGAIN: u8 = 75;

/// Arguments of `warden charter`.
#[derive(Debug, Args)]
pub struct CharterArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: CharterCommand,
    /// The operator plane.
    #[command(flatten)]
    pub client: OperatorClient,
}

/// `warden charter` subcommands.
#[derive(Debug, Subcommand)]
pub enum CharterCommand {
    /// The charter in force: hash, agent, files, when it was loaded, how many reloads (every
    /// agent's, or `--agent`'s).
    Show {
        /// Only this agent's charter.
        #[arg(long)]
        agent: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compile the charter files again and put those that changed in force (errors leave the
    /// old ones; `--agent` reloads that agent's charter only).
    Reload {
        /// Only this agent's charter.
        #[arg(long)]
        agent: Option<String>,
        /// Print the gateway's answer as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `warden charter`.
pub fn execute(args: &CharterArgs) -> ExitCode {
    let client = args.client.clone();
    crate::runtime(async move {
        let (path, method, body, as_json) = match &args.command {
            CharterCommand::Show { agent, json } => {
                let path = match agent {
                    // Agent ids are the charter's (letters, digits, `_-.:@`); anything else
                    // is refused by the gateway, encoded so it cannot change the query.
                    Some(a) => {
                        format!("/v1/charter?agent={}", warden_core::text::percent_encode(a))
                    }
                    None => "/v1/charter".to_owned(),
                };
                (path, reqwest::Method::GET, None, *json)
            }
            CharterCommand::Reload { agent, json } => {
                let mut body = json!({ "via": "cli" });
                if let (Some(a), Some(obj)) = (agent, body.as_object_mut()) {
                    obj.insert("agent".to_owned(), Value::String(a.clone()));
                }
                (
                    "/v1/charter/reload".to_owned(),
                    reqwest::Method::POST,
                    Some(body),
                    *json,
                )
            }
        };
        let (status, answer) = match client.send(method, &path, body).await {
            Ok(got) => got,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        if status.is_success() {
            if as_json {
                println!("{answer:#}");
            } else if matches!(args.command, CharterCommand::Show { .. }) {
                println!("{}", show_text(&answer));
            } else {
                println!("{}", reload_text(&answer));
            }
            return ExitCode::SUCCESS;
        }
        if as_json {
            println!("{answer:#}");
        }
        let message = answer
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(|| answer.to_string(), str::to_owned);
        eprintln!("error: {status}: {message}");
        for line in answer
            .pointer("/error/errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            eprintln!("{line}");
        }
        match answer.pointer("/error/code").and_then(Value::as_str) {
            Some("reload_in_progress" | "ledger_unavailable") => ExitCode::from(EXIT_TRY_AGAIN),
            _ => ExitCode::from(EXIT_USAGE),
        }
    })
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// `warden charter show`: one field a line, each agent's block apart.
fn show_text(v: &Value) -> String {
    match v.get("agents").and_then(Value::as_array) {
        Some(agents) => agents
            .iter()
            .map(one_charter_text)
            .collect::<Vec<_>>()
            .join("\n\n"),
        None => one_charter_text(v),
    }
}

/// One agent's charter, one field a line.
fn one_charter_text(v: &Value) -> String {
    let files = v
        .get("files")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    format!(
        "charter     {}\nagent       {}\nfiles       {files}\nrules       {}\nloaded_at   {}\ngeneration  {}",
        text(v, "charter"),
        text(v, "agent"),
        text(v, "rules"),
        text(v, "loaded_at"),
        text(v, "generation"),
    )
}

/// `warden charter reload`: what was put in force and what changed.
fn reload_text(v: &Value) -> String {
    if v.get("unchanged") == Some(&Value::Bool(true)) {
        return match v.get("charter") {
            Some(Value::String(c)) => format!("charter unchanged: {c}"),
            _ => "charters unchanged".to_owned(),
        };
    }
    let mut out = if v.get("charter").is_some_and(Value::is_string) {
        format!(
            "charter reloaded: {} -> {}{}",
            text(v, "previous"),
            text(v, "charter"),
            changes_text(v.get("changes").unwrap_or(&Value::Null))
        )
    } else {
        v.get("agents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "agent {}: charter reloaded: {} -> {}{}",
                    text(a, "agent"),
                    text(a, "previous"),
                    text(a, "charter"),
                    changes_text(a.get("changes").unwrap_or(&Value::Null))
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (key, label) in [
        ("started", "servers started"),
        ("stopped", "servers stopped"),
    ] {
        let ids: Vec<&str> = v
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            out.push_str(&format!("\n  {label}: {}", ids.join(", ")));
        }
    }
    out
}

/// The lines of one charter's changes (each starting with a new line).
fn changes_text(changes: &Value) -> String {
    let mut out = String::new();
    for kind in [
        "rules",
        "tools",
        "servers",
        "models",
        "principals",
        "roles",
        "labels",
    ] {
        for (what, sign) in [("added", '+'), ("removed", '-'), ("changed", '~')] {
            let Some(ids) = changes.pointer(&format!("/{kind}/{what}")) else {
                continue;
            };
            let count = ids.get("count").and_then(Value::as_u64).unwrap_or(0);
            if count == 0 {
                continue;
            }
            let names: Vec<&str> = ids
                .get("ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let more = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .saturating_sub(names.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            out.push_str(&format!(
                "\n  {kind} {sign}{count}: {}{more}",
                names.join(", ")
            ));
        }
    }
    for flag in ["identity_changed", "context_changed", "defaults_changed"] {
        if changes.get(flag) == Some(&Value::Bool(true)) {
            out.push_str(&format!("\n  {}", flag.replace('_', " ")));
        }
    }
    out
}
