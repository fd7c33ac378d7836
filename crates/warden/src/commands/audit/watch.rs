//! `warden audit watch`: a monitor of a gateway's signed checkpoints.
//!
//! Each check fetches `GET /v1/audit/checkpoint` from the operator plane, verifies the note's
//! signature with `--pubkey`, and compares it with the last checkpoint this watcher accepted
//! (kept in `--state`, written atomically, and verified again with the key when read):
//!
//! - the first one seen is accepted (trust on first use: give `--state` a known-good state to
//!   start from);
//! - the same size and root: `ok`; a bigger tree: the consistency proof from the old size is
//!   fetched (`GET /v1/audit/consistency`) and checked against the two signed roots, `ok` when
//!   it verifies, `fork` when it does not;
//! - the same size with another root, or another origin: `fork`; a smaller tree (or no
//!   checkpoint at all where there was one): `rollback`;
//! - a note that does not verify with the key: `bad_signature`; no answer: `unreachable`.
//!
//! One JSON line per check on stdout: `{"status": …, "url": …, "origin", "size", "root"
//! (base64) of what was served, "previous": {…} or null, "reason": …}`. Only an `ok` moves the
//! state forward. With `--once`, the exit code is 0 for `ok`, 3 for `fork`, `rollback` or
//! `bad_signature`, 74 for `unreachable`, 64 for bad arguments; without it the watcher keeps
//! checking every `--interval`, and exits 3 on a `fork` or a `rollback` (so a supervisor
//! notices), 0 on Ctrl-C or SIGTERM.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::Args;
use serde_json::{Value, json};
use warden_audit::checkpoint::{Checkpoint, MAX_NOTE_BYTES, VerifierKey};
use warden_audit::merkle;
use warden_core::Clock as _;

use super::{EXIT_BROKEN, EXIT_IO};
use crate::EXIT_USAGE;

/// The environment variable the operator token is read from by default.
pub const DEFAULT_TOKEN_ENV: &str = "WARDEN_OPERATOR_TOKEN";
/// The largest proof answer read, in bytes (a proof of 64 hashes is ~3 KiB).
const MAX_PROOF_BYTES: usize = 64 * 1024;
/// The largest state file read, in bytes.
const MAX_STATE_BYTES: u64 = 64 * 1024;

/// Arguments of `warden audit watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The gateway's operator plane (`http://127.0.0.1:8701`).
    #[arg(long, value_name = "OPERATOR_URL")]
    pub url: String,
    /// The checkpoint verifier key: the text `warden audit keygen` printed, or its `.pub` file.
    #[arg(long, value_name = "KEY")]
    pub pubkey: String,
    /// The environment variable holding an operator token (an observer's is enough).
    #[arg(long, value_name = "VAR", default_value = DEFAULT_TOKEN_ENV)]
    pub token_env: String,
    /// Where the last accepted checkpoint is kept between checks and runs (written
    /// atomically). Without it, only this run remembers.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// How long between two checks.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub interval: String,
    /// Check once and exit (0 ok, 3 fork, rollback or bad signature, 74 unreachable).
    #[arg(long)]
    pub once: bool,
}

/// What one check found.
#[derive(Debug)]
enum Status {
    Ok,
    Fork(String),
    Rollback(String),
    BadSignature(String),
    Unreachable(String),
}

impl Status {
    fn name(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fork(_) => "fork",
            Status::Rollback(_) => "rollback",
            Status::BadSignature(_) => "bad_signature",
            Status::Unreachable(_) => "unreachable",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Status::Ok => None,
            Status::Fork(r)
            | Status::Rollback(r)
            | Status::BadSignature(r)
            | Status::Unreachable(r) => Some(r),
        }
    }
}

/// Runs `warden audit watch`.
pub(super) fn execute(args: &WatchArgs) -> ExitCode {
    match prepare(args) {
        Ok(watcher) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the async runtime: {e}");
                    return ExitCode::from(EXIT_IO);
                }
            };
            runtime.block_on(watcher.run(args.once))
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The watcher, its arguments checked.
struct Watcher {
    base: String,
    key: VerifierKey,
    token: String,
    state: Option<PathBuf>,
    interval: Duration,
    client: reqwest::Client,
    last: Option<(Checkpoint, String)>,
}

