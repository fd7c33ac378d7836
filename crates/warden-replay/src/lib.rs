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
//! Guarantees (see `docs/replay.md`):
//! - the state is rebuilt from the first record in ledger order, whatever the window
//!   (`since`, `session`): the window filters only what is reported;
//! - under the charter that made the recorded decisions, every attempt is reproduced (verdict,
//!   tier, rules), or counted as not reproducible with its reason, never silently;
//! - memory is bounded: pages of records, per-session state only for sessions not yet
//!   expired (at most [`state::MAX_SESSIONS`]), capped examples, groups and reasons;
//! - a record that cannot be read or understood is counted and reported, never a panic.
//!
//! Sits above `warden-core`, `warden-charter`, `warden-pdp`, `warden-provenance` and
//! `warden-audit`; used by the `warden` binary.

mod engine;
mod read;
mod render;
pub mod report;
mod scope;
mod shadow;
pub mod state;

use time::OffsetDateTime;
use warden_audit::{LedgerError, LedgerReader, Record};
use warden_charter::CompiledCharter;

pub use read::PAGE;
pub use report::{Change, Outcome, Report};

/// What to report.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only attempts recorded at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only this session's attempts.
    pub session: Option<String>,
    /// Most example actions per group (and sequences per reason).
    pub examples: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            since: None,
            session: None,
            examples: report::DEFAULT_EXAMPLES,
        }
    }
}

/// Counts a page's span and its unreadable record.
fn span(out: &mut report::Builder, records: &[Record], malformed: Option<(u64, String)>) {
    let s = &mut out.report.ledger;
    if let (None, Some(first)) = (s.first_seq, records.first()) {
        s.first_seq = Some(first.seq);
    }
    s.records += records.len() as u64;
    if let Some(last) = records.last() {
        s.last_seq = Some(last.seq);
    }
    if let Some((seq, reason)) = malformed {
        s.last_seq = Some(s.last_seq.unwrap_or(0).max(seq));
        out.malformed(seq, format!("it cannot be read: {reason}"));
    }
}

fn window(out: &mut report::Builder, options: &Options) {
    out.report.since = options.since.map(warden_core::text::rfc3339);
    out.report.session = options.session.clone();
}

fn pruned_note(out: &mut report::Builder) {
    if let Some(first) = out.report.ledger.first_seq.filter(|s| *s > 1) {
        out.report.notes.push(format!(
            "the ledger starts at record {first}: earlier records were pruned, and the state they held (sessions, labels, controls, scope usage) is not known"
        ));
    }
}

/// Re-decides every attempt recorded in the ledger `reader` reads under `candidate`, with the
/// state each recorded decision saw, and reports the differences in `options`' window.
/// `Err` only when the ledger cannot be read (a record that cannot be is reported instead).
pub async fn replay(
    reader: &LedgerReader,
    candidate: &CompiledCharter,
    options: &Options,
) -> Result<Report, LedgerError> {
    let mut engine = engine::Engine::new(candidate, options);
    read::pages(reader, |page| {
        let last = page.records.last().map(|r| r.time);
        span(&mut engine.out, &page.records, page.malformed);
        for record in page.records {
            engine.record(record);
        }
        if let Some(now) = last {
            engine.sweep(now);
        }
    })
    .await?;
    let mut out = engine.finish();
    out.report.candidate = Some(report::CharterInfo {
        agent: candidate.identity.id.clone(),
        hash: candidate.hash.to_prefixed_hex(),
    });
    window(&mut out, options);
    pruned_note(&mut out);
    Ok(out.finish())
}

/// Summarises the `shadow_decided` records of the ledger `reader` reads in `options`' window:
/// the live outcome against the shadow charter's, in the same shape as [`replay`].
pub async fn shadow(reader: &LedgerReader, options: &Options) -> Result<Report, LedgerError> {
    let mut shadow = shadow::Shadow::new(options);
    read::pages(reader, |page| {
        span(&mut shadow.out, &page.records, page.malformed);
        for record in page.records {
            shadow.record(record);
        }
    })
    .await?;
    let mut out = shadow.out;
    window(&mut out, options);
    if out.report.totals.attempts == 0 {
        out.report.notes.push(
            "no shadow decisions in the window: was the gateway started with `--shadow-charter`?"
                .to_owned(),
        );
    }
    Ok(out.finish())
}
