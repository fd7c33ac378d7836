//! The gateway in-process, for tests and benchmarks: a real `warden serve` (both listeners on
//! loopback, a real ledger and `state.db` in a temporary directory) in front of the echo MCP
//! server, with helpers that speak to it over HTTP as an orchestrator, an agent and an
//! approver would.
//!
//! ```no_run
//! # async fn example() {
//! use std::sync::Arc;
//! use warden_testkit::harness::Harness;
//!
//! let h = Harness::builder(|echo_url| format!("version: 1\n# … a charter naming {echo_url}"))
//!     .configure(|c| c.max_body_bytes = 1024)
//!     .start()
//!     .await;
//! let (_session, token) = h.open_session("1h").await;
//! let answer = h.call(&token, "hello").await;
//! # let _ = (answer, Arc::new(()));
//! # }
//! ```
//!
//! Everything here panics on failure: it is test code, and a failed step is a failed test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed step is a failed test"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use warden_core::{Clock, SystemClock};
use warden_gateway::{AppState, Config, Gateway, RunningGateway};

pub use crate::planes::{Planes, mcp_request};

/// The configuration tests start from: both planes on ephemeral loopback ports, a 64 KiB
/// body limit, short grace and timeouts, no webhook, no provider keys.
pub fn test_config(data_dir: &Path, charter: &Path) -> Config {
    Config {
        agent_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        operator_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: data_dir.to_path_buf(),
        charters: warden_gateway::config::CharterSource::one(charter),
        shadow_charter: None,
        max_body_bytes: 64 * 1024,
        shutdown_grace: Duration::from_secs(5),
        upstream_timeout: Duration::from_secs(10),
        ledger_max_bytes: None,
        approval_webhook: None,
        public_url: "http://127.0.0.1".to_owned(),
        approval_progress_interval: Duration::from_secs(10),
        result_deadline: Duration::from_secs(15 * 60),
        capture: warden_gateway::config::CaptureLimits::default(),
        provider_keys: None,
        limits: warden_gateway::config::Limits::default(),
        deployment: warden_gateway::config::Deployment::default(),
        otel: None,
        checkpoints: None,
        exports: Vec::new(),
        store: warden_gateway::config::store::StoreSettings::default(),
    }
}

/// Writes a charter (made from the echo server's URL) and starts a gateway on it.
pub struct HarnessBuilder {
    charter: Box<dyn FnOnce(&str) -> String + Send>,
    clock: Arc<dyn Clock>,
    adjust: Box<dyn FnOnce(&mut Config) + Send>,
    session_agent: String,
    session_user: String,
}

impl HarnessBuilder {
    /// The gateway's clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Changes the configuration before the start (after [`test_config`]).
    pub fn configure(mut self, adjust: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        self.adjust = Box::new(adjust);
        self
    }

    /// The agent and the principal [`Harness::open_session`] opens sessions for (default:
    /// `agent-1` acting for `alice`).
    pub fn sessions_for(mut self, agent: &str, user: &str) -> Self {
        agent.clone_into(&mut self.session_agent);
        user.clone_into(&mut self.session_user);
        self
    }

    /// Starts the echo server and the gateway.
    pub async fn start(self) -> Harness {
        let (echo_url, calls) = crate::echo::spawn().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let charter_path = dir.path().join("charter.yaml");
        std::fs::write(&charter_path, (self.charter)(&echo_url)).unwrap();
        let data = dir.path().join("data");
        let mut config = test_config(&data, &charter_path);
        (self.adjust)(&mut config);
        let gw = Gateway::start(config.clone(), self.clock.clone())
            .await
            .unwrap();
        let operator_token = gw.bootstrap_operator_token.clone().unwrap();
        let mut planes = Planes::new(
            reqwest::Client::new(),
            gw.agent_addr,
            gw.operator_addr,
            operator_token,
        );
        planes.session_agent = self.session_agent;
        planes.session_user = self.session_user;
        Harness {
            config,
            clock: self.clock,
            gw: Mutex::new(Some(gw)),
            calls,
            _dir: dir,
            data,
            planes,
        }
    }
}

