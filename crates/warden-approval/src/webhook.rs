//! The outbound approval webhook: for each new approval request, one signed POST per delivery
//! target that names the request and carries the approve and deny links of the approvers
//! whose links go there — and only theirs.
//!
//! Targets ([`WebhookConfig::targets`]): a principal with a `notify` URL in the charter gets
//! their links there; the shared webhook (`approval_webhook_url`) gets the announcement, with
//! the links of the approvers who have no `notify` of their own. Principals with the same URL
//! share it explicitly. Each link carries its target's id ([`Signer::target_id`]), signed, and
//! the workflow counts at most one approving vote per target on a request — so a quorum of N
//! is never met by N links that one reader could see.
//!
//! [`Notifier::notify`] never blocks the decision path: it puts the request on a bounded queue
//! (1024) that one worker task drains, delivering one notification at a time with a few
//! attempts and a doubling backoff. Every notification ends in exactly one
//! `approval_notified` ledger record, `delivered`, `failed` or `dropped` (queue full, or the
//! gateway shut down first); the record never holds the signing secret, a signature or the
//! webhook URL (a Slack webhook URL is itself a credential).
//!
//! Each POST carries `Content-Type: application/json`, `X-Warden-Event: approval.requested`
//! and `X-Warden-Signature: t=<unix>,v1=<base64url>` ([`Signer::sign_body`]) over the exact
//! body bytes, re-signed on every attempt. Links are minted here by [`links`]; the operator
//! plane verifies them.
//!
//! Two body formats ([`WebhookFormat`]): warden's JSON (`type`, `approval`, `links`,
//! `expires_at`), and a Slack incoming-webhook body (`text` + `blocks`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden_core::{Clock, NewRecord, RecordKind, Recorder};

use crate::{ApprovalRequest, Signer};

/// How many notifications may wait for the worker; past that, new ones are dropped (and
/// recorded as dropped).
pub const QUEUE_CAPACITY: usize = 1024;
/// Default time limit of one delivery attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of delivery attempts.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// The event name, in the body (`type`) and the `X-Warden-Event` header.
pub const EVENT: &str = "approval.requested";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Warden-Signature";
/// The event header.
pub const EVENT_HEADER: &str = "X-Warden-Event";

/// Time limit for connecting to the receiver.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before the second attempt; it doubles before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long the worker waits for the ledger to take an `approval_notified` record.
const LEDGER_TIMEOUT: Duration = Duration::from_secs(10);

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Warden's JSON: `{"type", "approval", "links", "expires_at"}`.
    Json,
    /// A Slack incoming-webhook body: `{"text", "blocks"}`, links in mrkdwn.
    Slack,
}

impl WebhookFormat {
    /// `json` or `slack`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Json => "json",
            WebhookFormat::Slack => "slack",
        }
    }

    /// Parses `json` or `slack`.
    pub fn parse(s: &str) -> Option<WebhookFormat> {
        match s {
            "json" => Some(WebhookFormat::Json),
            "slack" => Some(WebhookFormat::Slack),
            _ => None,
        }
    }
}

/// Where and how new approval requests are announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The shared receiver (http or https), if any: it gets every announcement, with the links
    /// of approvers who have no target of their own. Redirects are not followed.
    pub url: Option<url::Url>,
    /// The shared receiver's body format.
    pub format: WebhookFormat,
    /// Each principal's own target (the charter's `principals[].notify`): their links go there
    /// and nowhere else.
    pub principals: BTreeMap<String, (url::Url, WebhookFormat)>,
    /// The operator plane's base URL as approvers reach it, used in links (a trailing slash
    /// is ignored).
    pub public_url: String,
    /// Time limit of one attempt, connection included ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// Attempts before giving up, at least one ([`DEFAULT_ATTEMPTS`]).
    pub attempts: u32,
}

impl WebhookConfig {
    /// A configuration with the default timeout and attempts and no per-principal targets.
    pub fn new(url: Option<url::Url>, format: WebhookFormat, public_url: String) -> WebhookConfig {
        WebhookConfig {
            url,
            format,
            principals: BTreeMap::new(),
            public_url,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
        }
    }

    /// Adds the per-principal targets the charter declares (`principals[].notify`).
    #[must_use]
    pub fn with_charter_targets(mut self, authority: &warden_charter::Authority) -> WebhookConfig {
        for (id, p) in &authority.principals {
            if let Some(n) = &p.notify {
                let format = if n.slack {
                    WebhookFormat::Slack
                } else {
                    WebhookFormat::Json
                };
                self.principals
                    .insert(id.to_string(), (n.url.clone(), format));
            }
        }
        self
    }

