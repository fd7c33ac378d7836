//! The governor: the one path every action takes.
//!
//! authenticate (done by the caller) → resolve local path arguments → decide → record the
//! attempt and the decision durably (with `forwarded`, in the same commit, when allowed) →
//! wait for approval (until the approval workflow lands: the charter's approval timeout, then
//! deny) → the caller forwards → [`Governor::record_result`] records the outcome and the labels
//! it carries → the caller answers.
//!
//! Fail closed: if the ledger cannot record the attempt, the action is refused; no code path
//! turns an error into an allow.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use warden_audit::{Ledger, NewRecord, RecordKind};
use warden_charter::{CompiledCharter, Transport};
use warden_core::{Clock, Decision, Verdict};
use warden_pdp::{Controls as PdpControls, Request, decide, result_labels};

use crate::control::Controls;
use crate::paths::PathArguments;
use crate::sessions::{Session, SessionStore};
use crate::usage::UsageStore;

/// How an action reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// An MCP `tools/call` or `resources/read`.
    Mcp,
    /// The decide API.
    DecideApi,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Mcp => "mcp",
            Via::DecideApi => "decide_api",
        }
    }
}

/// An action the governor allowed; the caller forwards it (with `args`) and then reports the
/// outcome with [`Governor::record_result`].
#[derive(Debug, Clone)]
pub struct Allowed {
    /// The action id (UUID v7), also in the ledger.
    pub action_id: String,
    /// The decision.
    pub decision: Decision,
    /// The arguments to forward: those that were decided (paths resolved for local servers).
    pub args: Value,
    /// When the action was allowed, to measure its duration.
    pub started: Instant,
}

/// Why an action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The decision denied it.
    Denied,
    /// It needed approval, and none came before the deadline (or the gateway shut down).
    ApprovalTimedOut,
    /// The session expired.
    SessionExpired,
    /// The ledger could not record the attempt.
    LedgerUnavailable,
}

impl Refusal {
    /// A stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Denied => "denied",
            Refusal::ApprovalTimedOut => "approval_timed_out",
            Refusal::SessionExpired => "session_expired",
            Refusal::LedgerUnavailable => "ledger_unavailable",
        }
    }
}

/// A refused action.
#[derive(Debug, Clone)]
pub struct Refused {
    /// The action id, when the attempt was recorded.
    pub action_id: Option<String>,
    /// Why.
    pub refusal: Refusal,
    /// The decision, when one was made.
    pub decision: Option<Decision>,
    /// A sentence for the agent.
    pub message: String,
}

/// How a forwarded action ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `ok`, `tool_error` (the tool ran and reported an error) or `upstream_error` (the
    /// upstream failed or did not answer).
    pub status: &'static str,
    /// Size of the result, in bytes.
    pub size_bytes: usize,
    /// The error, if any.
    pub error: Option<String>,
    /// The result text the data sources' patterns are matched against.
    pub text: String,
}

/// The governor.
pub struct Governor {
    /// The charter.
    pub charter: Arc<CompiledCharter>,
    ledger: Ledger,
    usage: UsageStore,
    sessions: SessionStore,
    controls: Arc<Controls>,
    clock: Arc<dyn Clock>,
    paths: PathArguments,
    local_servers: HashSet<String>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor")
            .field("charter", &self.charter.hash)
            .finish()
    }
}

