//! Decide-API result reports on any instance: an action allowed by one instance is closed
//! once across the fleet, by its report on any instance or by the allowing instance's
//! deadline sweep (`unknown`), whichever takes its row first; reports of another session, of
//! an action never allowed, or replayed, are refused; a report while the store is down is
//! refused and the action stays pending.

use warden_testkit::postgres::Cluster;

use super::*;

/// The `action_result` records of `action` in every chain: (instance, payload).
async fn results_of(fleet: &Fleet, action: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (instance, records) in fleet.all_records().await {
        for r in records {
            if r.kind.as_str() == "action_result" && r.payload["action"] == json!(action) {
                out.push((instance.as_str().to_owned(), r.payload));
            }
        }
    }
    out
}

/// Asks instance `i` to allow `hello …` with `text` for the session of `token`; the action id.
async fn allowed(fleet: &Fleet, i: usize, token: &str, text: &str) -> String {
    let (status, body) = fleet.instances[i].decide(token, text, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"], "allow", "{body}");
    body["action"].as_str().unwrap().to_owned()
}

fn ok_report() -> Value {
    json!({ "status": "ok", "output": "done" })
}

/// Waits until `action` has a result recorded in some chain (polled every 50 ms; panics after
/// a minute); the results.
async fn wait_for_result(fleet: &Fleet, action: &str) -> Vec<(String, Value)> {
    let started = std::time::Instant::now();
    loop {
        let found = results_of(fleet, action).await;
        if !found.is_empty() {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no result of {action} recorded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two instances whose decide-API results are overdue after `deadline`.
async fn two_with_deadline(db: &TestDb, deadline: Duration) -> Fleet {
    Fleet::builder(2, charter, db.url())
        .configure(move |_, c| c.result_deadline = deadline)
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_action_allowed_on_a_is_reported_on_b_and_recorded_once() {
    let db = TestDb::new().await.unwrap();
    let fleet = two_with_deadline(&db, Duration::from_secs(2)).await;
    let (_, token) = fleet.instances[0].open_session("1h").await;
    let action = allowed(&fleet, 0, &token, "hello report").await;

    let (status, body) = fleet.instances[1]
        .report_result(&token, &action, &ok_report())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recorded"], true, "{body}");
    // Replayed, on either instance: the action is closed.
    for i in [1, 0] {
        let (status, body) = fleet.instances[i]
            .report_result(&token, &action, &ok_report())
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "unknown_action", "{body}");
    }

    // A second action left unreported: its `unknown` shows A's sweep ran past the first
    // one's deadline too.
    let sentinel = allowed(&fleet, 0, &token, "hello never reported").await;
    let unknown = wait_for_result(&fleet, &sentinel).await;
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0].0, "gw-a");
    assert_eq!(unknown[0].1["status"], "unknown");

    let results = results_of(&fleet, &action).await;
    assert_eq!(results.len(), 1, "{results:?}");
    let (instance, payload) = &results[0];
    assert_eq!(
        instance, "gw-b",
        "recorded in the chain of the instance that took it"
    );
    assert_eq!(payload["status"], "ok");
    assert_eq!(payload["allowed_on"], "gw-a", "{payload}");
    let pool = fleet.pool().await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pending_results")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    pool.close().await;
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_foreign_and_malformed_reports_are_refused_and_take_nothing() {
    let db = TestDb::new().await.unwrap();
    let fleet = Fleet::start(2, charter, db.url()).await;
    let (_, token) = fleet.instances[0].open_session("1h").await;
    let (_, other) = fleet.instances[1].open_session("1h").await;
    let action = allowed(&fleet, 0, &token, "hello mine").await;
    let b = &fleet.instances[1];

    // Another session's token, on either instance.
    for i in [0, 1] {
        let (status, body) = fleet.instances[i]
            .report_result(&other, &action, &ok_report())
            .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"]["code"], "unknown_action", "{body}");
    }
    // An action id never allowed, and one that is not an id at all.
    for forged in [
        "0190b3c4-0000-7000-8000-000000000000",
        "x' OR '1'='1",
        &"a".repeat(5000),
    ] {
        let (status, body) = b.report_result(&token, forged, &ok_report()).await;
        assert!((400..500).contains(&status), "{status} {body}");
    }
    // No credential, a forged one; the operator's is no agent credential.
    for bad in ["", "wdn_forged"] {
        let (status, body) = b.report_result(bad, &action, &ok_report()).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, body) = b
        .report_result(&b.operator_token, &action, &ok_report())
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "wrong_plane", "{body}");
    // Malformed bodies.
    for body in [
        json!({ "status": "maybe" }),
        json!({ "status": "ok", "extra": 1 }),
        json!([1]),
    ] {
        let (status, got) = b.report_result(&token, &action, &body).await;
        assert!(
            (400..500).contains(&status) && status != 404,
            "{status} {got}"
        );
    }
    assert!(results_of(&fleet, &action).await.is_empty());

    // None of it took the action: its own session reports it, once.
    let (status, body) = b.report_result(&token, &action, &ok_report()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(results_of(&fleet, &action).await.len(), 1);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_racing_the_deadline_sweep_close_each_action_once() {
    let db = TestDb::new().await.unwrap();
    let deadline = Duration::from_millis(1500);
    let fleet = Arc::new(two_with_deadline(&db, deadline).await);
    let (_, token) = fleet.instances[0].open_session("1h").await;

    // Each action is reported on B around A's deadline, some before it, some after.
    let mut tasks = Vec::new();
    for k in 0..12u64 {
        let (fleet, token) = (fleet.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let action = allowed(&fleet, 0, &token, &format!("hello race {k}")).await;
            tokio::time::sleep(Duration::from_millis(1000 + 200 * k)).await;
            let (status, body) = fleet.instances[1]
                .report_result(&token, &action, &ok_report())
                .await;
            assert!(status == 200 || status == 404, "{status} {body}");
            (action, status)
        }));
    }
    let mut answered = Vec::new();
    for t in tasks {
        answered.push(t.await.unwrap());
    }
    let sentinel = allowed(&fleet, 0, &token, "hello after the race").await;
    wait_for_result(&fleet, &sentinel).await;

    let reported = answered.iter().filter(|(_, s)| *s == 200).count();
    eprintln!(
        "{reported} of {} reported on B, the others recorded unknown by A",
        answered.len()
    );
    for (action, status) in &answered {
        let results = results_of(&fleet, action).await;
        assert_eq!(results.len(), 1, "{action}: {results:?}");
        let (instance, payload) = &results[0];
        if *status == 200 {
            assert_eq!(instance, "gw-b");
            assert_eq!(payload["status"], "ok");
        } else {
            assert_eq!(instance, "gw-a");
            assert_eq!(payload["status"], "unknown");
        }
    }
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_report_while_the_store_is_down_is_refused_and_the_action_stays_pending() {
    let cluster = Arc::new(
        tokio::task::spawn_blocking(Cluster::start)
            .await
            .unwrap()
            .unwrap(),
    );
    let fleet = Fleet::start(2, charter, &cluster.url("postgres")).await;
    let (_, token) = fleet.instances[0].open_session("1h").await;
    let action = allowed(&fleet, 0, &token, "hello outage").await;

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop())
        .await
        .unwrap()
        .unwrap();
    let (status, body) = fleet.instances[1]
        .report_result(&token, &action, &ok_report())
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_server())
        .await
        .unwrap()
        .unwrap();
    // The pools reconnect by themselves; the report is taken once they have.
    let started = std::time::Instant::now();
    let (status, body) = loop {
        let (status, body) = fleet.instances[1]
            .report_result(&token, &action, &ok_report())
            .await;
        if status != 503 || started.elapsed() > Duration::from_secs(60) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 200, "{body}");
    let results = results_of(&fleet, &action).await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].0, "gw-b");
    fleet.stop().await;
}
