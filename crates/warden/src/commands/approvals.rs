//! `warden approvals list|show|approve|deny|reverse`: human approval requests, through the
//! operator plane.
//!
//! The client ([`OperatorClient`]) is the one `warden session` uses. `list` and `show` fail
//! like `session` does (64, `EX_USAGE`); a refused `approve` or `deny` exits 1, so a script can
//! tell "the gateway said no" (already decided, expired, not an approver...) apart from success.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::EXIT_USAGE;
use crate::commands::session::OperatorClient;

/// `warden approvals …`.
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ApprovalsCommand,
    /// The operator plane.
    #[command(flatten)]
    pub client: OperatorClient,
}

/// Approval commands.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// List approval requests, newest first (pending ones unless told otherwise).
    List {
        /// Only requests with this status.
        #[arg(long, value_enum, default_value_t = StatusFilter::Pending)]
        status: StatusFilter,
        /// Every request, whatever its status (same as `--status all`).
        #[arg(long, conflicts_with = "status")]
        all: bool,
        /// Print the operator plane's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one request: the action, who asked, why it needs approval, and the votes so far.
    Show {
        /// The request id.
        id: String,
        /// Print the operator plane's JSON instead of the text block.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request (one vote; the action is released once the quorum is met).
    Approve {
        /// The request id.
        id: String,
        /// Why, kept with the vote and in the ledger.
        #[arg(long)]
        reason: Option<String>,
        /// Approve "for this session": once the grant is used, the values of the arguments
        /// the rule names in `approval.remember` become trusted text of the session (refused
        /// when no rule of the request allows it).
        #[arg(long)]
        remember: bool,
    },
    /// Reverse a denial, before the request's deadline: the request is pending again (its
    /// votes cleared) and the same call, retried, waits for it.
    Reverse {
        /// The request id.
        id: String,
        /// Why, kept with the reversal and in the ledger.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a request; the action is refused.
    Deny {
        /// The request id.
        id: String,
        /// Why, kept with the denial and in the ledger.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Which requests `list` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    /// Waiting for approvers.
    Pending,
    /// Granted and not yet used.
    Granted,
    /// Denied by an approver.
    Denied,
    /// The deadline passed.
    #[value(name = "timed_out")]
    TimedOut,
    /// A grant released its action.
    Used,
    /// Voided by a live reload (the charter now in force denies the action).
    Voided,
    /// Every status.
    All,
}

impl StatusFilter {
    /// The name the operator plane takes in `?status=`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Pending => "pending",
            StatusFilter::Granted => "granted",
            StatusFilter::Denied => "denied",
            StatusFilter::TimedOut => "timed_out",
            StatusFilter::Used => "used",
            StatusFilter::Voided => "voided",
            StatusFilter::All => "all",
        }
    }
}

/// Runs `warden approvals …`.
pub fn execute(args: &ApprovalsArgs) -> ExitCode {
    let client = args.client.clone();
    crate::runtime(async move {
        let (result, failure) = match &args.command {
            ApprovalsCommand::List { status, all, json } => {
                let filter = if *all { StatusFilter::All } else { *status };
                let path = format!("/v1/approvals?status={}", filter.as_str());
                let result = client
                    .call(reqwest::Method::GET, &path, None)
                    .await
                    .and_then(|v| {
                        if *json {
                            Ok(format!("{v:#}\n"))
                        } else {
                            render_list(&v, filter)
                        }
                    });
                (result, ExitCode::from(EXIT_USAGE))
            }
            ApprovalsCommand::Show { id, json } => {
                let path = format!("/v1/approvals/{}", warden_core::text::percent_encode(id));
                let result = client
                    .call(reqwest::Method::GET, &path, None)
                    .await
                    .and_then(|v| {
                        if *json {
                            Ok(format!("{v:#}\n"))
                        } else {
                            render_show(&v, OffsetDateTime::now_utc())
                        }
                    });
                (result, ExitCode::from(EXIT_USAGE))
            }
            ApprovalsCommand::Approve {
                id,
                reason,
                remember,
            } => (
                decide(&client, id, "approve", reason, *remember).await,
                ExitCode::FAILURE,
            ),
            ApprovalsCommand::Deny { id, reason } => (
                decide(&client, id, "deny", reason, false).await,
                ExitCode::FAILURE,
            ),
            ApprovalsCommand::Reverse { id, reason } => (
                decide(&client, id, "reverse", reason, false).await,
                ExitCode::FAILURE,
            ),
        };
        match result {
            Ok(out) => {
                // A closed stdout (`| head`) is not worth a failure.
                let _ = std::io::stdout().lock().write_all(out.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                failure
            }
        }
    })
}

/// Sends one vote (`approve`, `deny` or `reverse`) and describes the outcome.
async fn decide(
    client: &OperatorClient,
    id: &str,
    verb: &str,
    reason: &Option<String>,
    remember: bool,
) -> Result<String, String> {
    let body = decide_body(reason.as_deref(), remember);
    let path = format!(
        "/v1/approvals/{}/{verb}",
        warden_core::text::percent_encode(id)
    );
    let answer = client
        .call(reqwest::Method::POST, &path, Some(body))
        .await?;
    Ok(render_outcome(id, &answer))
}

/// The body of a decision: the reason when given, `remember` only when asked for.
fn decide_body(reason: Option<&str>, remember: bool) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(r) = reason {
        body.insert("reason".to_owned(), Value::from(r));
    }
    if remember {
        body.insert("remember".to_owned(), Value::Bool(true));
    }
    Value::Object(body)
}

/// One approval request as the operator plane returns it. Fields the CLI does not print are
/// left out; missing ones default, so a newer gateway does not break an older CLI.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct View {
    id: String,
    status: String,
    action_hash: String,
    session: String,
    agent: String,
    principal: String,
    task: String,
    tool: String,
    arguments: Value,
    reason: String,
    why: String,
    rules: Vec<RuleView>,
    approvers: Vec<String>,
    quorum: u32,
    requested_at: String,
    deadline: String,
    approvals: Vec<VoteView>,
    denial: Option<VoteView>,
    decided_at: Option<String>,
    used_at: Option<String>,
    used_by: Option<String>,
    model_turns: Vec<Value>,
    remember: Vec<String>,
    earlier: Vec<EarlierView>,
    provenance: Vec<ProvenanceView>,
    reversals: Vec<ReversalView>,
}

