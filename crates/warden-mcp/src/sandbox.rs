//! Kernel confinement of stdio tool servers (Landlock on Linux).
//!
//! Resolving paths before a decision cannot close every way out of a server's roots: a
//! directory swapped for a symbolic link between the decision and the server's read, or a link
//! the server follows itself, is beyond what the gateway can see. So a confined server's child
//! process runs under a Landlock ruleset that lets it use only
//!
//! - the default system paths ([`SYSTEM_READ`]: read and execute; [`SYSTEM_WRITE`]: the null
//!   device, read and write),
//! - its program's installation and, for each argument naming an existing file, the
//!   `node_modules` directory that file lies in (else its directory): read and execute; for
//!   a command run by `npx`, `$HOME/.npm` (where npx installs the package): read and write,
//! - its **roots**, the literal directories of the path globs in the rules for its tools that
//!   can let a call through (every tier but `prohibited`; globs under `not` name no root):
//!   read and write,
//! - the charter's `sandbox.read` (read and execute) and `sandbox.write` (read and write).
//!
//! Everything else on the file system is refused by the kernel, however the path is reached.
//!
//! When: `sandbox.mode` is `auto` by default — confined when the rules name roots or the
//! charter lists sandbox paths, unconfined (warned) where the kernel has no Landlock;
//! `required` confines always and stops start-up without Landlock ([`SandboxUnavailable`]);
//! `off` never confines (warned at start-up).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use warden_charter::{CompiledCharter, SandboxMode, Server, Transport};

use crate::child_env::ChildEnv;

mod confine;

pub use confine::landlock_support;
pub(crate) use confine::spawn;

/// System paths every confined server may read and execute in: programs, shared libraries,
/// configuration (`/etc`: the dynamic linker's cache, locale, certificates, name service),
/// `/proc` (the interpreters read `/proc/self`; Landlock itself keeps a confined process from
/// other processes' `environ` and memory) and the random devices. A path that does not exist
/// on the machine is skipped.
pub const SYSTEM_READ: [&str; 9] = [
    "/usr",
    "/lib",
    "/lib64",
    "/bin",
    "/etc",
    "/proc",
    "/sys/devices/system/cpu",
    "/dev/urandom",
    "/dev/random",
];

/// System paths every confined server may read and write: the null device only. No temporary
/// directory is granted by default (a shared `/tmp` would be a way out of the roots); a server
/// that needs one names it in `sandbox.write`.
pub const SYSTEM_WRITE: [&str; 1] = ["/dev/null"];

/// Whether the running kernel can confine: Landlock is there and enabled, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Landlock works on this kernel.
    Available,
    /// It does not; the reason, for the start-up message.
    Unavailable(String),
}

/// A server whose charter says `sandbox: { mode: required }` on a kernel that cannot confine
/// it: start-up stops before anything is spawned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "server `{server}` must run confined (`sandbox: {{ mode: required }}`), but this kernel cannot confine it: {reason}; run warden on Linux 5.13 or later with Landlock enabled (`lsm=landlock,…`), or set the server's `sandbox.mode` to `auto`"
)]
pub struct SandboxUnavailable {
    /// The server.
    pub server: String,
    /// Why the kernel cannot confine.
    pub reason: String,
}

/// The confinement of one stdio server, resolved at start-up: the paths it may use. Paths
/// that do not exist when the server is spawned are skipped (nothing is granted for them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The server.
    pub server: String,
    /// Spawning fails, rather than run unconfined, when the kernel does not enforce the rules.
    pub required: bool,
    /// Paths it may read, and execute programs in.
    pub read: Vec<PathBuf>,
    /// Paths it may read and write.
    pub write: Vec<PathBuf>,
}

/// What start-up does with one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Confined by this plan.
    Confined(Plan),
    /// Not confined; the warning to log, if any.
    Unconfined(Option<String>),
}

/// The roots of `server` its charter's rules give it ([`CompiledCharter::sandbox_roots`]).
pub fn roots(charter: &CompiledCharter, server: &Server) -> Vec<String> {
    charter.sandbox_roots(server)
}

