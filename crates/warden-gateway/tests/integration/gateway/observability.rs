//! The observer's read surfaces on the operator plane, over HTTP against the real ledger
//! (SQLite): the ledger stream (`GET /v1/ledger/stream`: from 1, from N, `Last-Event-ID`,
//! live follow, the stream limit, who may read it, the chain of what was streamed) and the
//! metrics (`GET /metrics`: the counts after real decisions and a model call, who may read
//! them, bounded tool labels).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use warden_audit::chain::{RecordRef, canonical_json};
use warden_audit::{NewRecord, RecordKind, Verifier};
use warden_core::SystemClock;

use super::{Harness, Start as _};

/// An observer credential.
async fn observer_token(h: &Harness) -> String {
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            &h.operator_token,
            Some(json!({ "name": "observer-1", "role": "observer" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// One open stream, read event by event.
struct Sse {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
}

/// One event or comment of a stream.
#[derive(Debug)]
enum Event {
    Record { id: u64, data: Value, line: String },
    Comment(#[allow(dead_code, reason = "shown in failures")] String),
    Error(#[allow(dead_code, reason = "shown in failures")] String),
}

impl Sse {
    async fn open(h: &Harness, token: &str, query: &str, last_event_id: Option<&str>) -> Sse {
        let resp = Sse::request(h, token, query, last_event_id).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            body: resp.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    async fn request(
        h: &Harness,
        token: &str,
        query: &str,
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        let mut req = h
            .http
            .get(format!(
                "http://{}/v1/ledger/stream{query}",
                h.operator_addr
            ))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.send().await.unwrap()
    }

    /// The next event, or `None` after `within`.
    async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse(&block));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next record event (skipping comments), or a panic after 5 s.
    async fn record(&mut self) -> (u64, Value, String) {
        loop {
            match self.next(Duration::from_secs(5)).await {
                Some(Event::Record { id, data, line }) => return (id, data, line),
                Some(Event::Comment(_)) => {}
                other => panic!("expected a record, got {other:?}"),
            }
        }
    }
}

fn parse(block: &str) -> Event {
    let mut id = None;
    let mut kind = None;
    let mut data = None;
    for line in block.lines() {
        if let Some(c) = line.strip_prefix(": ") {
            return Event::Comment(c.to_owned());
        }
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("event: ") {
            kind = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(v.to_owned());
        }
    }
    let data = data.expect("an event has data");
    match kind.as_deref() {
        Some("record") => Event::Record {
            id: id.expect("a record event has an id"),
            data: serde_json::from_str(&data).unwrap(),
            line: data,
        },
        Some("error") => Event::Error(data),
        other => panic!("unknown event {other:?}"),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Verifies streamed records with the ledger's own verifier (record 1 first).
fn verify_chain(records: &[Value]) {
    let mut verifier = Verifier::new();
    for r in records {
        let payload = canonical_json(&r["payload"]);
        let (prev, hash) = (
            unhex(r["prev_hash"].as_str().unwrap()),
            unhex(r["hash"].as_str().unwrap()),
        );
        verifier
            .push(&RecordRef {
                seq: r["seq"].as_u64().unwrap(),
                time: r["time"].as_str().unwrap(),
                session: r["session"].as_str(),
                kind: r["kind"].as_str().unwrap(),
                payload: &payload,
                prev_hash: &prev,
                hash: &hash,
            })
            .unwrap();
    }
    assert_eq!(verifier.records(), records.len() as u64);
}

async fn head(h: &Harness) -> u64 {
    h.records().await.last().unwrap().seq
}

#[tokio::test]
async fn the_stream_sends_the_ledger_from_1_and_from_n_and_the_chain_verifies() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let observer = observer_token(&h).await;
    let (_, agent) = h.open_session("1h").await;
    h.call(&agent, "hello one").await;
    h.call(&agent, "hello two").await;
    h.call(&agent, "my secret").await;
    let stored = h.records().await;
    let head = stored.last().unwrap().seq;

    // From the start (no `from`): every record, in order, exactly as stored.
    let mut stream = Sse::open(&h, &observer, "", None).await;
    let mut streamed = Vec::new();
    for expected in &stored {
        let (id, data, line) = stream.record().await;
        assert_eq!(id, expected.seq);
        assert_eq!(line, expected.to_json_line());
        streamed.push(data);
    }
    verify_chain(&streamed);
    assert_eq!(streamed.len() as u64, head);

    // From N: record N first, and its prev_hash is record N-1's hash.
    let n = head - 3;
    let mut stream = Sse::open(&h, &h.operator_token, &format!("?from={n}"), None).await;
    let (id, data, _) = stream.record().await;
    assert_eq!(id, n);
    assert_eq!(data["prev_hash"], streamed[(n - 2) as usize]["hash"]);
    for expected in n + 1..=head {
        assert_eq!(stream.record().await.0, expected);
    }
    h.stop().await;
}

#[tokio::test]
async fn last_event_id_resumes_after_it_and_wins_over_from() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let observer = observer_token(&h).await;
    let (_, agent) = h.open_session("1h").await;
    h.call(&agent, "hello").await;
    let mut stream = Sse::open(&h, &observer, "?from=1", Some("3")).await;
    assert_eq!(stream.record().await.0, 4);
    assert_eq!(stream.record().await.0, 5);
    h.stop().await;
}

#[tokio::test]
async fn a_record_committed_after_connecting_arrives_at_once() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let observer = observer_token(&h).await;
    let start = head(&h).await + 1;
    let mut stream = Sse::open(&h, &observer, &format!("?from={start}"), None).await;
    // Nothing yet: the stream waits at the head.
    assert!(
        stream.next(Duration::from_millis(300)).await.is_none(),
        "nothing is past the head"
    );
    let ledger = h.app_state().governor.ledger().clone();
    let appended_at = std::time::Instant::now();
    let appended = ledger
        .append(NewRecord {
            session: None,
            kind: RecordKind::GatewayStarted,
            payload: json!({ "marker": "live" }),
        })
        .await
        .unwrap();
    let (id, data, _) = stream.record().await;
    let latency = appended_at.elapsed();
    assert_eq!(id, appended.seq);
    assert_eq!(data["payload"]["marker"], "live");
    // Woken by the head watch, not a poll (the contract: within ~10 ms of the commit; a
    // loaded test machine gets more room).
    assert!(latency < Duration::from_millis(500), "{latency:?}");
    h.stop().await;
}

#[tokio::test]
async fn at_most_16_streams_and_the_17th_is_refused() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let observer = observer_token(&h).await;
    let mut open = Vec::new();
    for _ in 0..16 {
        open.push(Sse::open(&h, &observer, "", None).await);
    }
    let refused = Sse::request(&h, &observer, "", None).await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    // A closed stream frees its slot.
    drop(open.pop());
    let mut again = None;
    for _ in 0..50 {
        let resp = Sse::request(&h, &observer, "", None).await;
        if resp.status() == 200 {
            again = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the slot of a closed stream was not freed");
    drop(open);
    drop(again);
    h.stop().await;
}

#[tokio::test]
async fn only_admins_and_observers_read_the_stream_and_the_metrics() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, agent) = h.open_session("1h").await;
    let approver = h.approver_token("bob").await;
    let observer = observer_token(&h).await;
    for path in ["/v1/ledger/stream", "/metrics"] {
        let url = format!("http://{}{path}", h.operator_addr);
        let status = |resp: reqwest::Response| async move {
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        };
        let none = status(h.http.get(&url).send().await.unwrap()).await;
        assert_eq!(none, (401, "unauthenticated".to_owned()), "{path}");
        let forged = h
            .http
            .get(&url)
            .bearer_auth("wo_forged")
            .send()
            .await
            .unwrap();
        assert_eq!(status(forged).await.0, 401, "{path}");
        let as_agent = h.http.get(&url).bearer_auth(&agent).send().await.unwrap();
        assert_eq!(
            status(as_agent).await,
            (403, "wrong_plane".to_owned()),
            "{path}"
        );
        let as_approver = h
            .http
            .get(&url)
            .bearer_auth(&approver)
            .send()
            .await
            .unwrap();
        assert_eq!(
            status(as_approver).await,
            (403, "admin_only".to_owned()),
            "{path}"
        );
        for token in [&observer, &h.operator_token] {
            let ok = h.http.get(&url).bearer_auth(token).send().await.unwrap();
            assert_eq!(ok.status(), 200, "{path}");
        }
    }
    for bad in [
        "?from=abc",
        "?from=0",
        "?from=-3",
        "?since=1",
        "?from=1&from=x",
    ] {
        let resp = Sse::request(&h, &observer, bad, None).await;
        assert_eq!(resp.status(), 400, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{bad}");
    }
    let resp = Sse::request(&h, &observer, "", Some("not-a-number")).await;
    assert_eq!(resp.status(), 400);
    h.stop().await;
}

/// The exposition's samples: `name{labels}` → value (a small parser of the text format).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

async fn metrics(h: &Harness, token: &str) -> String {
    let resp = h
        .http
        .get(format!("http://{}/metrics", h.operator_addr))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    resp.text().await.unwrap()
}

#[tokio::test]
async fn the_metrics_count_decisions_and_a_model_call_with_bounded_tool_labels() {
    let s = super::models::setup(0, "", "").await;
    let h = &s.h;
    let observer = observer_token(h).await;
    h.call(&s.token, "hello one").await;
    h.call(&s.token, "hello two").await;
    h.call(&s.token, "a secret").await;
    // Tool names the agent makes up: refused, and counted under `other`.
    for name in ["evil.tool", "made-up.name", "x.y"] {
        h.mcp(
            &s.token,
            "tools/call",
            json!({ "name": name, "arguments": {} }),
        )
        .await;
    }
    let (status, _, _) = super::models::post(
        &s,
        "/v1/chat/completions",
        super::models::chat("fast", "hi"),
        false,
    )
    .await;
    assert_eq!(status, 200);
    super::models::wait_records(h, "model_completed", 1).await;
    let text = metrics(h, &observer).await;
    let m = samples(&text);
    let get = |k: &str| {
        m.get(k)
            .copied()
            .unwrap_or_else(|| panic!("no {k} in\n{text}"))
    };
    assert_eq!(
        get(
            r#"warden_decisions_total{verdict="allow",tier="autonomous",reason="rule",tool="echo.echo",agent="agent-1"}"#
        ),
        2.0
    );
    assert_eq!(
        get(
            r#"warden_decisions_total{verdict="deny",tier="prohibited",reason="rule",tool="echo.echo",agent="agent-1"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"warden_decisions_total{verdict="deny",tier="prohibited",reason="unroutable",tool="other",agent="agent-1"}"#
        ),
        3.0
    );
    assert!(
        !text.contains("evil") && !text.contains("made-up"),
        "{text}"
    );
    assert_eq!(
        get(r#"warden_model_requests_total{route="fast",status="200"}"#),
        1.0
    );
    assert!(get(r#"warden_model_tokens_total{route="fast",direction="input"}"#) > 0.0);
    assert!(get(r#"warden_model_tokens_total{route="fast",direction="output"}"#) > 0.0);
    // The two forwarded calls reached the echo server.
    assert_eq!(
        get(r#"warden_upstream_call_seconds_count{server="echo"}"#),
        2.0
    );
    assert!(get("warden_ledger_commit_seconds_count") >= 5.0);
    // Registered; a few calls never fill the WAL to its first checkpoint.
    assert_eq!(get("warden_ledger_wal_checkpoint_seconds_count"), 0.0);
    assert_eq!(
        get("warden_ledger_wal_checkpoints_on_commit_path_total"),
        0.0
    );
    assert_eq!(get("warden_sessions_active"), 1.0);
    assert_eq!(get("warden_ledger_queue_depth"), 0.0);
    assert_eq!(get(r#"warden_controls_in_force{action="frozen"}"#), 0.0);
    // A frozen gateway shows in the controls gauge at the next scrape.
    let control = h
        .set_control(serde_json::json!({
            "action": "frozen", "scope": "gateway", "reason": "metrics test"
        }))
        .await;
    let m = samples(&metrics(h, &h.operator_token).await);
    assert_eq!(m[r#"warden_controls_in_force{action="frozen"}"#], 1.0);
    assert_eq!(m[r#"warden_controls_in_force{action="conservative"}"#], 0.0);
    h.lift_control(control["id"].as_str().unwrap()).await;
    let m = samples(&metrics(h, &h.operator_token).await);
    assert_eq!(m[r#"warden_controls_in_force{action="frozen"}"#], 0.0);
    s.h.stop().await;
}

/// This process's resident memory, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// A reader that connects and then reads nothing, on a real ledger of about 120 MB of events:
/// the gateway reads the next batch only when the connection took the last one, so its memory
/// grows by the socket buffers and a batch, not by the ledger.
#[tokio::test]
async fn a_stalled_reader_does_not_load_the_ledger_into_memory() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let observer = observer_token(&h).await;
    let ledger = h.app_state().governor.ledger().clone();
    let filler = "x".repeat(2000);
    for _ in 0..60 {
        let batch = (0..1000)
            .map(|i| NewRecord {
                session: None,
                kind: RecordKind::GatewayStarted,
                payload: json!({ "i": i, "filler": filler }),
            })
            .collect();
        ledger.append_batch(batch).await.unwrap();
    }
    let before = rss();
    let mut client = tokio::net::TcpStream::connect(h.operator_addr)
        .await
        .unwrap();
    let request = format!(
        "GET /v1/ledger/stream HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {observer}\r\n\r\n",
        h.operator_addr
    );
    tokio::io::AsyncWriteExt::write_all(&mut client, request.as_bytes())
        .await
        .unwrap();
    // Long enough to read the whole ledger many times over if nothing held it back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 48 * 1024 * 1024,
        "memory grew by {} MB for a reader that reads nothing",
        grown / (1024 * 1024)
    );
    drop(client);
    h.stop().await;
}
