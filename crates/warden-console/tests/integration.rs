//! The console over HTTP, against a real gateway: every page, its attacks, its live parts.
//!
//! One test binary for the crate (each file under `integration/` a module): one link instead of
//! one per file, which is most of a test build's time and disk.

mod integration {
    mod agents_console;
    mod approvals_console;
    mod charter_console;
    mod common;
    mod console_attacks;
    mod console_auth;
    mod console_live;
    mod controls_console;
    mod delegation_console;
    mod overview_attacks;
    mod overview_console;
    mod search_console;
    mod timeline_console;
}
