//! OpenTelemetry export: the ledger's committed records as OTLP/HTTP (protobuf) spans.
//!
//! [`run`] follows the ledger's committed head with a read-only [`LedgerReader`] and turns
//! records into spans ([`mapping`]): a trace per session under an `invoke_agent {agent}` root
//! span, or the agent's own trace when the attempt or the model request carries the
//! `traceparent` the agent sent; `chat {model}` spans for model calls and `execute_tool
//! {tool}` spans for actions, with the GenAI semantic-convention attributes and warden's
//! decision; events for approvals; alerts and controls as short spans with one event. Prompt
//! and completion content only when the operator opted in (`capture_content`).
//!
//! What it guarantees:
//! - **Never on the action path.** The exporter only reads the ledger, after records are
//!   committed; nothing an action does waits for it, and a slow, refusing or dead collector
//!   changes no decision and delays no call.
//! - **Bounded.** At most [`mapping::DEFAULT_MAX_PENDING`] spans wait for their end record
//!   (beyond, or after [`mapping::DEFAULT_PENDING_TIMEOUT`] of ledger time, they are exported
//!   with `warden.incomplete = true`); at most [`send::MAX_QUEUED`] wait to be sent (beyond,
//!   the oldest are dropped); each request takes at most [`send::REQUEST_TIMEOUT`] and a batch
//!   is tried [`send::MAX_ATTEMPTS`] times (backoff with jitter on 429, 5xx and connection
//!   errors), then dropped. Exported, dropped and failed are counted
//!   (`warden_otel_spans_exported_total`, `warden_otel_spans_dropped_total`,
//!   `warden_otel_export_failures_total`).
//! - **From the head at start-up.** It exports records committed after it started: a restart
//!   does not export old history again (and spans of calls in flight at a restart are not
//!   exported whole).
//! - **Secrets stay secret.** Header values (credentials) come from the environment and are
//!   never logged or exported; the session token never appears in a record.

use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warden_audit::LedgerReader;
use warden_telemetry::Telemetry;

pub mod encode;
pub mod mapping;
pub mod send;
pub mod span;

pub use mapping::Mapper;
pub use send::{Queue, Sender};

/// The default `service.name`.
pub const DEFAULT_SERVICE_NAME: &str = "warden";

/// How many records are read from the ledger at once.
const READ_BATCH: u64 = 512;

/// What the exporter needs to know.
#[derive(Clone, PartialEq, Eq)]
pub struct OtelConfig {
    /// The collector's base URL (`http://127.0.0.1:4318`); spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// Headers sent with every request (`authorization`, ...), values already read from the
    /// environment. Never logged.
    pub headers: Vec<(String, String)>,
    /// The resource's `service.name`.
    pub service_name: String,
    /// Whether prompts, completions and tool arguments are exported (clipped).
    pub capture_content: bool,
}

impl std::fmt::Debug for OtelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtelConfig")
            .field("endpoint", &self.endpoint)
            .field("headers", &names)
            .field("service_name", &self.service_name)
            .field("capture_content", &self.capture_content)
            .finish()
    }
}

impl OtelConfig {
    /// The URL spans are POSTed to.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint.trim_end_matches('/'))
    }

    /// The headers as an HTTP header map; `Err` names the first header that is not a valid
    /// HTTP header (never its value).
    pub fn header_map(&self) -> Result<HeaderMap, String> {
        let mut map = HeaderMap::new();
        for (k, v) in &self.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("`{k}` is not a valid HTTP header name"))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| {
                format!("the value of header `{k}` is not a valid HTTP header value")
            })?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        Ok(map)
    }
}

/// Exports spans for the records committed from now on until `stop`; then exports the spans
/// still waiting for their end as incomplete, sends what is queued once, and returns. Spawn
/// it on a task tracker; it never returns an error (problems are logged and counted).
pub async fn run(
    config: OtelConfig,
    reader: LedgerReader,
    head: watch::Receiver<u64>,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) {
    let headers = match config.header_map() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "OpenTelemetry export is off: its headers are invalid.");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(send::REQUEST_TIMEOUT)
        .connect_timeout(send::REQUEST_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "OpenTelemetry export is off: its HTTP client could not be built.");
            return;
        }
    };
    let sender = Sender {
        url: config.traces_url(),
        headers,
        service_name: config.service_name.clone(),
        client,
        telemetry: telemetry.clone(),
    };
    let queue = Queue::new(send::MAX_QUEUED, telemetry);
    let mapper = Mapper::new(
        config.capture_content,
        mapping::DEFAULT_MAX_PENDING,
        mapping::DEFAULT_PENDING_TIMEOUT,
    );
    let followed = CancellationToken::new();
    tracing::info!(url = %sender.url, "OpenTelemetry export on.");
    tokio::join!(
        follow(mapper, reader, head, &queue, &stop, &followed),
        sender.run(&queue, &stop, &followed),
    );
}

/// Reads every record committed after the head at start-up, in order, mapping it into
/// `queue`, until `stop` (or the ledger closes); then flushes the pending spans and cancels
/// `followed`.
pub async fn follow(
    mut mapper: Mapper,
    reader: LedgerReader,
    mut head: watch::Receiver<u64>,
    queue: &Queue,
    stop: &CancellationToken,
    followed: &CancellationToken,
) {
    let mut next = head.borrow_and_update().saturating_add(1);
    let mut out = Vec::new();
    'follow: loop {
        let committed = *head.borrow_and_update();
        while next <= committed {
            match reader.range(next, READ_BATCH).await {
                Ok(records) if records.is_empty() => break,
                Ok(records) => {
                    for r in &records {
                        next = r.seq.saturating_add(1);
                        mapper.on_record(r, &mut out);
                    }
                    queue.push(out.drain(..));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "OpenTelemetry export could not read the ledger; it tries again.");
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue 'follow,
                        () = stop.cancelled() => break 'follow,
                    }
                }
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { break },
            () = stop.cancelled() => break,
        }
    }
    // What was committed up to the stop (a few batches at most), then the pending spans.
    for _ in 0..4 {
        match reader.range(next, READ_BATCH).await {
            Ok(records) if !records.is_empty() => {
                for r in &records {
                    next = r.seq.saturating_add(1);
                    mapper.on_record(r, &mut out);
                }
            }
            _ => break,
        }
    }
    mapper.flush(&mut out);
    queue.push(out);
    followed.cancel();
}