    /// Whether any notification would be sent at all.
    pub fn is_active(&self) -> bool {
        self.url.is_some() || !self.principals.is_empty()
    }

    /// Where the notification of `request` goes: one [`Target`] per distinct URL, each with the
    /// approvers whose links go there (sorted). The shared receiver, if configured, is always
    /// among them (possibly with no links); a principal's own target only when they may
    /// approve the request.
    pub fn targets(&self, signer: &Signer, request: &ApprovalRequest) -> Vec<Target> {
        let mut by_url: BTreeMap<String, Target> = BTreeMap::new();
        if let Some(url) = &self.url {
            by_url.insert(url.to_string(), Target::new(signer, url, self.format));
        }
        for approver in &request.approvers {
            let (url, format) = match (self.principals.get(approver), &self.url) {
                (Some((url, format)), _) => (url, *format),
                (None, Some(url)) => (url, self.format),
                (None, None) => continue,
            };
            by_url
                .entry(url.to_string())
                .or_insert_with(|| Target::new(signer, url, format))
                .approvers
                .push(approver.clone());
        }
        by_url.into_values().collect()
    }
}

/// One delivery target of one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The receiver.
    pub url: url::Url,
    /// Its body format.
    pub format: WebhookFormat,
    /// Its id ([`Signer::target_id`] of the URL), carried by its links and its records.
    pub id: String,
    /// The approvers whose links go there.
    pub approvers: Vec<String>,
}

impl Target {
    fn new(signer: &Signer, url: &url::Url, format: WebhookFormat) -> Target {
        Target {
            url: url.clone(),
            format,
            id: signer.target_id(url.as_str()),
            approvers: Vec::new(),
        }
    }
}

/// The links one approver may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApproverLinks {
    /// The approver (a charter principal) the links were minted for.
    pub approver: String,
    /// Approves the request as this approver.
    pub approve: String,
    /// Denies the request as this approver.
    pub deny: String,
}

/// The webhook could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the approval webhook's HTTP client")]
pub struct WebhookError(#[source] reqwest::Error);

/// A handle on the webhook worker: cheap to clone. When every handle is dropped, the worker
/// delivers what is queued and stops.
#[derive(Debug, Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Box<ApprovalRequest>>,
    ledger: Arc<dyn Recorder>,
    tasks: TaskTracker,
}

impl Notifier {
    /// Starts the worker on `tasks`. It stops when `cancel` fires: the delivery under way is
    /// abandoned (recorded as failed) and the queued ones are recorded as dropped.
    ///
    /// Fails only if the HTTP client cannot be built (no TLS roots, for instance).
    pub fn start(
        config: WebhookConfig,
        signer: Signer,
        ledger: Arc<dyn Recorder>,
        clock: Arc<dyn Clock>,
        tasks: &TaskTracker,
        cancel: CancellationToken,
    ) -> Result<Notifier, WebhookError> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(WebhookError)?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let worker = Worker {
            config,
            signer,
            ledger: ledger.clone(),
            clock,
            client,
            cancel,
        };
        tasks.spawn(worker.run(rx));
        Ok(Notifier {
            tx,
            ledger,
            tasks: tasks.clone(),
        })
    }

    /// Queues a notification for a new request. Never blocks: when the queue is full (or the
    /// worker has stopped), logs a warning and records `approval_notified` with status
    /// `dropped`.
    pub fn notify(&self, request: &ApprovalRequest) {
        let error = match self.tx.try_send(Box::new(request.clone())) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    approval = %request.id,
                    "The approval webhook queue is full; the notification is dropped."
                );
                "the notification queue is full"
            }
            Err(TrySendError::Closed(_)) => {
                tracing::warn!(
                    approval = %request.id,
                    "The approval webhook has stopped; the notification is dropped."
                );
                "the notifier has stopped"
            }
        };
        let outcome = Delivery::dropped(error);
        let ledger = self.ledger.clone();
        let session = request.session.clone();
        let id = request.id.clone();
        self.tasks.spawn(async move {
            record(&*ledger, session, &id, None, &outcome).await;
        });
    }
}

