//! The start-up rebuild of each live session's untrusted index from the ledger.
//!
//! The index is memory only; the ledger holds what it was built from: every `action_result`
//! of a result carrying untrusted labels records them (`untrusted`; older records: the
//! `labels_added` of the same action) and the content the agent read (`content`, bounded and
//! redacted). At start-up, for each live session (neither revoked nor expired), those results
//! are indexed again, in ledger order, with the current charter's untrusted labels.
//!
//! Fail closed: a recorded content that was cut (`truncated`), redacted (`redacted`), or holds
//! parts that are not text, marks the session's index incomplete; a ledger that cannot be read
//! (or a page of it) marks every live session's index incomplete. An incomplete index judges
//! every value the trusted text does not state as untrusted.
//!
//! On a fleet (PostgreSQL store) the index is per instance: the live sessions are those this
//! instance served (held again at start-up), and the ledger read is this instance's own chain.
//! A session another instance also served is marked incomplete by the session store (its
//! `session_instances`), since this chain does not hold what was read there.
//!
//! Bounded: the ledger is read in pages of [`PAGE`] records, one result held at a time; each
//! session's index is bounded by its own limits. The scan is skipped when no session is live
//! or the charter declares no untrusted label.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;
use warden_audit::{LedgerReader, Record, RecordKind};
use warden_provenance::Origin;
use warden_session::{Session, SessionStore};

use warden_provenance::recorded::{label_list, recorded_text, untrusted_labels};

/// Records read from the ledger at a time.
const PAGE: u64 = 512;

/// What the rebuild did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// Live sessions whose index was rebuilt.
    pub sessions: usize,
    /// Results indexed again.
    pub results: usize,
    /// Sessions whose index is incomplete (content that cannot be indexed in full, or a ledger
    /// that cannot be read).
    pub incomplete: usize,
}

/// Rebuilds the untrusted index of every live session at `now` from the ledger at `source`,
/// with the untrusted labels of each session's agent (`untrusted`: agent id → labels).
pub async fn rebuild(
    source: &warden_audit::LedgerSource,
    sessions: &SessionStore,
    untrusted: &HashMap<String, Vec<Arc<str>>>,
    now: OffsetDateTime,
) -> Rebuilt {
    let live: HashMap<String, Arc<Session>> = sessions
        .list(now)
        .into_iter()
        .filter(|s| s.status == "active")
        .filter_map(|s| sessions.get(&s.id).map(|session| (s.id, session)))
        .collect();
    let mut done = Rebuilt {
        sessions: live.len(),
        ..Rebuilt::default()
    };
    if live.is_empty() || untrusted.values().all(Vec::is_empty) {
        return done;
    }
    let reader = match LedgerReader::open_source(source).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "The ledger cannot be read to rebuild the sessions' untrusted index; every live session's index is marked incomplete.");
            return all_incomplete(&live, done);
        }
    };
    let mut scan = Scan {
        live: &live,
        untrusted,
        held: None,
        done: &mut done,
    };
    let mut from = 1;
    let read = loop {
        let page = match reader.range(from, PAGE).await {
            Ok(page) => page,
            Err(e) => break Err(e),
        };
        let Some(last) = page.last().map(|r| r.seq) else {
            break Ok(());
        };
        for record in page {
            scan.record(record);
        }
        from = last.saturating_add(1);
    };
    scan.flush();
    reader.close().await;
    if let Err(e) = read {
        tracing::error!(error = %e, "The ledger could not be read in full to rebuild the sessions' untrusted index; every live session's index is marked incomplete.");
        return all_incomplete(&live, done);
    }
    done.incomplete = live
        .values()
        .filter(|s| !s.provenance().is_complete())
        .count();
    done
}

fn all_incomplete(live: &HashMap<String, Arc<Session>>, mut done: Rebuilt) -> Rebuilt {
    for session in live.values() {
        session.mark_provenance_incomplete();
    }
    done.incomplete = live.len();
    done
}

/// The scan over the ledger: the last `action_result` of a live session is held until the
/// next record, which may be the `labels_added` of the same action (same batch).
struct Scan<'a> {
    live: &'a HashMap<String, Arc<Session>>,
    /// Each agent's untrusted labels (its charter's), by agent id.
    untrusted: &'a HashMap<String, Vec<Arc<str>>>,
    held: Option<(Arc<Session>, Record)>,
    done: &'a mut Rebuilt,
}

impl Scan<'_> {
    fn record(&mut self, record: Record) {
        let Some(session) = record.session.as_deref().and_then(|s| self.live.get(s)) else {
            return;
        };
        let session = session.clone();
        match record.kind {
            RecordKind::LabelsAdded => {
                if let Some((held_session, result)) = self.held.take() {
                    if action_of(&result) == action_of(&record) {
                        let labels = label_list(record.payload.get("labels"));
                        self.index(&held_session, &result, &labels);
                    } else {
                        self.index(&held_session, &result, &[]);
                    }
                }
            }
            RecordKind::ActionResult => {
                self.flush();
                self.held = Some((session, record));
            }
            _ => self.flush(),
        }
    }

    /// Indexes the held result, if any, with no further labels.
    fn flush(&mut self) {
        if let Some((session, result)) = self.held.take() {
            self.index(&session, &result, &[]);
        }
    }

    /// Indexes a recorded result whose untrusted labels (its own `untrusted`, and `added`)
    /// are untrusted in the current charter.
    fn index(&mut self, session: &Session, result: &Record, added: &[Arc<str>]) {
        let mut labels = label_list(result.payload.get("untrusted"));
        labels.extend_from_slice(added);
        let of_agent = self
            .untrusted
            .get(&session.agent)
            .map_or(&[][..], Vec::as_slice);
        let labels = untrusted_labels(of_agent, &labels);
        if labels.is_empty() {
            return;
        }
        let (text, complete) = recorded_text(&result.payload);
        session.add_untrusted(
            &text,
            Origin {
                seq: result.seq,
                labels,
            },
        );
        if !complete {
            session.mark_provenance_incomplete();
        }
        self.done.results += 1;
    }
}

