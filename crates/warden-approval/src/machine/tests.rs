//! Transition tests, including a model-based property test: random sequences of approvals,
//! denials, deadlines and uses against a small reference model.

use proptest::prelude::*;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::request::NewApproval;

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
        charter: "blake3:test".to_owned(),
        requested_at: t0(),
        deadline: t0() + Duration::minutes(15),
        model_turns: Vec::new(),
    })
}

fn who(principal: &str, has_authority: bool) -> Approver<'_> {
    Approver {
        principal: Some(principal),
        has_authority,
        channel: "api",
        target: None,
        credential: None,
    }
}

fn by_link<'a>(principal: &'a str, target: &'a str) -> Approver<'a> {
    Approver {
        principal: Some(principal),
        has_authority: true,
        channel: "link",
        target: Some(target),
        credential: None,
    }
}

/// Issue 10, point 10: one webhook message carried every approver's links, so whoever read
/// it could meet a quorum alone. Links delivered to one target now count as one vote.
#[test]
fn issue_10_links_delivered_to_one_target_cast_one_approving_vote() {
    let mut r = request(2);
    let now = t0() + Duration::minutes(1);
    assert_eq!(
        r.approve(&by_link("bob", "shared"), true, None, now),
        Ok(Voted::Counted {
            approvals: 1,
            quorum: 2
        })
    );
    // adversarial: carol's link from the same message
    assert_eq!(
        r.approve(&by_link("carol", "shared"), true, None, now),
        Err(VoteRefusal::SharedTarget)
    );
    assert_eq!(r.status, Status::Pending);
    // carol's own target, or the API, counts
    assert_eq!(
        r.approve(&by_link("carol", "carols-own"), true, None, now),
        Ok(Voted::Granted)
    );
    assert_eq!(r.approvals[1].target.as_deref(), Some("carols-own"));
}

#[test]
fn one_authorised_approval_grants_then_the_same_action_uses_it_once() {
    let mut r = request(1);
    let now = t0() + Duration::minutes(1);
    assert_eq!(
        r.approve(&who("bob", true), true, Some("ok".into()), now),
        Ok(Voted::Granted)
    );
    assert_eq!(r.status, Status::Granted);
    let hash = ActionHash::of("s1", "bank.pay", &json!({"amount": 10}));
    r.use_grant(&hash, "a2", now).unwrap();
    assert_eq!(r.status, Status::Used);
    assert_eq!(r.used_by.as_deref(), Some("a2"));
    // adversarial: a replay of the used approval
    assert_eq!(
        r.use_grant(&hash, "a3", now),
        Err(UseRefusal::NotGranted(Status::Used))
    );
    assert_eq!(
        r.approve(&who("carol", true), true, None, now),
        Err(VoteRefusal::Replay)
    );
}

#[test]
fn adversarial_arguments_a_never_release_arguments_b() {
    let mut r = request(1);
    let now = t0() + Duration::minutes(1);
    r.approve(&who("bob", true), true, None, now).unwrap();
    let b = ActionHash::of("s1", "bank.pay", &json!({"amount": 10_000}));
    assert_eq!(r.use_grant(&b, "a2", now), Err(UseRefusal::DifferentAction));
    let other_session = ActionHash::of("s2", "bank.pay", &json!({"amount": 10}));
    assert_eq!(
        r.use_grant(&other_session, "a2", now),
        Err(UseRefusal::DifferentAction)
    );
    assert_eq!(r.status, Status::Granted);
}

#[test]
fn adversarial_self_approval_under_separation_of_duties() {
    let mut r = request(1);
    let now = t0();
    assert_eq!(
        r.approve(&who("alice", true), true, None, now),
        Err(VoteRefusal::SelfApproval)
    );
    assert_eq!(
        r.deny(&who("alice", true), true, None, now),
        Err(VoteRefusal::SelfApproval)
    );
    assert_eq!(r.status, Status::Pending);
    // Without separation of duties, an authorised requester may approve.
    assert_eq!(
        r.approve(&who("alice", true), false, None, now),
        Ok(Voted::Granted)
    );
}

