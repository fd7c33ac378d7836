//! `warden observe`: the independent observer, as a process of its own (the work is
//! [`warden_observer::run`]). It reaches the gateway only through the operator plane, with an
//! `observer` credential read from a file that only its owner may read (never from a flag, an
//! environment variable or the config file, so it is never in a process listing or a log).
//!
//! Settings come from the flags, then from the TOML file of `--config` (the same names, in
//! snake_case; relative paths are relative to the file), then the defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use warden_core::SystemClock;
use warden_observer::alerts::{AlertFormat, AlertTarget};
use warden_observer::run::{DEFAULT_CHECKPOINT_INTERVAL, DEFAULT_SWEEP_INTERVAL};
use warden_observer::stream::DEFAULT_MAX_LINE_BYTES;
use warden_observer::{GatewayClient, ObserverConfig, Token};

use crate::EXIT_USAGE;

#[cfg(test)]
mod tests;

/// The operator plane the observer reads when none is given.
pub const DEFAULT_GATEWAY: &str = "http://127.0.0.1:8701";
/// The observer's data directory when none is given.
pub const DEFAULT_DATA_DIR: &str = "warden-observer-data";
/// A token file is a few dozen bytes; anything much larger is not one.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;
/// The config file is small.
const MAX_CONFIG_BYTES: u64 = 64 * 1024;

/// Arguments of `warden observe`.
#[derive(Debug, Args, Default, Clone)]
pub struct ObserveArgs {
    /// The gateway's operator plane (`http://127.0.0.1:8701`).
    #[arg(long)]
    pub gateway: Option<String>,
    /// A file holding the observer's operator credential (role `observer`); it must be the
    /// owner's only (mode 0600).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The charter the gateway runs (file or directory): its `observer` section. Repeated
    /// for a gateway that governs several agents: each session is observed under its own
    /// agent's charter.
    #[arg(long)]
    pub charter: Vec<PathBuf>,
    /// The gateway's set directory (every subdirectory one agent's charter), instead of
    /// `--charter`.
    #[arg(long)]
    pub charters: Option<PathBuf>,
    /// The observer's own data directory (default `./warden-observer-data`).
    #[arg(long = "data")]
    pub data_dir: Option<PathBuf>,
    /// Serve the observer's metrics at `http://ADDR/metrics` (off by default).
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// A file holding the token `/metrics` callers must present (default: the credential of
    /// `--token-file`); the owner's only.
    #[arg(long)]
    pub metrics_token_file: Option<PathBuf>,
    /// POST every alert and intervention here too.
    #[arg(long)]
    pub alert_webhook: Option<String>,
    /// The alert webhook's body: `json` (default) or `slack`.
    #[arg(long)]
    pub alert_format: Option<String>,
    /// Heartbeat interval (default: a third of the charter's `observer.heartbeat_deadline`).
    #[arg(long)]
    pub heartbeat_interval: Option<String>,
    /// How often the whole ledger chain is read again to find records changed after they
    /// were read (`10m`; `off` or `0s` turns it off).
    #[arg(long)]
    pub sweep_interval: Option<String>,
    /// How often the checkpoint (last record read, engine state) is saved (`5s`).
    #[arg(long)]
    pub checkpoint_interval: Option<String>,
    /// A TOML file with any of these settings.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The TOML config file: the flags' names in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObserveConfig {
    /// `--gateway`.
    gateway: Option<String>,
    /// `--token-file` (relative to the config file).
    token_file: Option<PathBuf>,
    /// `--charter` (relative to the config file): one path or a list.
    charter: Option<CharterPaths>,
    /// `--charters` (relative to the config file).
    charters: Option<PathBuf>,
    /// `--data` (relative to the config file).
    data: Option<PathBuf>,
    /// `--metrics-listen`.
    metrics_listen: Option<String>,
    /// `--metrics-token-file` (relative to the config file).
    metrics_token_file: Option<PathBuf>,
    /// `--alert-webhook`.
    alert_webhook: Option<String>,
    /// `--alert-format`.
    alert_format: Option<String>,
    /// `--heartbeat-interval`.
    heartbeat_interval: Option<String>,
    /// `--sweep-interval`.
    sweep_interval: Option<String>,
    /// `--checkpoint-interval`.
    checkpoint_interval: Option<String>,
}

/// `charter` in the config file: one path or a list (as the gateway's config has it).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CharterPaths {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

