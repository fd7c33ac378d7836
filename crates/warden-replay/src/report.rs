//! The report: what would change, grouped by rule, with counts and bounded examples; what
//! could not be reproduced, what was never decided, and what could not be read — each counted
//! with its reason, never dropped silently.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use warden_core::{Decision, Tier, Verdict};

/// Most example actions kept per group or reason.
pub const DEFAULT_EXAMPLES: usize = 5;

/// Most groups of changes kept; changes past it are counted in one group of rule `(other)`.
pub const MAX_GROUPS: usize = 500;

/// Most reasons kept per list (not reproducible, not decided); past it, `(other)`.
pub const MAX_REASONS: usize = 64;

/// Longest arguments shown in an example, in bytes of canonical JSON, `…` included (longer
/// ones are cut).
pub const MAX_ARGUMENT_BYTES: usize = 240;

/// The outcome of one decision: what a comparison looks at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// The verdict.
    pub verdict: Verdict,
    /// The tier.
    pub tier: Tier,
    /// Why (`rule`, `default_posture`, `scope_exceeded`, …, or `not_inventoried` for a tool
    /// outside the inventory).
    pub reason: String,
    /// The ids of the determining rules, in the decision's order.
    pub rules: Vec<String>,
}

impl Outcome {
    /// The outcome of a decision.
    pub fn of(decision: &Decision) -> Outcome {
        Outcome {
            verdict: decision.verdict,
            tier: decision.tier,
            reason: decision.reason.as_str().to_owned(),
            rules: decision.rules.iter().map(|r| r.id.to_string()).collect(),
        }
    }

    /// The refusal of a tool outside the inventory (decided before any rule).
    pub fn not_inventoried() -> Outcome {
        Outcome {
            verdict: Verdict::Deny,
            tier: Tier::Prohibited,
            reason: "not_inventoried".to_owned(),
            rules: Vec::new(),
        }
    }

    /// Reads a recorded decision (`verdict`, `tier`, `reason`, `rules[].id`); `None` when it
    /// is not one.
    pub fn from_recorded(decision: &Value) -> Option<Outcome> {
        let verdict = verdict_of(decision.get("verdict")?.as_str()?)?;
        let tier = decision.get("tier")?.as_str()?.parse().ok()?;
        let reason = decision.get("reason")?.as_str()?.to_owned();
        let rules = decision
            .get("rules")?
            .as_array()?
            .iter()
            .map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect::<Option<Vec<_>>>()?;
        Some(Outcome {
            verdict,
            tier,
            reason,
            rules,
        })
    }

    /// The group name of the rules: their ids, or the reason in brackets when none decided.
    fn rule_name(&self) -> String {
        if self.rules.is_empty() {
            format!("({})", self.reason)
        } else {
            self.rules.join(", ")
        }
    }

    /// Whether the two decided alike: verdict, tier and rules (as sets).
    pub fn same_decision(&self, other: &Outcome) -> bool {
        if self.verdict != other.verdict || self.tier != other.tier {
            return false;
        }
        if self.rules == other.rules {
            return true;
        }
        let mut a = self.rules.clone();
        let mut b = other.rules.clone();
        a.sort();
        b.sort();
        self.verdict == other.verdict && self.tier == other.tier && a == b
    }
}

/// A verdict from its stable name.
pub(crate) fn verdict_of(name: &str) -> Option<Verdict> {
    match name {
        "allow" => Some(Verdict::Allow),
        "ask" => Some(Verdict::Ask),
        "deny" => Some(Verdict::Deny),
        _ => None,
    }
}

/// How an attempt's outcome changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Allowed or asking before, denied now.
    NewlyDenied,
    /// Denied or asking before, allowed now: it would run without approval (widening).
    NewlyAllowed,
    /// Allowed or denied before, asking for approval now.
    NewlyAsking,
    /// Same verdict, another tier (e.g. autonomous to preapproved).
    TierMoved,
}

impl Change {
    /// The change from `was` to `now`, if the verdict or the tier differs.
    pub fn between(was: &Outcome, now: &Outcome) -> Option<Change> {
        if was.verdict != now.verdict {
            Some(match now.verdict {
                Verdict::Deny => Change::NewlyDenied,
                Verdict::Allow => Change::NewlyAllowed,
                Verdict::Ask => Change::NewlyAsking,
            })
        } else if was.tier != now.tier {
            Some(Change::TierMoved)
        } else {
            None
        }
    }

    /// The change's stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::NewlyDenied => "newly_denied",
            Change::NewlyAllowed => "newly_allowed",
            Change::NewlyAsking => "newly_asking",
            Change::TierMoved => "tier_moved",
        }
    }
}

/// A verdict and a tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Landing {
    /// The verdict.
    pub verdict: Verdict,
    /// The tier.
    pub tier: Tier,
}

