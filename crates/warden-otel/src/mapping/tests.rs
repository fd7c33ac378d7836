use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_audit::Record;
use warden_core::RecordKind;

use super::*;

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn rec(seq: u64, secs: i64, kind: RecordKind, payload: Value) -> Record {
    Record {
        seq,
        time: OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap(),
        session: Some("s-1".to_owned()),
        kind,
        payload,
        prev_hash: [0; 32],
        hash: [0; 32],
    }
}

fn map(mapper: &mut Mapper, records: &[Record]) -> Vec<Span> {
    let mut out = Vec::new();
    for r in records {
        mapper.on_record(r, &mut out);
    }
    out
}

fn allowed_action(trace: Option<&str>) -> Vec<Record> {
    let mut attempted = json!({ "action": "a1", "via": "mcp", "tool": "fs.read", "arguments": { "path": "/secret/plan.txt" } });
    if let Some(tp) = trace {
        attempted["trace"] = json!({ "traceparent": tp, "tracestate": "k=v" });
    }
    vec![
        rec(
            1,
            0,
            RecordKind::SessionOpened,
            json!({ "session": "s-1", "agent": "helper", "principal": "alice", "task": "the task" }),
        ),
        rec(2, 1, RecordKind::ActionAttempted, attempted),
        rec(
            3,
            1,
            RecordKind::ActionDecided,
            json!({ "action": "a1", "decision": { "verdict": "allow", "tier": "autonomous", "reason": "rule", "rules": [{ "id": "read-docs" }] } }),
        ),
        rec(
            4,
            1,
            RecordKind::ActionForwarded,
            json!({ "action": "a1", "tool": "fs.read" }),
        ),
        rec(
            5,
            3,
            RecordKind::ActionResult,
            json!({ "action": "a1", "status": "ok", "size_bytes": 12 }),
        ),
    ]
}

fn mapper() -> Mapper {
    Mapper::new(false, DEFAULT_MAX_PENDING, DEFAULT_PENDING_TIMEOUT)
}

