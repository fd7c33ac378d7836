//! A recorded gateway for the tests: decides each call under the live charter with
//! `warden_pdp::decide` and the state a gateway would hold (labels, provenance, scope usage,
//! controls), and records it in a real ledger (`warden_audit::Ledger`) as the governor does —
//! `action_attempted` + `action_decided` (+ `labels_added`, `action_forwarded`) in one batch.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tempfile::TempDir;
use time::OffsetDateTime;
use time::macros::datetime;
use warden_audit::{Ledger, LedgerConfig, LedgerReader, NewRecord, RecordKind};
use warden_charter::{CompiledCharter, Source, compile};
use warden_core::{Clock, Decision, ManualClock, Tier, TrustedSource, Verdict};
use warden_pdp::{Controls, Request, RuleUsage, action_labels, decide};
use warden_provenance::{Limits, Origin, SessionProvenance};
use warden_replay::{Options, Report};

pub(super) const START: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

pub(super) fn charter(yaml: &str) -> CompiledCharter {
    compile(&[Source::new("charter.yaml", yaml)])
        .unwrap_or_else(|d| panic!("{d}"))
        .charter
}

struct SimSession {
    principal: String,
    labels: Vec<Arc<str>>,
    provenance: SessionProvenance,
    usage: HashMap<String, RuleUsage>,
}

pub(super) struct Sim {
    pub(super) dir: TempDir,
    ledger: Ledger,
    pub(super) clock: Arc<ManualClock>,
    live: CompiledCharter,
    sessions: HashMap<String, SimSession>,
    day: HashMap<String, RuleUsage>,
    /// The controls the next decisions are taken under (set with `control`).
    pub(super) controls: Controls,
    n: u64,
}