fn prepare(args: &WatchArgs) -> Result<Watcher, String> {
    let url = reqwest::Url::parse(&args.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.query().is_none())
        .ok_or_else(|| {
            format!(
                "`--url` must be the operator plane's http:// or https:// URL, not `{}`",
                args.url
            )
        })?;
    let key = VerifierKey::from_arg(&args.pubkey).map_err(|e| format!("`--pubkey`: {e}"))?;
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            format!(
                "no operator token: set `{}` (or name another variable with `--token-env`)",
                args.token_env
            )
        })?;
    let interval = warden_core::text::parse_duration(&args.interval).ok_or_else(|| {
        format!(
            "`--interval` must be a duration such as `30s` or `5m`, not `{}`",
            args.interval
        )
    })?;
    let last = match &args.state {
        Some(path) => read_state(path, &key)?,
        None => None,
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok(Watcher {
        base: url.as_str().trim_end_matches('/').to_owned(),
        key,
        token: token.trim().to_owned(),
        state: args.state.clone(),
        interval,
        client,
        last,
    })
}

impl Watcher {
    async fn run(mut self, once: bool) -> ExitCode {
        loop {
            let (status, served) = self.check().await;
            self.report(&status, served.as_ref());
            if let (Status::Ok, Some((checkpoint, note))) = (&status, served)
                && let Err(e) = self.accept(checkpoint, note)
            {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_IO);
            }
            match (&status, once) {
                (Status::Ok, true) => return ExitCode::SUCCESS,
                (Status::Unreachable(_), true) => return ExitCode::from(EXIT_IO),
                (Status::BadSignature(_), true) | (Status::Fork(_) | Status::Rollback(_), _) => {
                    return ExitCode::from(EXIT_BROKEN);
                }
                (Status::Ok | Status::Unreachable(_) | Status::BadSignature(_), false) => {}
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = stop_signal() => return ExitCode::SUCCESS,
            }
        }
    }

    /// One check: what was served (when its signature verified) and what it means.
    async fn check(&self) -> (Status, Option<(Checkpoint, String)>) {
        let note = match self.get("/v1/audit/checkpoint", MAX_NOTE_BYTES).await {
            Ok(Some(note)) => note,
            Ok(None) => {
                return match &self.last {
                    Some((last, _)) => (
                        Status::Rollback(format!(
                            "the gateway has no checkpoint; the last one seen had {} records",
                            last.size
                        )),
                        None,
                    ),
                    None => (
                        Status::Unreachable("the gateway has not signed a checkpoint yet".into()),
                        None,
                    ),
                };
            }
            Err(e) => return (Status::Unreachable(e), None),
        };
        let checkpoint = match Checkpoint::open(&note, &self.key) {
            Ok(c) => c,
            Err(e) => return (Status::BadSignature(e.to_string()), None),
        };
        let status = match &self.last {
            None => Status::Ok,
            Some((last, _)) => self.compare(last, &checkpoint).await,
        };
        (status, Some((checkpoint, note)))
    }

    async fn compare(&self, last: &Checkpoint, now: &Checkpoint) -> Status {
        if now.origin != last.origin {
            return Status::Fork(format!(
                "the origin changed from `{}` to `{}`: another log signed with the same key",
                last.origin, now.origin
            ));
        }
        if now.size < last.size {
            return Status::Rollback(format!(
                "the tree shrank from {} to {} records",
                last.size, now.size
            ));
        }
        if now.size == last.size {
            return if now.root == last.root {
                Status::Ok
            } else {
                Status::Fork(format!(
                    "two different roots signed for the same size {}",
                    now.size
                ))
            };
        }
        let path = format!("/v1/audit/consistency?old={}&new={}", last.size, now.size);
        let body = match self.get(&path, MAX_PROOF_BYTES).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                return Status::Unreachable("the consistency proof route is missing".into());
            }
            Err(e) => return Status::Unreachable(format!("the consistency proof: {e}")),
        };
        let Some(proof) = parse_proof(&body) else {
            return Status::Fork("the consistency proof is not a list of base64 hashes".into());
        };
        match merkle::verify_consistency(last.size, now.size, &last.root, &now.root, &proof) {
            Ok(()) => Status::Ok,
            Err(e) => Status::Fork(format!(
                "the tree of {} records does not extend the one of {} seen before: {e}",
                now.size, last.size
            )),
        }
    }

    /// `GET base + path` with the token: the body (at most `limit` bytes) of a `200`, `None`
    /// for a `404`, an error for anything else.
    async fn get(&self, path: &str, limit: usize) -> Result<Option<String>, String> {
        let url = format!("{}{path}", self.base);
        let mut resp = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| format!("`{url}`: {}", error_chain(&e)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("`{url}`: {}", error_chain(&e)))?
        {
            if body.len() + chunk.len() > limit {
                return Err(format!("`{url}` answered more than {limit} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(body).map_err(|_| format!("`{url}` answered non-UTF-8"))?;
        if !status.is_success() {
            let shown: String = text.chars().take(300).collect();
            return Err(format!("`{url}` answered {status}: {shown}"));
        }
        Ok(Some(text))
    }

    fn report(&self, status: &Status, served: Option<&(Checkpoint, String)>) {
        let describe = |c: &Checkpoint| json!({ "origin": c.origin, "size": c.size, "root": STANDARD.encode(c.root) });
        let mut line = serde_json::Map::new();
        line.insert("status".into(), json!(status.name()));
        line.insert(
            "time".into(),
            json!(
                warden_core::SystemClock
                    .now()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        );
        line.insert("url".into(), json!(self.base));
        if let Some((c, _)) = served
            && let Value::Object(fields) = describe(c)
        {
            line.extend(fields);
        }
        line.insert(
            "previous".into(),
            self.last.as_ref().map_or(Value::Null, |(c, _)| describe(c)),
        );
        if let Some(reason) = status.reason() {
            line.insert("reason".into(), json!(reason));
        }
        let line = Value::Object(line);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Keeps `checkpoint` as the last one seen (in memory, and in the state file).
    fn accept(&mut self, checkpoint: Checkpoint, note: String) -> Result<(), String> {
        if let Some(path) = &self.state {
            write_state(path, &note)
                .map_err(|e| format!("cannot write the state file `{}`: {e}", path.display()))?;
        }
        self.last = Some((checkpoint, note));
        Ok(())
    }
}

fn parse_proof(body: &str) -> Option<Vec<merkle::Hash>> {
    let value: Value = serde_json::from_str(body).ok()?;
    value
        .get("proof")?
        .as_array()?
        .iter()
        .map(|h| {
            let bytes = STANDARD.decode(h.as_str()?).ok()?;
            merkle::Hash::try_from(bytes.as_slice()).ok()
        })
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The state file: `{"note": <the last accepted signed note>}`. Missing: nothing seen yet.
/// Anything else that does not verify with `key` stops the watcher (it never silently starts
/// over).
fn read_state(path: &Path, key: &VerifierKey) -> Result<Option<(Checkpoint, String)>, String> {
    let text = match warden_core::small_file::read_text(path, MAX_STATE_BYTES) {
        Ok(text) => text,
        Err(_) if fs::symlink_metadata(path).is_err() => return Ok(None),
        Err(e) => return Err(format!("the state file `{}` {e}", path.display())),
    };
    let note = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("note")?.as_str().map(str::to_owned))
        .ok_or_else(|| {
            format!(
                "the state file `{}` is not a watcher's state (`{{\"note\": …}}`)",
                path.display()
            )
        })?;
    let checkpoint = Checkpoint::open(&note, key).map_err(|e| {
        format!(
            "the state file `{}` holds a checkpoint this key does not verify: {e}",
            path.display()
        )
    })?;
    Ok(Some((checkpoint, note)))
}

/// Writes the state atomically: a temporary file beside it, synced, renamed over it, and the
/// directory synced.
fn write_state(path: &Path, note: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    let text = json!({ "note": note }).to_string();
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    File::open(&dir)?.sync_all()
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
