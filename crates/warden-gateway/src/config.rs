//! Gateway configuration: `Raw*` in, [`Config`] out.
//!
//! Every setting comes from, in order of precedence: a command-line flag, an environment
//! variable, the config file (TOML, `--config` or `WARDEN_CONFIG`), the default. Precedence is
//! settled in [`Config::resolve`] and nowhere else; the environment is injected
//! ([`ConfigSource`]) so tests do not touch the process environment.
//!
//! | setting | flag | environment | file key | default |
//! |---|---|---|---|---|
//! | agent plane address | `--agent-listen` | `WARDEN_AGENT_LISTEN` | `agent_listen` | `127.0.0.1:8700` |
//! | operator plane address | `--operator-listen` | `WARDEN_OPERATOR_LISTEN` | `operator_listen` | `127.0.0.1:8701` |
//! | data directory | `--data` | `WARDEN_DATA` | `data_dir` | `./warden-data` |
//! | charter (one, or a list: one per agent) | `--charter` (repeatable) | `WARDEN_CHARTER` | `charter` | (required, or `charters`) |
//! | charter set directory (one subdirectory per agent's charter) | `--charters` | `WARDEN_CHARTERS` | `charters` | none |
//! | shadow charter (decides beside the live one, enforces nothing) | `--shadow-charter` | `WARDEN_SHADOW_CHARTER` | `shadow_charter` | none |
//! | largest request body | `--max-body-bytes` | `WARDEN_MAX_BODY_BYTES` | `max_body_bytes` | `4194304` |
//! | shutdown drain deadline | `--shutdown-grace` | `WARDEN_SHUTDOWN_GRACE` | `shutdown_grace` | `10s` |
//! | upstream call timeout | `--upstream-timeout` | `WARDEN_UPSTREAM_TIMEOUT` | `upstream_timeout` | `60s` |
//! | ledger size cap | `--ledger-max-bytes` | `WARDEN_LEDGER_MAX_BYTES` | `ledger_max_bytes` | none |
//! | approval webhook | `--approval-webhook-url` | `WARDEN_APPROVAL_WEBHOOK_URL` | `approval_webhook_url` | none |
//! | approval webhook body | `--approval-webhook-format` | `WARDEN_APPROVAL_WEBHOOK_FORMAT` | `approval_webhook_format` | `json` (or `slack`) |
//! | operator plane URL in links | `--public-url` | `WARDEN_PUBLIC_URL` | `public_url` | `http://` + operator plane address |
//! | progress notification interval | `--approval-progress-interval` | `WARDEN_APPROVAL_PROGRESS_INTERVAL` | `approval_progress_interval` | `10s` |
//! | decide-API result deadline | `--result-deadline` | `WARDEN_RESULT_DEADLINE` | `result_deadline` | `15m` |
//! | agent plane connection cap | `--agent-max-connections` | `WARDEN_AGENT_MAX_CONNECTIONS` | `agent_max_connections` | `1024` |
//! | operator plane connection cap | `--operator-max-connections` | `WARDEN_OPERATOR_MAX_CONNECTIONS` | `operator_max_connections` | `256` |
//! | request head (and idle) timeout | `--header-timeout` | `WARDEN_HEADER_TIMEOUT` | `header_timeout` | `30s` |
//! | request body timeout | `--body-timeout` | `WARDEN_BODY_TIMEOUT` | `body_timeout` | `30s` |
//! | short-route request timeout | `--request-timeout` | `WARDEN_REQUEST_TIMEOUT` | `request_timeout` | `30s` |
//! | largest content captured per record | `--capture-max-record-bytes` | `WARDEN_CAPTURE_MAX_RECORD_BYTES` | `capture_max_record_bytes` | `1048576` |
//! | largest content captured per session | `--capture-max-session-bytes` | `WARDEN_CAPTURE_MAX_SESSION_BYTES` | `capture_max_session_bytes` | `268435456` |
//!
//! Where state and ledger live (SQLite, or PostgreSQL for a fleet): see [`store`]. Host names
//! and TLS of each plane: see [`deployment`]. OpenTelemetry export: the file's
//! `[otel]` section or `OTEL_EXPORTER_OTLP_ENDPOINT`, see [`otel`].
//!
//! Durations are whole numbers with a unit (`90s`, `15m`, `2h`, `7d`), positive and at most ten
//! years ([`warden_core::text::MAX_DURATION`]): a longer one is refused, so no deadline
//! computed from a setting can overflow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
pub use warden_session::CaptureLimits;

