//! One client for a gateway's two planes, shared by the [`harness`](crate::harness) and each
//! [`fleet`](crate::fleet) instance (both deref to it): the requests an orchestrator, an agent
//! and an approver send, with the admin operator token.
//!
//! Everything here panics on failure: it is test code, and a failed step is a failed test.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed step is a failed test"
)]

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

/// A gateway's agent and operator planes, and the credentials to use them.
pub struct Planes {
    /// An HTTP client.
    pub http: reqwest::Client,
    /// The agent plane.
    pub agent_addr: SocketAddr,
    /// The operator plane.
    pub operator_addr: SocketAddr,
    /// The bootstrap (admin) operator token.
    pub operator_token: String,
    /// The agent [`Planes::open_session`] opens sessions for.
    pub session_agent: String,
    /// The principal it opens them for.
    pub session_user: String,
}

impl Planes {
    /// The planes at these addresses, with `operator_token`, opening sessions for `agent-1`
    /// acting for `alice`.
    pub fn new(
        http: reqwest::Client,
        agent_addr: SocketAddr,
        operator_addr: SocketAddr,
        operator_token: String,
    ) -> Planes {
        Planes {
            http,
            agent_addr,
            operator_addr,
            operator_token,
            session_agent: "agent-1".to_owned(),
            session_user: "alice".to_owned(),
        }
    }

