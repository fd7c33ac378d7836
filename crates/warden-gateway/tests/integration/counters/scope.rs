//! Scope counters on PostgreSQL: exact across instances.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_charter::{CompiledCharter, Source};
use warden_core::{Decision, Posture, Tier, Verdict};
use warden_pdp::{Controls, Request, ScopeUsage, decide};
use warden_session::ScopeCounters;

use super::common::{instances, unreachable};

const CHARTER: &str = r#"version: 1
identity: { id: agent-1, name: Agent, purpose: tests, serves: the tests }
inventory:
  servers:
    - { id: api, tools: [pay, refund, note] }
actions:
  rules:
    - { id: pay-3, tool: api.pay, tier: preapproved, scope: { per_day: 3 } }
    - { id: refund-10, tool: api.refund, tier: preapproved, scope: { spend: { argument: amount, per_day: 10 } } }
    - { id: note-many, tool: api.note, tier: preapproved, scope: { per_day: 100000 } }
authority:
  roles:
    - { id: ops, approve: [default] }
  principals:
    - { id: alice, roles: [ops] }
"#;

pub(crate) fn charter() -> Arc<CompiledCharter> {
    Arc::new(
        warden_charter::compile(&[Source::new("charter.yaml", CHARTER)])
            .unwrap()
            .charter,
    )
}

pub(crate) fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-12-06 12:00:00 UTC)
}

pub(crate) fn decide_tool(
    charter: &CompiledCharter,
    tool: &str,
    args: &Value,
    usage: &dyn ScopeUsage,
) -> Decision {
    decide(
        charter,
        &Request {
            tool,
            args,
            principal: Some("alice"),
            labels: &[],
            provenance: warden_provenance::SessionProvenance::empty(),
            controls: Controls {
                posture: Posture::Normal,
                session_revoked: false,
                tool_frozen: false,
            },
            usage,
            now: now(),
        },
    )
}

/// One call of `tool` by `session` through `counters`: whether it was allowed preapproved.
pub(crate) async fn call(
    counters: &ScopeCounters,
    charter: &CompiledCharter,
    session: &str,
    tool: &str,
    args: &Value,
) -> bool {
    let (d, inc) = counters
        .decide_and_count_async(charter, session, now(), args, |u| {
            decide_tool(charter, tool, args, u)
        })
        .await
        .unwrap();
    assert!(
        inc.is_none(),
        "on PostgreSQL the count is already committed"
    );
    d.verdict == Verdict::Allow && d.tier == Tier::Preapproved
}

async fn hammer(tool: &'static str, args: Value) -> usize {
    let (_db, _dir, dbs) = instances(3).await;
    let charter = charter();
    let mut counters = Vec::new();
    for db in &dbs {
        counters.push(Arc::new(ScopeCounters::open(db).await.unwrap()));
    }
    let mut tasks = Vec::new();
    for (i, c) in counters.iter().enumerate() {
        for t in 0..12 {
            let (c, charter, args) = (c.clone(), charter.clone(), args.clone());
            tasks.push(tokio::spawn(async move {
                call(&c, &charter, &format!("s-{i}-{t}"), tool, &args).await
            }));
        }
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() {
            allowed += 1;
        }
    }
    let rows: i64 =
        sqlx::query_scalar("SELECT count FROM scope_usage WHERE scope_window = 'day:2026-12-06'")
            .fetch_one(dbs[0].postgres().unwrap())
            .await
            .unwrap();
    assert_eq!(
        rows,
        i64::try_from(allowed).unwrap(),
        "the stored count is what was allowed"
    );
    allowed
}

/// A 3-per-day rule hammered by 36 concurrent calls from three instances: exactly 3 allowed
/// (the others escalate), and the day's counter says 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_3_per_day_rule_hammered_from_three_instances_allows_exactly_3() {
    let allowed = hammer("api.pay", json!({})).await;
    assert_eq!(allowed, 3);
}

/// A spend limit of 10 a day, calls of 3 each from three instances: exactly 3 allowed
/// (9 spent; a fourth would make 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spend_limit_holds_exactly_across_instances() {
    let allowed = hammer("api.refund", json!({ "amount": 3 })).await;
    assert_eq!(allowed, 3);
}

/// A race lost to another instance (the row appeared between the read and the count) makes
/// the decision run again, on the usage that other instance committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_compare_and_set_decides_again() {
    let (_db, _dir, dbs) = instances(2).await;
    let charter = charter();
    let a = ScopeCounters::open(&dbs[0]).await.unwrap();
    let b = ScopeCounters::open(&dbs[1]).await.unwrap();
    let calls = AtomicUsize::new(0);
    let seen = std::sync::Mutex::new(Vec::new());
    let args = json!({});
    let (d, _) = a
        .decide_and_count_async(&charter, "s-a", now(), &args, |u| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n == 1 {
                // Inside A's transaction, after it read (no row yet): B counts a use.
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async {
                        assert!(call(&b, &charter, "s-b", "api.pay", &args).await);
                    });
                });
            }
            seen.lock().unwrap().push(u.rule("pay-3").day_count);
            decide_tool(&charter, "api.pay", &args, u)
        })
        .await
        .unwrap();
    assert_eq!(d.verdict, Verdict::Allow);
    // The discovery, the attempt that lost, and the one that counted (seeing B's use).
    assert_eq!(*seen.lock().unwrap(), vec![0, 0, 1]);
    let count: i64 = sqlx::query_scalar(
        "SELECT count FROM scope_usage WHERE rule = 'pay-3' AND scope_window = 'day:2026-12-06'",
    )
    .fetch_one(dbs[0].postgres().unwrap())
    .await
    .unwrap();
    assert_eq!(count, 2);
}

/// While one instance holds the rows of a rule (inside its decision), another instance
/// decides and counts an unrelated rule at once: only the rows of the rules involved are
/// locked. (If they were not, this would wait on the first forever: the bound fails it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unrelated_rules_do_not_serialise() {
    let (_db, _dir, dbs) = instances(2).await;
    let charter = charter();
    let a = ScopeCounters::open(&dbs[0]).await.unwrap();
    let b = ScopeCounters::open(&dbs[1]).await.unwrap();
    let args = json!({});
    // The rows of `pay-3` exist, so A's decision locks them.
    assert!(call(&a, &charter, "s-a", "api.pay", &args).await);
    let calls = AtomicUsize::new(0);
    let (d, _) = a
        .decide_and_count_async(&charter, "s-a", now(), &args, |u| {
            if calls.fetch_add(1, Ordering::SeqCst) == 1 {
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async {
                        let other = call(&b, &charter, "s-b", "api.note", &args);
                        let done = tokio::time::timeout(Duration::from_secs(30), other).await;
                        assert_eq!(done.ok(), Some(true), "an unrelated rule waited");
                    });
                });
            }
            decide_tool(&charter, "api.pay", &args, u)
        })
        .await
        .unwrap();
    assert_eq!(d.verdict, Verdict::Allow);
    // Decided once after the discovery: B's use of another rule changed nothing it read.
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// PostgreSQL unreachable: the decision is an error (the governor refuses the action with
/// `store_unavailable`), never an allow.
#[tokio::test]
async fn the_store_down_refuses() {
    let db = unreachable();
    let counters = ScopeCounters::open(&db).await.unwrap();
    let charter = charter();
    let args = json!({});
    let r = counters
        .decide_and_count_async(&charter, "s", now(), &args, |u| {
            decide_tool(&charter, "api.pay", &args, u)
        })
        .await;
    assert!(r.is_err(), "{r:?}");
}