/// How one notification ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Delivery {
    status: &'static str,
    attempts: u32,
    http_status: Option<u16>,
    error: Option<String>,
}

impl Delivery {
    fn dropped(error: &str) -> Delivery {
        Delivery {
            status: "dropped",
            attempts: 0,
            http_status: None,
            error: Some(error.to_owned()),
        }
    }
}

/// Appends the `approval_notified` record; a ledger that cannot take it is logged, not fatal
/// (the request itself was recorded before it was announced).
async fn record(
    ledger: &dyn Recorder,
    session: String,
    approval: &str,
    target: Option<&str>,
    delivery: &Delivery,
) {
    let payload = json!({
        "approval": approval,
        "target": target,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "http_status": delivery.http_status,
        "error": delivery.error,
    });
    let append = ledger.append(NewRecord {
        session: Some(session),
        kind: RecordKind::ApprovalNotified,
        payload,
    });
    match tokio::time::timeout(LEDGER_TIMEOUT, append).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::error!(error = %e, approval, "The ledger cannot record an approval notification.");
        }
        Err(_) => {
            tracing::error!(
                approval,
                "The ledger did not record an approval notification in time."
            );
        }
    }
}

/// The message of a transport error, without the URL (a Slack webhook URL is a secret).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// The one task that delivers notifications, in order.
struct Worker {
    config: WebhookConfig,
    signer: Signer,
    ledger: Arc<dyn Recorder>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    cancel: CancellationToken,
}

impl Worker {
    async fn run(self, mut rx: mpsc::Receiver<Box<ApprovalRequest>>) {
        loop {
            let request = tokio::select! {
                biased;
                () = self.cancel.cancelled() => break,
                next = rx.recv() => match next {
                    Some(request) => request,
                    // Every handle is gone and the queue is empty.
                    None => return,
                },
            };
            for target in self.config.targets(&self.signer, &request) {
                let outcome = self.deliver(&request, &target).await;
                record(
                    &*self.ledger,
                    request.session.clone(),
                    &request.id,
                    Some(&target.id),
                    &outcome,
                )
                .await;
            }
        }
        // Shut down: whatever is still queued will not be sent.
        rx.close();
        while let Ok(request) = rx.try_recv() {
            let outcome = Delivery::dropped("the gateway shut down");
            record(&*self.ledger, request.session, &request.id, None, &outcome).await;
        }
    }

    async fn deliver(&self, request: &ApprovalRequest, target: &Target) -> Delivery {
        let body = payload(&self.signer, &self.config.public_url, request, target);
        let body = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => {
                return Delivery {
                    status: "failed",
                    attempts: 0,
                    http_status: None,
                    error: Some(format!("cannot encode the body: {e}")),
                };
            }
        };
        let mut outcome = Delivery {
            status: "failed",
            attempts: 0,
            http_status: None,
            error: None,
        };
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=self.config.attempts.max(1) {
            if attempt > 1 {
                tokio::select! {
                    () = self.cancel.cancelled() => return shut_down(outcome),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
            }
            outcome.attempts = attempt;
            let signature = self
                .signer
                .sign_body(self.clock.now().unix_timestamp(), &body);
            let send = self
                .client
                .post(target.url.clone())
                .timeout(self.config.timeout)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature)
                .header(EVENT_HEADER, EVENT)
                .body(body.clone())
                .send();
            let result = tokio::select! {
                () = self.cancel.cancelled() => return shut_down(outcome),
                r = send => r,
            };
            match result {
                Ok(response) => {
                    let status = response.status();
                    outcome.http_status = Some(status.as_u16());
                    if status.is_success() {
                        outcome.status = "delivered";
                        outcome.error = None;
                        return outcome;
                    }
                    outcome.error = Some(format!("the receiver answered {status}"));
                }
                Err(e) => {
                    outcome.http_status = None;
                    outcome.error = Some(describe(e));
                }
            }
            tracing::warn!(
                approval = %request.id,
                attempt,
                error = outcome.error.as_deref().unwrap_or_default(),
                "An approval webhook attempt failed."
            );
        }
        outcome
    }
}

/// A delivery abandoned because the gateway is shutting down.
fn shut_down(mut outcome: Delivery) -> Delivery {
    outcome.status = "failed";
    outcome.error = Some("the gateway shut down before the notification was delivered".to_owned());
    outcome
}

mod payload;
pub use payload::{links, payload};

#[cfg(test)]
mod tests;
