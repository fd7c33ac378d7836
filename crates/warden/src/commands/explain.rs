//! `warden explain`: decide one action against a charter, without running anything.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warden_charter::load;
use warden_core::Posture;
use warden_pdp::{Controls, NoScopeUsage, Request, decide};

use crate::EXIT_USAGE;
use crate::output::Format;

/// Arguments of `warden explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The charter (file or directory).
    #[arg(long)]
    pub charter: PathBuf,
    /// The tool, as `server.tool`.
    #[arg(long)]
    pub tool: String,
    /// The arguments, as a JSON object.
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// The principal the agent acts for (an id from the charter's authority section).
    #[arg(long)]
    pub user: Option<String>,
    /// Data labels the session carries, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The gateway posture to decide under.
    #[arg(long, value_enum, default_value_t = PostureArg::Normal)]
    pub posture: PostureArg,
    /// Decide as if at this RFC 3339 time (for scope expiry); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Postures on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PostureArg {
    /// Rules as written.
    Normal,
    /// Autonomous and preapproved need approval.
    Conservative,
    /// Everything denied.
    Frozen,
}

fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// Runs `warden explain`.
pub fn execute(a: &ExplainArgs) -> ExitCode {
    let compiled = match load(&a.charter) {
        Ok(c) => c,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return usage_error("the charter does not compile; run `warden check` for details");
        }
    };
    let charter = compiled.charter;
    let args: serde_json::Value = match serde_json::from_str(&a.args) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => return usage_error("`--args` must be a JSON object"),
        Err(e) => return usage_error(&format!("`--args` is not valid JSON: {e}")),
    };
    if let Some(user) = &a.user
        && charter.authority.principal(user).is_none()
    {
        let mut known: Vec<&str> = charter.authority.principals.keys().map(|k| &**k).collect();
        known.sort_unstable();
        return usage_error(&format!(
            "unknown user `{user}`; the charter's principals are: {}",
            known.join(", ")
        ));
    }
    let mut labels: Vec<Arc<str>> = Vec::new();
    for l in a.labels.iter().filter(|l| !l.is_empty()) {
        match charter.data.labels.iter().find(|x| ***x == **l) {
            Some(x) => labels.push(x.clone()),
            None => return usage_error(&format!("unknown label `{l}`")),
        }
    }
    let now = match &a.at {
        Some(t) => match OffsetDateTime::parse(t, &Rfc3339) {
            Ok(t) => t,
            Err(e) => return usage_error(&format!("`--at` is not an RFC 3339 time: {e}")),
        },
        None => OffsetDateTime::now_utc(),
    };
    if !charter.is_inventoried(&a.tool) {
        eprintln!(
            "warning: tool `{}` is not in the charter's inventory: the gateway refuses it before any decision (what follows is what the rules alone would say)",
            a.tool
        );
    }
    let request = Request {
        tool: &a.tool,
        args: &args,
        principal: a.user.as_deref(),
        labels: &labels,
        provenance: warden_provenance::SessionProvenance::empty(),
        controls: Controls {
            posture: match a.posture {
                PostureArg::Normal => Posture::Normal,
                PostureArg::Conservative => Posture::Conservative,
                PostureArg::Frozen => Posture::Frozen,
            },
            ..Controls::default()
        },
        usage: &NoScopeUsage,
        now,
    };
    let decision = decide(&charter, &request);
    let mut out = std::io::stdout().lock();
    let printed = match a.format {
        Format::Json => {
            let mut doc = serde_json::to_value(&decision).unwrap_or_default();
            if let Some(obj) = doc.as_object_mut() {
                obj.insert("tool".to_owned(), a.tool.clone().into());
                obj.insert("summary".to_owned(), decision.summary().into());
            }
            writeln!(out, "{doc:#}")
        }
        Format::Human => {
            let rules = if decision.rules.is_empty() {
                "(none)".to_owned()
            } else {
                decision
                    .rules
                    .iter()
                    .map(|r| format!("{} [{}] at {}", r.id, r.tier, r.location))
                    .collect::<Vec<_>>()
                    .join("\n          ")
            };
            let mut text = format!(
                "verdict   {}\ntier      {}\nreason    {}\nrules     {rules}\nposture   {}\ncharter   {}\nwhy       {}\n",
                decision.verdict,
                decision.tier,
                decision.reason,
                decision.posture,
                decision.charter,
                decision.summary()
            );
            if let Some(ap) = &decision.approval {
                text.push_str(&format!(
                    "approval  quorum {} within {}s\n",
                    ap.quorum, ap.timeout_seconds
                ));
            }
            for e in &decision.errors {
                text.push_str(&format!("error     {e}\n"));
            }
            write!(out, "{text}")
        }
    };
    if printed.is_err() {
        return ExitCode::from(EXIT_USAGE);
    }
    ExitCode::SUCCESS
}
