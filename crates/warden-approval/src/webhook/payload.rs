//! What a notification carries: each approver's signed approve and deny links, and the body
//! in the target's format (warden's JSON or a Slack message).

use serde_json::{Value, json};
use warden_core::text::{ellipsize, percent_encode as encode, rfc3339};

use super::{ApproverLinks, EVENT, Target, WebhookFormat};
use crate::signing::Link;
use crate::{ApprovalRequest, LinkAction, Signer};

/// The arguments are cut to at most this many bytes in a Slack message.
const SLACK_ARGUMENTS_BYTES: usize = 500;
/// The reason is cut to at most this many bytes in a Slack message.
const SLACK_WHY_BYTES: usize = 500;
/// At most this many approvers get link lines in a Slack message (Slack allows 50 blocks).
const SLACK_MAX_APPROVER_BLOCKS: usize = 45;

/// The approve and deny links of `approvers` for `request`, delivered to the target `via`,
/// under `public_url` (the operator plane as approvers reach it):
/// `{public_url}/v1/approvals/{id}/link/{approve|deny}?approver=…&via=…&expires=…&sig=…`,
/// where `expires` is the request's deadline (unix seconds) and `sig` is
/// [`Signer::sign_link`] over the action, the request id, the approver, `via` and `expires`.
pub fn links(
    signer: &Signer,
    public_url: &str,
    request: &ApprovalRequest,
    approvers: &[String],
    via: &str,
) -> Vec<ApproverLinks> {
    let base = public_url.trim_end_matches('/');
    let expires = request.deadline.unix_timestamp();
    let link = |action: LinkAction, approver: &str| {
        let sig = signer.sign_link(&Link {
            action,
            request: &request.id,
            approver,
            via,
            expires_unix: expires,
        });
        format!(
            "{base}/v1/approvals/{}/link/{}?approver={}&via={}&expires={expires}&sig={}",
            encode(&request.id),
            action.as_str(),
            encode(approver),
            encode(via),
            encode(&sig),
        )
    };
    approvers
        .iter()
        .map(|approver| ApproverLinks {
            approver: approver.clone(),
            approve: link(LinkAction::Approve, approver),
            deny: link(LinkAction::Deny, approver),
        })
        .collect()
}

/// The body of the notification of `request` to `target`: only the links of the target's
/// approvers.
pub fn payload(
    signer: &Signer,
    public_url: &str,
    request: &ApprovalRequest,
    target: &Target,
) -> Value {
    let links = links(signer, public_url, request, &target.approvers, &target.id);
    match target.format {
        WebhookFormat::Json => json!({
            "type": EVENT,
            "approval": request,
            "links": links,
            "expires_at": rfc3339(request.deadline),
        }),
        WebhookFormat::Slack => slack(request, &links),
    }
}

fn slack(request: &ApprovalRequest, links: &[ApproverLinks]) -> Value {
    let arguments = serde_json::to_string(&request.arguments).unwrap_or_default();
    let text = format!(
        "*Approval needed*: agent `{agent}` (on behalf of `{principal}`) wants to call `{tool}` \
         with `{arguments}`.\n*Why:* {why}\n*Deadline:* {deadline}\n*Quorum:* {quorum} of {approvers}\n\
         Request `{id}`",
        agent = mrkdwn(&request.agent),
        principal = mrkdwn(&request.principal),
        tool = mrkdwn(&request.tool),
        arguments = mrkdwn(&ellipsize(&arguments, SLACK_ARGUMENTS_BYTES)).replace('`', "'"),
        why = mrkdwn(&ellipsize(&request.why, SLACK_WHY_BYTES)),
        deadline = rfc3339(request.deadline),
        quorum = request.quorum,
        approvers = mrkdwn(&request.approvers.join(", ")),
        id = mrkdwn(&request.id),
    );
    let text = format!("{text}{}", slack_context(request));
    let mut blocks = vec![json!({
        "type": "section",
        "text": { "type": "mrkdwn", "text": text },
    })];
    for l in links.iter().take(SLACK_MAX_APPROVER_BLOCKS) {
        let who = mrkdwn(&l.approver);
        blocks.push(json!({
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": format!("<{}|Approve as {who}>  ·  <{}|Deny as {who}>", l.approve, l.deny),
            },
        }));
    }
    if let Some(more) = links.len().checked_sub(SLACK_MAX_APPROVER_BLOCKS)
        && more > 0
    {
        blocks.push(json!({
            "type": "context",
            "elements": [{
                "type": "mrkdwn",
                "text": format!("{more} more approvers: decide through the operator API."),
            }],
        }));
    }
    json!({ "text": text, "blocks": blocks })
}

/// The earlier refusals of the same action and the decision's provenance, as extra lines of
/// the Slack message (empty when there are none).
fn slack_context(request: &ApprovalRequest) -> String {
    let mut out = String::new();
    if !request.earlier.is_empty() {
        let earlier: Vec<String> = request
            .earlier
            .iter()
            .map(|e| format!("{} {} ({})", mrkdwn(&e.id), e.status, rfc3339(e.at)))
            .collect();
        out.push_str(&format!(
            "\n*Earlier refusals of this action:* {}",
            earlier.join("; ")
        ));
    }
    for p in request.provenance.iter().take(4) {
        let source = match (&p.trusted, p.found.is_empty()) {
            (Some(t), _) => format!("stated in trusted text ({t})"),
            (None, false) => {
                let mut labels: Vec<&str> = p
                    .found
                    .iter()
                    .flat_map(|f| f.labels.iter().map(|l| &**l))
                    .collect();
                labels.sort_unstable();
                labels.dedup();
                format!("found in untrusted content ({})", labels.join(", "))
            }
            (None, true) => "found nowhere".to_owned(),
        };
        out.push_str(&format!(
            "\n*Provenance:* `{}` = {}: {source}",
            mrkdwn(&p.argument),
            mrkdwn(&ellipsize(&p.value, 80)).replace('`', "'")
        ));
    }
    out
}

/// Escapes the three characters Slack's mrkdwn treats as control characters.
fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
