//! Applying a [`Plan`]: the Landlock ruleset, and the confined spawn.
//!
//! Landlock confines a thread and everything it then creates. So the ruleset is built in the
//! caller (the paths opened there), and a short-lived thread of its own restricts itself with
//! it (`no_new_privs` set first) and spawns the child: the child inherits the thread's domain
//! from the moment it exists, before it runs a single instruction of the server, and no other
//! thread of the gateway is confined. (This is the effect of applying the ruleset between
//! fork and exec, without code in the forked child: the workspace forbids `unsafe`, which a
//! `pre_exec` hook needs.) The thread ends once the child is spawned.

use std::process::Stdio;

use rmcp::transport::TokioChildProcess;
use tokio::process::ChildStderr;

use super::{Plan, Support};

/// A spawned child: its stdio transport, and its stderr (a pipe) for the caller to read.
pub(crate) type Spawned = (TokioChildProcess, Option<ChildStderr>);

/// Spawns `cmd` with its stderr piped (the caller reads it: [`crate::stderr`]), as the stdio
/// transport of an MCP client: confined by `plan` when there is one. With a plan, the child runs only under the enforced ruleset,
/// or — where the kernel did not enforce it and the plan is not `required` — unconfined with a
/// warning; a `required` plan that the kernel does not enforce spawns nothing.
pub(crate) async fn spawn(
    cmd: tokio::process::Command,
    plan: Option<&Plan>,
) -> Result<Spawned, String> {
    match plan {
        None => spawn_plain(cmd),
        Some(plan) => linux::spawn_confined(cmd, plan).await,
    }
}

fn spawn_plain(cmd: tokio::process::Command) -> Result<Spawned, String> {
    TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())
}

/// Whether this kernel can confine a server: it can create a Landlock ruleset of the first
/// ABI's file-system rights (Linux 5.13 and later, with Landlock enabled).
#[cfg(target_os = "linux")]
pub fn landlock_support() -> Support {
    linux::support()
}

/// Whether this kernel can confine a server: not on this operating system.
#[cfg(not(target_os = "linux"))]
pub fn landlock_support() -> Support {
    Support::Unavailable("Landlock is a Linux feature".to_owned())
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{Plan, Spawned, Support, spawn_plain};
    use landlock::{
        ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreated,
        RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, path_beneath_rules,
    };

    /// The ABI whose rights are asked for (Linux 6.15's: files, and the scoping of signals
    /// and abstract Unix sockets); rights an older kernel lacks are left out, best effort.
    const ASKED: ABI = ABI::V7;

    pub(super) fn support() -> Support {
        let probe = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(ABI::V1))
            .and_then(Ruleset::create);
        match probe {
            Ok(_) => Support::Available,
            Err(e) => Support::Unavailable(e.to_string()),
        }
    }

    /// The ruleset of `plan`: every file-system right is handled (so refused unless a rule
    /// grants it), the plan's read paths get read and execute, its write paths everything;
    /// signals and abstract Unix sockets stay within the domain. Paths that do not exist are
    /// skipped.
    fn ruleset(plan: &Plan) -> Result<RulesetCreated, RulesetError> {
        Ruleset::default()
            .handle_access(AccessFs::from_all(ASKED))?
            .scope(Scope::from_all(ASKED))?
            .create()?
            .add_rules(path_beneath_rules(&plan.read, AccessFs::from_read(ASKED)))?
            .add_rules(path_beneath_rules(&plan.write, AccessFs::from_all(ASKED)))
    }

    pub(super) async fn spawn_confined(
        cmd: tokio::process::Command,
        plan: &Plan,
    ) -> Result<Spawned, String> {
        let server = plan.server.clone();
        let required = plan.required;
        let ruleset =
            ruleset(plan).map_err(|e| format!("cannot build the kernel confinement: {e}"))?;
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("warden-confine-{server}"))
            .spawn(move || {
                // The runtime stays entered until the result is handed over: a child dropped
                // here (the caller gave up) is cleaned up by a task on the runtime.
                let _runtime = runtime.enter();
                let result = match ruleset.restrict_self() {
                    Err(e) => Err(format!("cannot apply the kernel confinement: {e}")),
                    Ok(s) if s.ruleset == RulesetStatus::NotEnforced && required => Err(
                        "the kernel did not enforce the confinement, which the charter requires"
                            .to_owned(),
                    ),
                    Ok(s) => {
                        if s.ruleset == RulesetStatus::NotEnforced {
                            tracing::warn!(server = %server, "The kernel did not enforce the confinement; the server runs unconfined.");
                        }
                        spawn_plain(cmd)
                    }
                };
                // The caller may have given up (shutdown); the child is then dropped and killed.
                drop(tx.send(result));
            })
            .map_err(|e| format!("cannot start the confining thread: {e}"))?;
        rx.await
            .map_err(|_| "the confining thread ended without an answer".to_owned())?
    }
}

#[cfg(not(target_os = "linux"))]
mod linux {
    use super::{Plan, Spawned, spawn_plain};

    /// No plan is made without Landlock; should one be, a `required` plan spawns nothing.
    pub(super) async fn spawn_confined(
        cmd: tokio::process::Command,
        plan: &Plan,
    ) -> Result<Spawned, String> {
        if plan.required {
            return Err("this operating system has no Landlock".to_owned());
        }
        spawn_plain(cmd)
    }
}
