//! Scope counters are exact across instances: a three-a-day preapproval hammered from every
//! instance at once runs exactly three times.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_per_day_scope_hammered_from_three_instances_allows_exactly_three() {
    let (_db, fleet) = three().await;
    let fleet = Arc::new(fleet);
    // Two sessions (the scope is per day, across sessions), opened on different instances.
    let (_, t1) = fleet.instances[0].open_session("1h").await;
    let (_, t2) = fleet.instances[1].open_session("1h").await;
    let mut tasks = Vec::new();
    for i in 0..30usize {
        let fleet = fleet.clone();
        let token = if i % 2 == 0 { t1.clone() } else { t2.clone() };
        tasks.push(tokio::spawn(async move {
            // The decide API without a wait: an escalation answers `ask` at once.
            let (status, body) = fleet.instances[i % 3]
                .decide(&token, &format!("daily report {i}"), None)
                .await;
            assert!(matches!(status, 200 | 202), "{status} {body}");
            (body["verdict"].as_str().unwrap_or("none").to_owned(), body)
        }));
    }
    let mut verdicts: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        let (verdict, body) = t.await.unwrap();
        if verdict == "ask" {
            assert_eq!(body["decision"]["reason"], "scope_exceeded", "{body}");
        }
        *verdicts.entry(verdict).or_default() += 1;
    }
    assert_eq!(
        verdicts,
        BTreeMap::from([("allow".to_owned(), 3), ("ask".to_owned(), 27)]),
        "exactly the scope's three uses are allowed, fleet-wide; the rest ask"
    );
    // The chains agree: three allowed decisions among the three instances' records.
    let allowed = decisions(&fleet)
        .await
        .into_values()
        .filter(|d| d["decision"]["verdict"] == "allow")
        .count();
    assert_eq!(allowed, 3);
    fleet.stop().await;
}