mod charters;
pub mod checkpoints;
pub mod deployment;
mod error;
pub mod export;
pub mod otel;
mod parse;
pub mod store;
pub use charters::{CharterPaths, CharterSource};
pub use checkpoints::RawCheckpoints;
pub use deployment::{Deployment, PlaneDeployment, TlsFiles};
pub use error::ConfigError;
pub use export::RawExportSink;
pub use otel::RawOtel;
use parse::{addr, connections, duration, pick};

/// Default agent plane address.
pub const DEFAULT_AGENT_LISTEN: &str = "127.0.0.1:8700";
/// Default operator plane address.
pub const DEFAULT_OPERATOR_LISTEN: &str = "127.0.0.1:8701";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "warden-data";

/// The largest config file read, in bytes (a config file is a few kilobytes; the bound keeps a
/// device or an endless file from being read into memory).
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// Default largest request body.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// The bounds on the two listeners (see [`crate::listener`] for what each one cuts, and what
/// it never cuts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections the agent plane holds at once; more are closed at once.
    pub agent_max_connections: usize,
    /// Most connections the operator plane holds at once; more are closed at once.
    pub operator_max_connections: usize,
    /// A connection must send a complete request head within this (a new one, and a kept-alive
    /// one between requests), else it is closed.
    pub header_timeout: Duration,
    /// A request body must arrive within this of its head.
    pub body_timeout: Duration,
    /// The operator plane's routes and the agent plane's short ones answer within this.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            agent_max_connections: 1024,
            operator_max_connections: 256,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Settings as given (by flags or the config file); every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Agent plane listen address (`host:port`).
    pub agent_listen: Option<String>,
    /// Operator plane listen address (`host:port`).
    pub operator_listen: Option<String>,
    /// Data directory (ledger, state).
    pub data_dir: Option<PathBuf>,
    /// Charter file or directory, or a list of them (one per agent).
    pub charter: Option<CharterPaths>,
    /// A charter set directory: every subdirectory holds one agent's charter.
    pub charters: Option<PathBuf>,
    /// A shadow charter (file or directory): every action the live charter decides is
    /// decided under it too, recorded (`shadow_decided`) and counted; it enforces nothing.
    pub shadow_charter: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: Option<u64>,
    /// How long shutdown waits for in-flight requests (`10s`).
    pub shutdown_grace: Option<String>,
    /// How long a call to an upstream server may take (`60s`).
    pub upstream_timeout: Option<String>,
    /// Largest ledger file, in bytes; past it every action is refused (fail closed).
    pub ledger_max_bytes: Option<u64>,
    /// Where to POST a notification for each new approval request.
    pub approval_webhook_url: Option<String>,
    /// `json` or `slack`.
    pub approval_webhook_format: Option<String>,
    /// The operator plane's URL as approvers reach it (in signed approval links).
    pub public_url: Option<String>,
    /// How often a waiting MCP call gets a progress notification (`10s`).
    pub approval_progress_interval: Option<String>,
    /// How long after a decide-API action is allowed its result may be reported before it is
    /// recorded as `unknown` (`15m`).
    pub result_deadline: Option<String>,
    /// Most connections the agent plane holds at once (`1024`).
    pub agent_max_connections: Option<u64>,
    /// Most connections the operator plane holds at once (`256`).
    pub operator_max_connections: Option<u64>,
    /// Request head (and keep-alive idle) timeout (`30s`).
    pub header_timeout: Option<String>,
    /// Request body timeout (`30s`).
    pub body_timeout: Option<String>,
    /// Request timeout of the short routes (`30s`).
    pub request_timeout: Option<String>,
    /// Largest arguments, or result content, one record captures, in bytes.
    pub capture_max_record_bytes: Option<u64>,
    /// Largest total one session may have captured (arguments, results, model calls), in
    /// bytes; past it the session's calls are refused.
    pub capture_max_session_bytes: Option<u64>,
    /// Host names the agent plane answers to, besides the loopback names.
    pub agent_allowed_hosts: Option<Vec<String>>,
    /// Host names the operator plane answers to, besides the loopback names.
    pub operator_allowed_hosts: Option<Vec<String>>,
    /// The agent plane's TLS certificate chain (PEM).
    pub agent_tls_cert: Option<PathBuf>,
    /// The agent plane's TLS private key (PEM).
    pub agent_tls_key: Option<PathBuf>,
    /// The operator plane's TLS certificate chain (PEM).
    pub operator_tls_cert: Option<PathBuf>,
    /// The operator plane's TLS private key (PEM).
    pub operator_tls_key: Option<PathBuf>,
    /// The `[otel]` section (file only): OpenTelemetry export.
    pub otel: Option<RawOtel>,
    /// The `[checkpoints]` section (file only): signed checkpoints of the ledger.
    pub checkpoints: Option<RawCheckpoints>,
    /// The `[[export]]` sections (file only): where the ledger's records are copied.
    #[serde(default)]
    pub export: Vec<RawExportSink>,
    /// `sqlite` (the default) or a PostgreSQL URL shared by a fleet (see [`store`]).
    pub store: Option<String>,
    /// This instance's identity in a fleet.
    pub instance: Option<String>,
    /// The most PostgreSQL connections this instance opens.
    pub store_max_connections: Option<u64>,
    /// How long taking a PostgreSQL connection may wait (`5s`).
    pub store_acquire_timeout: Option<String>,
    /// The server-side limit on one statement (`10s`).
    pub store_statement_timeout: Option<String>,
}