/// A running in-process gateway and the means to talk to it: its [`Planes`] (the harness
/// derefs to them: `h.open_session(…)`, `h.agent_addr`).
pub struct Harness {
    gw: Mutex<Option<RunningGateway>>,
    /// The configuration it was started with.
    pub config: Config,
    /// Its clock.
    pub clock: Arc<dyn Clock>,
    /// How many calls reached the echo server.
    pub calls: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
    /// The data directory (ledger, `state.db`).
    pub data: PathBuf,
    /// Its agent and operator planes.
    pub planes: Planes,
}

impl std::ops::Deref for Harness {
    type Target = Planes;

    fn deref(&self) -> &Planes {
        &self.planes
    }
}

impl Harness {
    /// A gateway on the charter `charter(echo_url)`.
    pub fn builder(charter: impl FnOnce(&str) -> String + Send + 'static) -> HarnessBuilder {
        HarnessBuilder {
            charter: Box::new(charter),
            clock: Arc::new(SystemClock),
            adjust: Box::new(|_| {}),
            session_agent: "agent-1".to_owned(),
            session_user: "alice".to_owned(),
        }
    }

    /// Waits until an approval request is pending for the approver of `token`; the id of the
    /// newest.
    pub async fn wait_for_approval_id(&self, token: &str) -> String {
        self.wait_for_approval(token, 1).await[0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Every record of the ledger, read through a read-only reader once everything queued
    /// before (an action's result is queued, committed with the next group) has committed.
    pub async fn records(&self) -> Vec<warden_audit::Record> {
        let running = self
            .gw
            .lock()
            .unwrap()
            .as_ref()
            .map(|gw| gw.state.governor.ledger().clone());
        if let Some(ledger) = running {
            ledger.flush().await.unwrap();
        }
        let reader = warden_audit::LedgerReader::open(&self.data).await.unwrap();
        reader.range(1, 100_000).await.unwrap()
    }

    /// The payloads of the ledger's records of `kind`, in order.
    pub async fn records_of(&self, kind: &str) -> Vec<Value> {
        self.records()
            .await
            .into_iter()
            .filter(|r| r.kind.as_str() == kind)
            .map(|r| r.payload)
            .collect()
    }

    /// The kinds of every record of the ledger, in order.
    pub async fn kinds(&self) -> Vec<String> {
        self.records()
            .await
            .iter()
            .map(|r| r.kind.to_string())
            .collect()
    }

    /// Stops the gateway and starts it again on the same data directory and addresses.
    pub async fn restart(&self) {
        self.take().shutdown().await;
        let mut config = self.config.clone();
        config.agent_listen = self.agent_addr;
        config.operator_listen = self.operator_addr;
        let gw = Gateway::start(config, self.clock.clone()).await.unwrap();
        *self.gw.lock().unwrap() = Some(gw);
    }

    /// The running gateway's state (its governor, stores and controls).
    pub fn app_state(&self) -> Arc<AppState> {
        self.gw.lock().unwrap().as_ref().unwrap().state.clone()
    }

    /// Takes the running gateway out (to shut it down by hand).
    pub fn take(&self) -> RunningGateway {
        self.gw.lock().unwrap().take().unwrap()
    }

    /// Shuts the gateway down, then checks that its ledger passes what `warden audit verify`
    /// checks (see [`Harness::assert_ledger_verifies`]): every test that stops its gateway
    /// this way proves the ledger it wrote is intact.
    pub async fn stop(&self) {
        self.take().shutdown().await;
        self.assert_ledger_verifies().await;
    }

    /// Panics unless the ledger in the data directory passes `warden audit verify`: the hash
    /// chain is intact, record 1 is the `charter_loaded` every ledger starts with, and the
    /// head is not older than the last sequence number the gateway marked as committed in
    /// `state.db`.
    pub async fn assert_ledger_verifies(&self) {
        let reader = warden_audit::LedgerReader::open(&self.data).await.unwrap();
        let report = reader.verify().await.unwrap();
        assert!(
            report.is_intact(),
            "the ledger does not verify: {:?}",
            report.first_problem
        );
        let first = reader.get(1).await.unwrap();
        reader.close().await;
        assert_eq!(
            first.map(|r| r.kind),
            Some(warden_audit::RecordKind::CharterLoaded),
            "the ledger does not start with `charter_loaded`"
        );
        let head = report.head.map_or(0, |h| h.seq);
        if let Some(mark) = warden_session::LedgerMark::read(&self.data).await.unwrap() {
            assert!(
                head >= mark,
                "the ledger ends at record {head}, before the committed mark {mark}"
            );
        }
    }
}
