//! A fleet in-process, for tests: `n` real gateways (`gw-a`, `gw-b`, …) on one PostgreSQL
//! database, each with its own data directory and its own `--instance`, all on the same
//! charter in front of one echo MCP server, with helpers that speak to instance `i` as an
//! orchestrator, an agent and an approver would, and that read every instance's ledger chain
//! from the store.
//!
//! ```no_run
//! # async fn example() {
//! use warden_testkit::fleet::Fleet;
//! use warden_testkit::postgres::TestDb;
//!
//! let db = TestDb::new().await.unwrap();
//! let fleet = Fleet::start(3, |echo_url| format!("version: 1\n# … naming {echo_url}"), db.url()).await;
//! let (_session, token) = fleet.instances[0].open_session("1h").await;
//! let answer = fleet.instances[2].call(&token, "hello").await;
//! # let _ = answer;
//! # }
//! ```
//!
//! The first instance starts alone (it migrates the schema and creates the bootstrap operator
//! token, which every instance then accepts, since credentials live in the store); the others
//! start after it. Everything here panics on failure: it is test code, and a failed step is a
//! failed test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed step is a failed test"
)]

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use warden_core::store::PostgresUrl;
use warden_core::{InstanceId, StoreLocation, SystemClock};
use warden_gateway::{AppState, Config, Gateway, RunningGateway};

use crate::harness::test_config;
use crate::planes::Planes;

/// The instance id of instance `i`: `gw-a`, `gw-b`, … (`gw-26`, … past the alphabet).
pub fn instance_name(i: usize) -> String {
    match u8::try_from(i).ok().filter(|i| *i < 26) {
        Some(i) => format!("gw-{}", char::from(b'a' + i)),
        None => format!("gw-{i}"),
    }
}

/// A change to instance `i`'s configuration.
type Adjust = Arc<dyn Fn(usize, &mut Config) + Send + Sync>;

/// Builds a fleet: its size, its charter, its store, and changes to each instance's
/// configuration.
pub struct FleetBuilder {
    n: usize,
    charter: Box<dyn FnOnce(&str) -> String + Send>,
    url: String,
    adjust: Adjust,
}

impl FleetBuilder {
    /// Changes instance `i`'s configuration before its start (after [`test_config`] and the
    /// store settings).
    pub fn configure(
        mut self,
        adjust: impl Fn(usize, &mut Config) + Send + Sync + 'static,
    ) -> Self {
        self.adjust = Arc::new(adjust);
        self
    }

    /// Starts the echo server, then instance 0, then the others one after the other.
    pub async fn start(self) -> Fleet {
        let (echo_url, calls) = crate::echo::spawn().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let charter_path = dir.path().join("charter.yaml");
        std::fs::write(&charter_path, (self.charter)(&echo_url)).unwrap();
        let http = reqwest::Client::new();
        let mut instances: Vec<Instance> = Vec::with_capacity(self.n);
        let mut operator_token = String::new();
        for i in 0..self.n {
            let name = instance_name(i);
            let data = dir.path().join(&name);
            let mut config = test_config(&data, &charter_path);
            config.store.location = store(&self.url);
            config.store.instance = Some(InstanceId::parse(&name).unwrap());
            (self.adjust)(i, &mut config);
            // Every instance of a fleet holds the first one's approval key (as the operator
            // copies it; an instance with another key refuses to start).
            if i > 0 {
                share_approval_key(&dir.path().join(instance_name(0)), &config.data_dir);
            }
            let gw = Gateway::start(config.clone(), Arc::new(SystemClock))
                .await
                .unwrap_or_else(|e| panic!("instance {name} did not start: {e:#}"));
            if i == 0 {
                operator_token = gw
                    .bootstrap_operator_token
                    .clone()
                    .expect("the first instance on a fresh store creates the operator token");
            } else {
                assert!(
                    gw.bootstrap_operator_token.is_none(),
                    "instance {name} made a second bootstrap token on a shared store"
                );
            }
            let planes = Planes::new(
                http.clone(),
                gw.agent_addr,
                gw.operator_addr,
                operator_token.clone(),
            );
            instances.push(Instance {
                id: InstanceId::parse(&name).unwrap(),
                gw: Mutex::new(Some(gw)),
                config,
                data,
                planes,
            });
        }
        Fleet {
            instances,
            operator_token,
            calls,
            url: self.url,
            http,
            _dir: dir,
        }
    }
}

/// Copies the approval key of the data directory `from` into `to` (created 0700 if need be;
/// the key 0600), as an operator gives a new instance the fleet's key before its first start.
pub fn share_approval_key(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let key = std::fs::read(from.join(warden_gateway::APPROVAL_KEY_FILE)).unwrap();
    if !to.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(to)
            .unwrap();
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to.join(warden_gateway::APPROVAL_KEY_FILE))
        .unwrap();
    std::io::Write::write_all(&mut file, &key).unwrap();
}

fn store(url: &str) -> StoreLocation {
    let location = StoreLocation::parse(url).unwrap();
    assert!(location.is_postgres(), "a fleet needs a PostgreSQL URL");
    location
}

