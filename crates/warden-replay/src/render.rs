//! The report for people.

use std::fmt::{self, Write as _};

use crate::report::{Landing, Report};

fn landing(l: &Landing) -> String {
    format!("{} ({})", l.verdict, l.tier.as_str())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        match (&self.candidate, self.mode) {
            (Some(c), _) => writeln!(f, "replay under {} (agent `{}`)", c.hash, c.agent)?,
            (None, _) => writeln!(f, "shadow decisions recorded in the ledger")?,
        }
        let mut window = String::new();
        if let Some(s) = &self.since {
            let _ = write!(window, " since {s}");
        }
        if let Some(s) = &self.session {
            let _ = write!(window, " of session {s}");
        }
        writeln!(
            f,
            "read records {}..{} ({} records){window}",
            self.ledger.first_seq.unwrap_or(0),
            self.ledger.last_seq.unwrap_or(0),
            self.ledger.records
        )?;
        writeln!(
            f,
            "{} attempts: {} compared, {} unchanged, {} changed ({} newly denied, {} newly allowed, {} newly asking, {} tier moved); {} not reproducible, {} not decided, {} malformed records",
            t.attempts,
            t.compared,
            t.unchanged,
            t.changed,
            t.newly_denied,
            t.newly_allowed,
            t.newly_asking,
            t.tier_moved,
            t.not_reproducible,
            t.not_decided,
            t.malformed
        )?;
        for g in &self.changes {
            writeln!(f)?;
            writeln!(
                f,
                "{}{}: {} → {}, {} attempt(s)",
                g.change.as_str(),
                if g.widening { " (WIDENS)" } else { "" },
                landing(&g.from),
                landing(&g.to),
                g.count
            )?;
            writeln!(f, "  candidate rule: {}", g.candidate_rule)?;
            writeln!(f, "  recorded rule:  {}", g.recorded_rule)?;
            for e in &g.examples {
                writeln!(
                    f,
                    "  #{} {} {} {}",
                    e.seq,
                    e.session.as_deref().unwrap_or("-"),
                    e.tool,
                    e.arguments
                )?;
            }
        }
        for (title, list) in [
            ("not reproducible", &self.not_reproducible),
            ("not decided", &self.not_decided),
        ] {
            for r in list {
                writeln!(f)?;
                let seqs: Vec<String> = r.examples.iter().map(|s| format!("#{s}")).collect();
                writeln!(f, "{title}: {} attempt(s): {}", r.count, r.reason)?;
                writeln!(f, "  e.g. {}", seqs.join(" "))?;
            }
        }
        if !self.malformed.is_empty() {
            writeln!(f)?;
            writeln!(f, "malformed records: {}", t.malformed)?;
            for m in &self.malformed {
                writeln!(f, "  #{}: {}", m.seq, m.reason)?;
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        if t.widening > 0 {
            writeln!(
                f,
                "\n{} attempt(s) recorded as denied or asking would run without approval under the candidate",
                t.widening
            )?;
        }
        Ok(())
    }
}
