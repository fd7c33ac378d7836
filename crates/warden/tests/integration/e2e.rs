#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! The end-to-end suite: `tests/e2e/` (Python, pytest) run against this build of `warden`,
//! with real peers — the npm MCP reference servers as upstreams and the Python MCP SDK as the
//! agent. `scripts/test.sh` installs the peers (`npm ci` into `node_modules`, and a virtual
//! environment at `.venv` from `requirements-test.txt`); without them this test fails, it
//! never passes silently.

use super::common;

use common::repo;
use std::process::Command;
use std::time::Instant;

#[test]
fn end_to_end_suite_with_real_mcp_peers() {
    let root = repo();
    let python = root.join(".venv/bin/python");
    let servers = [
        "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
        "node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    ];
    let mut missing: Vec<String> = Vec::new();
    if !python.exists() {
        missing.push(python.display().to_string());
    }
    missing.extend(
        servers
            .iter()
            .map(|s| root.join(s))
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string()),
    );
    assert!(
        missing.is_empty(),
        "the end-to-end test peers are not installed (missing: {}); run scripts/test.sh, which \
         installs them (`npm ci` and a Python virtual environment at .venv)",
        missing.join(", ")
    );

    let started = Instant::now();
    let output = Command::new(&python)
        .args(["-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider"])
        // Run by its own test below.
        .args(
            OWN_TEST_FILES
                .iter()
                .map(|f| format!("--ignore=tests/e2e/{f}")),
        )
        .current_dir(&root)
        .env("WARDEN_BIN", env!("CARGO_BIN_EXE_warden"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_E2E_STORE")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the end-to-end suite failed ({}) after {:.1}s\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status,
        started.elapsed().as_secs_f64()
    );
    // The last line is pytest's summary, e.g. `41 passed, 9 xfailed in 30.2s`.
    let summary = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        summary.contains(" passed"),
        "pytest ran no test:\n{stdout}\n{stderr}"
    );
    println!("end-to-end suite: {summary}");
}

/// The whole end-to-end suite a second time, every file of it, with every gateway on
/// PostgreSQL (`WARDEN_E2E_STORE=postgres`): each gateway gets a fresh database of its own in
/// the cluster of `WARDEN_TEST_PG_URL` (`scripts/test.sh` starts one), or in a cluster of this
/// test's own. The ledger is read, verified, tampered with and replayed in the store
/// (`--store URL --instance ID`); a full disk is PostgreSQL's own `disk_full` error on the
/// ledger's writes, and `test_fail_closed.py` adds the store going away. What reads a data
/// directory's files only is skipped there, each skip saying why (pytest's `-ra` summary
/// lists them): `warden audit search` and the console's search (the search index beside a
/// SQLite ledger).
#[test]
fn end_to_end_suite_on_postgresql() {
    let root = repo();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "the end-to-end test peers are not installed; run scripts/test.sh"
    );
    let (base, _cluster) = match std::env::var(warden_testkit::postgres::TEST_PG_URL) {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let cluster = warden_testkit::postgres::Cluster::start().expect("a PostgreSQL cluster");
            (cluster.base_url(), Some(cluster))
        }
    };
    let started = Instant::now();
    let output = Command::new(&python)
        .args(["-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider"])
        .current_dir(&root)
        .env("WARDEN_BIN", env!("CARGO_BIN_EXE_warden"))
        .env("WARDEN_E2E_STORE", "postgres")
        .env(warden_testkit::postgres::TEST_PG_URL, &base)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_STORE")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(" passed"),
        "the end-to-end suite on PostgreSQL failed ({}) after {:.1}s\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status,
        started.elapsed().as_secs_f64()
    );
    let summary = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    println!("end-to-end suite on PostgreSQL: {summary}");
}

/// The end-to-end files run by a test of their own (below), in parallel with the suite.
const OWN_TEST_FILES: &[&str] = &["test_replay.py", "test_reload.py", "test_agents.py"];

/// `warden replay` of a session a real gateway recorded (`tests/e2e/test_replay.py`).
#[test]
fn end_to_end_replay_of_a_recorded_session() {
    run_own_file("test_replay.py", "replay");
}

/// Live reload of the charter on a real gateway (`tests/e2e/test_reload.py`): `warden charter
/// reload` and `SIGHUP` change the next decision, a broken file is refused, the observer
/// follows.
#[test]
fn end_to_end_live_reload_of_the_charter() {
    run_own_file("test_reload.py", "live reload");
}

/// Many agents in one gateway (`tests/e2e/test_agents.py`): three charters, delegation
/// through the API and through MCP (an agent exposed as an MCP server), the chain in the
/// ledger, the refusals.
#[test]
fn end_to_end_agents_in_one_gateway() {
    run_own_file("test_agents.py", "agents");
}

/// Runs one end-to-end file of [`OWN_TEST_FILES`] with pytest; fails with its output.
fn run_own_file(file: &str, what: &str) {
    assert!(
        OWN_TEST_FILES.contains(&file),
        "{file} is not in OWN_TEST_FILES"
    );
    let root = repo();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "the end-to-end test peers are not installed; run scripts/test.sh"
    );
    let output = Command::new(&python)
        .args([
            "-m",
            "pytest",
            &format!("tests/e2e/{file}"),
            "-q",
            "-p",
            "no:cacheprovider",
        ])
        .current_dir(&root)
        .env("WARDEN_BIN", env!("CARGO_BIN_EXE_warden"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("WARDEN_DATA")
        .env_remove("WARDEN_CONFIG")
        .env_remove("WARDEN_E2E_STORE")
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(" passed"),
        "the {what} end-to-end test failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
}
