//! The live stream (`GET /ui/live`) against a real gateway: what it says when the ledger's
//! head moves, and that it ends with the console session.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    reason = "test code: a failed expectation is a test failure, and tasks a test spawns end with its runtime"
)]

use super::common;

use std::sync::Arc;

use common::{admin, read_to_end, read_until, start, start_with};
use warden_core::ManualClock;

/// The seqs of the `head` events in `text`.
fn heads(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == "event: head" {
            let data = lines.next().unwrap();
            out.push(data.strip_prefix("data: ").unwrap().parse().unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_tells_the_head_and_ends_at_sign_out() {
    let h = start().await;
    let mut c = admin(&h).await;
    let mut stream = c.live().await;
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    assert_eq!(stream.headers().get("cache-control").unwrap(), "no-store");
    let mut seen = String::new();
    assert!(read_until(&mut stream, &mut seen, "\n\n").await);
    let first = heads(&seen);
    assert_eq!(first.len(), 1, "{seen}");
    let head = first[0];
    assert!(head > 0);

    // Something is recorded: the head moves, and the stream says so.
    h.open_session("1h").await;
    let moved = h.records().await.last().unwrap().seq;
    assert!(moved > head);
    assert!(read_until(&mut stream, &mut seen, &format!("data: {moved}\n")).await);

    // Sign-out ends the stream at once.
    let out = c.post("/ui/logout", &[]).await;
    assert_eq!(out.status, 303);
    read_to_end(&mut stream, &mut seen).await;
    let all = heads(&seen);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_ends_when_the_console_session_expires() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let h = start_with(clock.clone()).await;
    let mut c = admin(&h).await;
    let mut stream = c.live().await;
    let mut seen = String::new();
    assert!(read_until(&mut stream, &mut seen, "event: head").await);
    clock.advance(time::Duration::hours(8));
    // The next request finds it expired: the session ends, and its stream with it.
    let page = c.get("/ui/approvals").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), "/ui/login");
    read_to_end(&mut stream, &mut seen).await;
    let out = h.records_of("console_signed_out").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["reason"], "expired");
    // And a new stream is refused.
    let again = c.live().await;
    assert_eq!(again.status(), 303);
    h.stop().await;
}
