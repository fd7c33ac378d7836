//! The `[[export]]` sections of the config file: where the ledger's records are copied (see
//! docs/export.md).
//!
//! ```toml
//! [[export]]
//! name = "offsite"                             # [a-z0-9_-]{1,32}, unique
//! type = "file"                                # file | http | otlp_logs
//! dir = "/mnt/audit/warden"                    # file: an absolute directory
//! max_file_bytes = 67108864                    # file: a new file past this size (64 MiB)
//!
//! [[export]]
//! name = "siem"
//! type = "http"
//! url = "https://siem.example.com/ingest"      # http: where batches are POSTed
//! headers = { authorization = "env:SIEM_AUTH" }
//! max_lag_records = 100000                     # lagging past this lag (default)
//! max_lag_seconds = 300                        # or failing this long (default)
//!
//! [[export]]
//! name = "collector"
//! type = "otlp_logs"
//! endpoint = "http://127.0.0.1:4318"           # otlp_logs: logs go to {endpoint}/v1/logs
//! ```
//!
//! At most eight sinks. A header's value is only ever `env:NAME`: the variable must be set
//! (else nothing starts, and the error names the variable, never a value). A relative
//! directory, a URL other than http(s), credentials or a query in a URL, and unknown keys are
//! refused.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use warden_export::{MAX_SINKS, SinkConfig, Target};

use super::{ConfigError, ConfigSource};

/// One export sink.
pub type ExportSink = warden_export::SinkConfig;

/// The most headers one sink may list.
const MAX_HEADERS: usize = 32;

/// The smallest `max_file_bytes` (a file per record at worst is still a bounded choice).
const MIN_FILE_BYTES: u64 = 4096;

/// One `[[export]]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExportSink {
    /// The sink's name.
    pub name: String,
    /// `file`, `http` or `otlp_logs`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A file sink's directory (absolute).
    pub dir: Option<PathBuf>,
    /// An HTTP sink's URL.
    pub url: Option<String>,
    /// An OTLP logs sink's collector base URL.
    pub endpoint: Option<String>,
    /// Header name → `env:VARIABLE` (http and otlp_logs).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A file sink's rotation size in bytes.
    pub max_file_bytes: Option<u64>,
    /// The lag (records) past which the sink is reported as lagging.
    pub max_lag_records: Option<u64>,
    /// How long the sink may fail without success before it is reported as lagging.
    pub max_lag_seconds: Option<u64>,
}

const ORIGIN: &str = "the config file";

fn invalid(
    setting: &'static str,
    value: impl Into<String>,
    sink: &str,
    reason: &str,
) -> ConfigError {
    ConfigError::Invalid {
        setting,
        origin: ORIGIN,
        value: value.into(),
        reason: if sink.is_empty() {
            reason.to_owned()
        } else {
            format!("export sink `{sink}`: {reason}")
        },
    }
}

