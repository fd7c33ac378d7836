//! The gateway in process against real peers: the action path, approvals, limits, the fleet on PostgreSQL, its counters and its state.
//!
//! One test binary for the crate (each file under `integration/` a module): one link instead of
//! one per file, which is most of a test build's time and disk.

mod integration {
    mod approvals_pg;
    mod counters;
    mod fleet;
    mod gateway;
    mod ledger_pg;
    mod state_fleet;
}
