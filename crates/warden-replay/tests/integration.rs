#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]
//! `warden-replay` against ledgers written by the real ledger writer.

mod integration {
    mod replay;
    mod robustness;
    mod shadow;
    mod support;
}
