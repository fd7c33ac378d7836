//! `GET /ui/approvals/{id}` (a request and its decision form) and
//! `POST /ui/approvals/{id}/decide`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::Value;
use warden_approval::{ApprovalRequest, Choice, Decider, Status, Vote};
use warden_core::text::rfc3339;

use super::may_see;
use crate::ConsoleState;
use crate::auth::{CsrfForm, Signed};
use crate::page::{Clip, Layout, clip, error_page, render};

/// How many characters of an argument's value are shown before it is clipped.
pub(super) const ARG_CLIP: usize = 200;
/// How many characters of a model turn are shown before it is clipped.
pub(super) const TURN_CLIP: usize = 600;
/// The longest request id looked up (ours are UUIDs).
const MAX_ID: usize = 64;

/// One argument: its key in full, its value clipped.
struct Arg {
    key: String,
    value: Clip,
}

/// A rule that decided, and where it is in the charter.
struct RuleRow {
    id: String,
    tier: String,
    at: String,
}

/// A vote.
struct VoteRow {
    approver: String,
    channel: String,
    reason: String,
    at: String,
}

impl VoteRow {
    fn of(v: &Vote) -> VoteRow {
        VoteRow {
            approver: v.approver.clone(),
            channel: v.channel.clone(),
            reason: v.reason.clone().unwrap_or_default(),
            at: rfc3339(v.at),
        }
    }
}

/// The request's page.
#[derive(Template)]
#[template(path = "approval.html")]
struct DetailPage {
    layout: Layout,
    id: String,
    status: &'static str,
    agent: String,
    /// The delegation chain, root first: (agent, session).
    chain: Vec<(String, String)>,
    /// The agent whose charter asked, when not `agent`'s.
    under: Option<String>,
    principal: String,
    task: String,
    tool: String,
    session: String,
    args: Vec<Arg>,
    reason: String,
    why: String,
    rules: Vec<RuleRow>,
    turns: Vec<Turn>,
    requested_at: String,
    deadline: String,
    votes: Vec<VoteRow>,
    denial: Option<VoteRow>,
    quorum: u32,
    approvers: String,
    remember: String,
    may_decide: bool,
    may_reverse: bool,
    voted: bool,
}

/// A JSON value as a person reads it: a string as itself, anything else as JSON.
/// One model turn that led to the request, as the model proxy kept it: the route alias, the
/// user's last words, the completion and the tool calls it proposed, each clipped. A turn of
/// another shape is shown whole, clipped, as JSON.
struct Turn {
    alias: String,
    prompt: Clip,
    completion: Clip,
    intents: Vec<Clip>,
}