#[test]
fn adversarial_approver_without_authority_and_credential_without_principal() {
    let mut r = request(1);
    assert_eq!(
        r.approve(&who("dave", false), true, None, t0()),
        Err(VoteRefusal::NoAuthority)
    );
    let admin = Approver {
        principal: None,
        has_authority: true,
        channel: "api",
        target: None,
        credential: None,
    };
    assert_eq!(
        r.approve(&admin, true, None, t0()),
        Err(VoteRefusal::NotAnApprover)
    );
    assert!(r.approvals.is_empty());
    assert!(VoteRefusal::NoAuthority.message(&r).contains("bob, carol"));
}

#[test]
fn adversarial_quorum_with_the_same_approver_twice() {
    let mut r = request(2);
    let now = t0();
    assert_eq!(
        r.approve(&who("bob", true), true, None, now),
        Ok(Voted::Counted {
            approvals: 1,
            quorum: 2
        })
    );
    assert_eq!(
        r.approve(&who("bob", true), true, None, now),
        Err(VoteRefusal::DuplicateApprover)
    );
    assert_eq!(r.status, Status::Pending);
    assert_eq!(
        r.approve(&who("carol", true), true, None, now),
        Ok(Voted::Granted)
    );
}

#[test]
fn deadlines_time_out_pending_and_unused_grants() {
    let mut r = request(1);
    let late = r.deadline;
    assert_eq!(
        r.approve(&who("bob", true), true, None, late),
        Err(VoteRefusal::Expired)
    );
    assert!(r.expire(late));
    assert_eq!(r.status, Status::TimedOut);
    assert!(!r.expire(late));

    let mut g = request(1);
    g.approve(&who("bob", true), true, None, t0()).unwrap();
    let hash = g.action_hash.clone();
    assert_eq!(
        g.use_grant(&hash, "a2", g.deadline),
        Err(UseRefusal::Expired)
    );
    assert!(g.expire(g.deadline));
    assert_eq!(
        g.use_grant(&hash, "a2", t0()),
        Err(UseRefusal::NotGranted(Status::TimedOut))
    );
}

#[test]
fn one_denial_denies_and_is_final() {
    let mut r = request(2);
    r.approve(&who("bob", true), true, None, t0()).unwrap();
    r.deny(&who("carol", true), true, Some("no".into()), t0())
        .unwrap();
    assert_eq!(r.status, Status::Denied);
    assert_eq!(
        r.denial.as_ref().map(|v| v.approver.as_str()),
        Some("carol")
    );
    assert_eq!(
        r.approve(&who("dave", true), true, None, t0()),
        Err(VoteRefusal::AlreadyDecided(Status::Denied))
    );
    assert!(!r.expire(r.deadline));
}

