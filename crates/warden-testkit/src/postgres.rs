//! Throwaway PostgreSQL for tests: a database of its own per test, in the cluster the test
//! command started (`WARDEN_TEST_PG_URL`, see `scripts/test.sh`), or, when that is not set, in
//! a cluster of the test's own ([`Cluster`]: `initdb` in a temporary directory, a free port,
//! removed when dropped). A test that stops and restarts PostgreSQL always takes a cluster of
//! its own.
//!
//! PostgreSQL must be installed (Debian's `postgresql` package: the binaries are looked for in
//! `/usr/lib/postgresql/*/bin`, then on `PATH`); `initdb` refuses to run as root, so as root
//! the cluster belongs to the `postgres` user (`runuser`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The environment variable naming a running cluster's URL without a database
/// (`postgres://warden@127.0.0.1:PORT`), where each test makes its own database.
pub const TEST_PG_URL: &str = "WARDEN_TEST_PG_URL";

/// A PostgreSQL cluster in a temporary directory, stopped and removed when dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    /// `initdb` and start a new cluster on a free loopback port (trust authentication, user
    /// `warden`, `fsync` on).
    pub fn start() -> anyhow::Result<Cluster> {
        let bin = bin_dir().context(
            "PostgreSQL is not installed (install Debian's `postgresql` package; scripts/test.sh does)",
        )?;
        // `/proc/self` belongs to the process's effective user.
        let as_postgres =
            std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) == 0;
        let dir = tempfile::Builder::new().prefix("warden-pg-").tempdir()?;
        let data = dir.path().join("data");
        if as_postgres {
            chown_postgres(dir.path())?;
        }
        let mut cmd = pg_command(&bin, "initdb", as_postgres);
        cmd.args(["-D"])
            .arg(&data)
            .args(["-A", "trust", "-U", "warden", "--no-sync"]);
        run_quiet(cmd).context("initdb")?;
        let port = free_port()?;
        let cluster = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        cluster.start_server()?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the server (again, after [`Cluster::stop`]), waiting until it accepts
    /// connections.
    pub fn start_server(&self) -> anyhow::Result<()> {
        let mut cmd = pg_command(&self.bin, "pg_ctl", self.as_postgres);
        cmd.arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
                self.port,
                self.dir.path().display()
            ))
            .arg("start");
        run_quiet(cmd).context("pg_ctl start")
    }

    /// Stops the server at once (`-m immediate`: as if it crashed), waiting until it is down.
    pub fn stop(&self) -> anyhow::Result<()> {
        let mut cmd = pg_command(&self.bin, "pg_ctl", self.as_postgres);
        cmd.arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"]);
        run_quiet(cmd).context("pg_ctl stop")
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's URL without a database, as user `warden`.
    pub fn base_url(&self) -> String {
        format!("postgres://warden@127.0.0.1:{}", self.port)
    }

    /// The URL of database `db` as user `warden`.
    pub fn url(&self, db: &str) -> String {
        format!("{}/{db}", self.base_url())
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A fresh, empty database for one test: in the test command's cluster when
/// `WARDEN_TEST_PG_URL` is set, otherwise in a cluster of its own (kept as long as this value).
#[derive(Debug)]
pub struct TestDb {
    url: String,
    _cluster: Option<Cluster>,
}

impl TestDb {
    /// Makes the database (`warden_test_<pid>_<n>`).
    pub async fn new() -> anyhow::Result<TestDb> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "warden_test_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (base, cluster) = match std::env::var(TEST_PG_URL) {
            Ok(url) if !url.is_empty() => (url.trim_end_matches('/').to_owned(), None),
            _ => {
                let c = tokio::task::spawn_blocking(Cluster::start).await??;
                (c.base_url(), Some(c))
            }
        };
        let admin_url = format!("{base}/postgres");
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .with_context(|| format!("cannot connect to {admin_url}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        Ok(TestDb {
            url: format!("{base}/{name}"),
            _cluster: cluster,
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn pg_command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn chown_postgres(dir: &Path) -> anyhow::Result<()> {
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(dir)
        .status()
        .context("chown")?;
    if !status.success() {
        bail!("cannot give `{}` to the postgres user", dir.display());
    }
    Ok(())
}

fn run_quiet(mut cmd: Command) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        drop(l);
        if port > 1024 || Instant::now() > deadline {
            return Ok(port);
        }
    }
}
