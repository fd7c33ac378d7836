#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use time::macros::datetime;
use warden_audit::chain::GENESIS_HASH;

use super::*;
use crate::gateway::Token;

/// A ledger of `n` records, chained.
fn chain(n: u64) -> Vec<Record> {
    let mut out: Vec<Record> = Vec::new();
    for seq in 1..=n {
        let mut r = Record {
            seq,
            time: datetime!(2026-12-06 10:00 UTC) + time::Duration::milliseconds(seq as i64),
            session: Some("s-1".to_owned()),
            kind: warden_audit::RecordKind::ActionAttempted,
            payload: json!({"tool": "fs.read_file", "arguments": {"path": format!("/ws/{seq}")}}),
            prev_hash: out.last().map_or(GENESIS_HASH, |p| p.hash),
            hash: [0; 32],
        };
        r.hash = r.compute_hash().unwrap();
        out.push(r);
    }
    out
}

/// What the tiny server serves and what it saw.
#[derive(Default)]
struct Served {
    records: Vec<Record>,
    /// At most this many records per connection, then the body ends (0: all).
    per_connection: usize,
    /// Answer this status instead of the stream.
    status: Option<StatusCode>,
    /// The `from` of each request.
    froms: Vec<u64>,
    /// The token presented.
    tokens: Vec<String>,
}

type Shared = Arc<Mutex<Served>>;

async fn stream_route(
    State(served): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let from: u64 = q.get("from").and_then(|f| f.parse().ok()).unwrap_or(1);
    let mut s = served.lock().unwrap();
    s.froms.push(from);
    s.tokens.push(
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    );
    if let Some(status) = s.status {
        return (status, "{\"error\":\"forbidden\"}").into_response();
    }
    let head = s.records.len();
    let mut body = format!(": head {head}\n\n");
    let limit = if s.per_connection == 0 {
        usize::MAX
    } else {
        s.per_connection
    };
    for r in s.records.iter().filter(|r| r.seq >= from).take(limit) {
        body.push_str(&format!(
            "id: {}\nevent: record\ndata: {}\n\n",
            r.seq,
            r.to_json_line()
        ));
    }
    // Split the body into small chunks so events straddle chunk boundaries.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(97)
        .map(|c| Ok(c.to_vec()))
        .collect();
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response()
}

async fn server(served: Shared) -> (StreamClient, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/v1/ledger/stream", get(stream_route))
        .with_state(served);
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    });
    let gateway = GatewayClient::new(&format!("http://{addr}"), Token::new("obs-token\n")).unwrap();
    (StreamClient::new(gateway, 64 * 1024), cancel)
}

