//! Issue 18, point 2: exact scope counters, token budgets and controls on the shared
//! PostgreSQL store, with several "instances" (each its own pool and stores) on one database.

mod counters {
    pub(crate) mod budgets;
    pub(crate) mod common;
    pub(crate) mod controls;
    pub(crate) mod scope;
}
