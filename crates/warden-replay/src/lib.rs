//! What-if replay of recorded traffic under a candidate charter.
//!
//! Reads a ledger (read-only: it never opens the writer and never writes to the ledger it
//! reads), rebuilds for every recorded `action_attempted` the state its original decision saw
//! — the session's principal, data labels, trusted text and untrusted index (provenance),
//! scope usage so far, posture and controls — decides it again under the candidate charter,
//! and reports what would change (newly denied, newly allowed, newly asking), grouped by rule
//! with counts and example actions. A change that widens what runs without approval is
//! flagged, so `warden replay` can exit non-zero on it. It also summarises the
//! `shadow_decided` records a gateway running with `--shadow-charter` wrote.
//!
//! Sits above `warden-core`, `warden-charter`, `warden-pdp`, `warden-provenance` and
//! `warden-audit`; used by the `warden` binary.
