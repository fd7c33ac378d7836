#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! The exporter against real peers: real SQLite ledgers (`warden_audit::Ledger`), real HTTP
//! sinks on loopback sockets (axum), real files; every copy checked record by record and by
//! the chain verifier.

mod integration {
    mod adversarial;
    mod common;
    mod file;
    mod http;
    mod otlp;
}