/// Follows until `n` items arrived or the follow ends; returns the items and how it ended.
async fn read(
    client: &StreamClient,
    check: ChainCheck,
    n: usize,
) -> (Vec<StreamItem>, Option<Result<(), StreamError>>) {
    let (tx, mut rx) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    let follow = {
        let (client, cancel) = (client.clone(), cancel.clone());
        tokio::spawn(async move { client.follow(check, tx, cancel).await })
    };
    let mut items = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while items.len() < n {
            match rx.recv().await {
                Some(item) => items.push(item),
                None => break,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "timed out after {} items: {items:?}",
        items.len()
    );
    let result = if follow.is_finished() {
        Some(follow.await.unwrap())
    } else {
        cancel.cancel();
        None
    };
    (items, result)
}

fn records(items: &[StreamItem]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Record(r) => Some(r.seq),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_dropped_stream_resumes_at_the_next_record_with_nothing_skipped_or_repeated() {
    let served = Shared::default();
    {
        let mut s = served.lock().unwrap();
        s.records = chain(10);
        s.per_connection = 3;
    }
    let (client, stop) = server(served.clone()).await;
    // Ten records, and a head comment per connection.
    let (items, _) = read(&client, ChainCheck::new(None), 10 + 4).await;
    assert_eq!(records(&items), (1..=10).collect::<Vec<_>>());
    assert!(items.contains(&StreamItem::Head(10)), "{items:?}");
    assert!(!items.iter().any(|i| matches!(i, StreamItem::Broken { .. })));
    {
        let s = served.lock().unwrap();
        assert_eq!(&s.froms[..4], &[1, 4, 7, 10]);
        assert!(
            s.tokens.iter().all(|t| t == "Bearer obs-token"),
            "{:?}",
            s.tokens
        );
    }

    // From a checkpoint: the record after it, checked against the checkpoint's hash.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = served.lock().unwrap().froms.len();
    let fifth = chain(10)[4].clone();
    let (items, _) = read(
        &client,
        ChainCheck::new(Some(Head {
            seq: 5,
            hash: fifth.hash,
        })),
        5 + 2,
    )
    .await;
    assert_eq!(records(&items), (6..=10).collect::<Vec<_>>());
    assert_eq!(served.lock().unwrap().froms[before], 6);
    stop.cancel();
}

#[tokio::test]
async fn a_broken_chain_is_reported_where_it_breaks_and_reading_goes_on() {
    let served = Shared::default();
    let mut ledger = chain(10);
    // Record 4 changed without its hash; record 7 linked to something else.
    ledger[3].payload = json!({"tool": "fs.read_file", "arguments": {"path": "/etc/shadow"}});
    ledger[6].prev_hash = [9; 32];
    served.lock().unwrap().records = ledger;
    let (client, stop) = server(served.clone()).await;
    let (items, _) = read(&client, ChainCheck::new(None), 1 + 10 + 2).await;
    let broken: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            StreamItem::Broken { seq, problem } => Some((*seq, problem.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        broken,
        vec![
            (4, Problem::Changed { seq: 4 }),
            (7, Problem::ChainBroken { seq: 7 })
        ]
    );
    // Each break comes before its record, and every record still arrives.
    assert_eq!(records(&items), (1..=10).collect::<Vec<_>>());
    let pos_broken = items
        .iter()
        .position(|i| matches!(i, StreamItem::Broken { seq: 4, .. }))
        .unwrap();
    let record4 = items
        .iter()
        .position(|i| matches!(i, StreamItem::Record(r) if r.seq == 4))
        .unwrap();
    assert_eq!(pos_broken + 1, record4);

    // A checkpoint whose hash the ledger no longer has: the first record read is a break.
    let (items, _) = read(
        &client,
        ChainCheck::new(Some(Head {
            seq: 8,
            hash: [1; 32],
        })),
        2,
    )
    .await;
    assert!(
        matches!(
            &items[1],
            StreamItem::Broken {
                seq: 9,
                problem: Problem::ChainBroken { seq: 9 }
            }
        ),
        "{items:?}"
    );
    stop.cancel();
}

#[tokio::test]
async fn an_oversized_line_ends_the_stream_with_an_error_and_nothing_is_skipped() {
    let served = Shared::default();
    let mut ledger = chain(3);
    let mut big = Record {
        seq: 4,
        payload: json!({"blob": "x".repeat(100_000)}),
        prev_hash: ledger[2].hash,
        ..ledger[2].clone()
    };
    big.hash = big.compute_hash().unwrap();
    ledger.push(big);
    served.lock().unwrap().records = ledger;
    let (client, stop) = server(served.clone()).await;
    let (items, ended) = read(&client, ChainCheck::new(None), 100).await;
    assert_eq!(records(&items), vec![1, 2, 3]);
    let err = ended.expect("the follow ended").unwrap_err();
    assert!(
        matches!(&err, StreamError::Unreadable { seq: 4, detail } if detail.contains("larger than the limit of 65536 bytes")),
        "{err}"
    );
    assert_eq!(served.lock().unwrap().froms, vec![1], "not retried");
    stop.cancel();
}

#[tokio::test]
async fn a_refused_credential_ends_the_stream_and_the_token_is_never_shown() {
    let served = Shared::default();
    served.lock().unwrap().status = Some(StatusCode::FORBIDDEN);
    let (client, stop) = server(served.clone()).await;
    let (items, ended) = read(&client, ChainCheck::new(None), 100).await;
    assert!(items.is_empty());
    let err = ended.expect("the follow ended").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("refused the observer's credential") && text.contains("403"),
        "{text}"
    );
    assert!(!text.contains("obs-token") && !format!("{client:?}").contains("obs-token"));
    stop.cancel();
}

#[tokio::test]
async fn the_sweep_finds_a_record_changed_after_it_was_read() {
    let served = Shared::default();
    let ledger = chain(10);
    let head = Head {
        seq: 10,
        hash: ledger[9].hash,
    };
    served.lock().unwrap().records = ledger.clone();
    let (client, stop) = server(served.clone()).await;
    let cancel = CancellationToken::new();
    assert_eq!(sweep(&client, head, &cancel).await.unwrap(), None);

    // Changed in place: its content no longer matches its hash.
    served.lock().unwrap().records[2].payload = json!({"tampered": true});
    assert_eq!(
        sweep(&client, head, &cancel).await.unwrap(),
        Some(Problem::Changed { seq: 3 })
    );
    // The whole chain rewritten from record 3 on, every hash recomputed: the last record read
    // no longer has the hash the observer saw.
    let mut rewritten = chain(10);
    rewritten[2].payload = json!({"tampered": true});
    for i in 2..10 {
        if i > 2 {
            rewritten[i].prev_hash = rewritten[i - 1].hash;
        }
        rewritten[i].hash = rewritten[i].compute_hash().unwrap();
    }
    served.lock().unwrap().records = rewritten;
    assert_eq!(
        sweep(&client, head, &cancel).await.unwrap(),
        Some(Problem::Changed { seq: 10 })
    );
    // Records removed from the end: the head is below what was read.
    served.lock().unwrap().records = ledger[..7].to_vec();
    assert_eq!(
        sweep(&client, head, &cancel).await.unwrap(),
        Some(Problem::Removed { seq: 8, next: 10 })
    );
    stop.cancel();
}
