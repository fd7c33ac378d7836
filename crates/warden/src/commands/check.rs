//! `warden check PATH`: compile a charter and report every diagnostic.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use warden_charter::{Diagnostics, load};

use crate::output::Format;
use crate::{EXIT_USAGE, EXIT_WARNINGS};

/// Arguments of `warden check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A charter file, or a directory of `*.yaml` charter files.
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Exit with status 1 when there are warnings.
    #[arg(long)]
    pub deny_warnings: bool,
}

/// Runs `warden check`.
pub fn execute(args: &CheckArgs) -> ExitCode {
    let (diagnostics, summary) = match load(&args.path) {
        Ok(compiled) => {
            let summary = Some((
                compiled.charter.identity.id.clone(),
                compiled.charter.rules.len(),
                compiled
                    .charter
                    .inventory
                    .servers
                    .iter()
                    .map(|s| s.tools.len())
                    .sum::<usize>(),
                compiled.charter.hash.to_prefixed_hex(),
            ));
            (compiled.warnings, summary)
        }
        Err(diagnostics) => (diagnostics, None),
    };
    let errors = diagnostics.errors().count();
    let warnings = diagnostics.warnings().count();
    let mut out = std::io::stdout().lock();
    let printed = match args.format {
        Format::Human => print_human(
            &mut out,
            &args.path,
            &diagnostics,
            summary.as_ref(),
            errors,
            warnings,
        ),
        Format::Json => {
            let doc = serde_json::json!({
                "valid": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "charter": summary.as_ref().map(|(id, rules, tools, hash)| serde_json::json!({
                    "agent": id, "rules": rules, "tools": tools, "hash": hash,
                })),
                "diagnostics": diagnostics,
            });
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
    path: &std::path::Path,
    diagnostics: &Diagnostics,
    summary: Option<&(String, usize, usize, String)>,
    errors: usize,
    warnings: usize,
) -> std::io::Result<()> {
    write!(out, "{diagnostics}")?;
    match summary {
        Some((id, rules, tools, hash)) => writeln!(
            out,
            "{}: valid charter for agent `{id}`: {rules} rules, {tools} tools, {warnings} warning(s), {hash}",
            path.display()
        ),
        None => writeln!(
            out,
            "{}: invalid charter: {errors} error(s), {warnings} warning(s)",
            path.display()
        ),
    }
}