/// Where environment variables come from.
pub trait ConfigSource {
    /// The variable's value, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl ConfigSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl ConfigSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// The resolved configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Agent plane address.
    pub agent_listen: SocketAddr,
    /// Operator plane address.
    pub operator_listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where the charters come from (one per agent).
    pub charters: CharterSource,
    /// The shadow charter's path, if any (see `crate::governor::shadow`).
    pub shadow_charter: Option<PathBuf>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Drain deadline at shutdown.
    pub shutdown_grace: Duration,
    /// Upstream call timeout.
    pub upstream_timeout: Duration,
    /// Ledger size cap, if any.
    pub ledger_max_bytes: Option<u64>,
    /// The approval webhook, if any.
    pub approval_webhook: Option<Webhook>,
    /// The operator plane's URL as approvers reach it, without a trailing slash.
    pub public_url: String,
    /// Progress notification interval for calls waiting for approval.
    pub approval_progress_interval: Duration,
    /// How long after a decide-API action is allowed its result may be reported; past it the
    /// result is recorded as `unknown` (a late report is still recorded, after it).
    pub result_deadline: Duration,
    /// What one record and one session may capture (see `warden_session::CaptureQuota`).
    pub capture: CaptureLimits,
    /// Where provider keys (the charter's `api_key_env` variables) are read from: `None` for
    /// the process environment (always, from the command line); a map in tests.
    pub provider_keys: Option<HashMap<String, String>>,
    /// Connection caps and timeouts of the listeners.
    pub limits: Limits,
    /// Host names and TLS of each plane.
    pub deployment: Deployment,
    /// OpenTelemetry export, when on (see [`otel`]).
    pub otel: Option<warden_otel::OtelConfig>,
    /// Signed checkpoints, when a key is configured (see [`checkpoints`]).
    pub checkpoints: Option<checkpoints::CheckpointConfig>,
    /// The export sinks (see [`export`]); empty: no export.
    pub exports: Vec<export::ExportSink>,
    /// Where state and ledger live, and this instance's identity (see [`store`]).
    pub store: store::StoreSettings,
}

/// Where and how new approval requests are announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL (http or https).
    pub url: url::Url,
    /// `true` for a Slack-compatible body (`text` + `blocks`), `false` for warden's JSON.
    pub slack: bool,
}

