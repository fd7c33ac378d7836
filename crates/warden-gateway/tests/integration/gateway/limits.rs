//! Issue 10 point 22: connection caps and timeouts on both planes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use warden_core::SystemClock;
use warden_testkit::harness::Harness;

use super::Start as _;

/// Opens `n` TCP connections to `addr` that never send a byte.
async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    idle
}

/// Whether the server closed `stream` within `within` (end of stream, or a reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The agent plane answers `tools/list` (on a fresh connection).
async fn agent_answers(h: &Harness, token: &str) -> bool {
    let (status, body) = h.mcp(token, "tools/list", json!({})).await;
    status == 200 && body["result"]["tools"].is_array()
}

/// The operator plane answers a session listing (on a fresh connection).
async fn operator_answers(h: &Harness) -> bool {
    let resp = reqwest::Client::new()
        .get(format!("http://{}/v1/sessions", h.operator_addr))
        .bearer_auth(&h.operator_token)
        .send()
        .await;
    matches!(resp, Ok(r) if r.status() == 200)
}

/// More idle connections than the cap to one plane: the other plane keeps answering; the
/// connections over the cap are closed at once and the rest by the header timeout, after which
/// the flooded plane answers again. Before the fix (axum::serve: no cap, no header timeout)
/// the idle connections stayed open for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_idle_connections_to_one_plane_do_not_stop_the_other() {
    let h = Harness::start_configured(Arc::new(SystemClock), "", |c| {
        c.limits.agent_max_connections = 8;
        c.limits.operator_max_connections = 8;
        c.limits.header_timeout = Duration::from_secs(1);
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    for flooded_operator in [true, false] {
        let flooded = if flooded_operator {
            h.operator_addr
        } else {
            h.agent_addr
        };
        let mut idle = idle_connections(flooded, 40).await;
        let other_answers = if flooded_operator {
            agent_answers(&h, &token).await
        } else {
            operator_answers(&h).await
        };
        assert!(other_answers, "flooded operator plane: {flooded_operator}");
        // Every idle connection is closed by the server: over the cap at once, the rest by the
        // header timeout (1 s).
        for (i, stream) in idle.iter_mut().enumerate() {
            assert!(
                closed_within(stream, Duration::from_secs(5)).await,
                "idle connection {i} to the {} plane is still open",
                if flooded_operator {
                    "operator"
                } else {
                    "agent"
                }
            );
        }
        drop(idle);
        let flooded_answers = if flooded_operator {
            operator_answers(&h).await
        } else {
            agent_answers(&h, &token).await
        };
        assert!(
            flooded_answers,
            "flooded operator plane: {flooded_operator}"
        );
    }
    h.stop().await;
}

/// A request head sent slowly (a byte at a time, never finished) is cut by the header
/// timeout; a body that trickles in past the body timeout fails the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_slow_heads_and_bodies_are_cut_off() {
    let h = Harness::start_configured(Arc::new(SystemClock), "", |c| {
        c.limits.header_timeout = Duration::from_secs(1);
        c.limits.body_timeout = Duration::from_secs(1);
    })
    .await;
    let (_, token) = h.open_session("1h").await;
    // A head that never ends.
    let mut slow = TcpStream::connect(h.agent_addr).await.unwrap();
    slow.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
    // A complete head, then a body that stops half-way.
    let mut slow = TcpStream::connect(h.agent_addr).await.unwrap();
    let head = format!(
        "POST /v1/decide HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"tool\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok(),
        "the request with a trickling body was not ended"
    );
    assert!(
        !answer.starts_with("HTTP/1.1 200"),
        "a body that never arrived was answered 200: {answer}"
    );
    h.stop().await;
}

