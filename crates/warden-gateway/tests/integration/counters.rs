//! Issue 18, point 2: exact scope counters, token budgets and controls on the shared
//! PostgreSQL store, with several "instances" (each its own pool and stores) on one database.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

mod budgets;
mod common;
mod controls;
mod scope;