impl Config {
    /// Reads the config file named by the flags or the environment (if any), then resolves
    /// every setting by precedence.
    pub fn resolve(
        flags: &RawConfig,
        config_file: Option<&Path>,
        env: &dyn ConfigSource,
    ) -> Result<Config, ConfigError> {
        let file_path = config_file
            .map(Path::to_path_buf)
            .or_else(|| env.var("WARDEN_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            None => RawConfig::default(),
            Some(path) => {
                let text = warden_core::small_file::read_text(path, MAX_CONFIG_FILE_BYTES)
                    .map_err(|source| ConfigError::Read {
                        path: path.clone(),
                        source,
                    })?;
                toml::from_str(&text).map_err(|e| {
                    let at = e.span().map(|span| {
                        let before = text.get(..span.start).unwrap_or_default();
                        let line = before.matches('\n').count() + 1;
                        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                        format!("line {line}, column {column}: ")
                    });
                    ConfigError::Parse {
                        path: path.clone(),
                        message: format!("{}{}", at.unwrap_or_default(), e.message()),
                    }
                })?
            }
        };
        let agent_listen = addr(
            "agent_listen",
            pick(
                &flags.agent_listen,
                env.var("WARDEN_AGENT_LISTEN"),
                &file.agent_listen,
            ),
            DEFAULT_AGENT_LISTEN,
        )?;
        let operator_listen = addr(
            "operator_listen",
            pick(
                &flags.operator_listen,
                env.var("WARDEN_OPERATOR_LISTEN"),
                &file.operator_listen,
            ),
            DEFAULT_OPERATOR_LISTEN,
        )?;
        if agent_listen == operator_listen {
            return Err(ConfigError::Invalid {
                setting: "operator_listen",
                origin: "resolved settings",
                value: operator_listen.to_string(),
                reason: "the agent and operator planes need separate listeners".to_owned(),
            });
        }
        let data_dir = pick(
            &flags.data_dir,
            env.var("WARDEN_DATA").map(PathBuf::from),
            &file.data_dir,
        )
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), |(v, _)| v);
        // The first layer (flags, environment, file) that names charters gives them all.
        let env_charter = env
            .var("WARDEN_CHARTER")
            .map(|v| CharterPaths::One(v.into()));
        let env_charters = env.var("WARDEN_CHARTERS").map(PathBuf::from);
        let charters = if flags.charter.is_some() || flags.charters.is_some() {
            charters::source(
                flags.charter.clone().map(|v| (v, "flag")),
                flags.charters.clone().map(|v| (v, "flag")),
            )
        } else if env_charter.is_some() || env_charters.is_some() {
            charters::source(
                env_charter.map(|v| (v, "environment")),
                env_charters.map(|v| (v, "environment")),
            )
        } else {
            charters::source(
                file.charter.clone().map(|v| (v, "config file")),
                file.charters.clone().map(|v| (v, "config file")),
            )
        }?;
        let shadow_charter = pick(
            &flags.shadow_charter,
            env.var("WARDEN_SHADOW_CHARTER").map(PathBuf::from),
            &file.shadow_charter,
        )
        .map(|(v, _)| v);
        let max_body_bytes = match pick(
            &flags.max_body_bytes.map(|v| v.to_string()),
            env.var("WARDEN_MAX_BODY_BYTES"),
            &file.max_body_bytes.map(|v| v.to_string()),
        ) {
            None => DEFAULT_MAX_BODY_BYTES,
            Some((v, origin)) => {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1024)
                    .ok_or(ConfigError::Invalid {
                        setting: "max_body_bytes",
                        origin,
                        value: v,
                        reason: "a whole number of bytes, at least 1024".to_owned(),
                    })?
            }
        };
        let ledger_max_bytes = match pick(
            &flags.ledger_max_bytes.map(|v| v.to_string()),
            env.var("WARDEN_LEDGER_MAX_BYTES"),
            &file.ledger_max_bytes.map(|v| v.to_string()),
        ) {
            None => None,
            Some((v, origin)) => Some(v.parse::<u64>().ok().filter(|n| *n >= 64 * 1024).ok_or(
                ConfigError::Invalid {
                    setting: "ledger_max_bytes",
                    origin,
                    value: v,
                    reason: "a whole number of bytes, at least 65536".to_owned(),
                },
            )?),
        };
        let approval_webhook = match pick(
            &flags.approval_webhook_url,
            env.var("WARDEN_APPROVAL_WEBHOOK_URL"),
            &file.approval_webhook_url,
        ) {
            None => None,
            Some((v, origin)) => {
                let url = url::Url::parse(&v)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or(ConfigError::Invalid {
                        setting: "approval_webhook_url",
                        origin,
                        value: v,
                        reason: "an absolute http or https URL".to_owned(),
                    })?;
                let slack = match pick(
                    &flags.approval_webhook_format,
                    env.var("WARDEN_APPROVAL_WEBHOOK_FORMAT"),
                    &file.approval_webhook_format,
                ) {
                    None => false,
                    Some((f, _)) if f == "json" => false,
                    Some((f, _)) if f == "slack" => true,
                    Some((f, origin)) => {
                        return Err(ConfigError::Invalid {
                            setting: "approval_webhook_format",
                            origin,
                            value: f,
                            reason: "`json` or `slack`".to_owned(),
                        });
                    }
                };
                Some(Webhook { url, slack })
            }
        };
        let public_url = match pick(
            &flags.public_url,
            env.var("WARDEN_PUBLIC_URL"),
            &file.public_url,
        ) {
            None => format!("http://{operator_listen}"),
            Some((v, origin)) => {
                url::Url::parse(&v)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or(ConfigError::Invalid {
                        setting: "public_url",
                        origin,
                        value: v.clone(),
                        reason: "an absolute http or https URL".to_owned(),
                    })?;
                v.trim_end_matches('/').to_owned()
            }
        };
        let approval_progress_interval = duration(
            "approval_progress_interval",
            pick(
                &flags.approval_progress_interval,
                env.var("WARDEN_APPROVAL_PROGRESS_INTERVAL"),
                &file.approval_progress_interval,
            ),
            Duration::from_secs(10),
        )?;
        let result_deadline = duration(
            "result_deadline",
            pick(
                &flags.result_deadline,
                env.var("WARDEN_RESULT_DEADLINE"),
                &file.result_deadline,
            ),
            Duration::from_secs(15 * 60),
        )?;
        let defaults = Limits::default();
        let limits = Limits {
            agent_max_connections: connections(
                "agent_max_connections",
                pick(
                    &flags.agent_max_connections.map(|v| v.to_string()),
                    env.var("WARDEN_AGENT_MAX_CONNECTIONS"),
                    &file.agent_max_connections.map(|v| v.to_string()),
                ),
                defaults.agent_max_connections,
            )?,
            operator_max_connections: connections(
                "operator_max_connections",
                pick(
                    &flags.operator_max_connections.map(|v| v.to_string()),
                    env.var("WARDEN_OPERATOR_MAX_CONNECTIONS"),
                    &file.operator_max_connections.map(|v| v.to_string()),
                ),
                defaults.operator_max_connections,
            )?,
            header_timeout: duration(
                "header_timeout",
                pick(
                    &flags.header_timeout,
                    env.var("WARDEN_HEADER_TIMEOUT"),
                    &file.header_timeout,
                ),
                defaults.header_timeout,
            )?,
            body_timeout: duration(
                "body_timeout",
                pick(
                    &flags.body_timeout,
                    env.var("WARDEN_BODY_TIMEOUT"),
                    &file.body_timeout,
                ),
                defaults.body_timeout,
            )?,
            request_timeout: duration(
                "request_timeout",
                pick(
                    &flags.request_timeout,
                    env.var("WARDEN_REQUEST_TIMEOUT"),
                    &file.request_timeout,
                ),
                defaults.request_timeout,
            )?,
        };
        let capture_bytes = |setting: &'static str,
                             flag: Option<u64>,
                             var: &str,
                             file: Option<u64>,
                             default: u64|
         -> Result<u64, ConfigError> {
            match pick(
                &flag.map(|v| v.to_string()),
                env.var(var),
                &file.map(|v| v.to_string()),
            ) {
                None => Ok(default),
                Some((v, origin)) => {
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| *n >= 1024)
                        .ok_or(ConfigError::Invalid {
                            setting,
                            origin,
                            value: v,
                            reason: "a whole number of bytes, at least 1024".to_owned(),
                        })
                }
            }
        };
        let capture = CaptureLimits {
            max_record_bytes: capture_bytes(
                "capture_max_record_bytes",
                flags.capture_max_record_bytes,
                "WARDEN_CAPTURE_MAX_RECORD_BYTES",
                file.capture_max_record_bytes,
                warden_session::capture_quota::DEFAULT_MAX_RECORD_BYTES,
            )?,
            max_session_bytes: capture_bytes(
                "capture_max_session_bytes",
                flags.capture_max_session_bytes,
                "WARDEN_CAPTURE_MAX_SESSION_BYTES",
                file.capture_max_session_bytes,
                warden_session::capture_quota::DEFAULT_MAX_SESSION_BYTES,
            )?,
        };
        Ok(Config {
            deployment: deployment::resolve(flags, &file, env)?,
            otel: otel::resolve(file.otel.as_ref(), env)?,
            checkpoints: checkpoints::resolve(file.checkpoints.as_ref(), env)?,
            exports: export::resolve(&file.export, env)?,
            store: store::resolve(flags, &file, env)?,
            limits,
            provider_keys: None,
            result_deadline,
            capture,
            approval_webhook,
            public_url,
            approval_progress_interval,
            ledger_max_bytes,
            agent_listen,
            operator_listen,
            data_dir,
            charters,
            shadow_charter,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            shutdown_grace: duration(
                "shutdown_grace",
                pick(
                    &flags.shutdown_grace,
                    env.var("WARDEN_SHUTDOWN_GRACE"),
                    &file.shutdown_grace,
                ),
                Duration::from_secs(10),
            )?,
            upstream_timeout: duration(
                "upstream_timeout",
                pick(
                    &flags.upstream_timeout,
                    env.var("WARDEN_UPSTREAM_TIMEOUT"),
                    &file.upstream_timeout,
                ),
                Duration::from_secs(60),
            )?,
        })
    }
}

#[cfg(test)]
mod tests;
