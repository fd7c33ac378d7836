//! The value of one setting: the source it comes from by precedence, and its parsing, each
//! failure a [`ConfigError::Invalid`] naming the setting, the source and the value.

use std::net::SocketAddr;
use std::time::Duration;

use super::ConfigError;

/// The value of a setting and where it came from: the flag, else the environment, else the
/// config file.
pub(super) fn pick<T: Clone>(
    flag: &Option<T>,
    env: Option<T>,
    file: &Option<T>,
) -> Option<(T, &'static str)> {
    flag.clone()
        .map(|v| (v, "flag"))
        .or_else(|| env.map(|v| (v, "environment")))
        .or_else(|| file.clone().map(|v| (v, "config file")))
}

/// A socket address (`host:port`), `default` when the setting is not given.
pub(super) fn addr(
    setting: &'static str,
    value: Option<(String, &'static str)>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let (v, origin) = value.unwrap_or_else(|| (default.to_owned(), "default"));
    v.parse()
        .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
            setting,
            origin,
            value: v,
            reason: format!("{e} (write `host:port`, e.g. `127.0.0.1:8700`)"),
        })
}

/// A duration (`90s`, `15m`, …, at most ten years), `default` when not given.
pub(super) fn duration(
    setting: &'static str,
    value: Option<(String, &'static str)>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some((v, origin)) => warden_charter::parse_duration(&v).ok_or(ConfigError::Invalid {
            setting,
            origin,
            value: v,
            reason: "write a positive whole number and a unit (`90s`, `15m`, `2h`, `7d`), at most ten years".to_owned(),
        }),
    }
}

/// A connection cap from 1 to 1000000, `default` when not given.
pub(super) fn connections(
    setting: &'static str,
    value: Option<(String, &'static str)>,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        None => Ok(default),
        Some((v, origin)) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or(ConfigError::Invalid {
                setting,
                origin,
                value: v,
                reason: "a whole number of connections, from 1 to 1000000".to_owned(),
            }),
    }
}
