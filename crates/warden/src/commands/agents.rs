//! `warden agents list|show`: the agent inventory of a running gateway (through the operator
//! plane, with an admin's or an observer's token; the same client flags as `warden session`):
//! every agent with its purpose, its tools by tier, its sessions and the controls on it, and
//! one agent in full.
//!
//! Exit codes: 0 done; 64 the request failed or was refused (an unknown agent, a credential
//! that may not read the inventory, the gateway unreachable).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::EXIT_USAGE;
use crate::commands::session::OperatorClient;

/// Arguments of `warden agents`.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    /// The subcommand.
    #[command(subcommand)]
    pub command: AgentsCommand,
    /// The operator plane.
    #[command(flatten)]
    pub client: OperatorClient,
}

/// `warden agents` subcommands.
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// Every agent: id, name, tools per tier, live sessions, controls, charter.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One agent in full: identity, charter, tools and models by tier, servers, approvers,
    /// delegation, sessions, controls.
    Show {
        /// The agent id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `warden agents`.
pub fn execute(args: &AgentsArgs) -> ExitCode {
    let client = args.client.clone();
    crate::runtime(async move {
        let (path, as_json) = match &args.command {
            AgentsCommand::List { json } => ("/v1/agents".to_owned(), *json),
            AgentsCommand::Show { id, json } => {
                if id.is_empty() || id == "." || id == ".." {
                    // A URL would resolve these to another path: no agent has such an id.
                    eprintln!("error: `{id}` is not an agent id");
                    return ExitCode::from(EXIT_USAGE);
                }
                (format!("/v1/agents/{}", encode_segment(id)), *json)
            }
        };
        match client.call(reqwest::Method::GET, &path, None).await {
            Ok(answer) => {
                if as_json {
                    println!("{answer:#}");
                } else if matches!(args.command, AgentsCommand::List { .. }) {
                    print!("{}", list_text(&answer));
                } else {
                    print!("{}", show_text(&answer));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        }
    })
}

/// `id` as one path segment: every byte outside the unreserved set percent-encoded, so an id
/// cannot reach another route.
fn encode_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn at<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&Value::Null)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

fn joined(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// The capped-list note: ` (N of TOTAL)` when it was cut.
fn cut(v: &Value) -> String {
    if v.get("capped") == Some(&Value::Bool(true)) {
        let shown = v.get("items").and_then(Value::as_array).map_or(0, Vec::len);
        format!(" ({shown} of {})", n(v, "/total"))
    } else {
        String::new()
    }
}

/// `warden agents list`: a table.
fn list_text(v: &Value) -> String {
    let agents = v
        .get("agents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if agents.is_empty() {
        return "no agents\n".to_owned();
    }
    let mut rows = vec![[
        "AGENT".to_owned(),
        "NAME".to_owned(),
        "AUTO".to_owned(),
        "PRE".to_owned(),
        "APPROVAL".to_owned(),
        "PROHIBITED".to_owned(),
        "LIVE".to_owned(),
        "CONTROLS".to_owned(),
        "CHARTER".to_owned(),
    ]];
    for a in &agents {
        let hash = s(a, "charter");
        rows.push([
            s(a, "id").to_owned(),
            s(a, "name").to_owned(),
            n(a, "/tiers/autonomous").to_string(),
            n(a, "/tiers/preapproved").to_string(),
            n(a, "/tiers/approval").to_string(),
            n(a, "/tiers/prohibited").to_string(),
            n(a, "/live_sessions").to_string(),
            n(a, "/controls").to_string(),
            hash.chars().take(19).collect(),
        ]);
    }
    let mut widths = [0usize; 9];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if v.get("capped") == Some(&Value::Bool(true)) {
        out.push_str(&format!(
            "({} of {} agents shown)\n",
            agents.len(),
            n(v, "/total")
        ));
    }
    out
}

/// One tool's tiers, as `tier (rule, rule); tier (default)`.
fn tiers_line(t: &Value) -> String {
    let mut parts: Vec<String> = t
        .get("tiers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|tr| {
            let rules = if tr.get("default") == Some(&Value::Bool(true)) {
                "default posture".to_owned()
            } else {
                joined(at(tr, "rules"))
            };
            format!("{} ({rules})", s(tr, "tier"))
        })
        .collect();
    if let Some(u) = t.get("unmatched").and_then(Value::as_str) {
        parts.push(format!("otherwise {u} (default posture)"));
    }
    parts.join("; ")
}

/// `warden agents show`: the detail, a section at a time.
fn show_text(v: &Value) -> String {
    let mut out = format!(
        "agent       {}\nname        {}\npurpose     {}\nserves      {}\nvalues      {}\nboundaries  {}\n",
        s(v, "id"),
        s(v, "name"),
        s(v, "purpose"),
        s(v, "serves"),
        joined(at(v, "values")),
        joined(at(v, "boundaries")),
    );
    let c = at(v, "charter");
    out.push_str(&format!(
        "\ncharter     {}\nfiles       {}\nrules       {}\nloaded_at   {}\ndefault     {}\n",
        s(c, "hash"),
        joined(at(c, "files")),
        n(c, "/rules"),
        s(c, "loaded_at"),
        s(c, "default_posture"),
    ));
    out.push_str(&format!("\ntools{}\n", cut(at(v, "tools"))));
    for t in at(at(v, "tools"), "items").as_array().into_iter().flatten() {
        out.push_str(&format!("  {}  {}\n", s(t, "tool"), tiers_line(t)));
    }
    out.push_str("\nmodels\n");
    for m in at(at(v, "models"), "aliases")
        .as_array()
        .into_iter()
        .flatten()
    {
        let deny = joined(at(m, "deny_labels"));
        out.push_str(&format!(
            "  {}  routes: {}  denied with labels: {deny}\n",
            s(m, "alias"),
            joined(at(m, "routes"))
        ));
    }
    for t in at(at(v, "models"), "tools")
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("  {}  {}\n", s(t, "tool"), tiers_line(t)));
    }
    out.push_str("\nservers\n");
    for srv in at(v, "servers").as_array().into_iter().flatten() {
        let agent = match srv.get("agent").and_then(Value::as_str) {
            Some(a) => format!("  agent {a}"),
            None => String::new(),
        };
        out.push_str(&format!(
            "  {}  {}  {} tools{agent}\n",
            s(srv, "id"),
            s(srv, "transport"),
            n(srv, "/tools")
        ));
    }
    out.push_str(&format!("\napprovers{}\n", cut(at(v, "approvers"))));
    for a in at(at(v, "approvers"), "items")
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  {}  {} (quorum {})\n",
            s(a, "rule"),
            joined(at(a, "principals")),
            n(a, "/quorum")
        ));
    }
    out.push_str(&format!("\ndirected by{}\n", cut(at(v, "directors"))));
    for d in at(at(v, "directors"), "items")
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  {}  up to {}  {}\n",
            s(d, "role"),
            s(d, "direct"),
            joined(at(d, "principals"))
        ));
    }
    let d = at(v, "delegation");
    out.push_str(&format!(
        "\ndelegation  to: {}  from: {}  max_depth {}  max_children {}\n",
        joined(at(d, "to")),
        joined(at(d, "from")),
        n(d, "/max_depth"),
        n(d, "/max_children"),
    ));
    let ss = at(v, "sessions");
    out.push_str(&format!(
        "\nsessions    {} live, {} known, last opened {}\n",
        n(ss, "/live"),
        n(ss, "/known"),
        s(ss, "last_activity"),
    ));
    for id in at(at(ss, "live_ids"), "items")
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("  {}\n", id.as_str().unwrap_or("-")));
    }
    if at(ss, "live_ids").get("capped") == Some(&Value::Bool(true)) {
        out.push_str(&format!("  …{}\n", cut(at(ss, "live_ids"))));
    }
    out.push_str(&format!(
        "\ncontrols    {}{}\n",
        n(v, "/controls/total"),
        cut(at(v, "controls"))
    ));
    for ctl in at(at(v, "controls"), "items")
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&format!(
            "  {}  {}  {}:{}  {}\n",
            s(ctl, "id"),
            s(ctl, "action"),
            s(ctl, "scope"),
            s(ctl, "target"),
            s(ctl, "reason"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_stays_one_path_segment() {
        assert_eq!(encode_segment("coord"), "coord");
        assert_eq!(encode_segment("../x y"), "..%2Fx%20y");
    }

    #[test]
    fn the_table_has_a_row_per_agent() {
        let v = serde_json::json!({ "agents": [
            { "id": "a", "name": "A", "tiers": { "autonomous": 2, "approval": 1 }, "live_sessions": 3, "controls": 0, "charter": "blake3:0123456789abcdef" }
        ], "total": 1, "capped": false });
        let text = list_text(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("AGENT"), "{text}");
        assert!(lines[1].starts_with("a "), "{text}");
        assert!(lines[1].contains("blake3:0123456789ab"), "{text}");
    }
}