/// The export sinks, checked: names, locations, headers (read from `env`) and limits.
pub(super) fn resolve(
    file: &[RawExportSink],
    env: &dyn ConfigSource,
) -> Result<Vec<ExportSink>, ConfigError> {
    if file.len() > MAX_SINKS {
        return Err(invalid(
            "export",
            format!("{} sinks", file.len()),
            "",
            "at most 8 `[[export]]` sinks",
        ));
    }
    let mut names = HashSet::new();
    file.iter()
        .map(|raw| {
            let sink = resolve_one(raw, env)?;
            if !names.insert(sink.name.clone()) {
                return Err(invalid(
                    "export.name",
                    sink.name.clone(),
                    "",
                    "two `[[export]]` sinks have this name; each needs its own (it names its cursor)",
                ));
            }
            Ok(sink)
        })
        .collect()
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn resolve_one(raw: &RawExportSink, env: &dyn ConfigSource) -> Result<ExportSink, ConfigError> {
    if !valid_name(&raw.name) {
        return Err(invalid(
            "export.name",
            raw.name.clone(),
            "",
            "1 to 32 of a-z, 0-9, `_` and `-`",
        ));
    }
    let name = raw.name.as_str();
    let only = |setting: &'static str, present: bool, kind: &str| {
        if present {
            Err(invalid(
                setting,
                raw.kind.clone(),
                name,
                &format!(
                    "`{setting}` does not apply to a sink of type `{}` (it is for `{kind}`)",
                    raw.kind
                ),
            ))
        } else {
            Ok(())
        }
    };
    let target = match raw.kind.as_str() {
        "file" => {
            only("export.url", raw.url.is_some(), "http")?;
            only("export.endpoint", raw.endpoint.is_some(), "otlp_logs")?;
            only(
                "export.headers",
                !raw.headers.is_empty(),
                "http and otlp_logs",
            )?;
            let Some(dir) = raw.dir.clone() else {
                return Err(invalid(
                    "export.dir",
                    "",
                    name,
                    "a file sink needs `dir`, an absolute directory",
                ));
            };
            if !dir.is_absolute()
                || dir
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(invalid(
                    "export.dir",
                    dir.display().to_string(),
                    name,
                    "an absolute directory without `..` (a relative one would depend on where warden was started)",
                ));
            }
            Target::File { dir }
        }
        "http" => {
            only("export.dir", raw.dir.is_some(), "file")?;
            only("export.endpoint", raw.endpoint.is_some(), "otlp_logs")?;
            only(
                "export.max_file_bytes",
                raw.max_file_bytes.is_some(),
                "file",
            )?;
            let url = checked_url("export.url", raw.url.as_deref(), name)?;
            Target::Http {
                url,
                headers: headers(raw, env)?,
            }
        }
        "otlp_logs" => {
            only("export.dir", raw.dir.is_some(), "file")?;
            only("export.url", raw.url.is_some(), "http")?;
            only(
                "export.max_file_bytes",
                raw.max_file_bytes.is_some(),
                "file",
            )?;
            let endpoint = checked_url("export.endpoint", raw.endpoint.as_deref(), name)?;
            Target::OtlpLogs {
                endpoint: endpoint.trim_end_matches('/').to_owned(),
                headers: headers(raw, env)?,
            }
        }
        other => {
            return Err(invalid(
                "export.type",
                other,
                name,
                "one of `file`, `http`, `otlp_logs`",
            ));
        }
    };
    let mut sink = SinkConfig::new(name, target);
    if let Some(bytes) = raw.max_file_bytes {
        if bytes < MIN_FILE_BYTES {
            return Err(invalid(
                "export.max_file_bytes",
                bytes.to_string(),
                name,
                "at least 4096 bytes",
            ));
        }
        sink.max_file_bytes = bytes;
    }
    if let Some(n) = raw.max_lag_records {
        if n == 0 {
            return Err(invalid("export.max_lag_records", "0", name, "at least 1"));
        }
        sink.max_lag_records = n;
    }
    if let Some(secs) = raw.max_lag_seconds {
        if secs == 0 || secs > 30 * 86_400 {
            return Err(invalid(
                "export.max_lag_seconds",
                secs.to_string(),
                name,
                "1 to 2592000 (30 days)",
            ));
        }
        sink.max_lag = Duration::from_secs(secs);
    }
    // Header names and values are checked now, not at the first export (a value's text is
    // never in the message).
    if let Target::Http { headers, .. } | Target::OtlpLogs { headers, .. } = &sink.target {
        warden_export::http::header_map(headers)
            .map_err(|why| invalid("export.headers", "", name, &why))?;
    }
    Ok(sink)
}

/// An http(s) URL without credentials or query.
fn checked_url(
    setting: &'static str,
    url: Option<&str>,
    sink: &str,
) -> Result<String, ConfigError> {
    let Some(url) = url else {
        return Err(invalid(setting, "", sink, "missing: an http or https URL"));
    };
    let ok = url::Url::parse(url).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && u.query().is_none()
            && u.username().is_empty()
            && u.password().is_none()
    });
    if !ok {
        return Err(invalid(
            setting,
            url,
            sink,
            "an http or https URL without credentials or query (credentials go in `headers`)",
        ));
    }
    Ok(url.to_owned())
}

/// The headers, each value read from the environment variable its `env:NAME` names.
fn headers(
    raw: &RawExportSink,
    env: &dyn ConfigSource,
) -> Result<Vec<(String, String)>, ConfigError> {
    let name = raw.name.as_str();
    if raw.headers.len() > MAX_HEADERS {
        return Err(invalid(
            "export.headers",
            format!("{} headers", raw.headers.len()),
            name,
            "at most 32 headers",
        ));
    }
    let mut out = Vec::new();
    for (header, value) in &raw.headers {
        let Some(var) = value.strip_prefix("env:").filter(|v| !v.is_empty()) else {
            return Err(invalid(
                "export.headers",
                header.clone(),
                name,
                "a header's value is `env:VARIABLE`, the environment variable that holds it (never the value itself)",
            ));
        };
        let Some(secret) = env.var(var) else {
            return Err(invalid(
                "export.headers",
                header.clone(),
                name,
                &format!("the environment variable `{var}` is not set"),
            ));
        };
        out.push((header.to_ascii_lowercase(), secret));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