/// What start-up does with `server` (a stdio server of `charter`) on a kernel with `support`:
/// its plan, or unconfined with a warning; an error only for `required` without support.
pub fn outcome(
    charter: &CompiledCharter,
    server: &Server,
    env: &ChildEnv,
    support: &Support,
) -> Result<Outcome, SandboxUnavailable> {
    let Transport::Stdio { command, .. } = &server.transport else {
        return Ok(Outcome::Unconfined(None));
    };
    let sandbox = &server.sandbox;
    let roots = roots(charter, server);
    let declared = !roots.is_empty() || !sandbox.read.is_empty() || !sandbox.write.is_empty();
    match (sandbox.mode, support) {
        (SandboxMode::Off, _) => {
            return Ok(Outcome::Unconfined(Some(format!(
                "server `{}` runs without kernel confinement (`sandbox: {{ mode: off }}`): it can reach any file the gateway's user can, whatever its rules' roots",
                server.id
            ))));
        }
        (SandboxMode::Auto, _) if !declared => return Ok(Outcome::Unconfined(None)),
        (SandboxMode::Auto, Support::Unavailable(reason)) => {
            let kept = if roots.is_empty() {
                "its sandbox paths".to_owned()
            } else {
                format!("its roots `{}`", roots.join("`, `"))
            };
            return Ok(Outcome::Unconfined(Some(format!(
                "server `{}` runs without kernel confinement, which this kernel cannot give ({reason}); a swapped directory or a link can take it out of {kept}; set `sandbox: {{ mode: required }}` to refuse to start instead",
                server.id
            ))));
        }
        (SandboxMode::Required, Support::Unavailable(reason)) => {
            return Err(SandboxUnavailable {
                server: server.id.clone(),
                reason: reason.clone(),
            });
        }
        (SandboxMode::Auto | SandboxMode::Required, Support::Available) => {}
    }
    let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
    read.extend(installation(command, env));
    read.extend(sandbox.read.iter().map(PathBuf::from));
    let mut write: Vec<PathBuf> = SYSTEM_WRITE.iter().map(PathBuf::from).collect();
    write.extend(npx_cache(command, env));
    write.extend(roots.iter().map(PathBuf::from));
    write.extend(sandbox.write.iter().map(PathBuf::from));
    dedup(&mut read);
    dedup(&mut write);
    Ok(Outcome::Confined(Plan {
        server: server.id.clone(),
        required: sandbox.mode == SandboxMode::Required,
        read,
        write,
    }))
}

fn dedup(paths: &mut Vec<PathBuf>) {
    let mut seen = Vec::with_capacity(paths.len());
    paths.retain(|p| {
        let new = !seen.contains(p);
        if new {
            seen.push(p.clone());
        }
        new
    });
}

/// What the command needs to run, read-only: the program's installation — for a program at
/// `<dir>/bin/<name>`, `<dir>`, both as found on the child's `PATH` and with links resolved,
/// else the program file — and, for each argument that names an existing file, the
/// `node_modules` directory it lies in, else its directory.
fn installation(command: &[String], env: &ChildEnv) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Some((program, args)) = command.split_first() else {
        return out;
    };
    let path_var = env
        .vars()
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone());
    if let Some(found) = find_program(program, path_var.as_ref()) {
        let resolved = std::fs::canonicalize(&found).ok();
        let written = Some(found).filter(|p| p.is_absolute());
        for p in [written, resolved].into_iter().flatten() {
            out.push(install_dir(&p).unwrap_or(p));
        }
    }
    for arg in args {
        let Ok(file) = std::fs::canonicalize(arg) else {
            continue;
        };
        if !file.is_file() {
            continue;
        }
        let package = file
            .ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "node_modules"))
            .or_else(|| file.parent());
        if let Some(dir) = package {
            out.push(dir.to_path_buf());
        }
    }
    out
}

/// `$HOME/.npm` for a command run by `npx`, which installs the package there and runs it from
/// there (`npx -y @modelcontextprotocol/server-filesystem …`).
fn npx_cache(command: &[String], env: &ChildEnv) -> Option<PathBuf> {
    let program = Path::new(command.first()?);
    if program.file_name()? != "npx" {
        return None;
    }
    let home = env.vars().iter().find(|(k, _)| k == "HOME")?;
    Some(Path::new(&home.1).join(".npm"))
}

/// `<dir>` for a program at `<dir>/bin/<name>`.
fn install_dir(program: &Path) -> Option<PathBuf> {
    let bin = program.parent()?;
    if bin.file_name()? == "bin" {
        bin.parent().map(Path::to_path_buf)
    } else {
        None
    }
}

/// The program as the child will find it: a name with a `/` as written, else the first
/// executable file of that name in `path` (the child's `PATH`).
fn find_program(program: &str, path: Option<&OsString>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests;
