//! Issue 11, point 2: a shared deployment — allowed host names on every route of both
//! planes, TLS on the listeners (reloaded on SIGHUP), and `/readyz`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use warden_core::SystemClock;
use warden_gateway::config::TlsFiles;
use warden_testkit::harness::Harness;

use super::Start as _;

/// A self-signed certificate for `localhost`, written as `NAME.crt` and `NAME.key` in `dir`;
/// its PEM.
fn certificate(dir: &Path, name: &str) -> (TlsFiles, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = generated.cert.pem();
    let files = TlsFiles {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.cert, &pem).unwrap();
    std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
    (files, pem)
}

/// A client that trusts only `pem` and reaches `localhost` at `addr`.
fn client_trusting(pem: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

/// `GET https://localhost:PORT/healthz` with `client`: the status, or `None` if the TLS
/// connection failed.
async fn https_healthz(client: &reqwest::Client, addr: SocketAddr) -> Option<u16> {
    client
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// One raw HTTP/1.1 exchange (`request` is sent as is, and should ask to close): the status
/// and the body.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("no answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn request(method: &str, path: &str, host: &str, token: &str) -> String {
    request_with(method, path, host, token, "{}")
}

fn request_with(method: &str, path: &str, host: &str, token: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-11-25\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

const AGENT_ROUTES: [(&str, &str); 9] = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/mcp"),
    ("POST", "/v1/decide"),
    ("POST", "/v1/actions/x/result"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/messages"),
    ("GET", "/v1/models"),
    ("GET", "/v1/approvals"),
];

const OPERATOR_ROUTES: [(&str, &str); 7] = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/sessions"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/approvals"),
    ("GET", "/v1/approvals/x/link/approve"),
    ("GET", "/v1/operator-tokens"),
];

