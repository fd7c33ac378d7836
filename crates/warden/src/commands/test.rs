//! `warden test PATH`: run a charter's test cases (YAML beside the charter) and report every
//! failure with the file:line of the case and of the rules involved; non-zero on any failure.
//!
//! The cases are `PATH/tests/*.yaml` for a charter directory, `tests/*.yaml` beside a charter
//! file, or what `--tests` names. Exit 0 every case passed, 1 a case failed, 64 the charter
//! does not compile, a case file cannot be read or is malformed, or there is no case.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use time::OffsetDateTime;
use warden_charter::{CompiledCharter, Source, load};
use warden_pdp::cases::{self, Case, MAX_CASE_FILE_BYTES, MAX_CASE_FILES, Outcome};

use crate::EXIT_USAGE;
use crate::output::Format;

/// A case failed.
pub const EXIT_FAILED: u8 = 1;

/// Arguments of `warden test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The charter (file or directory) whose tests to run.
    pub path: PathBuf,
    /// The case file, or a directory of `*.yaml` case files; default `tests/` in the charter
    /// directory (beside a charter file).
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub tests: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// Runs `warden test`.
pub fn execute(a: &TestArgs) -> ExitCode {
    let charter = match load(&a.path) {
        Ok(c) => c.charter,
        Err(diagnostics) => {
            eprint!("{diagnostics}");
            return usage_error(
                a.format,
                &[format!(
                    "{}: the charter does not compile; run `warden check` for details",
                    a.path.display()
                )],
            );
        }
    };
    let location = a.tests.clone().unwrap_or_else(|| default_tests(&a.path));
    let sources = match read_cases(&location) {
        Ok(s) => s,
        Err(errors) => return usage_error(a.format, &errors),
    };
    let mut all: Vec<Case> = Vec::new();
    let mut errors = Vec::new();
    for source in &sources {
        match cases::parse(&charter, source) {
            Ok(c) => all.extend(c),
            Err(e) => errors.extend(e.iter().map(ToString::to_string)),
        }
    }
    if !errors.is_empty() {
        return usage_error(a.format, &errors);
    }
    let now = OffsetDateTime::now_utc();
    let outcomes: Vec<(&Case, Outcome)> = all
        .iter()
        .map(|c| (c, cases::run(&charter, c, now)))
        .collect();
    let failed = outcomes.iter().filter(|(_, o)| !o.passed()).count();
    let passed = outcomes.len().saturating_sub(failed);
    let mut out = std::io::stdout().lock();
    let printed = match a.format {
        Format::Human => print_human(&mut out, &charter, &outcomes, passed, failed),
        Format::Json => {
            let doc = serde_json::json!({
                "charter": charter.hash.to_prefixed_hex(),
                "passed": passed,
                "failed": failed,
                "cases": outcomes.iter().map(|(c, o)| case_json(&charter, c, o)).collect::<Vec<_>>(),
            });
            writeln!(out, "{doc:#}")
        }
    };
    if printed.is_err() {
        return ExitCode::from(EXIT_USAGE);
    }
    if failed > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `tests/` in a charter directory, or beside a charter file.
fn default_tests(charter: &Path) -> PathBuf {
    if charter.is_dir() {
        charter.join("tests")
    } else {
        match charter.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.join("tests"),
            _ => PathBuf::from("tests"),
        }
    }
}

/// The case files: one file, or every `*.yaml`/`*.yml` entry of a directory in name order,
/// each a regular file of at most [`MAX_CASE_FILE_BYTES`], at most [`MAX_CASE_FILES`] of them.
fn read_cases(location: &Path) -> Result<Vec<Source>, Vec<String>> {
    let shown = location.display();
    let meta = std::fs::metadata(location).map_err(|e| {
        vec![format!(
            "{shown}: cannot read the test cases: {e}; put them in `tests/*.yaml` beside the charter, or name them with `--tests`"
        )]
    })?;
    let files: Vec<PathBuf> = if meta.is_dir() {
        let entries = std::fs::read_dir(location)
            .map_err(|e| vec![format!("{shown}: cannot list the test cases: {e}")])?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            // As for charter files: a FIFO or a device named `*.yaml` is refused, not skipped.
            .filter(|p| {
                !p.is_dir()
                    && p.extension().is_some_and(|x| {
                        x.eq_ignore_ascii_case("yaml") || x.eq_ignore_ascii_case("yml")
                    })
            })
            .take(MAX_CASE_FILES.saturating_add(1))
            .collect();
        if files.len() > MAX_CASE_FILES {
            return Err(vec![format!(
                "{shown}: more than {MAX_CASE_FILES} case files"
            )]);
        }
        files.sort();
        if files.is_empty() {
            return Err(vec![format!(
                "{shown}: no test cases (`*.yaml` files); a test run with nothing to run fails"
            )]);
        }
        files
    } else {
        vec![location.to_path_buf()]
    };
    let mut sources = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for file in files {
        let name = file.display().to_string();
        match warden_core::small_file::read_text(&file, MAX_CASE_FILE_BYTES) {
            Ok(text) => sources.push(Source::new(name, text)),
            Err(e) => errors.push(format!("{name}: cannot read the case file: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(errors)
    }
}

/// Bad input: each error on stderr (and, for `--format json`, a JSON document on stdout).
fn usage_error(format: Format, errors: &[String]) -> ExitCode {
    for e in errors {
        eprintln!("error: {e}");
    }
    if format == Format::Json {
        println!("{:#}", serde_json::json!({ "errors": errors }));
    }
    ExitCode::from(EXIT_USAGE)
}

/// Every rule a case involves: the determining rules reached, then any expected one not among
/// them, each `id at file:line:col`.
fn rules_involved(charter: &CompiledCharter, case: &Case, outcome: &Outcome) -> Vec<String> {
    let mut ids: Vec<&str> = outcome.rules.iter().map(|r| &*r.id).collect();
    for id in case.expect.rules.iter().flatten() {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    ids.iter()
        .map(|id| match charter.rule(id) {
            Some(r) => format!("{id} at {}", r.location()),
            None => (*id).to_owned(),
        })
        .collect()
}

fn print_human(
    out: &mut impl Write,
    charter: &CompiledCharter,
    outcomes: &[(&Case, Outcome)],
    passed: usize,
    failed: usize,
) -> std::io::Result<()> {
    for (case, outcome) in outcomes.iter().filter(|(_, o)| !o.passed()) {
        let rules = rules_involved(charter, case, outcome);
        writeln!(
            out,
            "{}:{}: case {}: {} — rules: {}",
            case.location.file,
            case.location.line,
            case.name,
            outcome.failures.join("; "),
            if rules.is_empty() {
                "(none)".to_owned()
            } else {
                rules.join(", ")
            }
        )?;
    }
    writeln!(out, "{passed} passed, {failed} failed")
}

fn case_json(charter: &CompiledCharter, case: &Case, o: &Outcome) -> serde_json::Value {
    serde_json::json!({
        "file": &*case.location.file,
        "line": case.location.line,
        "column": case.location.column,
        "name": case.name,
        "tool": case.tool,
        "passed": o.passed(),
        "failures": o.failures,
        "expected": {
            "verdict": case.expect.verdict,
            "tier": case.expect.tier,
            "rules": case.expect.rules,
            "reason": case.expect.reason.map(|r| r.as_str()),
        },
        "got": {
            "verdict": o.verdict,
            "tier": o.tier,
            "reason": o.reason,
            "rules": o.rules,
            "detail": o.decision.as_ref().and_then(|d| d.detail.clone()),
        },
        "rules_involved": rules_involved(charter, case, o),
    })
}
