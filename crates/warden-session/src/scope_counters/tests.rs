use std::sync::Arc;

use warden_charter::{CompiledCharter, Source};
use warden_core::Posture;
use warden_pdp::{Controls, Request, decide};

use super::*;

const CHARTER: &str = r#"version: 1
identity: { id: agent-1, name: Agent, purpose: tests, serves: the tests }
inventory:
  servers:
    - { id: api, tools: [pay] }
actions:
  rules:
    - { id: pay-once, tool: api.pay, tier: preapproved, scope: { per_session: 1 } }
authority:
  roles:
    - { id: ops, approve: [default] }
  principals:
    - { id: alice, roles: [ops] }
"#;

fn charter() -> CompiledCharter {
    warden_charter::compile(&[Source::new("charter.yaml", CHARTER)])
        .unwrap()
        .charter
}

async fn counters() -> (tempfile::TempDir, ScopeCounters) {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let c = ScopeCounters::open(&db).await.unwrap();
    (dir, c)
}

fn decide_pay(charter: &CompiledCharter, usage: &dyn ScopeUsage) -> Decision {
    decide(
        charter,
        &Request {
            tool: "api.pay",
            args: &serde_json::json!({}),
            principal: Some("alice"),
            labels: &[],
            provenance: warden_provenance::SessionProvenance::empty(),
            controls: Controls {
                posture: Posture::Normal,
                session_revoked: false,
                tool_frozen: false,
            },
            usage,
            now: time::macros::datetime!(2026-12-06 12:00:00 UTC),
        },
    )
}

/// Issue 10, point 16: the decision runs without the counters' lock (it used to be held for
/// the whole decision, so every decision of every session waited on one lock).
#[tokio::test]
async fn issue_10_the_decision_runs_without_the_counters_lock() {
    let (_dir, counters) = counters().await;
    let charter = charter();
    let now = time::macros::datetime!(2026-12-06 12:00:00 UTC);
    let (decision, inc) =
        counters.decide_and_count(&charter, "s1", now, &serde_json::json!({}), |usage| {
            assert!(
                counters.counters.try_lock().is_ok(),
                "the lock is held while deciding"
            );
            decide_pay(&charter, usage)
        });
    assert_eq!(decision.verdict, Verdict::Allow);
    assert!(inc.is_some());
}

/// Deciding outside the lock keeps the count atomic: concurrent calls against a scope of one
/// use allow exactly one.
#[tokio::test]
async fn concurrent_decisions_take_the_last_use_once() {
    let (_dir, counters) = counters().await;
    let counters = Arc::new(counters);
    let charter = Arc::new(charter());
    let now = time::macros::datetime!(2026-12-06 12:00:00 UTC);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (counters, charter) = (counters.clone(), charter.clone());
            std::thread::spawn(move || {
                counters
                    .decide_and_count(&charter, "s1", now, &serde_json::json!({}), |usage| {
                        std::thread::yield_now();
                        decide_pay(&charter, usage)
                    })
                    .0
                    .verdict
            })
        })
        .collect();
    let verdicts: Vec<Verdict> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let allowed = verdicts.iter().filter(|v| **v == Verdict::Allow).count();
    assert_eq!(allowed, 1, "{verdicts:?}");
}

/// Issue 10, point 15: counters no decision can read again are pruned, in memory and in
/// `state.db` — a past day's, and a session's whose last use is older than the longest
/// session lifetime. Before, every session and day ever counted stayed for ever.
#[tokio::test]
async fn issue_10_counters_of_ended_windows_are_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let counters = ScopeCounters::open(&db).await.unwrap();
    let charter = charter();
    let day1 = time::macros::datetime!(2026-12-06 12:00:00 UTC);
    let (d, inc) = counters.decide_and_count(&charter, "old", day1, &serde_json::json!({}), |u| {
        decide_pay(&charter, u)
    });
    assert_eq!(d.verdict, Verdict::Allow);
    counters.persist(inc.unwrap()).await.unwrap();
    assert_eq!(counters.counters.lock().unwrap().len(), 2);

    // Past the longest session lifetime, a use by another session prunes the old ones.
    let later = day1 + time::Duration::try_from(MAX_TTL).unwrap() + time::Duration::days(1);
    let (d, inc) = counters.decide_and_count(&charter, "new", later, &serde_json::json!({}), |u| {
        decide_pay(&charter, u)
    });
    assert_eq!(d.verdict, Verdict::Allow);
    counters.persist(inc.unwrap()).await.unwrap();
    let kept: Vec<String> = counters
        .counters
        .lock()
        .unwrap()
        .keys()
        .map(|(_, w)| w.key())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(
        kept.iter()
            .all(|w| !w.contains("old") && !w.contains("2026-12-06")),
        "{kept:?}"
    );
    let rows: Vec<String> = sqlx::query_scalar("SELECT window FROM scope_usage ORDER BY window")
        .fetch_all(&db.pool().unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|w| !w.contains("old") && !w.contains("2026-12-06")),
        "{rows:?}"
    );

    // A counter loaded from `state.db` is stamped by the first pass, not dropped by it.
    let reopened = ScopeCounters::open(&db).await.unwrap();
    let much_later = later + time::Duration::days(400);
    let (_, inc) =
        reopened.decide_and_count(&charter, "third", much_later, &serde_json::json!({}), |u| {
            decide_pay(&charter, u)
        });
    reopened.persist(inc.unwrap()).await.unwrap();
    let sessions: Vec<String> = reopened
        .counters
        .lock()
        .unwrap()
        .keys()
        .filter(|&(_, w)| matches!(w, Window::Session(_)))
        .map(|(_, w)| w.key())
        .collect();
    assert!(sessions.contains(&"session:new".to_owned()), "{sessions:?}");
}
