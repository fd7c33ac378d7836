//! `warden connect --url URL --token TOKEN`: a stdio bridge to the gateway's MCP endpoint.
//!
//! An MCP client that only speaks stdio starts `warden connect` as its server. Each JSON-RPC
//! message read from stdin (one per line) is POSTed to the gateway's Streamable HTTP endpoint
//! with the session token; JSON and SSE answers are written back to stdout, one message per
//! line. The gateway, its policy and its ledger stay outside the agent's process: the bridge
//! holds nothing but the token. Requests run concurrently (up to 64 at a time), so a call
//! that waits for approval does not block the others.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

/// Longest message accepted on stdin, in bytes.
const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Requests in flight at once.
const MAX_IN_FLIGHT: usize = 64;

/// Arguments of `warden connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The gateway's MCP endpoint (`http://127.0.0.1:8700/mcp`). Env `WARDEN_URL`.
    #[arg(long, env = "WARDEN_URL")]
    pub url: String,
    /// The session token. Env `WARDEN_TOKEN`.
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    pub token: String,
}

#[derive(Default)]
struct Negotiated {
    protocol_version: Option<String>,
    session_id: Option<String>,
}

fn error_for(id: &Value, message: String) -> Option<String> {
    (!id.is_null()).then(|| {
        json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32000, "message": message } })
            .to_string()
    })
}

async fn forward(
    client: reqwest::Client,
    url: String,
    token: String,
    negotiated: Arc<Mutex<Negotiated>>,
    message: String,
    out: mpsc::Sender<String>,
) {
    let parsed: Option<Value> = serde_json::from_str(&message).ok();
    let id = parsed
        .as_ref()
        .and_then(|v| v.get("id"))
        .cloned()
        .unwrap_or(Value::Null);
    let is_initialize = parsed
        .as_ref()
        .and_then(|v| v.get("method"))
        .and_then(Value::as_str)
        == Some("initialize");
    let mut req = client
        .post(&url)
        .bearer_auth(&token)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            reqwest::header::ACCEPT,
            "application/json, text/event-stream",
        )
        .body(message);
    {
        let n = negotiated.lock().await;
        if let Some(v) = &n.protocol_version {
            req = req.header("mcp-protocol-version", v);
        }
        if let Some(s) = &n.session_id {
            req = req.header("mcp-session-id", s);
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            if let Some(err) = error_for(&id, format!("the warden gateway is unreachable: {e}")) {
                let _ = out.send(err).await;
            }
            return;
        }
    };
    if let Some(s) = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        negotiated.lock().await.session_id = Some(s.to_owned());
    }
    let is_sse = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let status = resp.status();
    if is_sse {
        let mut stream = resp.bytes_stream();
        let mut buffer = String::new();
        let mut data = String::new();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(pos) = buffer.find('\n') {
                let line: String = buffer.drain(..=pos).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if !data.is_empty() {
                        deliver(std::mem::take(&mut data), is_initialize, &negotiated, &out).await;
                    }
                } else if let Some(d) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
        }
        if !data.is_empty() {
            deliver(data, is_initialize, &negotiated, &out).await;
        }
        return;
    }
    let body = resp.text().await.unwrap_or_default();
    let body = body.trim();
    if body.is_empty() {
        if !status.is_success()
            && let Some(err) = error_for(&id, format!("the warden gateway answered {status}"))
        {
            let _ = out.send(err).await;
        }
        return;
    }
    match serde_json::from_str::<Value>(body) {
        Ok(mut v) => {
            // Errors the gateway raises before reading the request carry no id: give them the
            // request's, so the client can match them.
            if v.get("error").is_some()
                && v.get("id").is_some_and(Value::is_null)
                && !id.is_null()
                && let Some(obj) = v.as_object_mut()
            {
                obj.insert("id".to_owned(), id.clone());
            }
            deliver(v.to_string(), is_initialize, &negotiated, &out).await;
        }
        Err(_) => {
            if let Some(err) =
                error_for(&id, format!("the warden gateway answered {status}: {body}"))
            {
                let _ = out.send(err).await;
            }
        }
    }
}

/// Writes one message to stdout; the answer to `initialize` also fixes the protocol version
/// sent with every later request.
async fn deliver(
    line: String,
    is_initialize: bool,
    negotiated: &Mutex<Negotiated>,
    out: &mpsc::Sender<String>,
) {
    if is_initialize
        && let Ok(v) = serde_json::from_str::<Value>(&line)
        && let Some(pv) = v.pointer("/result/protocolVersion").and_then(Value::as_str)
    {
        negotiated.lock().await.protocol_version = Some(pv.to_owned());
    }
    let _ = out.send(line).await;
}

/// Runs `warden connect`.
pub fn execute(args: &ConnectArgs) -> ExitCode {
    let url = args.url.clone();
    let token = args.token.clone();
    crate::runtime(async move {
        let client = match reqwest::Client::builder().build() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let (tx, mut rx) = mpsc::channel::<String>(256);
        let writer = tokio::spawn(async move {
            let mut stdout = tokio::io::stdout();
            while let Some(line) = rx.recv().await {
                if stdout.write_all(line.as_bytes()).await.is_err()
                    || stdout.write_all(b"\n").await.is_err()
                    || stdout.flush().await.is_err()
                {
                    break;
                }
            }
        });
        let negotiated = Arc::new(Mutex::new(Negotiated::default()));
        let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut lines = FramedRead::new(
            tokio::io::stdin(),
            LinesCodec::new_with_max_length(MAX_LINE_BYTES),
        );
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(line) = lines.next().await {
            let line = match line {
                Ok(l) => l,
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    let err = json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32600, "message": format!("message longer than {MAX_LINE_BYTES} bytes") } });
                    let _ = tx.send(err.to_string()).await;
                    continue;
                }
                Err(LinesCodecError::Io(_)) => break,
            };
            if line.trim().is_empty() {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (client, url, token, negotiated, tx) = (
                client.clone(),
                url.clone(),
                token.clone(),
                negotiated.clone(),
                tx.clone(),
            );
            // `initialize` must finish before anything else is sent: it fixes the version.
            let is_initialize = line.contains("\"initialize\"");
            let task = async move {
                forward(client, url, token, negotiated, line, tx).await;
                drop(permit);
            };
            if is_initialize {
                task.await;
            } else {
                tasks.spawn(task);
            }
        }
        while tasks.join_next().await.is_some() {}
        drop(tx);
        let _ = writer.await;
        ExitCode::SUCCESS
    })
}
