//! Interventions in force: the gateway posture and frozen tools. Set by operators (and, with a
//! later issue, the observer); read on every decision of the governor and on every call of the
//! model proxy, which both hold the same `Arc` (this crate is the one they both see).

use std::collections::HashSet;
use std::sync::RwLock;

use warden_core::Posture;

/// The interventions in force: the gateway posture and the frozen tools. Read on every
/// decision; a poisoned lock reads as the strictest state (frozen).
#[derive(Debug, Default)]
pub struct Interventions {
    posture: RwLock<Posture>,
    frozen: RwLock<HashSet<String>>,
}

impl Interventions {
    /// The current posture. A poisoned lock reads as frozen: fail closed.
    pub fn posture(&self) -> Posture {
        self.posture.read().map(|p| *p).unwrap_or(Posture::Frozen)
    }

    /// Sets the posture.
    pub fn set_posture(&self, posture: Posture) {
        if let Ok(mut p) = self.posture.write() {
            *p = posture;
        }
    }

    /// Whether `tool` is frozen. A poisoned lock reads as frozen.
    pub fn is_frozen(&self, tool: &str) -> bool {
        self.frozen.read().map(|f| f.contains(tool)).unwrap_or(true)
    }

    /// Freezes or thaws a tool.
    pub fn set_frozen(&self, tool: &str, frozen: bool) {
        if let Ok(mut f) = self.frozen.write() {
            if frozen {
                f.insert(tool.to_owned());
            } else {
                f.remove(tool);
            }
        }
    }
}
