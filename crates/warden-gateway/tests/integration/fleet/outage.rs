//! PostgreSQL stopped and restarted under load (a cluster of the test's own): while it is
//! down every call is refused with an error that says why, never allowed; once it is back
//! calls succeed again without restarting the gateways; and every call that was answered as
//! allowed has its attempt, its decision and its forwarding in its instance's chain.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use warden_testkit::postgres::Cluster;

use super::*;

/// One call of the load: the instance it went to, its unique text, and whether it ran.
struct Outcome {
    instance: usize,
    text: String,
    allowed: bool,
}

/// Whether an answer says the store (or the ledger in it) is why it was refused.
fn says_why(status: u16, body: &Value) -> bool {
    let text = format!("{status} {body}").to_lowercase();
    ["unavailable", "store", "ledger", "cannot record"]
        .iter()
        .any(|w| text.contains(w))
}

/// A `tools/call` of `hello …` on instance `i`, bounded; `(status, body)` or `None` when it
/// took longer than the bound.
async fn call(fleet: &Fleet, i: usize, token: &str, text: &str) -> Option<(u16, Value)> {
    let call = fleet.instances[i].mcp(
        token,
        "tools/call",
        json!({ "name": "echo.echo", "arguments": { "text": text } }),
    );
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .ok()
}

fn ran(status: u16, body: &Value, text: &str) -> bool {
    status == 200 && !is_error(body) && text_of(body) == text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopped_and_restarted_under_load_refuses_then_recovers() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(Cluster::start)
            .await
            .unwrap()
            .unwrap(),
    );
    let fleet = Arc::new(Fleet::start(2, charter, &cluster.url("postgres")).await);
    let (_, token) = fleet.instances[0].open_session("1h").await;

    // The load: four workers, alternating instances, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Vec::<Outcome>::new()));
    let mut workers = Vec::new();
    for w in 0..4usize {
        let (fleet, token, stop, outcomes) =
            (fleet.clone(), token.clone(), stop.clone(), outcomes.clone());
        workers.push(tokio::spawn(async move {
            let mut k = 0usize;
            while !stop.load(Ordering::Acquire) {
                let i = (w + k) % 2;
                let text = format!("hello w{w}-{k}");
                k += 1;
                let allowed = match call(&fleet, i, &token, &text).await {
                    Some((status, body)) => ran(status, &body, &text),
                    None => false,
                };
                outcomes.lock().unwrap().push(Outcome {
                    instance: i,
                    text,
                    allowed,
                });
                if !allowed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    let allowed_so_far = |outcomes: &Mutex<Vec<Outcome>>| {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.allowed)
            .count()
    };
    while allowed_so_far(&outcomes) < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Down, mid-load.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop())
        .await
        .unwrap()
        .unwrap();
    for i in 0..2 {
        let text = format!("hello while down on {i}");
        let (status, body) = call(&fleet, i, &token, &text)
            .await
            .expect("a call while PostgreSQL is down is answered within the store's bounds");
        assert!(
            !ran(status, &body, &text),
            "allowed while the store was down: {body}"
        );
        assert!(
            says_why(status, &body),
            "the refusal does not say why: {status} {body}"
        );
    }

    // Back: the same gateways serve again (each retried for a bounded while).
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_server())
        .await
        .unwrap()
        .unwrap();
    for i in 0..2 {
        let mut n = 0;
        loop {
            let text = format!("hello after the restart on {i} #{n}");
            if let Some((status, body)) = call(&fleet, i, &token, &text).await
                && ran(status, &body, &text)
            {
                break;
            }
            n += 1;
            assert!(
                n < 300,
                "instance {i} never served again after PostgreSQL came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let before = allowed_so_far(&outcomes);
    while allowed_so_far(&outcomes) < before + 10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Release);
    for w in workers {
        w.await.unwrap();
    }

    // Every call answered as allowed is in its instance's chain: attempt, decision, forwarding.
    let chains = fleet.all_records().await;
    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    let mut checked = 0;
    for o in outcomes.iter().filter(|o| o.allowed) {
        let records = &chains[o.instance].1;
        let attempt = records
            .iter()
            .find(|r| {
                r.kind.as_str() == "action_attempted" && r.payload["arguments"]["text"] == o.text
            })
            .unwrap_or_else(|| {
                panic!(
                    "`{}` ran but is not in {}'s chain",
                    o.text, chains[o.instance].0
                )
            });
        let action = &attempt.payload["action"];
        for kind in ["action_decided", "action_forwarded"] {
            assert!(
                records
                    .iter()
                    .any(|r| r.kind.as_str() == kind && r.payload["action"] == *action),
                "`{}` ran without its {kind} record",
                o.text
            );
        }
        checked += 1;
    }
    assert!(checked >= 30, "{checked} allowed calls checked");
    fleet.stop().await;
}
