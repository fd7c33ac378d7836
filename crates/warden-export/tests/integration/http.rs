//! The HTTP sink against a real server: every record in order (repeats only where a lost
//! acknowledgement allows them), the sink down then up, 503/429/400 answers, a slow sink
//! holding one batch while the ledger takes appends, the cursor across a restart, and the lag
//! records and metrics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use warden_audit::RecordKind;
use warden_export::cursor::Cursor;
use warden_export::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, SinkConfig, Target};

use super::common::*;

pub(crate) fn sink(url: &str) -> SinkConfig {
    SinkConfig::new(
        "siem",
        Target::Http {
            url: url.to_owned(),
            headers: vec![("authorization".to_owned(), "Bearer t0ken-s3cret".to_owned())],
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_in_order_with_the_ledger_id_and_the_header() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 2500).await;
    let (url, rx, server) = receiver("127.0.0.1:0", None).await;
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    run.acked(2500).await;
    run.stop().await;
    let records = all(&reader).await;
    {
        let g = rx.lock().unwrap();
        assert_eq!(check_copy(&g.lines, &records, true), 0);
        assert!(g.bodies >= 3, "batches of at most 1024: {}", g.bodies);
        assert!(g.ledger_ids.iter().all(|id| id == "ledger-under-test"));
        assert!(
            g.headers
                .iter()
                .all(|h| h["authorization"] == "Bearer t0ken-s3cret")
        );
    }
    server.cancel();
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_down_then_up_catches_up_with_nothing_lost_and_order_kept() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    // A port nobody listens on yet: connections are refused.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("http://{addr}/ingest");
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    append(&ledger, 1500).await;
    let stats = run.stats.clone();
    wait_for("failures", || stats.failures.load(Ordering::Relaxed) >= 3).await;
    assert_eq!(
        stats.acked.load(Ordering::Acquire),
        0,
        "the cursor did not move"
    );
    // Up, answering 503 (with Retry-After) for a while, then 429, then taking everything.
    let (_, rx, server) = receiver(&addr.to_string(), None).await;
    rx.lock().unwrap().mode = Mode::Status(503);
    rx.lock()
        .unwrap()
        .answer_headers
        .insert("retry-after".to_owned(), "0".to_owned());
    let rx2 = rx.clone();
    wait_for("503s", || rx2.lock().unwrap().headers.len() >= 2).await;
    rx.lock().unwrap().mode = Mode::Status(429);
    let rx2 = rx.clone();
    wait_for("429s", || rx2.lock().unwrap().headers.len() >= 4).await;
    rx.lock().unwrap().mode = Mode::Ok;
    append(&ledger, 500).await;
    run.acked(2000).await;
    run.stop().await;
    let lines = rx.lock().unwrap().lines.clone();
    assert_eq!(check_copy(&lines, &all(&reader).await, true), 0);
    server.cancel();
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_repeats_one_batch_at_most() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 3000).await;
    let (url, rx, server) = receiver("127.0.0.1:0", None).await;
    rx.lock().unwrap().mode = Mode::KeepThenStatus(500);
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    run.acked(3000).await;
    run.stop().await;
    let lines = rx.lock().unwrap().lines.clone();
    let repeats = check_copy(&lines, &all(&reader).await, true);
    assert!(repeats > 0 && repeats <= MAX_BATCH_RECORDS, "{repeats}");
    server.cancel();
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_holds_one_batch_and_the_ledger_never_waits_for_it() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    let (url, rx, server) = receiver("127.0.0.1:0", None).await;
    rx.lock().unwrap().mode = Mode::Hang;
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    // The sink takes nothing while 6000 records are appended: every append returns.
    append(&ledger, 6000).await;
    assert_eq!(run.stats.acked.load(Ordering::Acquire), 0);
    assert!(run.stats.max_batch_records.load(Ordering::Acquire) <= MAX_BATCH_RECORDS);
    assert!(run.stats.max_batch_bytes.load(Ordering::Acquire) <= MAX_BATCH_BYTES);
    rx.lock().unwrap().mode = Mode::Ok;
    run.acked(6000).await;
    let most = run.stats.max_batch_records.load(Ordering::Acquire);
    assert!(most > 0 && most <= MAX_BATCH_RECORDS, "{most}");
    assert!(run.stats.max_batch_bytes.load(Ordering::Acquire) <= MAX_BATCH_BYTES);
    run.stop().await;
    let lines = rx.lock().unwrap().lines.clone();
    check_copy(&lines, &all(&reader).await, true);
    server.cancel();
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_counted_and_retried_never_skipped() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 100).await;
    let (url, rx, server) = receiver("127.0.0.1:0", None).await;
    rx.lock().unwrap().mode = Mode::Status(400);
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    let stats = run.stats.clone();
    wait_for("refusals", || stats.failures.load(Ordering::Relaxed) >= 3).await;
    assert_eq!(stats.acked.load(Ordering::Acquire), 0);
    let text = run.telemetry.encode();
    assert!(
        text.contains("warden_export_failures_total{sink=\"siem\"}"),
        "{text}"
    );
    rx.lock().unwrap().mode = Mode::Ok;
    run.acked(100).await;
    run.stop().await;
    let lines = rx.lock().unwrap().lines.clone();
    check_copy(&lines, &all(&reader).await, true);
    server.cancel();
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_survives_a_restart_and_the_sink_resumes_after_it() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 1000).await;
    let (url, rx, server) = receiver("127.0.0.1:0", None).await;
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    run.acked(1000).await;
    run.stop().await;
    assert_eq!(Cursor::load(data.path(), "siem").unwrap().get(), 1000);
    rx.lock().unwrap().lines.clear();
    append(&ledger, 10).await;
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    run.acked(1010).await;
    run.stop().await;
    let lines = rx.lock().unwrap().lines.clone();
    let records = all(&reader).await;
    assert_eq!(lines.len(), 10, "only what came after the cursor");
    let want: Vec<String> = records[1000..].iter().map(|r| r.to_json_line()).collect();
    assert_eq!(lines, want);
    server.cancel();
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_is_recorded_then_recovery_and_the_lag_is_a_metric() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    let (url, rx, server) = receiver("127.0.0.1:0", None).await;
    rx.lock().unwrap().mode = Mode::Status(503);
    let mut config = sink(&url);
    config.max_lag_records = 50;
    let run = Running::start(config, data.path(), &ledger).await;
    append(&ledger, 200).await;
    let kinds = |reader: warden_audit::LedgerReader| async move {
        all(&reader)
            .await
            .iter()
            .map(|r| r.kind)
            .collect::<Vec<_>>()
    };
    for _ in 0..3000 {
        if kinds(reader.clone())
            .await
            .contains(&RecordKind::ExportLagging)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let records = all(&reader).await;
    let lagging = records
        .iter()
        .find(|r| r.kind == RecordKind::ExportLagging)
        .expect("export_lagging recorded");
    assert_eq!(lagging.payload["sink"], "siem");
    assert_eq!(lagging.payload["acked"], 0);
    assert!(lagging.payload["lag"].as_u64().unwrap() > 50);
    // The last failure, when one came before the lag crossed the limit.
    let error = &lagging.payload["error"];
    assert!(
        error.is_null() || error.as_str().unwrap().contains("503"),
        "{error}"
    );
    assert!(lagging.session.is_none());
    let text = run.telemetry.encode();
    assert!(
        text.contains("warden_export_lag_records{sink=\"siem\"} 20"),
        "{text}"
    );
    rx.lock().unwrap().mode = Mode::Ok;
    for _ in 0..3000 {
        if kinds(reader.clone())
            .await
            .contains(&RecordKind::ExportRecovered)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let records = all(&reader).await;
    let lag_records = records
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                RecordKind::ExportLagging | RecordKind::ExportRecovered
            )
        })
        .count();
    assert_eq!(lag_records, 2, "one each");
    let head = records.last().unwrap().seq;
    run.acked(head).await;
    let text = run.telemetry.encode();
    assert!(
        text.contains("warden_export_records_total{sink=\"siem\"}"),
        "{text}"
    );
    run.stop().await;
    let lines = rx.lock().unwrap().lines.clone();
    check_copy(&lines, &all(&reader).await, true);
    server.cancel();
    ledger.shutdown().await.unwrap();
}
