use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The class an action falls into, ordered from the least to the most strict.
///
/// The derived `Ord` is the strictness order the decision relies on: when several rules match,
/// the greatest tier wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Runs without asking; recorded.
    Autonomous,
    /// Runs within a declared scope; outside the scope it escalates to approval.
    Preapproved,
    /// Waits for a human with the authority for the rule; a timeout denies.
    Approval,
    /// Denied, with no escalation path.
    Prohibited,
}

impl Tier {
    /// Every tier, from the least to the most strict.
    pub const ALL: [Tier; 4] = [
        Tier::Autonomous,
        Tier::Preapproved,
        Tier::Approval,
        Tier::Prohibited,
    ];

    /// The tier's name as written in a charter.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Autonomous => "autonomous",
            Tier::Preapproved => "preapproved",
            Tier::Approval => "approval",
            Tier::Prohibited => "prohibited",
        }
    }

    /// Whether a rule of this tier restricts rather than permits (approval or prohibited).
    ///
    /// An evaluation error inside a restrictive rule denies; inside a permissive rule it only
    /// makes the rule not match, which can never loosen the outcome.
    pub fn is_restrictive(self) -> bool {
        matches!(self, Tier::Approval | Tier::Prohibited)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tier name that is not one of the four tiers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown tier `{0}`, expected one of `autonomous`, `preapproved`, `approval`, `prohibited`"
)]
pub struct ParseTierError(pub String);

impl FromStr for Tier {
    type Err = ParseTierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ParseTierError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness_order() {
        assert!(Tier::Prohibited > Tier::Approval);
        assert!(Tier::Approval > Tier::Preapproved);
        assert!(Tier::Preapproved > Tier::Autonomous);
    }

    #[test]
    fn names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(t.as_str().parse::<Tier>(), Ok(t));
        }
        assert!("allow".parse::<Tier>().is_err());
    }
}
