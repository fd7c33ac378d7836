//! The compiled authority model: principals, roles, who may approve what, who may enrol
//! approvers, and where each principal's approval links are delivered.

use std::collections::HashMap;
use std::sync::Arc;

use globset::GlobMatcher;
use warden_core::{SourceLocation, Tier};

/// Principals and roles.
#[derive(Debug, Default)]
pub struct Authority {
    /// Requesters never approve their own requests.
    pub separation_of_duties: bool,
    /// Roles by id.
    pub roles: HashMap<Arc<str>, Role>,
    /// Principals by id.
    pub principals: HashMap<Arc<str>, Principal>,
    /// Who may issue approver credentials for whom. Empty (no `authority.enrolment`): nobody
    /// may, through the operator plane.
    pub enrolment: Vec<Enrolment>,
}

/// One `authority.enrolment` entry: an issuer and whom they may enrol as an approver.
#[derive(Debug)]
pub struct Enrolment {
    /// `None` for an admin operator credential; otherwise the role an issuing approver holds.
    pub by: Option<Arc<str>>,
    /// Principal ids they may enrol; `*` for every principal.
    pub principals: Vec<String>,
    /// They may enrol every principal holding one of these roles.
    pub roles: Vec<Arc<str>>,
}

impl Authority {
    /// A principal by id.
    pub fn principal(&self, id: &str) -> Option<&Principal> {
        self.principals.get(id)
    }

    /// Whether `principal` holds a role that may approve the rule `rule_id` (`default` for the
    /// default posture).
    pub fn may_approve(&self, principal: &str, rule_id: &str) -> bool {
        self.principals.get(principal).is_some_and(|p| {
            p.roles.iter().any(|r| {
                self.roles
                    .get(r)
                    .is_some_and(|role| role.approve.iter().any(|g| g.is_match(rule_id)))
            })
        })
    }

    /// Whether `issuer` may issue an approver credential for `principal`: `None` is an admin
    /// operator credential, `Some(p)` an approver acting as principal `p`. Only what
    /// `authority.enrolment` grants; with no such section, nobody may.
    pub fn may_enrol(&self, issuer: Option<&str>, principal: &str) -> bool {
        let Some(target) = self.principals.get(principal) else {
            return false;
        };
        let issuer_roles: &[Arc<str>] = match issuer {
            None => &[],
            Some(p) => match self.principals.get(p) {
                Some(p) => &p.roles,
                None => return false,
            },
        };
        self.enrolment.iter().any(|e| {
            let by = match (&e.by, issuer) {
                (None, None) => true,
                (Some(role), Some(_)) => issuer_roles.contains(role),
                _ => false,
            };
            by && (e.principals.iter().any(|p| p == "*" || p == principal)
                || e.roles.iter().any(|r| target.roles.contains(r)))
        })
    }

    /// The principals who may approve `rule_id`, sorted by id.
    pub fn approvers(&self, rule_id: &str) -> Vec<&Principal> {
        let mut v: Vec<&Principal> = self
            .principals
            .values()
            .filter(|p| self.may_approve(&p.id, rule_id))
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

/// A role.
#[derive(Debug)]
pub struct Role {
    /// Role id.
    pub id: Arc<str>,
    /// Description.
    pub description: Option<String>,
    /// Highest tier a holder may direct without further approval.
    pub direct: Tier,
    /// Rule-id globs this role may approve, as written.
    pub approve_patterns: Vec<String>,
    /// The same, compiled.
    pub approve: Vec<GlobMatcher>,
    /// Where the role is declared.
    pub location: SourceLocation,
}

/// A principal.
#[derive(Debug)]
pub struct Principal {
    /// Principal id.
    pub id: Arc<str>,
    /// Display name.
    pub name: Option<String>,
    /// Roles held.
    pub roles: Vec<Arc<str>>,
    /// Highest tier this principal may direct (the highest over their roles; `autonomous`
    /// when they hold no role).
    pub max_direct: Tier,
    /// Where this principal's approval links are delivered, if the charter says.
    pub notify: Option<NotifyTarget>,
}

/// A webhook target for one principal's approval links (`principals[].notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    /// The receiver: an absolute `http` or `https` URL (a credential when it is a Slack
    /// webhook URL; never written to the ledger).
    pub url: url::Url,
    /// `true` for a Slack incoming-webhook body, `false` for warden's JSON.
    pub slack: bool,
}