fn action_of(record: &Record) -> Option<&str> {
    record.payload.get("action").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;
    use warden_audit::{Ledger, LedgerConfig, NewRecord};
    use warden_core::SystemClock;
    use warden_session::StateDb;

    fn result(session: &str, action: &str, extra: Value) -> NewRecord {
        let mut payload = json!({
            "action": action,
            "status": "ok",
            "content": [{ "type": "text", "text": format!("pay DE89370400440532013000 ({action})") }],
        });
        if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        NewRecord::new(Some(session), RecordKind::ActionResult, payload)
    }

    /// Results of live sessions carrying untrusted labels (their own `untrusted`, or the
    /// `labels_added` of the same action) are indexed again by their sequence; others, and
    /// other sessions', are not; a cut content marks the index incomplete; a ledger that
    /// cannot be read marks every live session's index incomplete.
    #[tokio::test]
    async fn the_index_is_rebuilt_from_the_results_of_live_sessions_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).await.unwrap();
        let sessions = SessionStore::open(&db).await.unwrap();
        let now = OffsetDateTime::now_utc();
        let ttl = Duration::from_secs(3600);
        for _ in 0..2 {
            sessions
                .open_session("a", "p", "t", ttl, now)
                .await
                .unwrap();
        }
        let (revoked, _) = sessions
            .open_session("a", "p", "t", ttl, now)
            .await
            .unwrap();
        sessions.revoke(&revoked.id, now).await.unwrap();
        let untrusted: HashMap<String, Vec<Arc<str>>> =
            [("a".to_owned(), vec![Arc::from("mail")])].into();
        // No ledger at all: nothing can be rebuilt, so every live session is incomplete.
        let done = rebuild(
            &warden_audit::LedgerSource::Dir(dir.path().to_path_buf()),
            &sessions,
            &untrusted,
            now,
        )
        .await;
        assert_eq!((done.sessions, done.incomplete), (2, 2));

        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path()).await.unwrap();
        let sessions = SessionStore::open(&db).await.unwrap();
        let (live, _) = sessions
            .open_session("a", "p", "t", ttl, now)
            .await
            .unwrap();
        let (cut, _) = sessions
            .open_session("a", "p", "t", ttl, now)
            .await
            .unwrap();
        let (revoked, _) = sessions
            .open_session("a", "p", "t", ttl, now)
            .await
            .unwrap();
        sessions.revoke(&revoked.id, now).await.unwrap();
        let ledger = Ledger::open(dir.path(), Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        let appended = ledger
            .append_batch(vec![
                result(&live.id, "a1", json!({ "untrusted": ["mail"] })),
                result(&live.id, "a2", json!({})),
                NewRecord::new(
                    Some(&live.id),
                    RecordKind::LabelsAdded,
                    json!({ "action": "a2", "labels": ["mail", "pii"] }),
                ),
                result(&live.id, "a3", json!({ "untrusted": ["web"] })),
                result(&live.id, "a4", json!({})),
                result(&revoked.id, "r1", json!({ "untrusted": ["mail"] })),
                result(
                    &cut.id,
                    "c1",
                    json!({ "untrusted": ["mail"], "truncated": { "original_bytes": 9 } }),
                ),
            ])
            .await
            .unwrap();
        ledger.shutdown().await.unwrap();
        let done = rebuild(
            &warden_audit::LedgerSource::Dir(dir.path().to_path_buf()),
            &sessions,
            &untrusted,
            now,
        )
        .await;
        assert_eq!(done.sessions, 2);
        assert_eq!(done.results, 3, "a1, a2 (by its labels_added) and c1");
        assert!(!sessions.get(&cut.id).unwrap().provenance().is_complete());
        let (complete, trace) = {
            let session = sessions.get(&live.id).unwrap();
            let provenance = session.provenance();
            (
                provenance.is_complete(),
                provenance.trace("DE89370400440532013000"),
            )
        };
        assert!(complete);
        let mut seqs: Vec<u64> = trace.untrusted.iter().map(|f| f.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(seqs, [appended[0].seq, appended[1].seq], "{trace:?}");
        assert!(trace.from_any(&untrusted["a"]));
        // No untrusted label in the charter: nothing to rebuild, nothing marked.
        let none = rebuild(
            &warden_audit::LedgerSource::Dir(dir.path().to_path_buf()),
            &sessions,
            &HashMap::new(),
            now,
        )
        .await;
        assert_eq!((none.results, none.incomplete), (0, 0));
    }
}
