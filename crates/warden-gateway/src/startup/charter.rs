//! Phase 1 of start-up: the charter compiles and the upstream servers are prepared, before
//! anything is opened, bound or spawned.

use std::sync::Arc;

use warden_charter::CompiledCharter;
use warden_mcp::{PrepareError, PreparedUpstreams, Upstreams};

use super::StartError;
use crate::config::Config;

/// Phase 1: the charter compiles, or nothing starts.
pub(super) fn compile_charter(config: &Config) -> Result<Arc<CompiledCharter>, StartError> {
    let compiled = warden_charter::load(&config.charter).map_err(StartError::Charter)?;
    for w in compiled.warnings.warnings() {
        tracing::warn!(diagnostic = %w, "Charter warning.");
    }
    Ok(Arc::new(compiled.charter))
}

/// Phase 1 still: every stdio server's environment is resolved from the gateway's (a `${NAME}`
/// that is not set stops start-up, before anything is opened or spawned), and so is its kernel
/// confinement (a server that requires it on a kernel without Landlock stops start-up too),
/// and every Streamable HTTP server's credentials (an unset variable or an unreadable file
/// stops start-up, naming the server and the variable or file).
pub(super) fn prepare_upstreams(
    charter: &CompiledCharter,
) -> Result<PreparedUpstreams, StartError> {
    match Upstreams::prepare(charter, |name| std::env::var_os(name)) {
        Ok(prepared) => Ok(prepared),
        Err(PrepareError::Env(e)) => Err(e.into()),
        Err(
            e @ (PrepareError::Sandbox(_)
            | PrepareError::Credentials(_)
            | PrepareError::Client { .. }),
        ) => Err(StartError::Other(e.into())),
    }
}
