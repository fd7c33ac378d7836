//! Issue 11, point 3: credentials of Streamable HTTP upstreams. The upstream (the testkit's
//! authenticating echo server) refuses requests without a token it accepts; the gateway sends
//! the charter's headers (read from files), a principal's own credentials, or an OAuth token
//! it fetched; the agent and the ledger never see them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_testkit::echo::{AuthLog, spawn_authenticated};

use super::{Harness, Start as _, is_error, text_of};

const ANY_GH: &str = "    - { id: gh-any, tool: \"gh.*\", tier: autonomous }\n";

fn secret_file(dir: &Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    p.display().to_string()
}

async fn session_for(h: &Harness, user: &str) -> String {
    let (status, body) = h
        .operator(
            reqwest::Method::POST,
            "/v1/sessions",
            &h.operator_token,
            Some(json!({ "agent": "agent-1", "user": user, "task": "testing", "ttl": "1h" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn call(h: &Harness, token: &str, tool: &str) -> Value {
    let (status, body) = h
        .mcp(
            token,
            "tools/call",
            json!({ "name": tool, "arguments": { "text": "hello" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The whole ledger as text.
async fn ledger_text(h: &Harness) -> String {
    h.records()
        .await
        .iter()
        .map(|r| r.payload.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Server-wide headers from files reach the upstream; the agent, asking the upstream to show
/// them, gets `[REDACTED]`; the ledger holds neither value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_headers_from_files_reach_the_upstream_and_nobody_else() {
    const TOKEN: &str = "upstream-token-3f9a1c";
    const TEAM: &str = "team-secret-77b2";
    let log = Arc::new(AuthLog::default());
    log.accept(TOKEN);
    let (url, _) = spawn_authenticated(log.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = secret_file(dir.path(), "token", TOKEN);
    let team_file = secret_file(dir.path(), "team", TEAM);
    let server = format!(
        "    - id: gh\n      url: \"{url}\"\n      tools: [echo, whoami]\n      headers: {{ Authorization: \"Bearer ${{file:{token_file}}}\", X-Team: \"${{file:{team_file}}}\" }}\n"
    );
    let h = Harness::start_charter(Arc::new(SystemClock), ANY_GH, &server, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    let echoed = call(&h, &token, "gh.echo").await;
    assert_eq!(text_of(&echoed), "hello", "{echoed}");
    let whoami = call(&h, &token, "gh.whoami").await;
    assert!(!is_error(&whoami), "{whoami}");
    assert_eq!(text_of(&whoami), "[REDACTED]", "{whoami}");
    assert_eq!(log.calls(), vec![format!("Bearer {TOKEN}"); 2]);
    let ledger = ledger_text(&h).await;
    assert!(ledger.contains("gh.whoami"), "the calls were not recorded");
    for secret in [TOKEN, TEAM] {
        assert!(!ledger.contains(secret), "`{secret}` is in the ledger");
    }
    h.assert_ledger_verifies().await;
}

/// Per-principal credentials: alice's and bob's sessions reach the upstream with their own
/// tokens; carol, whom the charter names no credentials for, is refused (and recorded)
/// without the upstream being called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_each_principal_reaches_the_upstream_with_its_own_credentials() {
    let log = Arc::new(AuthLog::default());
    for t in ["lister-token-001", "alice-token-0a1", "bob-token-00b2"] {
        log.accept(t);
    }
    let (url, _) = spawn_authenticated(log.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = [
        ("lister", "lister-token-001"),
        ("alice", "alice-token-0a1"),
        ("bob", "bob-token-00b2"),
    ]
    .iter()
    .map(|(n, v)| secret_file(dir.path(), n, v))
    .collect();
    let server = format!(
        "    - id: gh\n      url: \"{url}\"\n      tools: [echo, whoami]\n      headers: {{ Authorization: \"Bearer ${{file:{}}}\" }}\n      credentials:\n        per_principal:\n          alice: {{ headers: {{ Authorization: \"Bearer ${{file:{}}}\" }} }}\n          bob: {{ headers: {{ Authorization: \"Bearer ${{file:{}}}\" }} }}\n",
        files[0], files[1], files[2]
    );
    let h = Harness::start_charter(Arc::new(SystemClock), ANY_GH, &server, |_| {}).await;
    let alice = session_for(&h, "alice").await;
    let bob = session_for(&h, "bob").await;
    let carol = session_for(&h, "carol").await;
    for token in [&alice, &bob, &alice] {
        let body = call(&h, token, "gh.echo").await;
        assert_eq!(text_of(&body), "hello", "{body}");
    }
    assert_eq!(
        log.calls(),
        [
            "Bearer alice-token-0a1",
            "Bearer bob-token-00b2",
            "Bearer alice-token-0a1"
        ]
    );
    let refused = call(&h, &carol, "gh.echo").await;
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no credentials for principal `carol`"),
        "{refused}"
    );
    assert_eq!(log.calls().len(), 3, "carol's call reached the upstream");
    let results: Vec<Value> = h.records_of("action_result").await;
    assert!(
        results.iter().any(|r| r
            .to_string()
            .contains("no credentials for principal `carol`")),
        "carol's refusal was not recorded: {results:?}"
    );
    let ledger = ledger_text(&h).await;
    for secret in ["lister-token-001", "alice-token-0a1", "bob-token-00b2"] {
        assert!(!ledger.contains(secret), "`{secret}` is in the ledger");
    }
}

/// The token endpoint of the OAuth test: checks the client credentials and the grant, issues
/// `issued-token-N` for `lifetime` seconds, and tells the upstream to accept it.
async fn token_endpoint(log: Arc<AuthLog>, issued: Arc<AtomicU64>, lifetime: u64) -> String {
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (log, issued) = (log.clone(), issued.clone());
            async move {
                // base64("warden-client:oauth-client-secret-1")
                let basic = "Basic d2FyZGVuLWNsaWVudDpvYXV0aC1jbGllbnQtc2VjcmV0LTE=";
                let grant = body.contains("grant_type=client_credentials")
                    && body.contains("scope=repo+read%3Aorg");
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic)
                    || !grant
                {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({ "error": "invalid_client" })));
                }
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                let token = format!("issued-token-{n}");
                log.accept(&token);
                (
                    StatusCode::OK,
                    axum::Json(json!({ "access_token": token, "token_type": "Bearer", "expires_in": lifetime })),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/token")
}

/// OAuth client credentials: the upstream sees the token the endpoint issued; the next call
/// reuses it; once it expires, a new one is fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_oauth_tokens_are_fetched_reused_and_refreshed() {
    let log = Arc::new(AuthLog::default());
    let issued = Arc::new(AtomicU64::new(0));
    let token_url = token_endpoint(log.clone(), issued.clone(), 8).await;
    let (url, _) = spawn_authenticated(log.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "client-secret", "oauth-client-secret-1");
    let server = format!(
        "    - id: gh\n      url: \"{url}\"\n      tools: [echo]\n      oauth: {{ token_url: \"{token_url}\", client_id: warden-client, client_secret: \"${{file:{secret}}}\", scopes: [repo, \"read:org\"] }}\n"
    );
    let h = Harness::start_charter(Arc::new(SystemClock), ANY_GH, &server, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    for _ in 0..2 {
        let body = call(&h, &token, "gh.echo").await;
        assert_eq!(text_of(&body), "hello", "{body}");
    }
    assert_eq!(issued.load(Ordering::SeqCst), 1, "the token was not reused");
    assert_eq!(log.calls(), ["Bearer issued-token-1"; 2]);
    // Refreshed a quarter of its lifetime early: 6 s after it was issued.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let body = call(&h, &token, "gh.echo").await;
    assert_eq!(text_of(&body), "hello", "{body}");
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "the expired token was not refreshed"
    );
    assert_eq!(
        log.calls().last().map(String::as_str),
        Some("Bearer issued-token-2")
    );
    assert!(
        !ledger_text(&h).await.contains("oauth-client-secret-1"),
        "the client secret is in the ledger"
    );
}

/// A forged or missing credential: without the charter's headers the upstream refuses the
/// gateway, the server is down, and the agent's call fails without reaching it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_an_upstream_refusing_the_credentials_is_down_not_bypassed() {
    let log = Arc::new(AuthLog::default());
    log.accept("the-real-token-1");
    let (url, _) = spawn_authenticated(log.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let forged = secret_file(dir.path(), "token", "a-forged-token-2");
    let server = format!(
        "    - id: gh\n      url: \"{url}\"\n      tools: [echo]\n      headers: {{ Authorization: \"Bearer ${{file:{forged}}}\" }}\n"
    );
    let h = Harness::start_charter(Arc::new(SystemClock), ANY_GH, &server, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    let body = call(&h, &token, "gh.echo").await;
    assert!(body["error"].is_object() || is_error(&body), "{body}");
    assert!(log.calls().is_empty());
    assert!(log.refused() > 0);
    assert!(!ledger_text(&h).await.contains("a-forged-token-2"));
}

/// A wrong client secret: the token endpoint refuses it, the server is down (the refusal
/// says so, without the secret), and nothing reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_a_refused_oauth_client_leaves_the_server_down() {
    let log = Arc::new(AuthLog::default());
    let issued = Arc::new(AtomicU64::new(0));
    let token_url = token_endpoint(log.clone(), issued.clone(), 60).await;
    let (url, _) = spawn_authenticated(log.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "client-secret", "a-wrong-client-secret");
    let server = format!(
        "    - id: gh\n      url: \"{url}\"\n      tools: [echo]\n      oauth: {{ token_url: \"{token_url}\", client_id: warden-client, client_secret: \"${{file:{secret}}}\", scopes: [repo, \"read:org\"] }}\n"
    );
    let h = Harness::start_charter(Arc::new(SystemClock), ANY_GH, &server, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    let body = call(&h, &token, "gh.echo").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("refused the client credentials") && message.contains("invalid_client"),
        "{body}"
    );
    assert!(!message.contains("a-wrong-client-secret"), "{body}");
    assert_eq!(issued.load(Ordering::SeqCst), 0);
    assert!(log.calls().is_empty());
    assert!(!ledger_text(&h).await.contains("a-wrong-client-secret"));
}
