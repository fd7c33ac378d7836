//! The observer `warden up` starts beside the gateway: a credential of role `observer`
//! issued through the operator plane with the bootstrap admin token (earlier ones `warden up`
//! issued are revoked first, so one is live at a time), written to `<data>/observer.token`
//! (0600), and `warden observe` as a second process of this same binary, its data in
//! `<data>/observer`. Its output goes to this process's standard error, each line prefixed
//! `observer: ` (with `--log-format json` the observer logs JSON too: its JSON lines are passed
//! on as they are and any other line becomes a JSON log event of its own). It is stopped (SIGTERM, then SIGKILL after 10 s) when the gateway stops.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio_util::task::TaskTracker;

use crate::commands::session::OperatorClient;

/// The name of the credential `warden up` issues to its observer.
pub const CREDENTIAL_NAME: &str = "warden-up-observer";
/// The credential's file in the data directory.
pub const TOKEN_FILE: &str = "observer.token";
/// The observer's data directory inside the gateway's.
pub const DATA_SUBDIR: &str = "observer";
/// How long the observer has to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The running observer process.
pub struct ObserverProcess {
    child: tokio::process::Child,
    output: TaskTracker,
}

/// Writes `token` to `path`, the owner's only from its first instant.
fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    warden_core::private::private_file(path)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .mode(warden_core::private::FILE_MODE)
        .open(path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Issues the credential (revoking earlier ones of the same name) and writes it; returns the
/// file's path.
async fn issue_credential(client: &OperatorClient, data: &Path) -> Result<PathBuf, String> {
    let listed = client
        .call(reqwest::Method::GET, "/v1/operator-tokens", None)
        .await?;
    let earlier: Vec<String> = listed
        .get("operator_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("name").and_then(Value::as_str) == Some(CREDENTIAL_NAME))
        .filter(|t| t.get("revoked_at").is_none_or(Value::is_null))
        .filter_map(|t| t.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    for id in earlier {
        client
            .call(
                reqwest::Method::POST,
                &format!("/v1/operator-tokens/{id}/revoke"),
                Some(json!({})),
            )
            .await?;
    }
    let issued = client
        .call(
            reqwest::Method::POST,
            "/v1/operator-tokens",
            Some(json!({ "name": CREDENTIAL_NAME, "role": "observer" })),
        )
        .await?;
    let token = issued
        .get("token")
        .and_then(Value::as_str)
        .ok_or("the operator plane issued no token")?;
    let path = data.join(TOKEN_FILE);
    write_private(&path, token).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(path)
}

/// Issues the observer's credential and starts `warden observe`.
pub async fn start(
    client: &OperatorClient,
    operator_url: &str,
    data: &Path,
    charter: &Path,
) -> Result<ObserverProcess, String> {
    let token_file = issue_credential(client, data).await?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let json = crate::log_format() == crate::LogFormat::Json;
    let mut child = tokio::process::Command::new(exe)
        .arg("--log-format")
        .arg(if json { "json" } else { "text" })
        .arg("observe")
        .arg("--gateway")
        .arg(operator_url)
        .arg("--token-file")
        .arg(&token_file)
        .arg("--charter")
        .arg(charter)
        .arg("--data")
        .arg(data.join(DATA_SUBDIR))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the observer: {e}"))?;
    let output = TaskTracker::new();
    if let Some(out) = child.stdout.take() {
        output.spawn(forward(BufReader::new(out), json));
    }
    if let Some(err) = child.stderr.take() {
        output.spawn(forward(BufReader::new(err), json));
    }
    output.close();
    Ok(ObserverProcess { child, output })
}

/// Copies the observer's lines to standard error: prefixed as text; as JSON, a JSON object line
/// as it is and any other line inside a log event.
async fn forward<R: tokio::io::AsyncBufRead + Unpin>(reader: R, json: bool) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if !json {
            eprintln!("observer: {line}");
        } else if serde_json::from_str::<Value>(&line).is_ok_and(|v| v.is_object()) {
            eprintln!("{line}");
        } else {
            tracing::info!(target: "observer", line = %line, "Observer output.");
        }
    }
}

impl ObserverProcess {
    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the observer: SIGTERM (it saves its checkpoint), SIGKILL after 10 s.
    pub async fn stop(mut self) {
        let pid = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            eprintln!("warning: the observer did not stop within 10s; killing it");
            let _ = self.child.kill().await;
        }
        self.output.wait().await;
    }
}
