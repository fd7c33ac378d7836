//! `warden init KIND`: write a starter charter for a named kind of agent (coding, support,
//! finance, data) that passes `warden check --deny-warnings` and `warden test`, with comments
//! that teach the format.
//!
//! It writes `DIR/charter.yaml` and `DIR/tests/basic.yaml` (0644, created new: an existing
//! file is never overwritten, and nothing is written when either exists), then prints what it
//! wrote and the next commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use crate::EXIT_USAGE;

/// Arguments of `warden init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The kind of agent: coding, support, finance or data.
    pub kind: String,
    /// The directory to write the charter and its tests into (created; never overwritten).
    #[arg(long, default_value = "charter")]
    pub dir: PathBuf,
}

/// A starter: the kind's name, its charter and its test cases.
struct Template {
    kind: &'static str,
    charter: &'static str,
    tests: &'static str,
}

/// Every kind `warden init` knows.
const TEMPLATES: &[Template] = &[
    Template {
        kind: "coding",
        charter: include_str!("init/coding/charter.yaml"),
        tests: include_str!("init/coding/tests/basic.yaml"),
    },
    Template {
        kind: "support",
        charter: include_str!("init/support/charter.yaml"),
        tests: include_str!("init/support/tests/basic.yaml"),
    },
    Template {
        kind: "finance",
        charter: include_str!("init/finance/charter.yaml"),
        tests: include_str!("init/finance/tests/basic.yaml"),
    },
    Template {
        kind: "data",
        charter: include_str!("init/data/charter.yaml"),
        tests: include_str!("init/data/tests/basic.yaml"),
    },
];

/// Runs `warden init`.
pub fn execute(a: &InitArgs) -> ExitCode {
    let Some(template) = TEMPLATES.iter().find(|t| t.kind == a.kind) else {
        let kinds: Vec<&str> = TEMPLATES.iter().map(|t| t.kind).collect();
        eprintln!(
            "error: unknown kind `{}`; the kinds are: {}",
            a.kind,
            kinds.join(", ")
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let charter = a.dir.join("charter.yaml");
    let tests = a.dir.join("tests").join("basic.yaml");
    // Refuse before writing anything, so a refusal leaves the directory as it was.
    for file in [&charter, &tests] {
        if std::fs::symlink_metadata(file).is_ok() {
            eprintln!(
                "error: `{}` exists; `warden init` never overwrites a file (choose another `--dir`)",
                file.display()
            );
            return ExitCode::from(EXIT_USAGE);
        }
    }
    for (file, text) in [(&charter, template.charter), (&tests, template.tests)] {
        if let Err(e) = write_new(file, text) {
            eprintln!("error: cannot write `{}`: {e}", file.display());
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let dir = a.dir.display();
    println!(
        "wrote a starter charter for a {} agent:\n  {}\n  {}\n\nnext:\n  warden check {dir}\n  warden test {dir}\n  warden serve --charter {dir}",
        template.kind,
        charter.display(),
        tests.display()
    );
    ExitCode::SUCCESS
}

/// Creates `path` (and its directory) with `text`, mode 0644; fails if it exists.
fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
