//! The reload's transition: void, release and keep, each only on an open request bound to
//! the replaced charter.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::machine::{Approver, Redecide, RedecideRefusal, UseRefusal, VoteRefusal};
use crate::request::{ActionHash, ApprovalRequest, NewApproval, Status};

const OLD: &str = "blake3:old";
const NEW: &str = "blake3:new";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn request(quorum: u32) -> ApprovalRequest {
    ApprovalRequest::new(NewApproval {
        id: "r1".into(),
        action: "a1".into(),
        session: "s1".into(),
        agent: "agent".into(),
        principal: "alice".into(),
        task: String::new(),
        tool: "bank.pay".into(),
        arguments: json!({"amount": 10}),
        reason: "rule".into(),
        why: "approval by rule `pay`".into(),
        rules: Vec::new(),
        authority_for: vec!["pay".into()],
        approvers: vec!["bob".into(), "carol".into()],
        quorum,
        charter: OLD.to_owned(),
        requested_at: t0(),
        deadline: t0() + Duration::minutes(15),
        model_turns: Vec::new(),
    })
}

fn bob() -> Approver<'static> {
    Approver {
        principal: Some("bob"),
        has_authority: true,
        channel: "api",
        target: None,
        credential: None,
    }
}

fn keep(approvers: &[&str], quorum: u32) -> Redecide {
    Redecide::Keep {
        authority_for: vec!["pay2".into()],
        approvers: approvers.iter().map(|a| (*a).to_owned()).collect(),
        quorum,
    }
}

fn hash() -> ActionHash {
    ActionHash::of("s1", "bank.pay", &json!({"amount": 10}))
}

#[test]
fn a_voided_request_takes_no_vote_and_releases_nothing() {
    let now = t0() + Duration::minutes(1);
    let mut r = request(1);
    assert_eq!(
        r.redecide(OLD, NEW, &Redecide::Void, "deny".into(), now),
        Ok("voided")
    );
    assert_eq!(r.status, Status::Voided);
    assert!(!r.status.is_open());
    assert_eq!(r.charter.as_deref(), Some(OLD));
    assert_eq!(r.last_redecision().unwrap().charter, NEW);
    assert_eq!(
        r.approve(&bob(), true, None, now),
        Err(VoteRefusal::AlreadyDecided(Status::Voided))
    );
    assert_eq!(
        r.use_grant(&hash(), "a2", now),
        Err(UseRefusal::NotGranted(Status::Voided))
    );
    // A second reload finds nothing to do.
    assert_eq!(
        r.redecide(OLD, NEW, &Redecide::Release, "allow".into(), now),
        Err(RedecideRefusal::NotOpen(Status::Voided))
    );
}

#[test]
fn an_unused_grant_is_voided_too() {
    let now = t0() + Duration::minutes(1);
    let mut r = request(1);
    r.approve(&bob(), true, None, now).unwrap();
    assert_eq!(
        r.redecide(OLD, NEW, &Redecide::Void, "deny".into(), now),
        Ok("voided")
    );
    assert_eq!(
        r.use_grant(&hash(), "a2", now),
        Err(UseRefusal::NotGranted(Status::Voided))
    );
}

#[test]
fn a_released_request_is_a_grant_of_the_new_charter_used_once() {
    let now = t0() + Duration::minutes(1);
    let mut r = request(2);
    assert_eq!(r.released_under(), None);
    assert_eq!(
        r.redecide(OLD, NEW, &Redecide::Release, "allow".into(), now),
        Ok("released")
    );
    assert_eq!(r.status, Status::Granted);
    assert_eq!(r.charter.as_deref(), Some(NEW));
    assert_eq!(r.released_under(), Some(NEW));
    r.use_grant(&hash(), "a2", now).unwrap();
    assert_eq!(r.released_under(), None);
    // adversarial: the release releases one call
    assert_eq!(
        r.use_grant(&hash(), "a3", now),
        Err(UseRefusal::NotGranted(Status::Used))
    );
}