/// A rule that determined the decision.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RuleView {
    id: String,
    tier: String,
    location: LocationView,
}

/// Where a rule is in the charter.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LocationView {
    file: String,
    line: u32,
    column: u32,
}

/// One approver's vote.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VoteView {
    approver: String,
    reason: Option<String>,
    channel: String,
    at: String,
}

fn parse_view(v: &Value) -> Result<View, String> {
    View::deserialize(v)
        .map_err(|e| format!("the operator plane sent an approval this CLI cannot read: {e}"))
}

/// The `list` table: a header, then one line per request.
fn render_list(answer: &Value, filter: StatusFilter) -> Result<String, String> {
    let views = answer
        .get("approvals")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("the operator plane sent no `approvals` list: {answer}"))?
        .iter()
        .map(parse_view)
        .collect::<Result<Vec<_>, _>>()?;
    if views.is_empty() {
        return Ok(match filter {
            StatusFilter::All => "no approval requests\n".to_owned(),
            f => format!("no {} approval requests\n", f.as_str()),
        });
    }
    let header = [
        "id",
        "tool",
        "on behalf of",
        "votes",
        "deadline",
        "earlier",
        "status",
    ]
    .map(str::to_owned);
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            [
                v.id.clone(),
                v.tool.clone(),
                v.principal.clone(),
                format!("{}/{}", v.approvals.len(), v.quorum),
                v.deadline.clone(),
                v.earlier.len().to_string(),
                v.status.clone(),
            ]
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, w) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Width of the label column in `show`.
const LABEL: usize = 14;

