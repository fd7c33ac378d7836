//! The environment a stdio server's child process gets.
//!
//! A child does not inherit the gateway's environment, which holds the provider keys of the
//! model proxy (and whatever else the gateway was started with): a tool that prints its
//! environment would hand them to the agent. It starts from an empty environment, gets the
//! variables of [`PASSED_THROUGH`] that the gateway has, then the server's `env` from the
//! charter. A charter value `${NAME}` is read from the gateway's environment once, at
//! start-up; a `NAME` that is not set stops start-up ([`UnsetVariables`]) rather than start
//! the server with an empty value.

use std::collections::HashMap;
use std::ffi::OsString;

use warden_charter::{CompiledCharter, Transport};

/// The variables a child gets from the gateway's environment when the gateway has them: where
/// programs are found, the home directory (caches, `npx`), the locale and the temporary
/// directory. Nothing else of the gateway's environment reaches a child.
pub const PASSED_THROUGH: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];

/// A `${NAME}` of a server's `env` whose variable is not set in the gateway's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetVariable {
    /// The server.
    pub server: String,
    /// The key of its `env` entry.
    pub key: String,
    /// The variable its value names.
    pub variable: String,
}

/// Every unset variable that the charter's stdio servers name (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct UnsetVariables(pub Vec<UnsetVariable>);

fn describe(unset: &[UnsetVariable]) -> String {
    let each: Vec<String> = unset
        .iter()
        .map(|u| {
            format!(
                "server `{}` needs the environment variable `{}` (its `env` sets `{}: \"${{{}}}\"`), which is not set",
                u.server, u.variable, u.key, u.variable
            )
        })
        .collect();
    format!(
        "{}; set it in the gateway's environment, or remove it from the charter",
        each.join("; ")
    )
}

/// The variable a charter `env` value names, if it is `${NAME}`.
fn named_variable(value: &str) -> Option<&str> {
    value.strip_prefix("${").and_then(|r| r.strip_suffix('}'))
}

/// The environment of one child process, resolved at start-up. Its `Debug` shows the names
/// only: the values may be secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChildEnv {
    vars: Vec<(String, OsString)>,
}

impl std::fmt::Debug for ChildEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.vars.iter().map(|(k, _)| k))
            .finish()
    }
}

impl ChildEnv {
    /// The environment of the server `server` with the charter `env`, reading the gateway's
    /// variables through `lookup`: the [`PASSED_THROUGH`] variables that `lookup` has, then
    /// `env` (which wins), each `${NAME}` replaced by `lookup(NAME)`. Every `${NAME}` that
    /// `lookup` does not have is reported.
    pub fn resolve(
        server: &str,
        env: &[(String, String)],
        lookup: &impl Fn(&str) -> Option<OsString>,
    ) -> Result<ChildEnv, Vec<UnsetVariable>> {
        let mut vars: Vec<(String, OsString)> = PASSED_THROUGH
            .iter()
            .filter_map(|name| lookup(name).map(|v| ((*name).to_owned(), v)))
            .collect();
        let mut unset = Vec::new();
        for (key, value) in env {
            let resolved = match named_variable(value) {
                Some(name) => match lookup(name) {
                    Some(v) => v,
                    None => {
                        unset.push(UnsetVariable {
                            server: server.to_owned(),
                            key: key.clone(),
                            variable: name.to_owned(),
                        });
                        continue;
                    }
                },
                None => OsString::from(value),
            };
            vars.retain(|(k, _)| k != key);
            vars.push((key.clone(), resolved));
        }
        if unset.is_empty() {
            Ok(ChildEnv { vars })
        } else {
            Err(unset)
        }
    }

    /// The variables, in the order they are set.
    pub fn vars(&self) -> &[(String, OsString)] {
        &self.vars
    }

    /// Gives `cmd` exactly this environment: the inherited one is cleared first.
    pub(crate) fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env_clear();
        cmd.envs(self.vars.iter().map(|(k, v)| (k, v)));
    }
}

/// The environment of every stdio server of `charter`, by server id, read through `lookup`
/// (the gateway's environment: `|name| std::env::var_os(name)`). Fails with every `${NAME}`
/// that is not set.
pub fn resolve_all(
    charter: &CompiledCharter,
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Result<HashMap<String, ChildEnv>, UnsetVariables> {
    let mut out = HashMap::new();
    let mut unset = Vec::new();
    for s in &charter.inventory.servers {
        if let Transport::Stdio { env, .. } = &s.transport {
            match ChildEnv::resolve(&s.id, env, &lookup) {
                Ok(e) => {
                    out.insert(s.id.clone(), e);
                }
                Err(u) => unset.extend(u),
            }
        }
    }
    if unset.is_empty() {
        Ok(out)
    } else {
        Err(UnsetVariables(unset))
    }
}

#[cfg(test)]
mod tests;