impl Governor {
    /// A governor over the given stores.
    pub fn new(
        charter: Arc<CompiledCharter>,
        ledger: Ledger,
        usage: UsageStore,
        sessions: SessionStore,
        controls: Arc<Controls>,
        clock: Arc<dyn Clock>,
        shutdown: CancellationToken,
    ) -> Governor {
        let local_servers = charter
            .inventory
            .servers
            .iter()
            .filter(|s| matches!(s.transport, Transport::Stdio { .. }))
            .map(|s| s.id.clone())
            .collect();
        Governor {
            paths: PathArguments::new(&charter),
            charter,
            ledger,
            usage,
            sessions,
            controls,
            clock,
            local_servers,
            shutdown,
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Decides an action, records it, and waits for approval where one is needed.
    pub async fn authorize(
        &self,
        session: &Arc<Session>,
        tool: &str,
        args: Value,
        via: Via,
    ) -> Result<Allowed, Refused> {
        let action_id = Uuid::now_v7().to_string();
        let now = self.clock.now();
        let server = tool.split_once('.').map_or(tool, |(s, _)| s);
        let decided_args = if self.local_servers.contains(server) {
            self.paths.resolve(tool, &args)
        } else {
            args.clone()
        };
        let mut attempted =
            json!({ "action": action_id, "via": via.as_str(), "tool": tool, "arguments": args });
        if decided_args != args
            && let Some(obj) = attempted.as_object_mut()
        {
            obj.insert("resolved_arguments".to_owned(), decided_args.clone());
        }
        let sid = Some(session.id.clone());
        let record = |kind: RecordKind, payload: Value| NewRecord {
            session: sid.clone(),
            kind,
            payload,
        };

        if !session.is_revoked() && session.is_expired(now) {
            let batch = vec![
                record(RecordKind::ActionAttempted, attempted),
                record(
                    RecordKind::SessionExpired,
                    json!({ "action": action_id, "expired_at": session.expires_at.to_string() }),
                ),
            ];
            let _ = self.ledger.append_batch(batch).await;
            return Err(Refused {
                action_id: Some(action_id),
                refusal: Refusal::SessionExpired,
                decision: None,
                message: "the session has expired; ask the operator for a new one".to_owned(),
            });
        }

        let labels = session.labels();
        let controls = PdpControls {
            posture: self.controls.posture(),
            session_revoked: session.is_revoked(),
            tool_frozen: self.controls.is_frozen(tool),
        };
        let (decision, increment) =
            self.usage
                .decide_and_count(&self.charter, &session.id, now, &decided_args, |usage| {
                    decide(
                        &self.charter,
                        &Request {
                            tool,
                            args: &decided_args,
                            principal: Some(&session.principal),
                            labels: &labels,
                            controls,
                            usage,
                            now,
                        },
                    )
                });
        let decided = json!({ "action": action_id, "decision": decision });
        let mut batch = vec![
            record(RecordKind::ActionAttempted, attempted),
            record(RecordKind::ActionDecided, decided),
        ];
        match decision.verdict {
            Verdict::Allow => {
                batch.push(record(
                    RecordKind::ActionForwarded,
                    json!({ "action": action_id, "tool": tool }),
                ));
            }
            Verdict::Ask => {
                let spec = decision.approval.clone();
                batch.push(record(
                    RecordKind::ApprovalRequested,
                    json!({ "action": action_id, "approval": spec, "rules": decision.rules }),
                ));
            }
            Verdict::Deny => {}
        }
        // INVARIANT: nothing is forwarded unless this commit succeeded.
        if let Err(e) = self.ledger.append_batch(batch).await {
            tracing::error!(error = %e, "The ledger cannot record an action; it is refused.");
            return Err(Refused {
                action_id: None,
                refusal: Refusal::LedgerUnavailable,
                decision: Some(decision),
                message: "the action is refused: the ledger cannot record it".to_owned(),
            });
        }
        if let Some(inc) = increment
            && let Err(e) = self.usage.persist(inc).await
        {
            tracing::warn!(error = %e, "Scope counters could not be written through; they stay counted in memory.");
        }
        match decision.verdict {
            Verdict::Allow => Ok(Allowed {
                action_id,
                decision,
                args: decided_args,
                started: Instant::now(),
            }),
            Verdict::Deny => Err(Refused {
                message: format!("warden refused `{tool}`: {}", decision.summary()),
                action_id: Some(action_id),
                refusal: Refusal::Denied,
                decision: Some(decision),
            }),
            Verdict::Ask => {
                let timeout = Duration::from_secs(
                    decision.approval.as_ref().map_or(0, |a| a.timeout_seconds),
                );
                let why = tokio::select! {
                    () = tokio::time::sleep(timeout) => "timeout",
                    () = self.shutdown.cancelled() => "shutdown",
                };
                let payload = json!({ "action": action_id, "reason": why, "waited_seconds": timeout.as_secs() });
                if let Err(e) = self
                    .ledger
                    .append(record(RecordKind::ApprovalTimedOut, payload))
                    .await
                {
                    tracing::error!(error = %e, "The ledger cannot record an approval timeout.");
                }
                let message = if why == "shutdown" {
                    format!(
                        "warden refused `{tool}`: it needed approval and the gateway is shutting down"
                    )
                } else {
                    format!(
                        "warden refused `{tool}`: it needs approval ({}) and none was given within {}s",
                        decision.summary(),
                        timeout.as_secs()
                    )
                };
                Err(Refused {
                    action_id: Some(action_id),
                    refusal: Refusal::ApprovalTimedOut,
                    decision: Some(decision),
                    message,
                })
            }
        }
    }

    /// Records an attempt refused before any decision: a tool no upstream server offers.
    pub async fn record_unroutable(
        &self,
        session: &Arc<Session>,
        tool: &str,
        args: &Value,
        why: &str,
    ) -> Refused {
        let action_id = Uuid::now_v7().to_string();
        let payload = json!({ "action": action_id, "via": "mcp", "tool": tool, "arguments": args, "refused": why });
        let record = NewRecord {
            session: Some(session.id.clone()),
            kind: RecordKind::ActionAttempted,
            payload,
        };
        if let Err(e) = self.ledger.append(record).await {
            tracing::error!(error = %e, "The ledger cannot record a refused attempt.");
        }
        Refused {
            action_id: Some(action_id),
            refusal: Refusal::Denied,
            decision: None,
            message: format!("warden refused `{tool}`: {why}"),
        }
    }

    /// Records how a forwarded action ended, and the labels its result carries.
    pub async fn record_result(
        &self,
        session: &Arc<Session>,
        tool: &str,
        allowed: &Allowed,
        outcome: &Outcome,
    ) -> Result<Vec<Arc<str>>, warden_audit::LedgerError> {
        let duration_ms = u64::try_from(allowed.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut payload = json!({
            "action": allowed.action_id,
            "status": outcome.status,
            "size_bytes": outcome.size_bytes,
            "duration_ms": duration_ms,
        });
        if let (Some(e), Some(obj)) = (&outcome.error, payload.as_object_mut()) {
            obj.insert("error".to_owned(), Value::String(e.clone()));
        }
        let sid = Some(session.id.clone());
        let mut batch = vec![NewRecord {
            session: sid.clone(),
            kind: RecordKind::ActionResult,
            payload,
        }];
        let mut added = Vec::new();
        if outcome.status != "upstream_error" {
            let labels = result_labels(&self.charter, tool, &allowed.args, &outcome.text);
            added = session.add_labels(&labels);
            if !added.is_empty() {
                batch.push(NewRecord {
                    session: sid,
                    kind: RecordKind::LabelsAdded,
                    payload: json!({ "action": allowed.action_id, "labels": added }),
                });
            }
        }
        self.ledger.append_batch(batch).await?;
        if !added.is_empty()
            && let Err(e) = self.sessions.persist_labels(&session.id, &added).await
        {
            tracing::warn!(error = %e, "Session labels could not be written through; they stay in memory.");
        }
        Ok(added)
    }
}