#[test]
fn an_allowed_action_is_one_execute_tool_span_under_the_session_root() {
    let spans = map(&mut mapper(), &allowed_action(None));
    let [root, tool] = spans.as_slice() else {
        panic!("{spans:#?}")
    };
    assert_eq!(root.name, "invoke_agent helper");
    assert_eq!(root.trace_id, crate::span::session_trace_id("s-1"));
    assert_eq!(root.parent, None);
    assert_eq!(tool.name, "execute_tool fs.read");
    assert_eq!(tool.trace_id, root.trace_id);
    assert_eq!(tool.parent, Some(root.span_id));
    assert_eq!(tool.end_ns - tool.start_ns, 2_000_000_000);
    let a = &tool.attrs;
    assert_eq!(a.str("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(a.str("gen_ai.tool.name"), Some("fs.read"));
    assert_eq!(a.str("mcp.method.name"), Some("tools/call"));
    assert_eq!(a.str("warden.decision.verdict"), Some("allow"));
    assert_eq!(a.str("warden.decision.tier"), Some("autonomous"));
    assert_eq!(
        a.get("warden.decision.rule_ids"),
        Some(&Attr::List(vec!["read-docs".to_owned()]))
    );
    assert_eq!(a.get("warden.ledger.seq"), Some(&Attr::Int(2)));
    assert_eq!(a.str("warden.session.id"), Some("s-1"));
    assert_eq!(a.str("warden.result.status"), Some("ok"));
    assert_eq!(tool.error, None);
    // No content by default: neither the arguments nor the task.
    assert_eq!(a.get("gen_ai.tool.call.arguments"), None);
    assert_eq!(root.attrs.get("warden.session.task"), None);
}

#[test]
fn an_agent_traceparent_makes_the_span_join_the_agents_trace() {
    let spans = map(&mut mapper(), &allowed_action(Some(TP)));
    let tool = spans.last().unwrap();
    let t = warden_core::TraceContext::parse(Some(TP), None).unwrap();
    assert_eq!(tool.trace_id, t.trace_id());
    assert_eq!(tool.parent, Some(t.parent_id()));
    assert_eq!(tool.trace_state.as_deref(), Some("k=v"));
}

#[test]
fn a_forged_trace_in_a_record_is_ignored() {
    let mut records = allowed_action(None);
    records[1].payload["trace"] =
        json!({ "traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01" });
    let spans = map(&mut mapper(), &records);
    assert_eq!(spans[1].trace_id, crate::span::session_trace_id("s-1"));
}

#[test]
fn content_is_exported_only_when_opted_in_and_clipped() {
    let mut m = Mapper::new(true, 10, DEFAULT_PENDING_TIMEOUT);
    let long = "x".repeat(MAX_CONTENT_BYTES * 2);
    let spans = map(
        &mut m,
        &[
            rec(
                1,
                0,
                RecordKind::ModelRequested,
                json!({ "call": "c1", "protocol": "openai", "alias": "fast", "request": { "model": "fast", "messages": [{ "role": "user", "content": long }] } }),
            ),
            rec(
                2,
                1,
                RecordKind::ModelCompleted,
                json!({ "call": "c1", "route": { "provider": "openai", "model": "gpt-x" }, "status": 200, "completion": { "text": "hello", "finish_reason": "stop" }, "usage": { "input_tokens": 7, "output_tokens": 2 } }),
            ),
        ],
    );
    let chat = &spans[0];
    let input = chat.attrs.str("gen_ai.input.messages").unwrap();
    assert!(
        input.len() <= MAX_CONTENT_BYTES + 3,
        "clipped: {}",
        input.len()
    );
    assert!(
        chat.attrs
            .str("gen_ai.output.messages")
            .unwrap()
            .contains("hello")
    );
}

#[test]
fn a_model_call_is_a_chat_span_with_genai_attributes() {
    let spans = map(
        &mut mapper(),
        &[
            rec(
                1,
                0,
                RecordKind::ModelRequested,
                json!({ "call": "c1", "protocol": "anthropic", "alias": "fast", "stream": true, "request": { "max_tokens": 64, "messages": [] }, "trace": { "traceparent": TP } }),
            ),
            rec(
                2,
                2,
                RecordKind::ModelCompleted,
                json!({ "call": "c1", "route": { "provider": "openai", "model": "gpt-x" }, "status": 200, "completion": { "text": "secret answer", "finish_reason": "stop" }, "response": { "id": "r1", "model": "gpt-x-2" }, "usage": { "input_tokens": 7, "output_tokens": 2 } }),
            ),
        ],
    );
    let [chat] = spans.as_slice() else { panic!() };
    let a = &chat.attrs;
    assert_eq!(chat.name, "chat fast");
    assert_eq!(a.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(a.str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(a.str("gen_ai.request.model"), Some("fast"));
    assert_eq!(a.str("gen_ai.response.model"), Some("gpt-x-2"));
    assert_eq!(a.get("gen_ai.usage.input_tokens"), Some(&Attr::Int(7)));
    assert_eq!(a.get("gen_ai.usage.output_tokens"), Some(&Attr::Int(2)));
    assert_eq!(
        a.get("gen_ai.response.finish_reasons"),
        Some(&Attr::List(vec!["stop".to_owned()]))
    );
    assert_eq!(a.get("gen_ai.request.max_tokens"), Some(&Attr::Int(64)));
    assert_eq!(a.get("gen_ai.input.messages"), None);
    assert_eq!(a.get("gen_ai.output.messages"), None);
    let t = warden_core::TraceContext::parse(Some(TP), None).unwrap();
    assert_eq!(
        (chat.trace_id, chat.parent),
        (t.trace_id(), Some(t.parent_id()))
    );
}

#[test]
fn a_failed_model_call_is_an_error_span() {
    let spans = map(
        &mut mapper(),
        &[
            rec(
                1,
                0,
                RecordKind::ModelRequested,
                json!({ "call": "c1", "protocol": "openai", "alias": "fast", "request": {} }),
            ),
            rec(
                2,
                1,
                RecordKind::ModelFailed,
                json!({ "call": "c1", "alias": "fast" }),
            ),
        ],
    );
    assert!(spans[0].error.is_some());
    assert_eq!(spans[0].attrs.str("error.type"), Some("model_failed"));
}

#[test]
fn a_denied_action_ends_at_its_decision_with_an_error() {
    let spans = map(
        &mut mapper(),
        &[
            rec(
                1,
                0,
                RecordKind::ActionAttempted,
                json!({ "action": "a1", "via": "decide_api", "tool": "pay.send" }),
            ),
            rec(
                2,
                0,
                RecordKind::ActionDecided,
                json!({ "action": "a1", "decision": { "verdict": "deny", "tier": "prohibited", "reason": "rule", "rules": [{ "id": "no-pay" }] } }),
            ),
        ],
    );
    let [s] = spans.as_slice() else { panic!() };
    assert_eq!(s.attrs.str("mcp.method.name"), Some("decide"));
    assert_eq!(s.attrs.str("warden.decision.verdict"), Some("deny"));
    assert_eq!(s.attrs.str("error.type"), Some("denied"));
    assert!(s.error.is_some());
}

#[test]
fn approvals_are_events_and_a_timeout_ends_the_span() {
    let mut m = mapper();
    let spans = map(
        &mut m,
        &[
            rec(
                1,
                0,
                RecordKind::ActionAttempted,
                json!({ "action": "a1", "via": "mcp", "tool": "pay.send" }),
            ),
            rec(
                2,
                0,
                RecordKind::ActionDecided,
                json!({ "action": "a1", "decision": { "verdict": "ask", "tier": "approval", "rules": [] } }),
            ),
            rec(
                3,
                0,
                RecordKind::ApprovalRequested,
                json!({ "id": "ap1", "action": "a1" }),
            ),
            rec(
                4,
                9,
                RecordKind::ApprovalTimedOut,
                json!({ "approval": "ap1", "action": "a1" }),
            ),
        ],
    );
    let [s] = spans.as_slice() else {
        panic!("{spans:#?}")
    };
    let names: Vec<&str> = s.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["warden.approval.requested", "warden.approval.timed_out"]
    );
    assert!(s.error.is_some());
    assert_eq!(m.pending(), 0);
}

#[test]
fn a_granted_approval_is_events_then_the_result_ends_the_span() {
    let spans = map(
        &mut mapper(),
        &[
            rec(
                1,
                0,
                RecordKind::ActionAttempted,
                json!({ "action": "a1", "via": "mcp", "tool": "pay.send" }),
            ),
            rec(
                2,
                0,
                RecordKind::ActionDecided,
                json!({ "action": "a1", "decision": { "verdict": "ask", "tier": "approval", "rules": [] } }),
            ),
            rec(
                3,
                0,
                RecordKind::ApprovalRequested,
                json!({ "id": "ap1", "action": "a1" }),
            ),
            rec(
                4,
                5,
                RecordKind::ApprovalGranted,
                json!({ "approval": "ap1", "action": "a1", "approver": "bob", "channel": "cli" }),
            ),
            rec(
                5,
                5,
                RecordKind::ApprovalUsed,
                json!({ "approval": "ap1", "action": "a1" }),
            ),
            rec(
                6,
                6,
                RecordKind::ActionResult,
                json!({ "action": "a1", "status": "tool_error", "error": "boom" }),
            ),
        ],
    );
    let [s] = spans.as_slice() else { panic!() };
    assert_eq!(s.events.len(), 3);
    assert_eq!(
        s.events[1].attrs.str("warden.approval.approver"),
        Some("bob")
    );
    assert_eq!(s.attrs.str("warden.result.status"), Some("tool_error"));
    assert_eq!(s.error.as_deref(), Some("boom"));
}

#[test]
fn alerts_and_controls_are_short_spans_with_one_event() {
    let spans = map(
        &mut mapper(),
        &[rec(
            1,
            0,
            RecordKind::ControlSet,
            json!({ "id": "ctl-1", "action": "freeze_tool", "scope": "session", "tool": "fs.write", "reason": "burst" }),
        )],
    );
    let [s] = spans.as_slice() else { panic!() };
    assert_eq!(s.name, "warden control_set");
    assert_eq!(s.events[0].name, "warden.control_set");
    assert_eq!(s.attrs.str("warden.control.action"), Some("freeze_tool"));
    assert_eq!(s.parent, Some(crate::span::session_root_id("s-1")));
}

#[test]
fn pending_spans_are_bounded_and_time_out_as_incomplete() {
    let mut m = Mapper::new(false, 2, std::time::Duration::from_secs(60));
    let attempt = |seq: u64, secs: i64| {
        rec(
            seq,
            secs,
            RecordKind::ActionAttempted,
            json!({ "action": format!("a{seq}"), "via": "mcp", "tool": "t.x" }),
        )
    };
    let out = map(&mut m, &[attempt(1, 0), attempt(2, 0), attempt(3, 0)]);
    assert_eq!(out.len(), 1, "the oldest is pushed out");
    assert_eq!(
        out[0].attrs.get("warden.incomplete"),
        Some(&Attr::Bool(true))
    );
    assert_eq!(out[0].attrs.str("warden.action.id"), Some("a1"));
    assert_eq!(m.pending(), 2);
    let out = map(
        &mut m,
        &[rec(9, 120, RecordKind::GatewayStarted, json!({}))],
    );
    assert_eq!(out.len(), 2, "past the timeout");
    assert_eq!(m.pending(), 0);
    let _ = map(&mut m, &[attempt(10, 121)]);
    let mut out = Vec::new();
    m.flush(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].attrs.get("warden.incomplete"),
        Some(&Attr::Bool(true))
    );
}

#[test]
fn records_of_unexpected_shape_never_panic() {
    let mut m = mapper();
    for kind in [
        RecordKind::ActionAttempted,
        RecordKind::ActionDecided,
        RecordKind::ActionResult,
        RecordKind::ModelRequested,
        RecordKind::ModelCompleted,
        RecordKind::ApprovalGranted,
        RecordKind::ControlSet,
        RecordKind::SessionOpened,
    ] {
        for payload in [
            json!(null),
            json!([]),
            json!({ "action": 5, "call": [], "decision": "x" }),
        ] {
            let _ = map(&mut m, &[rec(1, 0, kind, payload)]);
        }
    }
}