    /// A request to the operator plane with `token`; the status and the JSON body (`null`
    /// when the body is not JSON).
    pub async fn operator(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("http://{}{path}", self.operator_addr))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    /// Opens a session (for [`Planes::session_agent`] and [`Planes::session_user`]) with the
    /// TTL `ttl` (e.g. `1h`); its id and token.
    pub async fn open_session(&self, ttl: &str) -> (String, String) {
        let (status, body) = self
            .operator(
                reqwest::Method::POST,
                "/v1/sessions",
                &self.operator_token,
                Some(json!({
                    "agent": self.session_agent,
                    "user": self.session_user,
                    "task": "testing",
                    "ttl": ttl,
                })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// One JSON-RPC request to the MCP endpoint; the status and the answer (from JSON or from
    /// the last `data:` line of an SSE answer).
    pub async fn mcp(&self, token: &str, method: &str, params: Value) -> (u16, Value) {
        mcp_request(&self.http, self.agent_addr, token, method, params).await
    }

    /// `tools/call` of `echo.echo` with `text`; the answer (asserting HTTP 200).
    pub async fn call(&self, token: &str, text: &str) -> Value {
        let (status, body) = self
            .mcp(
                token,
                "tools/call",
                json!({ "name": "echo.echo", "arguments": { "text": text } }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// `POST /v1/decide` for `echo.echo` with `text` (and the long-poll `wait`, if any); the
    /// status and the answer.
    pub async fn decide(&self, token: &str, text: &str, wait: Option<&str>) -> (u16, Value) {
        let mut body = json!({ "tool": "echo.echo", "arguments": { "text": text } });
        if let Some(w) = wait {
            body["wait"] = json!(w);
        }
        self.agent_post(token, "/v1/decide", &body).await
    }

    /// `POST /v1/actions/{action}/result` with `body` as the agent of `token`; the status and
    /// the answer.
    pub async fn report_result(&self, token: &str, action: &str, body: &Value) -> (u16, Value) {
        self.agent_post(token, &format!("/v1/actions/{action}/result"), body)
            .await
    }

    async fn agent_post(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("http://{}{path}", self.agent_addr))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    }

    /// Issues an approver's operator credential for `principal`.
    pub async fn approver_token(&self, principal: &str) -> String {
        let (status, body) = self
            .operator(
                reqwest::Method::POST,
                "/v1/operator-tokens",
                &self.operator_token,
                Some(json!({ "name": format!("{principal}-laptop"), "role": "approver", "principal": principal })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Waits until at least `n` approval requests are pending for the approver of `token`
    /// (`GET /v1/approvals`, polled every 20 ms); returns them, newest first. Panics after
    /// 20 s.
    pub async fn wait_for_approval(&self, token: &str, n: usize) -> Vec<Value> {
        let started = std::time::Instant::now();
        loop {
            let (status, body) = self
                .operator(reqwest::Method::GET, "/v1/approvals", token, None)
                .await;
            assert_eq!(status, 200, "{body}");
            let list = body["approvals"].as_array().cloned().unwrap_or_default();
            if list.len() >= n {
                return list;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} of {n} approval requests pending on {}",
                list.len(),
                self.operator_addr
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `POST /v1/approvals/{id}/{choice}` (`approve` or `deny`) as the approver of `token`,
    /// with `reason` if given; the status and the answer.
    pub async fn decide_approval(
        &self,
        token: &str,
        id: &str,
        choice: &str,
        reason: Option<&str>,
    ) -> (u16, Value) {
        let body = reason.map(|r| json!({ "reason": r }));
        self.operator(
            reqwest::Method::POST,
            &format!("/v1/approvals/{id}/{choice}"),
            token,
            body,
        )
        .await
    }

    /// Sets a control as the admin (`POST /v1/controls` with `body`); the control set.
    pub async fn set_control(&self, body: Value) -> Value {
        let (status, got) = self
            .operator(
                reqwest::Method::POST,
                "/v1/controls",
                &self.operator_token,
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{got}");
        got["control"].clone()
    }

    /// Lifts control `id` as the admin; the control lifted.
    pub async fn lift_control(&self, id: &str) -> Value {
        let (status, got) = self
            .operator(
                reqwest::Method::POST,
                &format!("/v1/controls/{id}/lift"),
                &self.operator_token,
                Some(json!({ "reason": "test over" })),
            )
            .await;
        assert_eq!(status, 200, "{got}");
        got["control"].clone()
    }
}

/// One JSON-RPC request to the MCP endpoint at `agent_addr`; the status and the answer (from
/// JSON or from the last `data:` line of an SSE answer).
pub async fn mcp_request(
    http: &reqwest::Client,
    agent_addr: SocketAddr,
    token: &str,
    method: &str,
    params: Value,
) -> (u16, Value) {
    try_mcp_request(http, &agent_addr.to_string(), token, method, params, None)
        .await
        .unwrap()
}

/// [`mcp_request`] to `agent` (`host:port`) within `timeout` (if given) that reports a
/// request that got no answer (refused, cut off, timed out: a gateway killed under load)
/// as `Err` instead of failing the test.
pub async fn try_mcp_request(
    http: &reqwest::Client,
    agent: &str,
    token: &str,
    method: &str,
    params: Value,
    timeout: Option<std::time::Duration>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut request = http
        .post(format!("http://{agent}/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params }));
    if let Some(timeout) = timeout {
        request = request.timeout(timeout);
    }
    let resp = request.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = serde_json::from_str(&text)
        .or_else(|_| {
            // An SSE answer: the last `data:` line.
            let data = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .next_back()
                .unwrap_or("null");
            serde_json::from_str(data.trim())
        })
        .unwrap_or(Value::Null);
    Ok((status, body))
}

/// A `tools/call` of `echo.echo` with `text` to `agent` (`host:port`): whether it was
/// acknowledged — answered with success, not an error, the text echoed. A call that got no
/// answer (the gateway killed meanwhile) is not acknowledged.
pub async fn echo_acknowledged(
    http: &reqwest::Client,
    agent: &str,
    token: &str,
    text: &str,
) -> bool {
    let params = json!({ "name": "echo.echo", "arguments": { "text": text } });
    let timeout = Some(std::time::Duration::from_secs(30));
    match try_mcp_request(http, agent, token, "tools/call", params, timeout).await {
        Ok((200..=299, body)) => {
            body["result"]["isError"] != json!(true) && body["result"]["content"][0]["text"] == text
        }
        _ => false,
    }
}

/// Waits until the agent plane at `agent` (`host:port`) answers `GET /readyz` with success;
/// `false` when it has not within `within` (a gateway that never became ready).
pub async fn wait_until_ready(
    http: &reqwest::Client,
    agent: &str,
    within: std::time::Duration,
) -> bool {
    let started = std::time::Instant::now();
    loop {
        if let Ok(r) = http.get(format!("http://{agent}/readyz")).send().await
            && r.status().is_success()
        {
            return true;
        }
        if started.elapsed() >= within {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
