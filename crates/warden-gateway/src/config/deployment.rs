//! The settings of a shared deployment: which host names each plane answers to, and the
//! certificate and key each plane serves TLS with.
//!
//! | setting | flag | environment | file key | default |
//! |---|---|---|---|---|
//! | agent plane host names | `--agent-allowed-hosts` | `WARDEN_AGENT_ALLOWED_HOSTS` | `agent_allowed_hosts` | loopback names only |
//! | operator plane host names | `--operator-allowed-hosts` | `WARDEN_OPERATOR_ALLOWED_HOSTS` | `operator_allowed_hosts` | loopback names only |
//! | agent plane certificate (PEM chain) | `--agent-tls-cert` | `WARDEN_AGENT_TLS_CERT` | `agent_tls_cert` | none (plain HTTP) |
//! | agent plane private key (PEM) | `--agent-tls-key` | `WARDEN_AGENT_TLS_KEY` | `agent_tls_key` | none |
//! | operator plane certificate (PEM chain) | `--operator-tls-cert` | `WARDEN_OPERATOR_TLS_CERT` | `operator_tls_cert` | none (plain HTTP) |
//! | operator plane private key (PEM) | `--operator-tls-key` | `WARDEN_OPERATOR_TLS_KEY` | `operator_tls_key` | none |
//!
//! Host names are given as a list (a TOML array in the file, comma-separated in a flag or a
//! variable). `localhost`, `127.0.0.1`, `::1` and the plane's own listen address (when it is
//! not a wildcard address) are always allowed; an entry `*.example.com` allows every name
//! ending in `.example.com` (not `example.com` itself). The port of a `Host` header is not
//! compared. A certificate without its key (or a key without its certificate) is refused.

use std::path::PathBuf;

use super::{ConfigError, ConfigSource, RawConfig, pick};

/// The most host names one plane may list (a guard against a runaway list).
pub const MAX_ALLOWED_HOSTS: usize = 256;

/// The deployment settings of both planes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployment {
    /// The agent plane.
    pub agent: PlaneDeployment,
    /// The operator plane.
    pub operator: PlaneDeployment,
}

/// The deployment settings of one plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaneDeployment {
    /// Host names allowed besides the loopback names and the listen address: lowercase names,
    /// IP addresses (IPv6 without brackets) or `*.suffix` wildcards, each checked.
    pub allowed_hosts: Vec<String>,
    /// The certificate and key to serve TLS with; `None` for plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its PEM private key, read at start and again on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Resolves the deployment settings by the usual precedence (flag, environment, file).
pub(super) fn resolve(
    flags: &RawConfig,
    file: &RawConfig,
    env: &dyn ConfigSource,
) -> Result<Deployment, ConfigError> {
    Ok(Deployment {
        agent: PlaneDeployment {
            allowed_hosts: hosts(
                "agent_allowed_hosts",
                pick(
                    &flags.agent_allowed_hosts,
                    env.var("WARDEN_AGENT_ALLOWED_HOSTS").map(|v| split(&v)),
                    &file.agent_allowed_hosts,
                ),
            )?,
            tls: tls(
                ("agent_tls_cert", "agent_tls_key"),
                pick(
                    &flags.agent_tls_cert,
                    env.var("WARDEN_AGENT_TLS_CERT").map(PathBuf::from),
                    &file.agent_tls_cert,
                ),
                pick(
                    &flags.agent_tls_key,
                    env.var("WARDEN_AGENT_TLS_KEY").map(PathBuf::from),
                    &file.agent_tls_key,
                ),
            )?,
        },
        operator: PlaneDeployment {
            allowed_hosts: hosts(
                "operator_allowed_hosts",
                pick(
                    &flags.operator_allowed_hosts,
                    env.var("WARDEN_OPERATOR_ALLOWED_HOSTS").map(|v| split(&v)),
                    &file.operator_allowed_hosts,
                ),
            )?,
            tls: tls(
                ("operator_tls_cert", "operator_tls_key"),
                pick(
                    &flags.operator_tls_cert,
                    env.var("WARDEN_OPERATOR_TLS_CERT").map(PathBuf::from),
                    &file.operator_tls_cert,
                ),
                pick(
                    &flags.operator_tls_key,
                    env.var("WARDEN_OPERATOR_TLS_KEY").map(PathBuf::from),
                    &file.operator_tls_key,
                ),
            )?,
        },
    })
}

/// A comma-separated list, blanks dropped.
pub(super) fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn hosts(
    setting: &'static str,
    value: Option<(Vec<String>, &'static str)>,
) -> Result<Vec<String>, ConfigError> {
    let Some((names, origin)) = value else {
        return Ok(Vec::new());
    };
    if names.len() > MAX_ALLOWED_HOSTS {
        return Err(ConfigError::Invalid {
            setting,
            origin,
            value: format!("{} names", names.len()),
            reason: format!("at most {MAX_ALLOWED_HOSTS} host names"),
        });
    }
    names
        .into_iter()
        .map(|name| {
            normalize_entry(&name).ok_or(ConfigError::Invalid {
                setting,
                origin,
                value: name,
                reason: "a host name (`warden.example.com`), an IP address, or `*.example.com`; no scheme, port or path".to_owned(),
            })
        })
        .collect()
}

/// An allowed-host entry in the form the Host check compares: lowercase, IPv6 without
/// brackets; `None` if it is not a host name, an IP address or a `*.` wildcard.
pub(crate) fn normalize_entry(entry: &str) -> Option<String> {
    let entry = entry.trim().to_ascii_lowercase();
    let unbracketed = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(&entry);
    if unbracketed.parse::<std::net::IpAddr>().is_ok() {
        return Some(unbracketed.to_owned());
    }
    let name = entry.strip_prefix("*.").unwrap_or(&entry);
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    valid.then_some(entry)
}

fn tls(
    (cert_setting, key_setting): (&'static str, &'static str),
    cert: Option<(PathBuf, &'static str)>,
    key: Option<(PathBuf, &'static str)>,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some((cert, _)), Some((key, _))) => Ok(Some(TlsFiles { cert, key })),
        (Some((cert, origin)), None) => Err(ConfigError::Invalid {
            setting: cert_setting,
            origin,
            value: cert.display().to_string(),
            reason: format!("a certificate needs its private key: set `{key_setting}` too"),
        }),
        (None, Some((key, origin))) => Err(ConfigError::Invalid {
            setting: key_setting,
            origin,
            value: key.display().to_string(),
            reason: format!("a private key needs its certificate: set `{cert_setting}` too"),
        }),
    }
}

#[cfg(test)]
mod tests;
