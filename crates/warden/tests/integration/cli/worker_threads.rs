//! `TOKIO_WORKER_THREADS`, which docs/deployment.md suggests for a small machine: a bad value is
//! refused with exit 64 and a clear message, never tokio's panic; a good one runs the command.

use std::process::{Command, Output};

use super::repo;

/// `warden charter show` against nothing, with `TOKIO_WORKER_THREADS` set to `value`.
fn charter_show_with(value: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["charter", "show", "--operator-url", "http://127.0.0.1:9"])
        .args(["--data", "/nonexistent/warden-data"])
        .env("TOKIO_WORKER_THREADS", value)
        .env_remove("WARDEN_OPERATOR_TOKEN")
        .current_dir(repo())
        .output()
        .expect("run warden")
}

#[test]
fn a_bad_worker_thread_count_is_refused_with_exit_64_not_a_panic() {
    let huge = "7".repeat(10_000);
    for bad in ["", "0", "-3", "1025", "lots", "2.5", huge.as_str()] {
        let out = charter_show_with(bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{bad:.20}: {stderr}");
        assert!(
            stderr.starts_with("error: TOKIO_WORKER_THREADS must be a whole number from 1 to 1024"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.len() < 200,
            "the value is not echoed whole: {stderr}"
        );
    }
}

#[test]
fn a_good_worker_thread_count_runs_the_command() {
    for good in ["1", " 2 ", "1024"] {
        let out = charter_show_with(good);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Past the runtime: the command itself then finds no operator token.
        assert!(stderr.contains("no operator token"), "{good}: {stderr}");
        assert!(!stderr.contains("TOKIO_WORKER_THREADS"), "{stderr}");
    }
}
