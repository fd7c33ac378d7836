//! `warden explain`: decide one action against a charter, without running anything.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use warden_charter::CompiledCharter;
use warden_charter::load;
use warden_core::{ArgProvenance, Posture, TrustedSource};
use warden_pdp::explain::{self, ExplainError, Typed};
use warden_provenance::{Limits, Origin, SessionProvenance};

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
    /// The session's task: trusted text (what `in_task` looks for, and CEL's `task`).
    #[arg(long)]
    pub task: Option<String>,
    /// An instruction added for the principal during the session: trusted text (repeatable).
    #[arg(long = "instruction", value_name = "TEXT")]
    pub instructions: Vec<String>,
    /// A result the session read, as `LABELS:FILE`: the content of FILE carrying those
    /// comma-separated labels (repeatable; numbered as ledger sequence 1, 2, … in order).
    /// Only its untrusted labels make it indexed, as in the gateway.
    #[arg(long = "result", value_name = "LABELS:FILE")]
    pub results: Vec<String>,
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
    let args = match explain::parse_args(&a.args) {
        Ok(v) => v,
        Err(ExplainError::ArgsNotJson(e)) => {
            return usage_error(&format!("`--args` is not valid JSON: {e}"));
        }
        Err(ExplainError::ArgsNotObject) => {
            return usage_error("`--args` must be a JSON object");
        }
        Err(e) => return usage_error(&e.to_string()),
    };
    if let Err(e) = explain::check_user(&charter, a.user.as_deref()) {
        return usage_error(&e.to_string());
    }
    let labels = match explain::resolve_labels(&charter, &a.labels) {
        Ok(l) => l,
        Err(e) => return usage_error(&e.to_string()),
    };
    let now = match &a.at {
        Some(t) => match OffsetDateTime::parse(t, &Rfc3339) {
            Ok(t) => t,
            Err(e) => return usage_error(&format!("`--at` is not an RFC 3339 time: {e}")),
        },
        None => OffsetDateTime::now_utc(),
    };
    let provenance = match session_provenance(a, &charter) {
        Ok(p) => p,
        Err(message) => return usage_error(&message),
    };
    if !charter.is_inventoried(&a.tool) {
        eprintln!(
            "warning: tool `{}` is not in the charter's inventory: the gateway refuses it before any decision (what follows is what the rules alone would say)",
            a.tool
        );
    }
    let decision = explain::explain(
        &charter,
        &Typed {
            tool: &a.tool,
            args: &args,
            user: a.user.as_deref(),
            labels: &labels,
            provenance: &provenance,
            posture: match a.posture {
                PostureArg::Normal => Posture::Normal,
                PostureArg::Conservative => Posture::Conservative,
                PostureArg::Frozen => Posture::Frozen,
            },
            now,
        },
    );
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
            for p in &decision.provenance {
                text.push_str(&provenance_line(p));
            }
            write!(out, "{text}")
        }
    };
    if printed.is_err() {
        return ExitCode::from(EXIT_USAGE);
    }
    ExitCode::SUCCESS
}

/// The session provenance of `--task`, `--instruction` and `--result`, as the gateway builds
/// it: trusted text first, then each result indexed under its untrusted labels (a file larger
/// than the untrusted bound is read up to it and marks the index incomplete).
fn session_provenance(
    a: &ExplainArgs,
    charter: &CompiledCharter,
) -> Result<SessionProvenance, String> {
    let limits = Limits::default();
    let mut p = SessionProvenance::new(limits);
    let trusted = a.task.iter().map(|t| (t, TrustedSource::Task)).chain(
        a.instructions
            .iter()
            .map(|t| (t, TrustedSource::Instruction { seq: None })),
    );
    for (text, source) in trusted {
        p.add_trusted(text, source.clone())
            .map_err(|e| format!("{source}: {e}"))?;
    }
    for (i, spec) in a.results.iter().enumerate() {
        let seq = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        let (labels, file) = split_result(spec, charter)?;
        let untrusted: Vec<Arc<str>> = labels
            .into_iter()
            .filter(|l| charter.data.untrusted.contains(l))
            .collect();
        let (content, whole) = read_bounded(&file, limits.max_untrusted_bytes)
            .map_err(|e| format!("`--result {spec}`: cannot read `{file}`: {e}"))?;
        if untrusted.is_empty() {
            eprintln!(
                "warning: result #{seq} carries no label marked `untrusted: true`, so it is not indexed"
            );
            continue;
        }
        p.add_untrusted(
            &content,
            Origin {
                seq,
                labels: untrusted,
            },
        );
        if !whole {
            eprintln!(
                "warning: result #{seq} is larger than {} bytes: the index is incomplete",
                limits.max_untrusted_bytes
            );
            p.mark_incomplete();
        }
    }
    Ok(p)
}

/// Splits `LABELS:FILE` at the first `:` before which every comma-separated label is declared
/// (label ids and paths may both hold `:`).
fn split_result(spec: &str, charter: &CompiledCharter) -> Result<(Vec<Arc<str>>, String), String> {
    let resolve = |labels: &str| -> Option<Vec<Arc<str>>> {
        labels
            .split(',')
            .map(|l| {
                charter
                    .data
                    .labels
                    .iter()
                    .find(|x| ***x == *l.trim())
                    .cloned()
            })
            .collect()
    };
    for (at, _) in spec.match_indices(':') {
        let (labels, rest) = spec.split_at(at);
        let file = rest.get(1..).unwrap_or_default();
        if let Some(l) = resolve(labels).filter(|_| !file.is_empty()) {
            return Ok((l, file.to_owned()));
        }
    }
    Err(format!(
        "`--result {spec}`: expected `LABELS:FILE` with labels declared under `data.labels` (declared: {})",
        charter
            .data
            .labels
            .iter()
            .map(|l| &**l)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// At most `limit` bytes of `path` (lossy UTF-8), and whether that was all of it.
fn read_bounded(path: &str, limit: usize) -> std::io::Result<(String, bool)> {
    use std::io::Read;
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    std::fs::File::open(path)?.take(cap).read_to_end(&mut buf)?;
    let whole = buf.len() <= limit;
    buf.truncate(limit);
    Ok((String::from_utf8_lossy(&buf).into_owned(), whole))
}

/// One judged value, for people: where it was found.
fn provenance_line(p: &ArgProvenance) -> String {
    let mut line = format!(
        "argument  {} = {:?} (rule {}): ",
        p.argument, p.value, p.rule
    );
    let mut found: Vec<String> = Vec::new();
    if let Some(source) = &p.trusted {
        found.push(format!("trusted text ({source})"));
    }
    for f in &p.found {
        let labels: Vec<&str> = f.labels.iter().map(|l| &**l).collect();
        found.push(format!(
            "result #{} under label {} ({} `{}`)",
            f.seq,
            labels.join(", "),
            f.kind,
            f.part
        ));
    }
    if p.incomplete && p.trusted.is_none() {
        found.push(
            "not stated in trusted text, and the index is incomplete (counted as untrusted)"
                .to_owned(),
        );
    }
    if found.is_empty() {
        found.push("found nowhere (not stated in trusted text, not in any result read)".to_owned());
    }
    line.push_str(&found.join("; "));
    line.push('\n');
    line
}
