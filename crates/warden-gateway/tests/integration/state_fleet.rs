//! Sessions and credentials shared by a fleet (issue 18): two instances (two `StateDb`s on
//! one real PostgreSQL database, each with its own instance id) serve the same sessions and
//! operator credentials. One test binary; the adversarial tests in a module of their own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

#[path = "state_fleet/support.rs"]
mod support;

#[path = "state_fleet/adversarial.rs"]
mod adversarial;
#[path = "state_fleet/operators.rs"]
mod operators;
#[path = "state_fleet/sessions.rs"]
mod sessions;
