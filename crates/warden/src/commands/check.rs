//! `warden check PATH...` / `warden check --charters DIR`: compile a charter, or a charter
//! set, and report every diagnostic.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use warden_charter::{CompiledCharter, Diagnostics, load_set, set_directory};

use crate::output::Format;
use crate::{EXIT_USAGE, EXIT_WARNINGS};

/// Arguments of `warden check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A charter file, or a directory of `*.yaml` charter files; several are checked as one
    /// charter set (one charter per agent).
    #[arg(required_unless_present = "charters", conflicts_with = "charters")]
    pub paths: Vec<PathBuf>,
    /// A charter set directory: every subdirectory is one agent's charter, YAML files directly
    /// in it are shared documents the charters include.
    #[arg(long, value_name = "DIR")]
    pub charters: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Exit with status 1 when there are warnings.
    #[arg(long)]
    pub deny_warnings: bool,
}

/// What the summary says of one charter: agent, rules, tools, hash.
struct Summary {
    agent: String,
    rules: usize,
    tools: usize,
    hash: String,
}

impl Summary {
    fn of(c: &CompiledCharter) -> Summary {
        Summary {
            agent: c.identity.id.clone(),
            rules: c.rules.len(),
            tools: c.inventory.servers.iter().map(|s| s.tools.len()).sum(),
            hash: c.hash.to_prefixed_hex(),
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": self.agent, "rules": self.rules, "tools": self.tools, "hash": self.hash,
        })
    }
}

/// Runs `warden check`.
pub fn execute(args: &CheckArgs) -> ExitCode {
    // The set as the gateway would load it: one path is a set of one charter (a delegation to
    // an agent not loaded is an error there too).
    let (paths, set_label) = match &args.charters {
        Some(dir) => match set_directory(dir) {
            Ok(paths) => (paths, Some(dir.display().to_string())),
            Err(diagnostics) => {
                return report(args, &dir.display().to_string(), true, &diagnostics, None);
            }
        },
        None => (args.paths.clone(), None),
    };
    let label = set_label.clone().unwrap_or_else(|| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    });
    let set = set_label.is_some() || paths.len() > 1;
    match load_set(&paths) {
        Ok(loaded) => {
            let summaries: Vec<Summary> = loaded.set.iter().map(|c| Summary::of(c)).collect();
            report(args, &label, set, &loaded.warnings, Some(&summaries))
        }
        Err(diagnostics) => report(args, &label, set, &diagnostics, None),
    }
}

/// Prints the diagnostics and the summary (`valid`: the charters, when they all compiled and
/// the set holds together); `set`: several charters or a set directory were checked.
fn report(
    args: &CheckArgs,
    label: &str,
    set: bool,
    diagnostics: &Diagnostics,
    valid: Option<&[Summary]>,
) -> ExitCode {
    let errors = diagnostics.errors().count();
    let warnings = diagnostics.warnings().count();
    let mut out = std::io::stdout().lock();
    let printed = match args.format {
        Format::Human => print_human(&mut out, label, set, diagnostics, valid, (errors, warnings)),
        Format::Json => {
            // One charter: the shape `warden check` always had (`charter`); a set: `charters`.
            let (key, summary) = match (set, valid) {
                (false, Some([one])) => ("charter", one.json()),
                (false, _) => ("charter", serde_json::Value::Null),
                (true, all) => (
                    "charters",
                    all.map_or(serde_json::Value::Null, |all| {
                        all.iter().map(Summary::json).collect()
                    }),
                ),
            };
            let mut doc = serde_json::Map::new();
            doc.insert("valid".into(), (errors == 0).into());
            doc.insert("errors".into(), errors.into());
            doc.insert("warnings".into(), warnings.into());
            doc.insert(key.into(), summary);
            doc.insert(
                "diagnostics".into(),
                serde_json::to_value(diagnostics).unwrap_or_default(),
            );
            let doc = serde_json::Value::Object(doc);
            writeln!(out, "{doc:#}")
        }
    };
    if printed.is_err() {
        return ExitCode::from(EXIT_USAGE);
    }
    if errors > 0 {
        ExitCode::from(EXIT_USAGE)
    } else if warnings > 0 && args.deny_warnings {
        ExitCode::from(EXIT_WARNINGS)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_human(
    out: &mut impl Write,
    label: &str,
    set: bool,
    diagnostics: &Diagnostics,
    valid: Option<&[Summary]>,
    (errors, warnings): (usize, usize),
) -> std::io::Result<()> {
    write!(out, "{diagnostics}")?;
    match (set, valid) {
        (false, Some([s])) => writeln!(
            out,
            "{label}: valid charter for agent `{}`: {} rules, {} tools, {warnings} warning(s), {}",
            s.agent, s.rules, s.tools, s.hash
        ),
        (_, Some(all)) => {
            let agents: Vec<String> = all.iter().map(|s| format!("`{}`", s.agent)).collect();
            writeln!(
                out,
                "{label}: valid charter set of {} agents ({}), {warnings} warning(s)",
                all.len(),
                agents.join(", ")
            )?;
            for s in all {
                writeln!(
                    out,
                    "  agent `{}`: {} rules, {} tools, {}",
                    s.agent, s.rules, s.tools, s.hash
                )?;
            }
            Ok(())
        }
        (true, None) => writeln!(
            out,
            "{label}: invalid charter set: {errors} error(s), {warnings} warning(s)"
        ),
        (false, None) => writeln!(
            out,
            "{label}: invalid charter: {errors} error(s), {warnings} warning(s)"
        ),
    }
}
