//! The tool index: which rules can match a tool, so deciding never scans unrelated rules.

use std::borrow::Cow;
use std::collections::HashMap;

use globset::GlobSet;

/// Rules by tool. Every tool named in the inventory or literally in a rule has its candidate
/// list precomputed; any other tool name is matched once against the set of all rule tool
/// patterns.
#[derive(Debug, Default)]
pub(crate) struct ToolIndex {
    pub(crate) by_tool: HashMap<Box<str>, Box<[u32]>>,
    pub(crate) patterns: GlobSet,
    /// Pattern index in `patterns` → rule index.
    pub(crate) pattern_rules: Vec<u32>,
    /// Rule index → tier, to order candidates most strict first.
    pub(crate) tiers: Vec<warden_core::Tier>,
}

impl ToolIndex {
    pub(crate) fn candidates(&self, tool: &str) -> Cow<'_, [u32]> {
        if let Some(rules) = self.by_tool.get(tool) {
            return Cow::Borrowed(rules);
        }
        Cow::Owned(self.scan(tool))
    }

    pub(crate) fn scan(&self, tool: &str) -> Vec<u32> {
        let mut rules: Vec<u32> = self
            .patterns
            .matches(tool)
            .into_iter()
            .filter_map(|p| self.pattern_rules.get(p).copied())
            .collect();
        rules.sort_unstable();
        rules.dedup();
        let tier = |r: &u32| {
            usize::try_from(*r)
                .ok()
                .and_then(|i| self.tiers.get(i))
                .copied()
        };
        rules.sort_by_key(|r| std::cmp::Reverse(tier(r)));
        rules
    }
}
