//! From ledger records to spans: a pure state machine, fed the committed records in order.
//!
//! | records | span |
//! |---|---|
//! | `session_opened` | `invoke_agent {agent}`, the session trace's root (exported at once, zero length) |
//! | `action_attempted` → `action_result`, or → `action_decided` (deny), or → the approval's denial, time-out or unavailability | `execute_tool {tool}` |
//! | `model_requested` → `model_completed` or `model_failed` | `chat {model}` |
//! | `approval_*` of a pending action | events on its `execute_tool` span |
//! | `observer_alert`, `control_set`, `control_lifted`, `control_expired` | `warden {kind}`, a zero-length span with one event |
//!
//! A span waiting for its end record is pending. At most `max_pending` are; the oldest beyond
//! that, and any pending longer than `timeout` of ledger time, is exported with what is known
//! and `warden.incomplete = true` (as is every pending span at stop).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::Value;
use warden_audit::Record;
use warden_core::text::ellipsize;
use warden_core::{RecordKind, TraceContext};

use crate::span::{
    Attr, Attrs, Event, Kind, Span, placement, session_root_id, session_trace_id, span_id,
};

/// The most bytes of one content attribute (prompt, completion, arguments) exported.
pub const MAX_CONTENT_BYTES: usize = 16 * 1024;

/// The most bytes of one free-text attribute (a reason, an error) exported.
const MAX_TEXT_BYTES: usize = 1024;

/// How many spans may wait for their end record by default.
pub const DEFAULT_MAX_PENDING: usize = 10_000;

/// How long (of ledger time) a span may wait for its end record by default: longer than an
/// approval usually waits.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(3600);

/// The state of the mapping: the spans waiting for their end record.
#[derive(Debug)]
pub struct Mapper {
    capture_content: bool,
    max_pending: usize,
    timeout_ns: u64,
    pending: HashMap<String, Span>,
    /// Pending keys in the order they started (finished ones are skipped when met).
    order: VecDeque<(String, u64)>,
    /// The newest ledger time seen.
    now_ns: u64,
}