/// A running fleet.
pub struct Fleet {
    /// Its gateways, in start order (`instances[0]` is `gw-a`).
    pub instances: Vec<Instance>,
    /// The bootstrap (admin) operator token, made by the first instance, valid on every one.
    pub operator_token: String,
    /// How many calls reached the echo server (from every instance).
    pub calls: Arc<AtomicU64>,
    url: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Fleet {
    /// `n` instances on the charter `charter(echo_url)` in the database at `url`.
    pub fn builder(
        n: usize,
        charter: impl FnOnce(&str) -> String + Send + 'static,
        url: &str,
    ) -> FleetBuilder {
        assert!(n >= 1, "a fleet has at least one instance");
        FleetBuilder {
            n,
            charter: Box::new(charter),
            url: url.to_owned(),
            adjust: Arc::new(|_, _| {}),
        }
    }

    /// [`Fleet::builder`] with the test configuration, started.
    pub async fn start(
        n: usize,
        charter: impl FnOnce(&str) -> String + Send + 'static,
        url: &str,
    ) -> Fleet {
        Fleet::builder(n, charter, url).start().await
    }

    /// The store's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store's URL as the gateway's configuration holds it.
    pub fn postgres_url(&self) -> PostgresUrl {
        match store(&self.url) {
            StoreLocation::Postgres(url) => url,
            StoreLocation::Sqlite => panic!("a fleet needs a PostgreSQL URL"),
        }
    }

    /// A small pool on the store, for reading it directly.
    pub async fn pool(&self) -> sqlx::PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&self.url)
            .await
            .unwrap()
    }

    /// Every record of every instance's chain, by instance.
    pub async fn all_records(&self) -> Vec<(InstanceId, Vec<warden_audit::Record>)> {
        let pool = self.pool().await;
        let mut out = Vec::new();
        for instance in &self.instances {
            out.push((instance.id.clone(), chain(&pool, &instance.id).await));
        }
        pool.close().await;
        out
    }

    /// Panics unless every instance's chain passes what `warden audit verify` checks.
    pub async fn assert_chains_verify(&self) {
        let pool = self.pool().await;
        for instance in &self.instances {
            assert_chain_verifies(&pool, &instance.id).await;
        }
        pool.close().await;
    }

    /// Shuts every instance down (in reverse order), then checks every chain.
    pub async fn stop(&self) {
        for instance in self.instances.iter().rev() {
            let running = instance.gw.lock().unwrap().take();
            if let Some(gw) = running {
                gw.shutdown().await;
            }
        }
        self.assert_chains_verify().await;
    }
}

/// Every record of `instance`'s chain in the store of `pool`, in order.
pub async fn chain(pool: &sqlx::PgPool, instance: &InstanceId) -> Vec<warden_audit::Record> {
    let reader = warden_audit::LedgerReader::open_postgres(pool.clone(), Some(instance.clone()))
        .await
        .unwrap();
    let records = reader.range(1, 1_000_000).await.unwrap();
    reader.close().await;
    records
}

/// Panics unless `instance`'s chain is intact and starts with `charter_loaded`.
pub async fn assert_chain_verifies(pool: &sqlx::PgPool, instance: &InstanceId) {
    let reader = warden_audit::LedgerReader::open_postgres(pool.clone(), Some(instance.clone()))
        .await
        .unwrap();
    let report = reader.verify().await.unwrap();
    assert!(
        report.is_intact(),
        "the chain of {instance} does not verify: {:?}",
        report.first_problem
    );
    let first = reader.get(1).await.unwrap();
    reader.close().await;
    assert_eq!(
        first.map(|r| r.kind),
        Some(warden_audit::RecordKind::CharterLoaded),
        "the chain of {instance} does not start with `charter_loaded`"
    );
}

/// One gateway of a fleet and the means to talk to it: its [`Planes`] (an instance derefs
/// to them), with the fleet's admin operator token.
pub struct Instance {
    gw: Mutex<Option<RunningGateway>>,
    /// Its instance id.
    pub id: InstanceId,
    /// The configuration it was started with.
    pub config: Config,
    /// Its data directory.
    pub data: PathBuf,
    /// Its agent and operator planes.
    pub planes: Planes,
}

impl std::ops::Deref for Instance {
    type Target = Planes;

    fn deref(&self) -> &Planes {
        &self.planes
    }
}

impl Instance {
    /// Every record of this instance's chain, read from the store.
    pub async fn records(&self) -> Vec<warden_audit::Record> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(self.store_url())
            .await
            .unwrap();
        let records = chain(&pool, &self.id).await;
        pool.close().await;
        records
    }

    /// The payloads of this instance's records of `kind`, in order.
    pub async fn records_of(&self, kind: &str) -> Vec<Value> {
        self.records()
            .await
            .into_iter()
            .filter(|r| r.kind.as_str() == kind)
            .map(|r| r.payload)
            .collect()
    }

    fn store_url(&self) -> &str {
        match &self.config.store.location {
            StoreLocation::Postgres(url) => url.expose(),
            StoreLocation::Sqlite => panic!("a fleet's instances are on PostgreSQL"),
        }
    }

    /// The running gateway's state.
    pub fn app_state(&self) -> Arc<AppState> {
        self.gw.lock().unwrap().as_ref().unwrap().state.clone()
    }

    /// Takes the running gateway out (to shut it down, or drop it, by hand).
    pub fn take(&self) -> RunningGateway {
        self.gw.lock().unwrap().take().unwrap()
    }

    /// Whether this instance is still running (not taken out).
    pub fn is_running(&self) -> bool {
        self.gw.lock().unwrap().is_some()
    }
}