/// The `show` block: what a human approver needs to decide.
fn render_show(answer: &Value, now: OffsetDateTime) -> Result<String, String> {
    let v = parse_view(answer)?;
    let mut out = String::new();
    let mut field = |label: &str, value: &str| {
        let mut lines = value.lines();
        let first = lines.next().unwrap_or_default();
        let _ = writeln!(out, "{label:<LABEL$}{first}");
        for more in lines {
            let _ = writeln!(out, "{:LABEL$}{more}", "");
        }
    };
    field("approval", &v.id);
    field("status", &v.status);
    field("tool", &v.tool);
    field(
        "arguments",
        &serde_json::to_string_pretty(&v.arguments).unwrap_or_else(|_| v.arguments.to_string()),
    );
    field("agent", &v.agent);
    field("on behalf of", &v.principal);
    field("task", &v.task);
    field("session", &v.session);
    field("why", &v.why);
    field("reason", &v.reason);
    let rules = if v.rules.is_empty() {
        "(none)".to_owned()
    } else {
        v.rules
            .iter()
            .map(|r| {
                let l = &r.location;
                format!(
                    "{} ({}) at {}:{}:{}",
                    r.id, r.tier, l.file, l.line, l.column
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    field("rules", &rules);
    field("requested at", &v.requested_at);
    field(
        "deadline",
        &match remaining(&v.deadline, now) {
            Some(rel) => format!("{} ({rel})", v.deadline),
            None => v.deadline.clone(),
        },
    );
    field(
        "quorum",
        &format!("{} of {} approvals", v.approvals.len(), v.quorum),
    );
    let approvals = if v.approvals.is_empty() {
        "(none yet)".to_owned()
    } else {
        v.approvals
            .iter()
            .map(vote_line)
            .collect::<Vec<_>>()
            .join("\n")
    };
    field("approvals", &approvals);
    field(
        "may approve",
        &if v.approvers.is_empty() {
            "(nobody: no principal has authority)".to_owned()
        } else {
            v.approvers.join(", ")
        },
    );
    if let Some(d) = &v.denial {
        field("denied by", &vote_line(d));
    }
    if let Some(at) = &v.decided_at {
        field("decided at", at);
    }
    if let Some(at) = &v.used_at {
        let by = v.used_by.as_deref().unwrap_or("?");
        field("used at", &format!("{at} by {by}"));
    }
    if !v.reversals.is_empty() {
        let lines: Vec<String> = v
            .reversals
            .iter()
            .map(|r| format!("{} (denied by {})", vote_line(&r.by), r.denial.approver))
            .collect();
        field("reversed", &lines.join("\n"));
    }
    if !v.remember.is_empty() {
        field("may remember", &v.remember.join(", "));
    }
    field(
        "earlier",
        &if v.earlier.is_empty() {
            "(no earlier refusal of this action)".to_owned()
        } else {
            v.earlier
                .iter()
                .map(|e| format!("{} {} at {}", e.id, e.status, e.at))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    if !v.provenance.is_empty() {
        let lines: Vec<String> = v.provenance.iter().map(provenance_line).collect();
        field("provenance", &lines.join("\n"));
    }
    field("action hash", &v.action_hash);
    if v.model_turns.is_empty() {
        out.push_str("model turns: none recorded\n");
    } else {
        out.push_str("model turns:\n");
        for turn in &v.model_turns {
            let _ = writeln!(out, "  {}", turn_line(turn));
        }
    }
    Ok(out)
}

/// `bob at 2025-01-01T00:00:00Z via api: "reason"`.
fn vote_line(vote: &VoteView) -> String {
    let mut line = format!("{} at {} via {}", vote.approver, vote.at, vote.channel);
    if let Some(r) = &vote.reason {
        let _ = write!(line, ": {}", Value::from(r.as_str()));
    }
    line
}

/// A model turn as one JSON line: its role and text when it has them, else the whole turn.
fn turn_line(turn: &Value) -> String {
    let mut short = serde_json::Map::new();
    for key in ["role", "text"] {
        if let Some(x) = turn.get(key) {
            short.insert(key.to_owned(), x.clone());
        }
    }
    if short.is_empty() {
        turn.to_string()
    } else {
        Value::Object(short).to_string()
    }
}

/// How long until an RFC 3339 deadline (`in 4m 10s`), or `passed`; `None` if it does not parse.
fn remaining(deadline: &str, now: OffsetDateTime) -> Option<String> {
    let at = OffsetDateTime::parse(deadline, &Rfc3339).ok()?;
    let left = at - now;
    if left.is_negative() || left.is_zero() {
        return Some("passed".to_owned());
    }
    let s = left.whole_seconds();
    Some(match s {
        0..60 => format!("in {s}s"),
        60..3600 => format!("in {}m {}s", s / 60, s % 60),
        _ => format!("in {}h {}m", s / 3600, (s % 3600) / 60),
    })
}

/// The line `approve` or `deny` prints for a 200 answer.
fn render_outcome(id: &str, answer: &Value) -> String {
    let outcome = answer
        .get("outcome")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let approval = answer.get("approval");
    let votes = approval
        .and_then(|a| a.get("approvals"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let quorum = approval
        .and_then(|a| a.get("quorum"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    match outcome {
        "granted" => format!("approved {id}: granted — the action is released\n"),
        "counted" => format!("approved {id}: {votes} of {quorum} approvals recorded\n"),
        "denied" => format!("denied {id}\n"),
        "reversed" => format!("reversed the denial of {id}: it is pending again\n"),
        other => format!("{id}: {other}\n"),
    }
}

mod teach;
use teach::{EarlierView, ProvenanceView, ReversalView, provenance_line};

#[cfg(test)]
mod tests;