/// An OpenAI-shaped provider that answers after `delay`, reporting 50 tokens of usage;
/// counts the requests it gets.
async fn slow_provider(delay: Duration) -> (String, Arc<std::sync::atomic::AtomicU64>) {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().fallback(move || {
        let c = c.clone();
        async move {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            axum::Json(json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": "slow",
                "choices": [{ "index": 0, "finish_reason": "stop",
                              "message": { "role": "assistant", "content": "done" } }],
                "usage": { "prompt_tokens": 10, "completion_tokens": 40, "total_tokens": 50 }
            }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), count)
}

/// Issue 10 point 16: eight concurrent model calls against a budget that fits one: one runs,
/// the others get 429. Before the fix every call was checked (`used < limit`) before the
/// first was counted, so all eight reached the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_concurrent_model_calls_cannot_overrun_a_token_budget() {
    let (url, reached) = slow_provider(Duration::from_millis(500)).await;
    let inventory = format!(
        "  models:\n    - alias: slow\n      routes:\n        - {{ provider: openai, base_url: \"{url}\", model: slow }}\n  token_budgets:\n    - {{ per: session, tokens: 100 }}\n"
    );
    let h = Harness::start_charter(Arc::new(SystemClock), "", &inventory, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    let calls = (0..8).map(|_| {
        let (http, token) = (h.http.clone(), token.clone());
        let url = format!("http://{}/v1/chat/completions", h.agent_addr);
        async move {
            http.post(url)
                .bearer_auth(token)
                .json(&json!({
                    "model": "slow",
                    "max_tokens": 80,
                    "messages": [{ "role": "user", "content": "hi" }]
                }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(calls).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The call ended: 50 of 100 tokens used, nothing in flight, so the next one runs.
    let resp = h
        .http
        .post(format!("http://{}/v1/chat/completions", h.agent_addr))
        .bearer_auth(&token)
        .json(&json!({ "model": "slow", "max_tokens": 80, "messages": [{ "role": "user", "content": "again" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    h.stop().await;
}

/// Issue 10 point 15: a session may have at most 16 approval requests open; the next action
/// that would raise one is refused (recorded as `approval_unavailable`) while another session
/// can still ask. Before the fix there was no cap: every new action raised a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_open_approval_requests_per_session_are_capped() {
    let h = Harness::start(Arc::new(SystemClock)).await;
    let (_, token) = h.open_session("1h").await;
    for i in 0..16 {
        let (status, body) = h.decide(&token, &format!("ask {i}"), None).await;
        assert_eq!(status, 202, "{i}: {body}");
    }
    let (status, body) = h.decide(&token, "ask one more", None).await;
    assert_ne!(status, 202, "{body}");
    assert!(
        body.to_string().contains("16 open approval requests"),
        "{body}"
    );
    // The same action again joins its open request: not a new one.
    let (status, body) = h.decide(&token, "ask 3", None).await;
    assert_eq!(status, 202, "{body}");
    let (_, other) = h.open_session("1h").await;
    let (status, body) = h.decide(&other, "ask 0", None).await;
    assert_eq!(status, 202, "{body}");
    let unavailable = h.records_of("approval_unavailable").await;
    assert_eq!(unavailable.len(), 1, "{unavailable:?}");
    h.stop().await;
}

/// Issue 10 point 15: a call waiting for approval ends at the request's deadline even when
/// nothing marks the request timed out (here the sweeper's clock stands still). Before the
/// fix the wait had no deadline arm of its own and waited until the caller gave up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_an_approval_wait_ends_at_its_deadline_by_itself() {
    let clock = Arc::new(warden_core::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let h = Harness::start_with(
        clock,
        "    - { id: echo-quick, tool: echo.echo, tier: approval, args: { text: { prefix: quick } }, approval: { timeout: 1s } }\n",
    )
    .await;
    let (_, token) = h.open_session("1h").await;
    let answer = tokio::time::timeout(Duration::from_secs(15), h.call(&token, "quick one"))
        .await
        .expect("the wait did not end at the approval deadline");
    assert!(super::is_error(&answer), "{answer}");
    assert!(
        super::text_of(&answer).contains("before the deadline"),
        "{answer}"
    );
    assert_eq!(h.calls.load(std::sync::atomic::Ordering::SeqCst), 0);
    h.stop().await;
}