/// A request naming a host the plane does not answer to is refused with 403 on every route
/// of both planes, whatever credential it carries, and the refusal names the setting; the
/// configured names (exact and wildcard) and loopback are served. Before, only `/mcp`
/// checked the host (and the configured names could not be added).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_a_wrong_host_is_refused_on_every_route_of_both_planes() {
    let h = Harness::start_configured(Arc::new(SystemClock), "", |c| {
        c.deployment.agent.allowed_hosts = vec![
            "warden.example.com".to_owned(),
            "*.agents.example.com".to_owned(),
        ];
        c.deployment.operator.allowed_hosts = vec!["ops.example.com".to_owned()];
    })
    .await;
    let (_, agent_token) = h.open_session("1h").await;
    let planes = [
        (
            "agent",
            h.agent_addr,
            &AGENT_ROUTES[..],
            agent_token.as_str(),
        ),
        (
            "operator",
            h.operator_addr,
            &OPERATOR_ROUTES[..],
            h.operator_token.as_str(),
        ),
    ];
    for (plane, addr, routes, token) in planes {
        for (method, path) in routes {
            for host in [
                "evil.example",
                "evil.example:80",
                "127.0.0.2",
                "agents.example.com",
            ] {
                let (status, body) = raw(addr, &request(method, path, host, token)).await;
                assert_eq!(status, 403, "{plane} {method} {path} Host {host}: {body}");
                assert!(
                    body.contains(&format!("{plane}_allowed_hosts")),
                    "{plane} {method} {path}: {body}"
                );
            }
        }
        // No host at all (HTTP/1.0 without `Host`): refused too.
        let (status, body) = raw(
            addr,
            &format!("GET /healthz HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 403, "{plane}: {body}");
        // An absolute-form target naming another host, with an allowed `Host`: refused.
        let (status, body) = raw(
            addr,
            "GET http://evil.example/healthz HTTP/1.1\r\nHost: localhost\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(status, 403, "{plane}: {body}");
    }
    // The agent plane's refusal is in each route's protocol: JSON-RPC on `/mcp`, the
    // provider's error object on a model endpoint.
    let (_, body) = raw(h.agent_addr, &request("POST", "/mcp", "evil.example", "x")).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    let (_, body) = raw(
        h.agent_addr,
        &request("POST", "/v1/chat/completions", "evil.example", "x"),
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "host_not_allowed", "{body}");

    // The allowed names are served.
    for host in [
        "warden.example.com",
        "WARDEN.example.com:8700",
        "a.agents.example.com",
        "localhost",
        "127.0.0.1",
    ] {
        let (status, body) = raw(h.agent_addr, &request("GET", "/healthz", host, "")).await;
        assert_eq!(status, 200, "agent Host {host}: {body}");
    }
    let (status, body) = raw(
        h.agent_addr,
        &request_with(
            "POST",
            "/mcp",
            "warden.example.com",
            &agent_token,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("echo__echo"), "{body}");
    for host in ["ops.example.com", "[::1]:1"] {
        let (status, body) = raw(
            h.operator_addr,
            &request("GET", "/v1/sessions", host, &h.operator_token),
        )
        .await;
        assert_eq!(status, 200, "operator Host {host}: {body}");
    }
    // A name allowed on one plane is not allowed on the other.
    let (status, _) = raw(
        h.operator_addr,
        &request("GET", "/healthz", "warden.example.com", ""),
    )
    .await;
    assert_eq!(status, 403);
    h.stop().await;
}

/// TLS on both planes: they answer over HTTPS with their certificate, refuse plain HTTP,
/// and SIGHUP puts a new certificate in force for new connections; a reload from broken
/// files keeps the certificate in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_tls_listener_and_certificate_reload_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_pem) = certificate(dir.path(), "first");
    let (second, second_pem) = certificate(dir.path(), "second");
    let served = TlsFiles {
        cert: dir.path().join("served.crt"),
        key: dir.path().join("served.key"),
    };
    std::fs::copy(&first.cert, &served.cert).unwrap();
    std::fs::copy(&first.key, &served.key).unwrap();
    let tls = served.clone();
    let h = Harness::start_configured(Arc::new(SystemClock), "", move |c| {
        c.deployment.agent.tls = Some(tls.clone());
        c.deployment.operator.tls = Some(tls);
    })
    .await;
    let trusts_first = client_trusting(&first_pem, h.agent_addr);
    // A session opened over TLS on the operator plane.
    let resp = trusts_first
        .post(format!(
            "https://localhost:{}/v1/sessions",
            h.operator_addr.port()
        ))
        .bearer_auth(&h.operator_token)
        .json(&json!({ "agent": "agent-1", "user": "alice", "task": "testing", "ttl": "1h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let token = resp.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let trusts_second = client_trusting(&second_pem, h.agent_addr);
    assert_eq!(https_healthz(&trusts_first, h.agent_addr).await, Some(200));
    assert_eq!(https_healthz(&trusts_second, h.agent_addr).await, None);
    // An authenticated MCP call over TLS.
    let resp = trusts_first
        .post(format!("https://localhost:{}/mcp", h.agent_addr.port()))
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("echo__echo"));
    // Plain HTTP to the TLS listener fails (the handshake fails; the connection is closed).
    for addr in [h.agent_addr, h.operator_addr] {
        let plain = h.http.get(format!("http://{addr}/healthz")).send().await;
        assert!(plain.is_err(), "{plain:?}");
    }

    // The files change; SIGHUP to this process reloads them.
    std::fs::copy(&second.cert, &served.cert).unwrap();
    std::fs::copy(&second.key, &served.key).unwrap();
    sighup();
    let started = Instant::now();
    while https_healthz(&client_trusting(&second_pem, h.agent_addr), h.agent_addr).await
        != Some(200)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new certificate was not served after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        https_healthz(&client_trusting(&first_pem, h.agent_addr), h.agent_addr).await,
        None,
        "the old certificate is still served to new connections"
    );
    assert_eq!(
        https_healthz(&client_trusting(&second_pem, h.agent_addr), h.operator_addr).await,
        Some(200),
        "the operator plane's certificate was not reloaded"
    );

    // A reload from a broken file keeps the certificate in use.
    std::fs::write(&served.cert, "not a certificate").unwrap();
    sighup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        https_healthz(&client_trusting(&second_pem, h.agent_addr), h.agent_addr).await,
        Some(200)
    );
    h.stop().await;
}

fn sighup() {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Whether the server closed `stream` within `within` (end of stream, or a reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            // A TLS alert may come first; the close follows.
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Adversarial TLS input: a garbage ClientHello and an oversized one are closed at once; a
/// handshake that never completes is closed at the header timeout (3 s here), and its slot
/// freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_bad_and_stalled_tls_handshakes_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (files, pem) = certificate(dir.path(), "plane");
    let h = Harness::start_configured(Arc::new(SystemClock), "", move |c| {
        c.deployment.agent.tls = Some(files);
        c.limits.agent_max_connections = 4;
        c.limits.header_timeout = Duration::from_secs(3);
    })
    .await;
    // Garbage where a ClientHello should be.
    let mut garbage = TcpStream::connect(h.agent_addr).await.unwrap();
    garbage.write_all(&[0x42; 512]).await.unwrap();
    assert!(closed_within(&mut garbage, Duration::from_secs(2)).await);
    // A handshake record that claims 64 KiB (the limit is 16 KiB), then the bytes.
    let mut oversized = TcpStream::connect(h.agent_addr).await.unwrap();
    let mut record = vec![0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00, 0xff, 0xfb];
    record.resize(0xffff + 5, 0x41);
    let _ = oversized.write_all(&record).await;
    assert!(closed_within(&mut oversized, Duration::from_secs(2)).await);
    // Stalled handshakes fill the cap: half a ClientHello, then nothing.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(h.agent_addr).await.unwrap();
        s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x80, 0x01])
            .await
            .unwrap();
        stalled.push(s);
    }
    let t0 = Instant::now();
    for (i, s) in stalled.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(10)).await,
            "stalled handshake {i} still open"
        );
    }
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "closed before the timeout"
    );
    // The slots are free again.
    assert_eq!(
        https_healthz(&client_trusting(&pem, h.agent_addr), h.agent_addr).await,
        Some(200)
    );
    h.stop().await;
}

