//! The observer's engine: records in, responses out. (Being built: detectors, baselines,
//! correlation and escalation arrive with the rest of the observer.)

use std::sync::Arc;

use warden_audit::Record;
use warden_charter::CompiledCharter;

use crate::response::Response;

/// Reads ledger records in order and answers with the responses they call for.
#[derive(Debug)]
pub struct Engine {
    charter: Arc<CompiledCharter>,
}

impl Engine {
    /// An engine for `charter` (its `observer` section), with no history yet.
    pub fn new(charter: Arc<CompiledCharter>) -> Engine {
        Engine { charter }
    }

    /// The charter it applies.
    pub fn charter(&self) -> &Arc<CompiledCharter> {
        &self.charter
    }

    /// Takes the next ledger record (in sequence order, its chain already verified by the
    /// caller) and returns the responses it calls for.
    pub fn ingest(&mut self, record: &Record) -> Vec<Response> {
        let _ = record;
        Vec::new()
    }

    /// The chain broke at `seq` (a record whose hash or link does not verify): returns the
    /// `ledger_integrity` response.
    pub fn chain_broken(&mut self, seq: u64, detail: &str) -> Vec<Response> {
        let _ = (seq, detail);
        Vec::new()
    }
}
