//! The observer against real ledgers and processes: its engine, its chain, the examples, a lagging export.
//!
//! One test binary for the crate (each file under `integration/` a module): one link instead of
//! one per file, which is most of a test build's time and disk.

mod integration {
    mod chain;
    mod common;
    mod engine;
    mod examples;
    mod export_lagging;
    mod process;
}
