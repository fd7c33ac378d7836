//! Phase 1 of start-up: the charters compile and the upstream servers are prepared, before
//! anything is opened, bound or spawned.

use warden_charter::{CharterSet, CompiledCharter, ObserverSettings};
use warden_mcp::{PrepareError, PreparedUpstreams, Upstreams};

use super::StartError;
use crate::config::Config;

/// Phase 1: every charter of the set compiles, and the set holds together, or nothing starts.
pub(super) fn compile_charters(config: &Config) -> Result<CharterSet, StartError> {
    let compiled = config.charters.load().map_err(StartError::Charter)?;
    for w in compiled.warnings.warnings() {
        tracing::warn!(diagnostic = %w, "Charter warning.");
    }
    Ok(compiled.set)
}

/// Phase 1 still: every stdio server's environment is resolved from the gateway's (a `${NAME}`
/// that is not set stops start-up, before anything is opened or spawned), and so is its kernel
/// confinement (a server that requires it on a kernel without Landlock stops start-up too),
/// and every Streamable HTTP server's credentials (an unset variable or an unreadable file
/// stops start-up, naming the server and the variable or file). A server several agents
/// declare is prepared once, and must come out alike for each.
pub(super) fn prepare_upstreams(set: &CharterSet) -> Result<PreparedUpstreams, StartError> {
    let mut prepared: Option<PreparedUpstreams> = None;
    for charter in set.iter() {
        let next = prepare_one(charter)?;
        prepared = Some(match prepared {
            None => next,
            Some(p) => p.merge(next).map_err(|e| StartError::Other(e.into()))?,
        });
    }
    prepared.ok_or_else(|| StartError::Other(anyhow::anyhow!("no charter to prepare")))
}

fn prepare_one(charter: &CompiledCharter) -> Result<PreparedUpstreams, StartError> {
    match Upstreams::prepare(charter, |name| std::env::var_os(name)) {
        Ok(prepared) => Ok(prepared),
        Err(PrepareError::Env(e)) => Err(e.into()),
        Err(
            e @ (PrepareError::Sandbox(_)
            | PrepareError::Credentials(_)
            | PrepareError::Shared { .. }
            | PrepareError::Client { .. }),
        ) => Err(StartError::Other(e.into())),
    }
}

/// The dead man's switch of a set: the observer is required when any agent's charter requires
/// it, with the shortest heartbeat deadline among those that do (the switch's control is
/// gateway-wide: one observer watches every agent).
pub(super) fn switch_settings(set: &CharterSet) -> ObserverSettings {
    let mut settings = set.first().observer.clone();
    let requiring = set.iter().filter(|c| c.observer.required);
    if let Some(deadline) = requiring.map(|c| c.observer.heartbeat_deadline).min() {
        settings.required = true;
        settings.heartbeat_deadline = deadline;
    } else {
        settings.required = false;
    }
    settings
}
