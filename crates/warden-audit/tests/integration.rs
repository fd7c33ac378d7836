//! The ledger on real SQLite files in temporary directories: appends, group commit,
//! failures, shutdown, and tampering found by `verify`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

mod integration {
    mod failures;
    mod ledger;
    mod pages;
    mod prune;
    mod queued;
    mod reader;
    mod signed;
    mod support;
    mod tamper;
    mod tree;
    mod wal;
}
