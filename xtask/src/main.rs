//! Repository tasks, run as `cargo xtask <task>` (the alias is in `.cargo/config.toml`).
//!
//! - `check-deps`: compares every workspace crate's internal dependencies, as `cargo metadata`
//!   reports them, with the crate map in `check_deps.rs`.

use std::process::ExitCode;

mod check_deps;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  check-deps   check the workspace's internal dependencies against the crate map";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["check-deps"] => check_deps::run(),
        ["help" | "-h" | "--help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(64)
        }
    }
}