#[test]
fn a_kept_request_is_rebound_with_the_new_approvers() {
    let now = t0() + Duration::minutes(1);
    let mut r = request(2);
    r.approve(&bob(), true, None, now).unwrap();
    assert_eq!(
        r.redecide(OLD, NEW, &keep(&["carol", "dave"], 2), "ask".into(), now),
        Ok("kept")
    );
    assert_eq!(r.status, Status::Pending);
    assert_eq!(r.charter.as_deref(), Some(NEW));
    assert_eq!(r.approvers, vec!["carol", "dave"]);
    assert_eq!(r.authority_for, vec!["pay2"]);
    // bob may no longer approve: his vote stops counting.
    assert!(r.approvals.is_empty());
}

#[test]
fn a_grant_kept_only_when_its_votes_hold_under_the_new_charter() {
    let now = t0() + Duration::minutes(1);
    let mut held = request(1);
    held.approve(&bob(), true, None, now).unwrap();
    assert_eq!(
        held.redecide(OLD, NEW, &keep(&["bob"], 1), "ask".into(), now),
        Ok("kept")
    );
    assert_eq!(held.status, Status::Granted);
    assert_eq!(held.charter.as_deref(), Some(NEW));
    assert_eq!(held.released_under(), None);

    // adversarial: a quorum raised, or the approver gone, voids the grant
    let mut raised = request(1);
    raised.approve(&bob(), true, None, now).unwrap();
    assert_eq!(
        raised.redecide(OLD, NEW, &keep(&["bob", "carol"], 2), "ask".into(), now),
        Ok("voided")
    );
    let mut gone = request(1);
    gone.approve(&bob(), true, None, now).unwrap();
    assert_eq!(
        gone.redecide(OLD, NEW, &keep(&["carol"], 1), "ask".into(), now),
        Ok("voided")
    );
    assert_eq!(gone.status, Status::Voided);
}

#[test]
fn only_open_requests_of_the_replaced_charter_before_their_deadline() {
    let now = t0() + Duration::minutes(1);
    let mut other = request(1);
    assert_eq!(
        other.redecide("blake3:older", NEW, &Redecide::Void, "deny".into(), now),
        Err(RedecideRefusal::OtherCharter)
    );
    assert_eq!(other.status, Status::Pending);
    let mut late = request(1);
    assert_eq!(
        late.redecide(
            OLD,
            NEW,
            &Redecide::Void,
            "x".into(),
            t0() + Duration::hours(1)
        ),
        Err(RedecideRefusal::Expired)
    );
    let mut denied = request(1);
    denied.deny(&bob(), true, None, now).unwrap();
    assert_eq!(
        denied.redecide(OLD, NEW, &Redecide::Release, "allow".into(), now),
        Err(RedecideRefusal::NotOpen(Status::Denied))
    );
    let mut used = request(1);
    used.approve(&bob(), true, None, now).unwrap();
    used.use_grant(&hash(), "a2", now).unwrap();
    assert_eq!(
        used.redecide(OLD, NEW, &Redecide::Void, "deny".into(), now),
        Err(RedecideRefusal::NotOpen(Status::Used))
    );
}

#[test]
fn a_redecided_request_reads_back_from_its_stored_form() {
    let now = t0() + Duration::minutes(1);
    let mut r = request(1);
    r.redecide(OLD, NEW, &Redecide::Release, "allow".into(), now)
        .unwrap();
    let back: ApprovalRequest = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
    assert_eq!(back, r);
    // A body stored before reloads existed reads with no re-decision.
    let mut old = serde_json::to_value(request(1)).unwrap();
    old.as_object_mut().unwrap().remove("redecisions");
    let old: ApprovalRequest = serde_json::from_value(old).unwrap();
    assert!(old.redecisions.is_empty());
}
