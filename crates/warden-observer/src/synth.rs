//! Synthetic ledgers for tests and benchmarks: records shaped exactly as the gateway, the
//! operator plane and the model proxy write them (`session_opened`, `action_attempted`,
//! `action_decided`, `model_completed`, `model_intent`, `labels_added`, `charter_loaded`), and
//! a benign, varied workload generator. Deterministic (a seeded generator, no clock). The
//! records are not hash-chained (the engine trusts its caller to verify the chain).

use serde_json::{Value, json};
use time::OffsetDateTime;
use warden_audit::{Record, RecordKind};

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// A ledger being written: records in sequence, on a clock the writer advances.
#[derive(Debug, Clone)]
pub struct Synth {
    seq: u64,
    /// Ledger time, milliseconds since the epoch.
    pub now_ms: i64,
    /// The records written so far.
    pub records: Vec<Record>,
}

impl Synth {
    /// An empty ledger whose clock starts at `start_ms` (milliseconds since the epoch).
    pub fn new(start_ms: i64) -> Synth {
        Synth {
            seq: 0,
            now_ms: start_ms,
            records: Vec::new(),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, ms: i64) {
        self.now_ms = self.now_ms.saturating_add(ms.max(0));
    }

    /// Appends one record; returns its seq.
    pub fn push(&mut self, session: Option<&str>, kind: RecordKind, payload: Value) -> u64 {
        self.seq += 1;
        let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.now_ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        self.records.push(Record {
            seq: self.seq,
            time,
            session: session.map(str::to_owned),
            kind,
            payload,
            prev_hash: [0; 32],
            hash: [0; 32],
        });
        self.seq
    }

    /// `charter_loaded` for a charter hash.
    pub fn charter_loaded(&mut self, hash: &str) -> u64 {
        self.push(
            None,
            RecordKind::CharterLoaded,
            json!({ "charter": hash, "agent": "demo", "files": ["charter.yaml"], "rules": 3 }),
        )
    }

    /// `session_opened`.
    pub fn open(&mut self, sid: &str, agent: &str, principal: &str) -> u64 {
        self.push(
            Some(sid),
            RecordKind::SessionOpened,
            json!({ "session": sid, "agent": agent, "principal": principal, "roles": [],
                    "task": "work", "expires_at": "2030-01-01T00:00:00Z", "by": "orchestrator",
                    "charter": "blake3:00" }),
        )
    }

    /// `action_attempted` then `action_decided` with `verdict`; returns the attempt's seq.
    pub fn action(&mut self, sid: &str, tool: &str, args: Value, verdict: &str) -> u64 {
        let id = format!("a{}", self.seq + 1);
        let called_as = tool.replacen('.', "__", 1);
        let seq = self.push(
            Some(sid),
            RecordKind::ActionAttempted,
            json!({ "action": id, "via": "mcp", "tool": tool, "arguments": args, "called_as": called_as }),
        );
        self.push(
            Some(sid),
            RecordKind::ActionDecided,
            json!({ "action": id, "decision": { "tier": "autonomous", "verdict": verdict,
                    "reason": "rule", "rules": [], "posture": "normal", "charter": "blake3:00" } }),
        );
        seq
    }

    /// `model_completed` with `tokens` of usage and `intents` proposals (each a
    /// `model_intent` for `tool`); returns the completion's seq.
    pub fn turn(&mut self, sid: &str, tokens: u64, intents: &[&str]) -> u64 {
        let call = format!("c{}", self.seq + 1);
        let seq = self.push(
            Some(sid),
            RecordKind::ModelCompleted,
            json!({ "call": call, "alias": "default", "route": {}, "status": 200, "stream": false,
                    "completion": { "text": "ok", "finish_reason": "tool_calls" },
                    "usage": { "input_tokens": tokens * 3 / 4, "output_tokens": tokens / 4, "estimated": false },
                    "intents": intents.len(), "attempts": 1, "duration_ms": 900 }),
        );
        for (i, t) in intents.iter().enumerate() {
            self.push(
                Some(sid),
                RecordKind::ModelIntent,
                json!({ "call": call, "id": format!("t{i}"), "tool": t, "arguments": {} }),
            );
        }
        seq
    }

    /// `session_delegated`: `child` opened for `agent` from `parent` (whose agent is `by`),
    /// its ancestors `chain` (`(session, agent)`, root first, ending with the parent).
    pub fn delegate(
        &mut self,
        child: &str,
        parent: &str,
        agent: &str,
        by: &str,
        chain: &[(&str, &str)],
    ) -> u64 {
        let links: Vec<Value> = chain
            .iter()
            .map(|(s, a)| json!({ "session": s, "agent": a }))
            .collect();
        self.push(
            Some(child),
            RecordKind::SessionDelegated,
            json!({ "session": child, "parent": parent, "agent": agent, "by": by,
                    "principal": "alice", "chain": links, "depth": chain.len(), "via": "mcp",
                    "expires_at": "2030-01-01T00:00:00Z", "task": "work" }),
        )
    }

    /// `delegation_refused`: `parent` (whose agent is `by`) asked for `agent`, refused as
    /// `refusal`.
    pub fn delegation_refused(
        &mut self,
        parent: &str,
        agent: &str,
        by: &str,
        refusal: &str,
    ) -> u64 {
        self.push(
            Some(parent),
            RecordKind::DelegationRefused,
            json!({ "agent": agent, "by": by, "chain": [], "via": "api", "refusal": refusal,
                    "reason": "refused" }),
        )
    }

    /// `labels_added`.
    pub fn labels(&mut self, sid: &str, labels: &[&str]) -> u64 {
        self.push(
            Some(sid),
            RecordKind::LabelsAdded,
            json!({ "action": "a0", "labels": labels }),
        )
    }

    /// A benign, varied workload: `sessions` sessions of `agent`, one after another, each a
    /// few model turns that propose the actions the agent then attempts, reading and writing
    /// files under `dirs`, a rare denial, seconds to minutes between steps.
    pub fn benign(
        &mut self,
        rng: &mut Rng,
        agent: &str,
        sessions: usize,
        dirs: &[&str],
        tools: &[&str],
    ) {
        for n in 0..sessions {
            let sid = format!("{agent}-s{}-{n}", self.seq);
            self.open(&sid, agent, "alice");
            let steps = 3 + rng.below(12);
            for _ in 0..steps {
                self.advance(2_000 + i64::try_from(rng.below(40_000)).unwrap_or(0));
                let tool = tools
                    .get(usize::try_from(rng.below(tools.len() as u64)).unwrap_or(0))
                    .copied()
                    .unwrap_or("fs.read_file");
                let short = tool.rsplit('.').next().unwrap_or(tool);
                self.turn(&sid, 1_500 + rng.below(1_500), &[short]);
                self.advance(500);
                let dir = dirs
                    .get(usize::try_from(rng.below(dirs.len() as u64)).unwrap_or(0))
                    .copied()
                    .unwrap_or("/workspace");
                let path = format!("{dir}/file{}.txt", rng.below(50));
                let verdict = if rng.below(25) == 0 { "deny" } else { "allow" };
                self.action(&sid, tool, json!({ "path": path }), verdict);
            }
            self.advance(60_000 + i64::try_from(rng.below(600_000)).unwrap_or(0));
        }
    }
}