/// The settings, resolved (files not read yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The operator plane's URL.
    pub gateway: String,
    /// The credential's file.
    pub token_file: PathBuf,
    /// The charter (the first agent's, for a set).
    pub charter: PathBuf,
    /// The other charters of the gateway's set (empty for one charter).
    pub others: Vec<PathBuf>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The metrics address.
    pub metrics_listen: Option<SocketAddr>,
    /// The metrics token's file.
    pub metrics_token_file: Option<PathBuf>,
    /// The alert webhook.
    pub alert_webhook: Option<String>,
    /// Its format.
    pub alert_format: AlertFormat,
    /// The heartbeat interval, if set.
    pub heartbeat_interval: Option<Duration>,
    /// The sweep interval (`None`: off).
    pub sweep_interval: Option<Duration>,
    /// The checkpoint interval.
    pub checkpoint_interval: Duration,
}

/// The charter paths: the flags' (`--charter` repeated, or `--charters DIR`), else the config
/// file's; both kinds at one level is an error, as for the gateway.
fn charter_paths(
    args: &ObserveArgs,
    charter: Option<CharterPaths>,
    charters: Option<PathBuf>,
    base: &Path,
) -> Result<(PathBuf, Vec<PathBuf>), String> {
    let both = "give `--charter` (repeated for a set) or `--charters` (a set directory), not both";
    let paths = match (args.charter.is_empty(), &args.charters) {
        (false, Some(_)) => return Err(both.to_owned()),
        (false, None) => args.charter.clone(),
        (true, Some(dir)) => set_paths(dir)?,
        (true, None) => match (charter, charters) {
            (Some(_), Some(_)) => return Err(both.to_owned()),
            (Some(CharterPaths::One(p)), None) => vec![base.join(p)],
            (Some(CharterPaths::Many(ps)), None) => ps.into_iter().map(|p| base.join(p)).collect(),
            (None, Some(dir)) => set_paths(&base.join(dir))?,
            (None, None) => Vec::new(),
        },
    };
    let mut paths = paths.into_iter();
    let first = paths
        .next()
        .ok_or("`--charter` is required: the charter the gateway runs (repeat it, or give `--charters DIR`, for a set)")?;
    Ok((first, paths.collect()))
}

/// The charters of a set directory.
fn set_paths(dir: &Path) -> Result<Vec<PathBuf>, String> {
    warden_charter::set_directory(dir)
        .map_err(|d| format!("the set directory `{}` cannot be read: {d}", dir.display()))
}

fn duration(name: &str, text: Option<String>) -> Result<Option<Duration>, String> {
    text.map(|t| {
        warden_core::text::parse_duration(&t)
            .ok_or_else(|| format!("`{name}` must be a duration such as `10s` or `5m`, not `{t}`"))
    })
    .transpose()
}

/// Flags over the config file over defaults.
pub fn settings(args: &ObserveArgs) -> Result<Settings, String> {
    let (raw, base) = match &args.config {
        Some(path) => {
            let text = warden_core::small_file::read_text(path, MAX_CONFIG_BYTES)
                .map_err(|e| format!("the config file `{}` {e}", path.display()))?;
            let raw: RawObserveConfig =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (raw, base)
        }
        None => (RawObserveConfig::default(), PathBuf::new()),
    };
    let rel = |p: Option<PathBuf>| p.map(|p| base.join(p));
    let gateway = args
        .gateway
        .clone()
        .or(raw.gateway)
        .unwrap_or_else(|| DEFAULT_GATEWAY.to_owned());
    if !(gateway.starts_with("http://") || gateway.starts_with("https://")) {
        return Err(format!(
            "`--gateway` must be an http:// or https:// URL, not `{gateway}`"
        ));
    }
    let token_file = args
        .token_file
        .clone()
        .or_else(|| rel(raw.token_file))
        .ok_or("`--token-file` is required: a file holding the observer's credential (`warden operator create-token --name observer --observer`)")?;
    let (charter, others) = charter_paths(args, raw.charter, raw.charters, &base)?;
    let metrics_listen = args
        .metrics_listen
        .clone()
        .or(raw.metrics_listen)
        .map(|a| {
            a.parse::<SocketAddr>().map_err(|_| {
                format!("`--metrics-listen` must be an address such as `127.0.0.1:8702`, not `{a}`")
            })
        })
        .transpose()?;
    let alert_format = match args.alert_format.clone().or(raw.alert_format) {
        None => AlertFormat::Json,
        Some(f) => AlertFormat::parse(&f)
            .ok_or_else(|| format!("`--alert-format` must be `json` or `slack`, not `{f}`"))?,
    };
    let alert_webhook = args.alert_webhook.clone().or(raw.alert_webhook);
    if let Some(url) = &alert_webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err("`--alert-webhook` must be an http:// or https:// URL".to_owned());
    }
    let sweep = match args.sweep_interval.clone().or(raw.sweep_interval) {
        Some(off) if matches!(off.as_str(), "0" | "0s" | "off") => Duration::ZERO,
        text => duration("--sweep-interval", text)?.unwrap_or(DEFAULT_SWEEP_INTERVAL),
    };
    Ok(Settings {
        gateway,
        token_file,
        charter,
        others,
        data_dir: args
            .data_dir
            .clone()
            .or_else(|| rel(raw.data))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        metrics_listen,
        metrics_token_file: args
            .metrics_token_file
            .clone()
            .or_else(|| rel(raw.metrics_token_file)),
        alert_webhook,
        alert_format,
        heartbeat_interval: duration(
            "--heartbeat-interval",
            args.heartbeat_interval.clone().or(raw.heartbeat_interval),
        )?,
        sweep_interval: Some(sweep).filter(|d| !d.is_zero()),
        checkpoint_interval: duration(
            "--checkpoint-interval",
            args.checkpoint_interval.clone().or(raw.checkpoint_interval),
        )?
        .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL),
    })
}