/// One example action of a group.
#[derive(Clone, Debug, Serialize)]
pub struct Example {
    /// The ledger sequence of its `action_attempted`.
    pub seq: u64,
    /// Its session.
    pub session: Option<String>,
    /// When it was recorded (RFC 3339).
    pub time: String,
    /// The tool.
    pub tool: String,
    /// Its arguments as decided (canonical JSON, cut at [`MAX_ARGUMENT_BYTES`]).
    pub arguments: String,
    /// The recorded outcome (under `--shadow`: the live charter's).
    pub recorded: Outcome,
    /// The candidate's outcome (under `--shadow`: the shadow charter's).
    pub candidate: Outcome,
}

/// The attempts whose outcome changes alike: same change, same landings, same rules.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// The change.
    pub change: Change,
    /// Whether it widens what runs without approval (a recorded deny or ask now allowed).
    pub widening: bool,
    /// The recorded verdict and tier.
    pub from: Landing,
    /// The candidate's verdict and tier.
    pub to: Landing,
    /// The candidate's determining rules (or its reason in brackets).
    pub candidate_rule: String,
    /// The recorded determining rules (or the reason in brackets).
    pub recorded_rule: String,
    /// How many attempts.
    pub count: u64,
    /// Up to the example limit of them, oldest first.
    pub examples: Vec<Example>,
}

/// A count with its reason and the sequences of a few examples.
#[derive(Clone, Debug, Serialize)]
pub struct Reasoned {
    /// Why.
    pub reason: String,
    /// How many.
    pub count: u64,
    /// Ledger sequences of up to the example limit of them.
    pub examples: Vec<u64>,
}

/// The totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Attempts (or shadow decisions) in the window.
    pub attempts: u64,
    /// Compared with what was recorded.
    pub compared: u64,
    /// Of those, the same verdict and tier.
    pub unchanged: u64,
    /// Of those, another verdict or tier.
    pub changed: u64,
    /// Changes by kind.
    pub newly_denied: u64,
    /// See [`Change::NewlyAllowed`].
    pub newly_allowed: u64,
    /// See [`Change::NewlyAsking`].
    pub newly_asking: u64,
    /// See [`Change::TierMoved`].
    pub tier_moved: u64,
    /// Changes that widen what runs without approval.
    pub widening: u64,
    /// Attempts whose recorded decision the replay could not reproduce.
    pub not_reproducible: u64,
    /// Attempts with no recorded decision (refused before deciding, or none recorded).
    pub not_decided: u64,
    /// Records that could not be read, or read but not understood.
    pub malformed: u64,
}

/// A record that could not be used.
#[derive(Clone, Debug, Serialize)]
pub struct Malformed {
    /// Its sequence.
    pub seq: u64,
    /// What is wrong with it.
    pub reason: String,
}

/// The charter decisions were compared under.
#[derive(Clone, Debug, Serialize)]
pub struct CharterInfo {
    /// The agent it is for.
    pub agent: String,
    /// Its hash (`blake3:…`).
    pub hash: String,
}

/// The ledger's part that was read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Span {
    /// Records read.
    pub records: u64,
    /// The first record's sequence.
    pub first_seq: Option<u64>,
    /// The last record's sequence.
    pub last_seq: Option<u64>,
}

/// The whole report (`warden replay --format json` prints it; schema in `docs/replay.md`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `candidate` (re-decided under a candidate charter) or `shadow` (the recorded shadow
    /// decisions).
    pub mode: &'static str,
    /// The candidate (none under `--shadow`).
    pub candidate: Option<CharterInfo>,
    /// `--since`, as given (RFC 3339).
    pub since: Option<String>,
    /// `--session`.
    pub session: Option<String>,
    /// What was read.
    pub ledger: Span,
    /// The totals.
    pub totals: Totals,
    /// The changes, most frequent first.
    pub changes: Vec<Group>,
    /// Why some recorded decisions could not be reproduced.
    pub not_reproducible: Vec<Reasoned>,
    /// Why some attempts have no recorded decision.
    pub not_decided: Vec<Reasoned>,
    /// Records that could not be used (up to the example limit; the count is in the totals).
    pub malformed: Vec<Malformed>,
    /// Caveats about the whole replay.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether the candidate widens what runs without approval.
    pub fn widens(&self) -> bool {
        self.totals.widening > 0
    }
}

/// Builds a [`Report`] as attempts are compared.
#[derive(Debug)]
pub(crate) struct Builder {
    pub(crate) report: Report,
    examples: usize,
    groups: HashMap<(Change, Landing, Landing, String, String), usize>,
}

/// One compared attempt.
pub(crate) struct Compared<'a> {
    pub(crate) seq: u64,
    pub(crate) session: Option<&'a str>,
    pub(crate) time: time::OffsetDateTime,
    pub(crate) tool: &'a str,
    pub(crate) arguments: &'a Value,
    pub(crate) recorded: Outcome,
    pub(crate) candidate: Outcome,
}