impl Turn {
    fn of(turn: &Value) -> Turn {
        let field = |k: &str| turn.get(k).map(text_of).unwrap_or_default();
        if turn.get("prompt").is_none() && turn.get("completion").is_none() {
            return Turn {
                alias: String::new(),
                prompt: clip(&text_of(turn), TURN_CLIP),
                completion: clip("", TURN_CLIP),
                intents: Vec::new(),
            };
        }
        let intents = turn
            .get("intents")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|i| {
                        let tool = i.get("tool").map(text_of).unwrap_or_default();
                        let args = i.get("arguments").map(Value::to_string).unwrap_or_default();
                        clip(&format!("{tool} {args}"), ARG_CLIP)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Turn {
            alias: field("alias"),
            prompt: clip(&field("prompt"), TURN_CLIP),
            completion: clip(&field("completion"), TURN_CLIP),
            intents,
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The arguments, one row per top-level key (every key listed, every value clipped, so a
/// long value cannot hide a later key).
fn args_of(arguments: &Value) -> Vec<Arg> {
    match arguments {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Arg {
                key: k.clone(),
                value: clip(&text_of(v), ARG_CLIP),
            })
            .collect(),
        Value::Null => Vec::new(),
        other => vec![Arg {
            key: "(arguments)".to_owned(),
            value: clip(&text_of(other), ARG_CLIP),
        }],
    }
}

fn page_of(
    signed: &Signed,
    may_decide: bool,
    req: &ApprovalRequest,
    now: time::OffsetDateTime,
) -> DetailPage {
    let me = signed.identity.role.principal();
    DetailPage {
        layout: signed.layout("approvals"),
        id: req.id.clone(),
        status: req.status.as_str(),
        agent: req.agent.clone(),
        chain: req
            .chain
            .iter()
            .map(|l| (l.agent.clone(), l.session.clone()))
            .collect(),
        under: req.under.clone(),
        principal: req.principal.clone(),
        task: req.task.clone(),
        tool: req.tool.clone(),
        session: req.session.clone(),
        args: args_of(&req.arguments),
        reason: req.reason.clone(),
        why: req.why.clone(),
        rules: req
            .rules
            .iter()
            .map(|r| RuleRow {
                id: r.id.to_string(),
                tier: r.tier.as_str().to_owned(),
                at: format!("{}:{}", r.location.file, r.location.line),
            })
            .collect(),
        turns: req.model_turns.iter().map(Turn::of).collect(),
        requested_at: rfc3339(req.requested_at),
        deadline: rfc3339(req.deadline),
        votes: req.approvals.iter().map(VoteRow::of).collect(),
        denial: req.denial.as_ref().map(VoteRow::of),
        quorum: req.quorum,
        approvers: req.approvers.join(", "),
        remember: req.remember.join(", "),
        may_decide: may_decide && req.status == Status::Pending,
        may_reverse: may_decide && req.status == Status::Denied && now < req.deadline,
        voted: me.is_some_and(|p| req.approvals.iter().any(|v| v.approver == p)),
    }
}

/// The request `id`, if the operator may see it; otherwise the page that says why.
async fn visible(
    state: &ConsoleState,
    signed: &Signed,
    id: &str,
) -> Result<ApprovalRequest, Response> {
    let unknown = || {
        error_page(
            signed.layout("approvals"),
            StatusCode::NOT_FOUND,
            "there is no approval request with this id, or it is not yours to see",
        )
    };
    if id.is_empty() || id.len() > MAX_ID {
        return Err(unknown());
    }
    match state.operator.approvals.store().get(id).await {
        Ok(Some(req)) if may_see(state, signed, &req) => Ok(req),
        Ok(_) => Err(unknown()),
        Err(e) => {
            tracing::error!(error = %e, "The approval store cannot read a request.");
            Err(error_page(
                signed.layout("approvals"),
                StatusCode::SERVICE_UNAVAILABLE,
                "the approval store is unavailable; try again",
            ))
        }
    }
}

/// `GET /ui/approvals/{id}`.
pub(super) async fn show(
    State(state): State<Arc<ConsoleState>>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match visible(&state, &signed, &id).await {
        Ok(req) => {
            let may_decide = signed.identity.role.principal().is_some();
            let now = state.operator.clock.now();
            render(&page_of(&signed, may_decide, &req, now))
        }
        Err(page) => page,
    }
}

/// The decision form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DecideForm {
    /// `approve` or `deny`.
    choice: String,
    /// Why (optional; recorded).
    #[serde(default)]
    reason: String,
    /// A checkbox: present (`on`) to remember the values the rules name.
    #[serde(default)]
    remember: Option<String>,
}

/// `POST /ui/approvals/{id}/decide` (`choice`: `approve`, `deny`, or `reverse` for a
/// denial): through the workflow, as the API decides and reverses, with the channel
/// `console`.
pub(super) async fn decide(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    CsrfForm { signed, form }: CsrfForm<DecideForm>,
) -> Response {
    let layout = signed.layout("approvals");
    let choice = match form.choice.as_str() {
        "approve" => Some(Choice::Approve),
        "deny" => Some(Choice::Deny),
        "reverse" => None,
        _ => {
            return error_page(
                layout,
                StatusCode::BAD_REQUEST,
                "`choice` is `approve`, `deny` or `reverse`",
            );
        }
    };
    if id.is_empty() || id.len() > MAX_ID {
        return error_page(
            layout,
            StatusCode::NOT_FOUND,
            "there is no approval request with this id",
        );
    }
    let decider = Decider {
        credential: &signed.identity.name,
        principal: signed.identity.role.principal(),
        channel: "console",
        target: None,
        credential_id: Some(&signed.identity.id),
    };
    let reason = Some(form.reason.trim().to_owned()).filter(|r| !r.is_empty());
    let remember = form.remember.is_some_and(|v| !v.is_empty());
    let approvals = &state.operator.approvals;
    let decided = match choice {
        Some(choice) => {
            approvals
                .decide_remembering(&id, &decider, choice, reason, remember)
                .await
        }
        None if remember => {
            return error_page(
                layout,
                StatusCode::BAD_REQUEST,
                "`remember` is given on approve, not on a reversal",
            );
        }
        None => approvals.reverse(&id, &decider, reason).await,
    };
    match decided {
        Ok(_) => Redirect::to(&format!("/ui/approvals/{id}")).into_response(),
        Err(e) => error_page(
            layout,
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::FORBIDDEN),
            format!("the decision was refused ({}): {}", e.code, e.message),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "test code: a failed expectation is a test failure"
    )]

    use serde_json::json;

    use super::*;

    #[test]
    fn a_turn_shows_its_prompt_completion_and_proposals_each_clipped() {
        let long = "x".repeat(TURN_CLIP + 10);
        let turn = Turn::of(&json!({
            "call": "c1",
            "alias": "fast",
            "prompt": long,
            "completion": "calling create_directory",
            "intents": [{"id": "i1", "tool": "create_directory", "arguments": {"path": "/a"}}],
        }));
        assert_eq!(turn.alias, "fast");
        assert_eq!(turn.prompt.more, 10);
        assert_eq!(turn.completion.head, "calling create_directory");
        assert_eq!(turn.intents.len(), 1);
        assert_eq!(turn.intents[0].head, r#"create_directory {"path":"/a"}"#);
        // A turn of another shape is shown whole, as JSON.
        let other = Turn::of(&json!({"something": "else"}));
        assert_eq!(other.prompt.head, r#"{"something":"else"}"#);
        assert!(other.intents.is_empty());
    }
}