/// Reads a credential from `path`: a regular file of the owner's only (no bit for group or
/// others), not empty. The value is never put in an error.
pub fn read_token(path: &Path) -> Result<Token, String> {
    let mode = warden_core::private::mode_of(path)
        .map_err(|e| format!("the token file `{}` cannot be read: {e}", path.display()))?;
    if mode & warden_core::private::SHARED_BITS != 0 {
        return Err(format!(
            "the token file `{}` is mode {mode:04o}: it must be the owner's only (`chmod 600 {}`)",
            path.display(),
            path.display()
        ));
    }
    let text = warden_core::small_file::read_text(path, MAX_TOKEN_FILE_BYTES)
        .map_err(|e| format!("the token file `{}` {e}", path.display()))?;
    let token = Token::new(&text);
    if token.expose().is_empty() {
        return Err(format!("the token file `{}` is empty", path.display()));
    }
    Ok(token)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// Runs `warden observe`.
pub fn execute(args: &ObserveArgs) -> ExitCode {
    crate::init_tracing();
    let usage = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    };
    let settings = match settings(args) {
        Ok(s) => s,
        Err(e) => return usage(e),
    };
    let token = match read_token(&settings.token_file) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let metrics_token = match &settings.metrics_token_file {
        Some(path) => match read_token(path) {
            Ok(t) => t,
            Err(e) => return usage(e),
        },
        None => token.clone(),
    };
    let mut charters = Vec::new();
    for path in std::iter::once(&settings.charter).chain(&settings.others) {
        match warden_charter::load(path) {
            Ok(c) => charters.push((path.clone(), Arc::new(c.charter))),
            Err(d) => {
                eprint!("{d}");
                return usage(format!(
                    "the charter `{}` does not compile; the observer did not start",
                    path.display()
                ));
            }
        }
    }
    let mut charters = charters.into_iter();
    let Some((_, charter)) = charters.next() else {
        return usage("`--charter` is required".to_owned());
    };
    let others: Vec<_> = charters.collect();
    let gateway = match GatewayClient::new(&settings.gateway, token) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::runtime(async move {
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    if let Ok(bound) = l.local_addr() {
                        println!("observer metrics  http://{bound}/metrics");
                    }
                    Some(l)
                }
                Err(e) => {
                    eprintln!("error: cannot listen on `{addr}` for the metrics: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        let config = ObserverConfig {
            gateway,
            charter_path: settings.charter.clone(),
            charter,
            others,
            data_dir: settings.data_dir.clone(),
            metrics_listener,
            metrics_token,
            alert: settings.alert_webhook.clone().map(|url| AlertTarget {
                url,
                format: settings.alert_format,
            }),
            heartbeat_interval: settings.heartbeat_interval,
            checkpoint_interval: settings.checkpoint_interval,
            sweep_interval: settings.sweep_interval,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        };
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let observing = warden_observer::run(config, Arc::new(SystemClock), cancel);
        tokio::pin!(observing);
        let result = tokio::select! {
            r = &mut observing => r,
            () = wait_for_signal() => {
                tracing::info!("Signal received; the observer stops.");
                stop.cancel();
                observing.await
            }
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