impl Builder {
    pub(crate) fn new(mode: &'static str, examples: usize) -> Builder {
        Builder {
            report: Report {
                mode,
                candidate: None,
                since: None,
                session: None,
                ledger: Span::default(),
                totals: Totals::default(),
                changes: Vec::new(),
                not_reproducible: Vec::new(),
                not_decided: Vec::new(),
                malformed: Vec::new(),
                notes: Vec::new(),
            },
            examples,
            groups: HashMap::new(),
        }
    }

    /// Counts a comparison; returns whether it changed.
    pub(crate) fn compared(&mut self, c: Compared<'_>) {
        let t = &mut self.report.totals;
        t.compared += 1;
        let Some(change) = Change::between(&c.recorded, &c.candidate) else {
            t.unchanged += 1;
            return;
        };
        t.changed += 1;
        match change {
            Change::NewlyDenied => t.newly_denied += 1,
            Change::NewlyAllowed => t.newly_allowed += 1,
            Change::NewlyAsking => t.newly_asking += 1,
            Change::TierMoved => t.tier_moved += 1,
        }
        let widening = change == Change::NewlyAllowed;
        if widening {
            t.widening += 1;
        }
        let from = Landing {
            verdict: c.recorded.verdict,
            tier: c.recorded.tier,
        };
        let to = Landing {
            verdict: c.candidate.verdict,
            tier: c.candidate.tier,
        };
        let mut key = (
            change,
            from,
            to,
            c.candidate.rule_name(),
            c.recorded.rule_name(),
        );
        if !self.groups.contains_key(&key) && self.groups.len() >= MAX_GROUPS {
            key.3 = "(other)".to_owned();
            key.4 = "(other)".to_owned();
        }
        let index = match self.groups.get(&key) {
            Some(i) => *i,
            None => {
                let i = self.report.changes.len();
                self.report.changes.push(Group {
                    change,
                    widening,
                    from,
                    to,
                    candidate_rule: key.3.clone(),
                    recorded_rule: key.4.clone(),
                    count: 0,
                    examples: Vec::new(),
                });
                self.groups.insert(key, i);
                i
            }
        };
        let examples = self.examples;
        if let Some(group) = self.report.changes.get_mut(index) {
            group.count += 1;
            if group.examples.len() < examples {
                group.examples.push(Example {
                    seq: c.seq,
                    session: c.session.map(str::to_owned),
                    time: warden_core::text::rfc3339(c.time),
                    tool: c.tool.to_owned(),
                    arguments: warden_core::text::ellipsize(
                        &warden_core::canonical::canonical_json(c.arguments),
                        MAX_ARGUMENT_BYTES - '…'.len_utf8(),
                    ),
                    recorded: c.recorded,
                    candidate: c.candidate,
                });
            }
        }
    }

    /// Counts an attempt whose recorded decision could not be reproduced.
    pub(crate) fn not_reproducible(&mut self, seq: u64, reason: &str) {
        self.report.totals.not_reproducible += 1;
        add_reason(
            &mut self.report.not_reproducible,
            seq,
            reason,
            self.examples,
        );
    }

    /// Counts an attempt with no recorded decision.
    pub(crate) fn not_decided(&mut self, seq: u64, reason: &str) {
        self.report.totals.not_decided += 1;
        add_reason(&mut self.report.not_decided, seq, reason, self.examples);
    }

    /// Counts a record that could not be used.
    pub(crate) fn malformed(&mut self, seq: u64, reason: String) {
        self.report.totals.malformed += 1;
        if self.report.malformed.len() < self.examples.max(1) * 4 {
            self.report.malformed.push(Malformed { seq, reason });
        }
    }

    /// The report, changes and reasons most frequent first.
    pub(crate) fn finish(mut self) -> Report {
        self.report.changes.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.candidate_rule.cmp(&b.candidate_rule))
        });
        self.report
            .not_reproducible
            .sort_by_key(|r| std::cmp::Reverse(r.count));
        self.report
            .not_decided
            .sort_by_key(|r| std::cmp::Reverse(r.count));
        self.report
    }
}

fn add_reason(list: &mut Vec<Reasoned>, seq: u64, reason: &str, examples: usize) {
    let reason = if list.len() >= MAX_REASONS && !list.iter().any(|r| r.reason == reason) {
        "(other)"
    } else {
        reason
    };
    match list.iter_mut().find(|r| r.reason == reason) {
        Some(r) => {
            r.count += 1;
            if r.examples.len() < examples {
                r.examples.push(seq);
            }
        }
        None => list.push(Reasoned {
            reason: reason.to_owned(),
            count: 1,
            examples: if examples > 0 { vec![seq] } else { Vec::new() },
        }),
    }
}
