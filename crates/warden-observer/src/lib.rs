//! The independent observer: a process of its own (`warden observe`), with its own credential
//! and its own store, that reads the gateway's ledger stream, holds what the model proposed,
//! what the agent attempted, what the policy decided and the governance events against
//! baselines it maintains, correlates the signals of its detectors, and intervenes through the
//! gateway's control API.
//!
//! What it guarantees: the [`Engine`] is deterministic — it reads records in ledger order and
//! keeps time by the records' own timestamps, so replaying a ledger gives the same signals and
//! responses as watching it live; every [`Response`] carries its evidence (ledger sequence
//! numbers) and the signals that led to it, so it is explainable from the ledger alone.
//!
//! Where it sits: above `warden-core`, `warden-charter` (the charter's `observer` section)
//! and `warden-audit` (the record format and the hash chain); it never depends on the gateway.
//! The two meet only through the ledger stream, the metrics and the control API.

pub mod alerts;
mod chain;
pub mod controls;
mod detect;
mod engine;
pub mod gateway;
pub mod heartbeat;
pub mod metrics;
pub mod peers;
mod profile;
mod respond;
mod response;
pub mod run;
pub mod store;
pub mod stream;
pub mod synth;

pub use detect::{EXPORT_LAGGING, MAX_EVIDENCE, MIN_BASELINE_TURNS, MIN_RATE_EVENTS, defaults};
pub use engine::{DEFAULT_BASELINE, Engine, EngineState, EngineStats, MAX_AGENTS, MAX_SESSIONS};
pub use gateway::{GatewayClient, Token};
pub use respond::{MAX_FIRED, MAX_RECENT, MAX_RESPONSE_EVIDENCE, action_of, step};
pub use response::{Action, Response, Scope, Signal};
pub use run::{ObserverConfig, RunError, run};