#[derive(Clone, Debug)]
enum Op {
    Approve { who: usize, authority: bool },
    Deny { who: usize, authority: bool },
    Use { same: bool },
    Advance { minutes: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..4, any::<bool>()).prop_map(|(who, authority)| Op::Approve { who, authority }),
        1 => (0usize..4, any::<bool>()).prop_map(|(who, authority)| Op::Deny { who, authority }),
        2 => any::<bool>().prop_map(|same| Op::Use { same }),
        1 => (0i64..8).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

const PEOPLE: [&str; 4] = ["alice", "bob", "carol", "dave"];

proptest! {
    /// Against a reference model: granted exactly when `quorum` distinct, authorised,
    /// non-requesting approvers approved before the deadline and nobody denied; released at
    /// most once, only for the approved action, only before the deadline; final states never
    /// change.
    #[test]
    fn transitions_match_the_model(quorum in 1u32..4, sod in any::<bool>(), ops in prop::collection::vec(op(), 0..40)) {
        let mut r = request(quorum);
        let approved = ActionHash::of("s1", "bank.pay", &json!({"amount": 10}));
        let other = ActionHash::of("s1", "bank.pay", &json!({"amount": 11}));
        let mut now = t0();
        let mut voters: Vec<&str> = Vec::new();
        let mut uses = 0;
        let mut model = Status::Pending;
        for op in ops {
            let before = r.status;
            match op {
                Op::Advance { minutes } => {
                    now += Duration::minutes(minutes);
                    let changed = r.expire(now);
                    let expect = model.is_open() && now >= r.deadline;
                    prop_assert_eq!(changed, expect);
                    if expect { model = Status::TimedOut; }
                }
                Op::Approve { who: i, authority } => {
                    let p = PEOPLE[i];
                    let res = r.approve(&who(p, authority), sod, None, now);
                    let ok = model == Status::Pending && now < r.deadline
                        && !(sod && p == "alice") && authority && !voters.contains(&p);
                    prop_assert_eq!(res.is_ok(), ok, "{:?} {:?}", res, model);
                    if ok {
                        voters.push(p);
                        if u32::try_from(voters.len()).unwrap() >= quorum { model = Status::Granted; }
                    }
                }
                Op::Deny { who: i, authority } => {
                    let p = PEOPLE[i];
                    let res = r.deny(&who(p, authority), sod, None, now);
                    let ok = model == Status::Pending && now < r.deadline && !(sod && p == "alice") && authority;
                    prop_assert_eq!(res.is_ok(), ok);
                    if ok { model = Status::Denied; }
                }
                Op::Use { same } => {
                    let hash = if same { &approved } else { &other };
                    let res = r.use_grant(hash, "a", now);
                    let ok = model == Status::Granted && same && now < r.deadline;
                    prop_assert_eq!(res.is_ok(), ok);
                    if ok { model = Status::Used; uses += 1; }
                }
            }
            prop_assert_eq!(r.status, model);
            if !before.is_open() && before != Status::Pending {
                prop_assert_eq!(r.status, before, "a final state changed");
            }
        }
        prop_assert!(uses <= 1);
        if matches!(r.status, Status::Granted | Status::Used) {
            prop_assert!(u32::try_from(r.approvals.len()).unwrap() >= quorum);
            prop_assert!(!sod || r.approvals.iter().all(|v| v.approver != "alice"));
        }
    }
}

/// Issue 13: approvals that teach, and reversible denials.
mod teach {
    use super::*;

    fn denied() -> ApprovalRequest {
        let mut r = request(1);
        r.deny(&who("bob", true), true, Some("no".into()), t0())
            .unwrap();
        r
    }

    #[test]
    fn remember_is_refused_when_no_rule_allows_it() {
        let mut r = request(1);
        assert_eq!(
            r.approve_remembering(&who("bob", true), true, None, true, t0()),
            Err(VoteRefusal::RememberNotAllowed)
        );
        assert_eq!(r.status, Status::Pending);
        assert!(r.approvals.is_empty());
        // Without `remember` the same approver may approve.
        assert_eq!(
            r.approve(&who("bob", true), true, None, t0()),
            Ok(Voted::Granted)
        );
    }

    #[test]
    fn remember_needs_every_approving_vote() {
        let mut r = request(2).with_context(vec!["iban".into()], Vec::new(), Vec::new());
        r.arguments = json!({"iban": "DE44 5001 0517 5407 3249 31", "amount": 10});
        r.approve_remembering(&who("bob", true), true, None, true, t0())
            .unwrap();
        r.approve(&who("carol", true), true, None, t0()).unwrap();
        assert_eq!(r.status, Status::Granted);
        assert!(!r.remembers(), "one vote did not ask to remember");
        assert!(r.remembered().is_empty());

        let mut r = request(2).with_context(vec!["iban".into()], Vec::new(), Vec::new());
        r.arguments = json!({"iban": "DE44 5001 0517 5407 3249 31", "amount": 10});
        for p in ["bob", "carol"] {
            r.approve_remembering(&who(p, true), true, None, true, t0())
                .unwrap();
        }
        assert!(r.remembers());
        assert_eq!(
            r.remembered(),
            vec![("iban".to_owned(), "DE44 5001 0517 5407 3249 31".to_owned())]
        );
    }