impl Sim {
    pub(super) async fn new(live: &str) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(START));
        let ledger = Ledger::open(dir.path(), clock.clone(), LedgerConfig::default())
            .await
            .unwrap();
        Sim {
            dir,
            ledger,
            clock,
            live: charter(live),
            sessions: HashMap::new(),
            day: HashMap::new(),
            controls: Controls::default(),
            n: 0,
        }
    }

    pub(super) fn advance(&self, seconds: i64) {
        self.clock.advance(time::Duration::seconds(seconds));
    }

    pub(super) async fn append(
        &self,
        session: Option<&str>,
        kind: RecordKind,
        payload: Value,
    ) -> u64 {
        let appended = self
            .ledger
            .append_batch(vec![NewRecord::new(session, kind, payload)])
            .await
            .unwrap();
        appended[0].seq
    }

    pub(super) async fn open(&mut self, id: &str, principal: &str, task: &str) {
        let expires = self.clock.now() + time::Duration::hours(8);
        self.append(
            Some(id),
            RecordKind::SessionOpened,
            json!({ "session": id, "agent": self.live.identity.id, "principal": principal,
                    "task": task, "expires_at": warden_core::text::rfc3339(expires),
                    "charter": self.live.hash }),
        )
        .await;
        let mut provenance = SessionProvenance::new(Limits::default());
        provenance.add_trusted(task, TrustedSource::Task).unwrap();
        self.sessions.insert(
            id.to_owned(),
            SimSession {
                principal: principal.to_owned(),
                labels: Vec::new(),
                provenance,
                usage: HashMap::new(),
            },
        );
    }

    /// Decides and records one call; `None` for a tool outside the inventory (refused and
    /// recorded before any decision). Returns the decision and the action id.
    pub(super) async fn call(
        &mut self,
        session: &str,
        tool: &str,
        args: Value,
    ) -> Option<(Decision, String)> {
        self.n += 1;
        let action = format!("a{}", self.n);
        let sid = Some(session.to_owned());
        let attempted = json!({ "action": action, "via": "mcp", "tool": tool, "arguments": args });
        if !self.live.is_inventoried(tool) {
            let mut refused = attempted;
            refused["refused"] = json!(
                "it is not in the charter's inventory, and only the tools the inventory names can be called"
            );
            self.append(Some(session), RecordKind::ActionAttempted, refused)
                .await;
            return None;
        }
        let now = self.clock.now();
        let s = self.sessions.get_mut(session).unwrap();
        let mut usage = s.usage.clone();
        for (rule, d) in &self.day {
            usage.entry(rule.clone()).or_default().day_count = d.day_count;
        }
        let decision = decide(
            &self.live,
            &Request {
                tool,
                args: &args,
                principal: Some(&s.principal),
                labels: &s.labels,
                provenance: &s.provenance,
                controls: self.controls,
                usage: &usage,
                now,
            },
        );
        if decision.verdict == Verdict::Allow && decision.tier == Tier::Preapproved {
            for r in &decision.rules {
                s.usage.entry(r.id.to_string()).or_default().session_count += 1;
                self.day.entry(r.id.to_string()).or_default().day_count += 1;
            }
        }
        let mut batch = vec![
            NewRecord {
                session: sid.clone(),
                kind: RecordKind::ActionAttempted,
                payload: attempted,
            },
            NewRecord {
                session: sid.clone(),
                kind: RecordKind::ActionDecided,
                payload: json!({ "action": action, "decision": decision }),
            },
        ];
        if decision.verdict == Verdict::Allow {
            let labels = action_labels(&self.live, tool, &args);
            let added = add(&mut s.labels, &labels);
            if !added.is_empty() {
                batch.push(NewRecord {
                    session: sid.clone(),
                    kind: RecordKind::LabelsAdded,
                    payload: json!({ "action": action, "labels": added }),
                });
            }
            batch.push(NewRecord {
                session: sid,
                kind: RecordKind::ActionForwarded,
                payload: json!({ "action": action, "tool": tool }),
            });
        }
        self.ledger.append_batch(batch).await.unwrap();
        Some((decision, action))
    }

    /// Decides and records a provider-side action as the model proxy does (`via: model`,
    /// no inventory check, no scope usage, nothing counted).
    pub(super) async fn model_action(
        &mut self,
        session: &str,
        tool: &str,
        args: Value,
    ) -> Decision {
        self.n += 1;
        let action = format!("a{}", self.n);
        let s = self.sessions.get(session).unwrap();
        let decision = decide(
            &self.live,
            &Request {
                tool,
                args: &args,
                principal: Some(&s.principal),
                labels: &s.labels,
                provenance: &s.provenance,
                controls: self.controls,
                usage: &warden_pdp::NoScopeUsage,
                now: self.clock.now(),
            },
        );
        self.ledger
            .append_batch(vec![
                NewRecord::new(
                    Some(session),
                    RecordKind::ActionAttempted,
                    json!({ "action": action, "via": "model", "call": "c1", "tool": tool, "arguments": args }),
                ),
                NewRecord::new(
                    Some(session),
                    RecordKind::ActionDecided,
                    json!({ "action": action, "decision": decision }),
                ),
            ])
            .await
            .unwrap();
        decision
    }

    /// Records the result of `action` with `text` as its content, carrying `labels`
    /// (those the live charter declares untrusted are indexed).
    pub(super) async fn result(
        &mut self,
        session: &str,
        action: &str,
        text: &str,
        labels: &[&str],
    ) {
        let labels: Vec<Arc<str>> = labels.iter().map(|l| Arc::from(*l)).collect();
        let untrusted: Vec<Arc<str>> = labels
            .iter()
            .filter(|l| self.live.data.untrusted.contains(l))
            .cloned()
            .collect();
        let mut payload = json!({ "action": action, "status": "ok", "size_bytes": text.len(),
            "content": [{ "type": "text", "text": text }] });
        if !untrusted.is_empty() {
            payload["untrusted"] = json!(untrusted);
        }
        let s = self.sessions.get_mut(session).unwrap();
        let added = add(&mut s.labels, &labels);
        let mut batch = vec![NewRecord::new(
            Some(session),
            RecordKind::ActionResult,
            payload,
        )];
        if !added.is_empty() {
            batch.push(NewRecord::new(
                Some(session),
                RecordKind::LabelsAdded,
                json!({ "action": action, "labels": added }),
            ));
        }
        let appended = self.ledger.append_batch(batch).await.unwrap();
        if !untrusted.is_empty() {
            s.provenance.add_untrusted(
                text,
                Origin {
                    seq: appended[0].seq,
                    labels: untrusted,
                },
            );
        }
    }

    pub(super) async fn close(self) -> TempDir {
        self.ledger.shutdown().await.unwrap();
        self.dir
    }
}

fn add(labels: &mut Vec<Arc<str>>, new: &[Arc<str>]) -> Vec<Arc<str>> {
    let mut added = Vec::new();
    for l in new {
        if !labels.contains(l) {
            labels.push(l.clone());
            added.push(l.clone());
        }
    }
    labels.sort();
    added
}

pub(super) async fn replay(dir: &std::path::Path, candidate: &str, options: &Options) -> Report {
    let reader = LedgerReader::open(dir).await.unwrap();
    let report = warden_replay::replay(&reader, &charter(candidate), options)
        .await
        .unwrap();
    reader.close().await;
    report
}