impl Mapper {
    /// A mapper exporting content only when `capture_content`, with at most `max_pending`
    /// spans waiting up to `timeout` for their end.
    pub fn new(capture_content: bool, max_pending: usize, timeout: Duration) -> Mapper {
        Mapper {
            capture_content,
            max_pending: max_pending.max(1),
            timeout_ns: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX),
            pending: HashMap::new(),
            order: VecDeque::new(),
            now_ns: 0,
        }
    }

    /// How many spans wait for their end record.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Maps one record; finished spans are pushed onto `out`. Never fails: a record that does
    /// not have the expected shape adds what it can, or nothing.
    pub fn on_record(&mut self, r: &Record, out: &mut Vec<Span>) {
        let time = nanos(r);
        self.now_ns = self.now_ns.max(time);
        let p = &r.payload;
        let session = r.session.as_deref();
        match r.kind {
            RecordKind::SessionOpened => {
                if let Some(s) = session {
                    out.push(self.root(r, s, time));
                }
            }
            RecordKind::ActionAttempted => self.attempted(r, session, time, out),
            RecordKind::ActionDecided => self.decided(p, time, out),
            RecordKind::ActionResult => {
                if let Some(mut span) = self.take(&action_key(p)) {
                    let status = text(p, "status").unwrap_or("unknown");
                    span.attrs.set("warden.result.status", status);
                    if let Some(n) = p.get("size_bytes").and_then(Value::as_u64) {
                        span.attrs.set("warden.result.size_bytes", n);
                    }
                    if status != "ok" {
                        let why = text(p, "error").unwrap_or(status);
                        span.attrs.set("error.type", status);
                        span.error = Some(ellipsize(why, MAX_TEXT_BYTES));
                    }
                    out.push(end(span, time));
                }
            }
            RecordKind::ApprovalRequested
            | RecordKind::ApprovalAwaited
            | RecordKind::ApprovalGranted
            | RecordKind::ApprovalUsed
            | RecordKind::ApprovalReversed => self.approval_event(r, time),
            RecordKind::ApprovalDenied
            | RecordKind::ApprovalTimedOut
            | RecordKind::ApprovalUnavailable => {
                self.approval_event(r, time);
                let ends = r.kind != RecordKind::ApprovalDenied
                    || p.get("final").and_then(Value::as_bool).unwrap_or(true);
                if ends && let Some(mut span) = self.take(&action_key(p)) {
                    span.attrs.set("error.type", r.kind.as_str());
                    span.error = Some(format!("refused: {}", r.kind.as_str().replace('_', " ")));
                    out.push(end(span, time));
                }
            }
            RecordKind::ModelRequested => self.model_requested(r, session, time, out),
            RecordKind::ModelCompleted => self.model_completed(p, time, out),
            RecordKind::ModelFailed => {
                if let Some(mut span) = self.take(&call_key(p)) {
                    span.attrs.set("error.type", "model_failed");
                    span.error = Some("every route failed".to_owned());
                    out.push(end(span, time));
                }
            }
            RecordKind::ObserverAlert
            | RecordKind::ControlSet
            | RecordKind::ControlLifted
            | RecordKind::ControlExpired => out.push(self.control(r, session, time)),
            _ => {}
        }
        self.expire(out);
    }

    /// Every pending span, exported as incomplete (at stop).
    pub fn flush(&mut self, out: &mut Vec<Span>) {
        let now = self.now_ns;
        for (_, span) in self.pending.drain() {
            out.push(incomplete(span, now));
        }
        self.order.clear();
    }

    fn root(&self, r: &Record, session: &str, time: u64) -> Span {
        let agent = text(&r.payload, "agent").unwrap_or("agent");
        let mut attrs = Attrs::default();
        attrs.set("gen_ai.operation.name", "invoke_agent");
        attrs.set("gen_ai.agent.name", agent);
        attrs.set("gen_ai.conversation.id", session);
        attrs.set("warden.session.id", session);
        attrs.set("warden.ledger.seq", r.seq);
        if let Some(p) = text(&r.payload, "principal") {
            attrs.set("warden.session.principal", p);
        }
        if self.capture_content
            && let Some(task) = text(&r.payload, "task")
        {
            attrs.set("warden.session.task", ellipsize(task, MAX_CONTENT_BYTES));
        }
        Span {
            trace_id: session_trace_id(session),
            span_id: session_root_id(session),
            parent: None,
            trace_state: None,
            name: format!("invoke_agent {agent}"),
            kind: Kind::Internal,
            start_ns: time,
            end_ns: time,
            attrs,
            events: Vec::new(),
            error: None,
        }
    }

    fn attempted(&mut self, r: &Record, session: Option<&str>, time: u64, out: &mut Vec<Span>) {
        let p = &r.payload;
        let Some(action) = text(p, "action") else {
            return;
        };
        let tool = text(p, "tool").unwrap_or("unknown");
        let via = text(p, "via").unwrap_or("mcp");
        let trace = TraceContext::from_payload(p);
        let (trace_id, parent, trace_state) =
            placement(trace.as_ref(), session, &["record", &r.seq.to_string()]);
        let mut attrs = Attrs::default();
        attrs.set("gen_ai.operation.name", "execute_tool");
        attrs.set("gen_ai.tool.name", tool);
        attrs.set("gen_ai.tool.call.id", action);
        attrs.set("mcp.method.name", mcp_method(via, tool));
        attrs.set("warden.action.id", action);
        attrs.set("warden.via", via);
        attrs.set("warden.ledger.seq", r.seq);
        if let Some(s) = session {
            attrs.set("warden.session.id", s);
        }
        if self.capture_content
            && let Some(args) = p.get("arguments")
        {
            attrs.set(
                "gen_ai.tool.call.arguments",
                ellipsize(&args.to_string(), MAX_CONTENT_BYTES),
            );
        }
        let mut span = Span {
            trace_id,
            span_id: span_id(&["action", action]),
            parent,
            trace_state,
            name: format!("execute_tool {tool}"),
            kind: Kind::Client,
            start_ns: time,
            end_ns: time,
            attrs,
            events: Vec::new(),
            error: None,
        };
        // Refused before any decision (not in the inventory, unroutable, too large): ends here.
        if let Some(why) = text(p, "refused") {
            span.attrs.set("warden.decision.verdict", "deny");
            span.attrs.set("error.type", "refused");
            span.error = Some(ellipsize(why, MAX_TEXT_BYTES));
            out.push(span);
            return;
        }
        self.insert(format!("action:{action}"), span, out);
    }

    fn decided(&mut self, p: &Value, time: u64, out: &mut Vec<Span>) {
        let key = action_key(p);
        let Some(span) = self.pending.get_mut(&key) else {
            return;
        };
        let decision = p.get("decision").unwrap_or(&Value::Null);
        let verdict = text(decision, "verdict").unwrap_or("deny");
        span.attrs.set("warden.decision.verdict", verdict);
        if let Some(tier) = text(decision, "tier") {
            span.attrs.set("warden.decision.tier", tier);
        }
        if let Some(reason) = text(decision, "reason") {
            span.attrs.set("warden.decision.reason", reason);
        }
        let rules: Vec<String> = decision
            .get("rules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter_map(|r| text(r, "id").map(str::to_owned))
                    .take(64)
                    .collect()
            })
            .unwrap_or_default();
        span.attrs
            .set("warden.decision.rule_ids", Attr::List(rules));
        if let Some(c) = text(p, "control") {
            span.attrs.set("warden.control.id", c);
        }
        if let Some(a) = text(p, "approval") {
            span.attrs.set("warden.approval.id", a);
        }
        if verdict == "deny"
            && let Some(mut span) = self.take(&key)
        {
            let why = text(decision, "detail")
                .or_else(|| text(decision, "reason"))
                .unwrap_or("denied");
            span.attrs.set("error.type", "denied");
            span.error = Some(ellipsize(why, MAX_TEXT_BYTES));
            out.push(end(span, time));
        }
    }

    fn approval_event(&mut self, r: &Record, time: u64) {
        let p = &r.payload;
        let Some(span) = self.pending.get_mut(&action_key(p)) else {
            return;
        };
        let mut attrs = Attrs::default();
        if let Some(id) = text(p, "approval").or_else(|| text(p, "id")) {
            attrs.set("warden.approval.id", id);
        }
        for key in ["approver", "channel", "status"] {
            if let Some(v) = text(p, key) {
                attrs.set(&format!("warden.approval.{key}"), v);
            }
        }
        attrs.set("warden.ledger.seq", r.seq);
        let name = r.kind.as_str().replacen("approval_", "warden.approval.", 1);
        if span.events.len() < 128 {
            span.events.push(Event {
                name,
                time_ns: time,
                attrs,
            });
        }
    }

    fn model_requested(
        &mut self,
        r: &Record,
        session: Option<&str>,
        time: u64,
        out: &mut Vec<Span>,
    ) {
        let p = &r.payload;
        let Some(call) = text(p, "call") else {
            return;
        };
        let alias = text(p, "alias").unwrap_or("unknown");
        let trace = TraceContext::from_payload(p);
        let (trace_id, parent, trace_state) =
            placement(trace.as_ref(), session, &["record", &r.seq.to_string()]);
        let request = p.get("request").unwrap_or(&Value::Null);
        let mut attrs = Attrs::default();
        attrs.set("gen_ai.operation.name", "chat");
        attrs.set(
            "gen_ai.provider.name",
            text(p, "protocol").unwrap_or("openai"),
        );
        attrs.set("gen_ai.request.model", alias);
        for (from, to) in [
            ("max_tokens", "gen_ai.request.max_tokens"),
            ("max_completion_tokens", "gen_ai.request.max_tokens"),
        ] {
            if let Some(n) = request.get(from).and_then(Value::as_u64) {
                attrs.set(to, n);
            }
        }
        if let Some(t) = request.get("temperature").and_then(Value::as_f64) {
            attrs.set("gen_ai.request.temperature", format!("{t}"));
        }
        if let Some(s) = p.get("stream").and_then(Value::as_bool) {
            attrs.set("warden.model.stream", s);
        }
        attrs.set("warden.model.call", call);
        attrs.set("warden.ledger.seq", r.seq);
        if let Some(s) = session {
            attrs.set("warden.session.id", s);
            attrs.set("gen_ai.conversation.id", s);
        }
        if self.capture_content {
            let mut input = Vec::new();
            if let Some(system) = request.get("system") {
                input.push(serde_json::json!({ "role": "system", "content": system }));
            }
            if let Some(Value::Array(messages)) = request.get("messages") {
                input.extend(messages.iter().cloned());
            }
            attrs.set(
                "gen_ai.input.messages",
                ellipsize(&Value::Array(input).to_string(), MAX_CONTENT_BYTES),
            );
        }
        let span = Span {
            trace_id,
            span_id: span_id(&["call", call]),
            parent,
            trace_state,
            name: format!("chat {alias}"),
            kind: Kind::Client,
            start_ns: time,
            end_ns: time,
            attrs,
            events: Vec::new(),
            error: None,
        };
        self.insert(format!("call:{call}"), span, out);
    }

    fn model_completed(&mut self, p: &Value, time: u64, out: &mut Vec<Span>) {
        let Some(mut span) = self.take(&call_key(p)) else {
            return;
        };
        let route = p.get("route").unwrap_or(&Value::Null);
        if let Some(provider) = text(route, "provider") {
            span.attrs.set("gen_ai.provider.name", provider);
        }
        let response = p.get("response").unwrap_or(&Value::Null);
        if let Some(model) = text(response, "model").or_else(|| text(route, "model")) {
            span.attrs.set("gen_ai.response.model", model);
        }
        if let Some(id) = text(response, "id") {
            span.attrs.set("gen_ai.response.id", id);
        }
        let usage = p.get("usage").unwrap_or(&Value::Null);
        for (from, to) in [
            ("input_tokens", "gen_ai.usage.input_tokens"),
            ("output_tokens", "gen_ai.usage.output_tokens"),
        ] {
            if let Some(n) = usage.get(from).and_then(Value::as_u64) {
                span.attrs.set(to, n);
            }
        }
        let completion = p.get("completion").unwrap_or(&Value::Null);
        let finish = text(completion, "finish_reason");
        span.attrs.set(
            "gen_ai.response.finish_reasons",
            Attr::List(finish.map(str::to_owned).into_iter().collect()),
        );
        if let Some(n) = p.get("intents").and_then(Value::as_u64) {
            span.attrs.set("warden.model.intents", n);
        }
        let status = p.get("status").and_then(Value::as_u64).unwrap_or(200);
        span.attrs.set("http.response.status_code", status);
        if !(200..300).contains(&status) {
            span.attrs.set("error.type", status.to_string());
            span.error = Some(format!("the provider answered {status}"));
        }
        if self.capture_content {
            let text = text(completion, "text").unwrap_or_default();
            let output = serde_json::json!([{
                "role": "assistant",
                "parts": [{ "type": "text", "content": text }],
                "finish_reason": finish,
            }]);
            span.attrs.set(
                "gen_ai.output.messages",
                ellipsize(&output.to_string(), MAX_CONTENT_BYTES),
            );
        }
        out.push(end(span, time));
    }

    fn control(&self, r: &Record, session: Option<&str>, time: u64) -> Span {
        let p = &r.payload;
        let seq = r.seq.to_string();
        let (trace_id, parent, _) = placement(None, session, &["record", &seq]);
        let mut attrs = Attrs::default();
        attrs.set("warden.ledger.seq", r.seq);
        if let Some(s) = session {
            attrs.set("warden.session.id", s);
        }
        for key in ["id", "action", "scope", "target", "tool", "detector"] {
            if let Some(v) = text(p, key) {
                attrs.set(&format!("warden.control.{key}"), v);
            }
        }
        if let Some(reason) = text(p, "reason") {
            attrs.set("warden.control.reason", ellipsize(reason, MAX_TEXT_BYTES));
        }
        let name = format!("warden.{}", r.kind.as_str());
        Span {
            trace_id,
            span_id: span_id(&["record", &seq]),
            parent,
            trace_state: None,
            name: format!("warden {}", r.kind.as_str()),
            kind: Kind::Internal,
            start_ns: time,
            end_ns: time,
            attrs: attrs.clone(),
            events: vec![Event {
                name,
                time_ns: time,
                attrs,
            }],
            error: None,
        }
    }

    /// Adds a pending span; the oldest pending one is exported incomplete when the map is
    /// full.
    fn insert(&mut self, key: String, span: Span, out: &mut Vec<Span>) {
        while self.pending.len() >= self.max_pending {
            let Some((old, _)) = self.order.pop_front() else {
                break;
            };
            if let Some(span) = self.pending.remove(&old) {
                out.push(incomplete(span, self.now_ns));
            }
        }
        self.order.push_back((key.clone(), span.start_ns));
        if let Some(replaced) = self.pending.insert(key, span) {
            // The same id twice (a ledger written by another program): the first is exported.
            out.push(incomplete(replaced, self.now_ns));
        }
        // Finished spans leave their key in `order`; compact when those dominate.
        if self.order.len() > self.max_pending.saturating_mul(2) {
            let pending = &self.pending;
            self.order.retain(|(k, _)| pending.contains_key(k));
        }
    }

    fn take(&mut self, key: &str) -> Option<Span> {
        self.pending.remove(key)
    }

    /// Exports as incomplete every pending span older than the timeout (of ledger time).
    fn expire(&mut self, out: &mut Vec<Span>) {
        let cutoff = self.now_ns.saturating_sub(self.timeout_ns);
        while let Some((key, started)) = self.order.front() {
            if !self.pending.contains_key(key) {
                self.order.pop_front();
                continue;
            }
            if *started >= cutoff {
                break;
            }
            if let Some((key, _)) = self.order.pop_front()
                && let Some(span) = self.pending.remove(&key)
            {
                out.push(incomplete(span, self.now_ns));
            }
        }
    }
}

fn end(mut span: Span, time: u64) -> Span {
    span.end_ns = time.max(span.start_ns);
    span
}

fn incomplete(mut span: Span, now: u64) -> Span {
    span.attrs.set("warden.incomplete", true);
    end(span, now)
}

fn nanos(r: &Record) -> u64 {
    u64::try_from(r.time.unix_timestamp_nanos().max(0)).unwrap_or(u64::MAX)
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn action_key(p: &Value) -> String {
    format!("action:{}", text(p, "action").unwrap_or_default())
}

fn call_key(p: &Value) -> String {
    format!("call:{}", text(p, "call").unwrap_or_default())
}

/// The MCP method an action came as: `tools/call`, `resources/read`, or, off MCP, `decide`
/// (the decide API) or `provider` (a provider-side action a model request asked for).
fn mcp_method(via: &str, tool: &str) -> &'static str {
    match via {
        "mcp" if tool.ends_with(".resources/read") => "resources/read",
        "mcp" => "tools/call",
        "model" => "provider",
        _ => "decide",
    }
}

#[cfg(test)]
mod tests;