/// `/readyz` on both planes: 503 while an upstream server is down or the ledger cannot
/// write, 200 once all is well; no credential needed, and nothing but the ledger's and the
/// servers' states in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_readyz_reports_the_ledger_and_every_upstream() {
    // A port nothing listens on yet: the `late` server is down until the test serves it.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let late_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let extra = format!("    - {{ id: late, url: \"http://{late_addr}/mcp\", tools: [echo] }}\n");
    let h = Harness::start_charter(Arc::new(SystemClock), "", &extra, |_| {}).await;
    let readyz = |addr: SocketAddr| {
        let http = h.http.clone();
        async move {
            let resp = http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    for addr in [h.agent_addr, h.operator_addr] {
        let (status, body) = readyz(addr).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body,
            json!({ "status": "not_ready", "ledger": "ok", "upstreams": { "echo": "up", "late": "down" } })
        );
    }
    // The server comes up; the gateway reconnects and is ready.
    let listener = tokio::net::TcpListener::bind(late_addr).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, warden_testkit::echo::router()).await;
    });
    let started = Instant::now();
    loop {
        let (status, body) = readyz(h.agent_addr).await;
        if status == 200 {
            assert_eq!(
                body,
                json!({ "status": "ready", "ledger": "ok", "upstreams": { "echo": "up", "late": "up" } })
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(readyz(h.operator_addr).await.0, 200);

    // The ledger cannot write (another process holds its lock): a call fails to be recorded,
    // and readiness says so until an append succeeds.
    let (_, token) = h.open_session("1h").await;
    use sqlx::Connection as _;
    let mut other = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        h.data.join("ledger.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    let refused = h.call(&token, "hello while locked").await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let (status, body) = readyz(h.operator_addr).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ledger"], "failing");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    drop(other);
    let ok = h.call(&token, "hello again").await;
    assert_ne!(ok["result"]["isError"], true, "{ok}");
    assert_eq!(readyz(h.agent_addr).await.0, 200);
    h.stop().await;
}