    #[test]
    fn remembered_values_follow_dotted_names_and_lists() {
        let mut r = request(1).with_context(
            vec![
                "to.iban".into(),
                "cc".into(),
                "amount".into(),
                "missing".into(),
            ],
            Vec::new(),
            Vec::new(),
        );
        r.arguments = json!({"to": {"iban": "NL91ABNA0417164300"}, "cc": ["a@x.org", {"no": 1}], "amount": 120.5});
        r.approve_remembering(&who("bob", true), true, None, true, t0())
            .unwrap();
        assert_eq!(
            r.remembered(),
            vec![
                ("amount".to_owned(), "120.5".to_owned()),
                ("cc".to_owned(), "a@x.org".to_owned()),
                ("to.iban".to_owned(), "NL91ABNA0417164300".to_owned()),
            ]
        );
    }

    #[test]
    fn a_denial_is_reversed_before_the_deadline() {
        let mut r = denied();
        r.reverse(
            &who("carol", true),
            true,
            Some("my mistake".into()),
            t0() + Duration::minutes(1),
        )
        .unwrap();
        assert_eq!(r.status, Status::Pending);
        assert!(r.denial.is_none() && r.approvals.is_empty() && r.decided_at.is_none());
        assert_eq!(r.reversals.len(), 1);
        assert_eq!(r.reversals[0].denial.approver, "bob");
        assert_eq!(r.reversals[0].by.approver, "carol");
        // Then it is decided like any pending request.
        assert_eq!(
            r.approve(&who("bob", true), true, None, t0() + Duration::minutes(2)),
            Ok(Voted::Granted)
        );
    }

    #[test]
    fn reversals_that_are_refused() {
        let late = t0() + Duration::minutes(15);
        assert_eq!(
            denied().reverse(&who("carol", true), true, None, late),
            Err(VoteRefusal::Expired)
        );
        assert_eq!(
            denied().reverse(&who("alice", true), true, None, t0()),
            Err(VoteRefusal::SelfApproval)
        );
        assert_eq!(
            denied().reverse(&who("carol", false), true, None, t0()),
            Err(VoteRefusal::NoAuthority)
        );
        let admin = Approver {
            principal: None,
            has_authority: false,
            channel: "api",
            target: None,
            credential: Some("op1"),
        };
        assert_eq!(
            denied().reverse(&admin, true, None, t0()),
            Err(VoteRefusal::NotAnApprover)
        );
        assert_eq!(
            denied().reverse(&by_link("carol", "t1"), true, None, t0()),
            Err(VoteRefusal::LinkCannotReverse)
        );
        // Twice: the first made it pending.
        let mut r = denied();
        r.reverse(&who("carol", true), true, None, t0()).unwrap();
        assert_eq!(
            r.reverse(&who("carol", true), true, None, t0()),
            Err(VoteRefusal::NotDenied(Status::Pending))
        );
        // Not denied at all.
        assert_eq!(
            request(1).reverse(&who("carol", true), true, None, t0()),
            Err(VoteRefusal::NotDenied(Status::Pending))
        );
        let mut granted = request(1);
        granted
            .approve(&who("bob", true), true, None, t0())
            .unwrap();
        assert_eq!(
            granted.reverse(&who("carol", true), true, None, t0()),
            Err(VoteRefusal::NotDenied(Status::Granted))
        );
        let mut timed_out = request(1);
        assert!(timed_out.expire(late));
        assert_eq!(
            timed_out.reverse(&who("carol", true), true, None, late),
            Err(VoteRefusal::NotDenied(Status::TimedOut))
        );
    }

    #[test]
    fn old_bodies_without_the_new_fields_load() {
        let mut v = serde_json::to_value(denied()).unwrap();
        let m = v.as_object_mut().unwrap();
        for k in ["remember", "earlier", "provenance", "reversals"] {
            m.remove(k);
        }
        let back: ApprovalRequest = serde_json::from_value(v).unwrap();
        assert!(back.earlier.is_empty() && back.provenance.is_empty() && back.remember.is_empty());
    }
}
