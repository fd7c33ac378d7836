//! The `warden` binary end to end: its commands on real files, data directories, gateways,
//! stores and peers.
//!
//! One test binary for the crate (each file under `integration/` a module): one link instead of
//! one per file, which is most of a test build's time and disk.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

mod integration {
    mod agents_cli;
    mod audit_cli;
    mod audit_pg;
    mod audit_signed;
    mod audit_signed_adversarial;
    mod audit_signed_proofs;
    mod audit_signed_retention;
    mod audit_signed_support;
    mod audit_watch;
    mod charter_cli;
    mod charter_sets;
    mod charter_tests;
    mod cli;
    mod common;
    mod control_cli;
    mod crash_results;
    mod e2e;
    mod examples;
    mod explain_provenance;
    mod fleet_kill;
    mod fleet_observer;
    mod log_format;
    mod migrate;
    mod operator_store;
    mod packaging;
    mod quickstart;
    mod replay_pg;
    mod session_cli;
}
