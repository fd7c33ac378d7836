//! The ledger on real SQLite files in temporary directories: appends, group commit,
//! failures, shutdown, and tampering found by `verify`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation is a test failure"
)]

mod integration {
    mod failures;
    mod ledger;
    mod reader;
    mod support;
    mod tamper;
}
