//! The PostgreSQL schema: version 1, in groups (each group's owner edits only its own until
//! it ships). Times are RFC 3339 text, as in `state.db`, so the two stores read alike; counts
//! are `BIGINT` (Rust `i64`).

/// Sessions, their labels and trusted text, operator credentials, model turns.
pub const SESSIONS: &[&str] = &[
    "CREATE TABLE sessions (id TEXT PRIMARY KEY, token_hash BYTEA NOT NULL UNIQUE, agent TEXT NOT NULL, principal TEXT NOT NULL, task TEXT NOT NULL, opened_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT, parent TEXT, chain TEXT, opened_by TEXT)",
    "CREATE TABLE session_labels (session TEXT NOT NULL, label TEXT NOT NULL, PRIMARY KEY (session, label))",
    "CREATE TABLE session_trust (n BIGSERIAL PRIMARY KEY, session TEXT NOT NULL, text TEXT NOT NULL, source TEXT NOT NULL)",
    "CREATE INDEX session_trust_session ON session_trust (session, n)",
    "CREATE INDEX sessions_parent ON sessions (parent) WHERE parent IS NOT NULL",
    // Which instances served each session (noted before an instance's first decision for
    // it): an instance that finds another one here marks the session's provenance
    // incomplete, its untrusted index being per instance.
    "CREATE TABLE session_instances (session TEXT NOT NULL, instance TEXT NOT NULL, PRIMARY KEY (session, instance))",
    "CREATE TABLE operator_tokens (id TEXT PRIMARY KEY, token_hash BYTEA NOT NULL UNIQUE, name TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT, role TEXT NOT NULL DEFAULT 'admin', principal TEXT, recorded_at TEXT)",
    "CREATE TABLE model_turns (session TEXT PRIMARY KEY, turns TEXT NOT NULL, seq BIGINT NOT NULL)",
    "CREATE INDEX model_turns_seq ON model_turns (seq)",
];

/// Preapproved-scope counters (with when each was last counted, RFC 3339 in whole seconds, to
/// prune those of ended sessions), token budgets (tokens counted, and reserved by calls in
/// flight on every instance), controls (`changed` is taken from its
/// sequence again on every write, so followers read what changed since they last looked).
/// (`window` is a reserved word in PostgreSQL: the column is `scope_window`.)
pub const COUNTERS: &[&str] = &[
    "CREATE TABLE scope_usage (rule TEXT NOT NULL, scope_window TEXT NOT NULL, count BIGINT NOT NULL, spend TEXT NOT NULL, used_at TEXT NOT NULL, PRIMARY KEY (rule, scope_window))",
    "CREATE TABLE model_usage (scope TEXT NOT NULL, key TEXT NOT NULL, window_start BIGINT NOT NULL, tokens BIGINT NOT NULL, reserved BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (scope, key, window_start))",
    "CREATE TABLE controls (id TEXT PRIMARY KEY, state TEXT NOT NULL, body TEXT NOT NULL, changed BIGSERIAL NOT NULL)",
    "CREATE INDEX controls_changed ON controls (changed)",
];

/// Approval requests (`warden_approval::store`): each row's `version` is raised by every
/// change, so an instance can tell which requests it holds another instance changed; the
/// partial unique index keeps one open request per action across the fleet.
pub const APPROVALS: &[&str] = &[
    "CREATE TABLE approvals (id TEXT PRIMARY KEY, action_hash TEXT NOT NULL, status TEXT NOT NULL, requested_at TEXT NOT NULL, deadline TEXT NOT NULL, body TEXT NOT NULL, version BIGINT NOT NULL DEFAULT 1)",
    "CREATE INDEX approvals_status ON approvals (status, requested_at)",
    "CREATE INDEX approvals_action ON approvals (action_hash, status)",
    "CREATE UNIQUE INDEX approvals_open_action ON approvals (action_hash) WHERE status IN ('pending', 'granted')",
];

/// The ledger: one hash chain per instance (`warden_audit`), its Merkle subtrees, and the
/// instances with their ledger identities and last committed sequence numbers.
pub const LEDGER: &[&str] = &[
    "CREATE TABLE ledger_instances (instance TEXT PRIMARY KEY, ledger_id TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, mark BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE ledger_records (instance TEXT NOT NULL, seq BIGINT NOT NULL, time TEXT NOT NULL, session TEXT, kind TEXT NOT NULL, payload TEXT NOT NULL, prev_hash BYTEA NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (instance, seq))",
    "CREATE INDEX ledger_records_session ON ledger_records (session, time) WHERE session IS NOT NULL",
    "CREATE INDEX ledger_records_kind ON ledger_records (kind, time)",
    "CREATE INDEX ledger_records_time ON ledger_records (time)",
    "CREATE TABLE ledger_tree_nodes (instance TEXT NOT NULL, level BIGINT NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (instance, level, idx))",
];

/// Version 1: every group, in order.
pub const VERSION_1: &[&[&str]] = &[SESSIONS, COUNTERS, APPROVALS, LEDGER];

/// Version 2: decide-API actions allowed and awaiting their result report (any instance may
/// take the report; the allowing instance's sweep records `unknown` past `due`), and the
/// fleet's settings (the approval key's fingerprint). Times are the database's
/// (`TIMESTAMPTZ`, `now()`), one clock for every instance.
pub const VERSION_2: &[&str] = &[
    "CREATE TABLE pending_results (action TEXT PRIMARY KEY, session TEXT NOT NULL, instance TEXT NOT NULL, tool TEXT NOT NULL, args TEXT NOT NULL, allowed_at TIMESTAMPTZ NOT NULL DEFAULT now(), due TIMESTAMPTZ NOT NULL)",
    "CREATE INDEX pending_results_session ON pending_results (session)",
    "CREATE INDEX pending_results_instance_due ON pending_results (instance, due)",
    "CREATE INDEX pending_results_due ON pending_results (due)",
    "CREATE TABLE fleet_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
];
