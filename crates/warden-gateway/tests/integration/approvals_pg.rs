//! Approvals decided anywhere, on real PostgreSQL: two or three `Approvals` (one per gateway
//! instance, each with its own memory, its own ledger and the fleet follower of
//! `warden_gateway::fleet::approvals`) on one database. A call waiting on one instance is
//! released or refused by a decision through another, votes on different instances meet a
//! quorum, a grant is used once fleet-wide, a timeout and a use racing end in exactly one,
//! an identical action joins one request, and a store that is down refuses a vote.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

#[path = "approvals_pg/adversarial.rs"]
mod adversarial;
#[path = "approvals_pg/decided_anywhere.rs"]
mod decided_anywhere;
#[path = "approvals_pg/once.rs"]
mod once;
#[path = "approvals_pg/support.rs"]
mod support;
