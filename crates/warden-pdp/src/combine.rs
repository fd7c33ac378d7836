//! The verdict arithmetic of a delegated decision: a child session's action is decided under
//! its own charter and under the charter of every agent on its delegation chain, and the most
//! restrictive decision binds.
//!
//! Deny is more restrictive than ask, ask than allow; among equally restrictive decisions the
//! first one given binds (the caller lists the child's decision first, then its ancestors'
//! from the nearest to the root, so ties go to the charter nearest the child). Delegation
//! therefore only narrows: the combined verdict is never less restrictive than any charter's.

use warden_core::{Decision, Verdict};

/// How restrictive a verdict is: allow 0, ask 1, deny 2.
pub fn restrictiveness(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Allow => 0,
        Verdict::Ask => 1,
        Verdict::Deny => 2,
    }
}

/// The index of the binding decision among `decisions` (the child's first, then each
/// ancestor's, nearest first): the most restrictive, ties to the earliest. `None` for no
/// decision at all — the caller denies.
pub fn combine(decisions: &[Decision]) -> Option<usize> {
    combine_verdicts(decisions.iter().map(|d| d.verdict))
}

/// [`combine`] over verdicts alone.
pub fn combine_verdicts(verdicts: impl IntoIterator<Item = Verdict>) -> Option<usize> {
    let mut best: Option<(usize, u8)> = None;
    for (i, v) in verdicts.into_iter().enumerate() {
        let r = restrictiveness(v);
        if best.is_none_or(|(_, b)| r > b) {
            best = Some((i, r));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Allow, Ask, Deny};

    #[test]
    fn the_most_restrictive_verdict_binds() {
        assert_eq!(combine_verdicts([Allow, Deny]), Some(1));
        assert_eq!(combine_verdicts([Deny, Allow]), Some(0));
        assert_eq!(combine_verdicts([Allow, Ask, Allow]), Some(1));
        assert_eq!(combine_verdicts([Ask, Deny, Ask]), Some(1));
        assert_eq!(combine_verdicts([Allow]), Some(0));
    }

    #[test]
    fn ties_go_to_the_charter_nearest_the_child() {
        assert_eq!(combine_verdicts([Ask, Ask]), Some(0));
        assert_eq!(combine_verdicts([Allow, Deny, Deny]), Some(1));
        assert_eq!(combine_verdicts([Allow, Allow, Allow]), Some(0));
    }

    #[test]
    fn no_decision_binds_nothing_and_the_caller_denies() {
        assert_eq!(combine_verdicts([]), None);
        assert_eq!(combine(&[]), None);
    }

    /// Every order of three verdicts: the binding one is never less restrictive than any.
    #[test]
    fn the_combined_verdict_is_never_less_restrictive_than_any() {
        let all = [Allow, Ask, Deny];
        for a in all {
            for b in all {
                for c in all {
                    let v = [a, b, c];
                    let i = combine_verdicts(v).unwrap();
                    assert!(
                        v.iter()
                            .all(|x| restrictiveness(v[i]) >= restrictiveness(*x))
                    );
                    assert!(
                        v[..i]
                            .iter()
                            .all(|x| restrictiveness(*x) < restrictiveness(v[i]))
                    );
                }
            }
        }
    }
}
