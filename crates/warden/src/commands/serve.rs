//! `warden serve`: the gateway, on two listeners, until SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use warden_core::SystemClock;
use warden_gateway::StartError;
use warden_gateway::config::{CharterPaths, ProcessEnv};
use warden_gateway::fleet::approval_key::KeyCheckError;
use warden_gateway::{Config, Gateway, RawConfig};

use crate::EXIT_USAGE;

/// Settings shared by `serve` and `up` (flags win over environment and config file).
#[derive(Debug, Args, Default, Clone)]
pub struct GatewayFlags {
    /// Data directory (ledger, state). Env `WARDEN_DATA`; default `./warden-data`.
    #[arg(long = "data")]
    pub data_dir: Option<PathBuf>,
    /// A TOML config file. Env `WARDEN_CONFIG`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Agent plane address. Env `WARDEN_AGENT_LISTEN`; default `127.0.0.1:8700`.
    #[arg(long)]
    pub agent_listen: Option<String>,
    /// Operator plane address. Env `WARDEN_OPERATOR_LISTEN`; default `127.0.0.1:8701`.
    #[arg(long)]
    pub operator_listen: Option<String>,
    /// Largest request body in bytes. Env `WARDEN_MAX_BODY_BYTES`; default 4 MiB.
    #[arg(long)]
    pub max_body_bytes: Option<u64>,
    /// Drain deadline at shutdown (`10s`). Env `WARDEN_SHUTDOWN_GRACE`.
    #[arg(long)]
    pub shutdown_grace: Option<String>,
    /// Upstream call timeout (`60s`). Env `WARDEN_UPSTREAM_TIMEOUT`.
    #[arg(long)]
    pub upstream_timeout: Option<String>,
    /// Largest ledger file in bytes; past it every action is refused. Env
    /// `WARDEN_LEDGER_MAX_BYTES`; default no limit.
    #[arg(long)]
    pub ledger_max_bytes: Option<u64>,
    /// POST each new approval request here (signed approve/deny links inside). Env
    /// `WARDEN_APPROVAL_WEBHOOK_URL`.
    #[arg(long)]
    pub approval_webhook_url: Option<String>,
    /// Webhook body: `json` (default) or `slack`. Env `WARDEN_APPROVAL_WEBHOOK_FORMAT`.
    #[arg(long)]
    pub approval_webhook_format: Option<String>,
    /// The operator plane's URL as approvers reach it, for approval links. Env
    /// `WARDEN_PUBLIC_URL`; default `http://` + the operator plane address.
    #[arg(long)]
    pub public_url: Option<String>,
    /// How often a call waiting for approval gets an MCP progress notification (`10s`). Env
    /// `WARDEN_APPROVAL_PROGRESS_INTERVAL`.
    #[arg(long)]
    pub approval_progress_interval: Option<String>,
    /// How long after a decide-API action is allowed its result may be reported before it is
    /// recorded as `unknown` (default 15m).
    #[arg(long)]
    pub result_deadline: Option<String>,
    /// Most connections the agent plane holds at once (default 1024). Env
    /// `WARDEN_AGENT_MAX_CONNECTIONS`.
    #[arg(long)]
    pub agent_max_connections: Option<u64>,
    /// Most connections the operator plane holds at once (default 256). Env
    /// `WARDEN_OPERATOR_MAX_CONNECTIONS`.
    #[arg(long)]
    pub operator_max_connections: Option<u64>,
    /// A connection must send a request head within this, also between requests (`30s`). Env
    /// `WARDEN_HEADER_TIMEOUT`.
    #[arg(long)]
    pub header_timeout: Option<String>,
    /// A request body must arrive within this (`30s`). Env `WARDEN_BODY_TIMEOUT`.
    #[arg(long)]
    pub body_timeout: Option<String>,
    /// The operator plane and the agent plane's short routes answer within this (`30s`). Env
    /// `WARDEN_REQUEST_TIMEOUT`.
    #[arg(long)]
    pub request_timeout: Option<String>,
    /// Largest arguments, or result content, one ledger record captures, in bytes; larger
    /// arguments are refused, larger content is cut. Env `WARDEN_CAPTURE_MAX_RECORD_BYTES`;
    /// default 1 MiB.
    #[arg(long)]
    pub capture_max_record_bytes: Option<u64>,
    /// Largest total one session may have captured in the ledger (arguments, results, model
    /// calls), in bytes; past it the session's calls are refused. Env
    /// `WARDEN_CAPTURE_MAX_SESSION_BYTES`; default 256 MiB.
    #[arg(long)]
    pub capture_max_session_bytes: Option<u64>,
    /// Host names the agent plane answers to besides loopback, comma-separated
    /// (`warden.example.com,*.agents.example.com`); any other `Host` is refused. Env
    /// `WARDEN_AGENT_ALLOWED_HOSTS`.
    #[arg(long, value_delimiter = ',')]
    pub agent_allowed_hosts: Option<Vec<String>>,
    /// Host names the operator plane answers to besides loopback, comma-separated. Env
    /// `WARDEN_OPERATOR_ALLOWED_HOSTS`.
    #[arg(long, value_delimiter = ',')]
    pub operator_allowed_hosts: Option<Vec<String>>,
    /// The agent plane's TLS certificate chain (PEM); reloaded on SIGHUP. Env
    /// `WARDEN_AGENT_TLS_CERT`.
    #[arg(long)]
    pub agent_tls_cert: Option<PathBuf>,
    /// The agent plane's TLS private key (PEM). Env `WARDEN_AGENT_TLS_KEY`.
    #[arg(long)]
    pub agent_tls_key: Option<PathBuf>,
    /// The operator plane's TLS certificate chain (PEM); reloaded on SIGHUP. Env
    /// `WARDEN_OPERATOR_TLS_CERT`.
    #[arg(long)]
    pub operator_tls_cert: Option<PathBuf>,
    /// The operator plane's TLS private key (PEM). Env `WARDEN_OPERATOR_TLS_KEY`.
    #[arg(long)]
    pub operator_tls_key: Option<PathBuf>,
    /// A shadow charter (file or directory): every action is decided under it too, recorded
    /// as `shadow_decided` and counted, and nothing it decides is enforced (summarise with
    /// `warden replay --shadow`). Env `WARDEN_SHADOW_CHARTER`.
    #[arg(long)]
    pub shadow_charter: Option<PathBuf>,
    /// Where state and ledger live: `sqlite` (the default, in the data directory) or a
    /// PostgreSQL URL shared by every instance of a fleet. A URL with a password is better
    /// given by `WARDEN_STORE` or the config file (the command line is visible to other
    /// users). Env `WARDEN_STORE`.
    #[arg(long)]
    pub store: Option<String>,
    /// This instance's identity in a fleet (1 to 64 of `A-Z a-z 0-9 . _ -`); by default one
    /// is made once and kept in the data directory. Env `WARDEN_INSTANCE`.
    #[arg(long)]
    pub instance: Option<String>,
}

/// Arguments of `warden serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The charter (file or directory); repeat it for several agents, one charter each.
    /// Env `WARDEN_CHARTER`.
    #[arg(long)]
    pub charter: Vec<PathBuf>,
    /// A charter set directory: every subdirectory holds one agent's charter (YAML files
    /// directly in it are shared documents the charters include). Env `WARDEN_CHARTERS`.
    #[arg(long, conflicts_with = "charter")]
    pub charters: Option<PathBuf>,
    /// Gateway settings.
    #[command(flatten)]
    pub flags: GatewayFlags,
}

impl GatewayFlags {
    /// The flags as a raw config layer, with the charters given (`--charter`, repeatable,
    /// and `--charters`).
    pub fn raw(&self, charters: &ChartersGiven) -> RawConfig {
        let charter = match charters.charter.as_slice() {
            [] => None,
            [one] => Some(CharterPaths::One(one.clone())),
            many => Some(CharterPaths::Many(many.to_vec())),
        };
        RawConfig {
            charters: charters.charters.clone(),
            agent_listen: self.agent_listen.clone(),
            operator_listen: self.operator_listen.clone(),
            data_dir: self.data_dir.clone(),
            charter,
            shadow_charter: self.shadow_charter.clone(),
            max_body_bytes: self.max_body_bytes,
            shutdown_grace: self.shutdown_grace.clone(),
            upstream_timeout: self.upstream_timeout.clone(),
            ledger_max_bytes: self.ledger_max_bytes,
            approval_webhook_url: self.approval_webhook_url.clone(),
            approval_webhook_format: self.approval_webhook_format.clone(),
            public_url: self.public_url.clone(),
            approval_progress_interval: self.approval_progress_interval.clone(),
            result_deadline: self.result_deadline.clone(),
            agent_max_connections: self.agent_max_connections,
            operator_max_connections: self.operator_max_connections,
            header_timeout: self.header_timeout.clone(),
            body_timeout: self.body_timeout.clone(),
            request_timeout: self.request_timeout.clone(),
            capture_max_record_bytes: self.capture_max_record_bytes,
            capture_max_session_bytes: self.capture_max_session_bytes,
            agent_allowed_hosts: self.agent_allowed_hosts.clone(),
            operator_allowed_hosts: self.operator_allowed_hosts.clone(),
            agent_tls_cert: self.agent_tls_cert.clone(),
            agent_tls_key: self.agent_tls_key.clone(),
            operator_tls_cert: self.operator_tls_cert.clone(),
            operator_tls_key: self.operator_tls_key.clone(),
            otel: None,
            checkpoints: None,
            export: Vec::new(),
            store: self.store.clone(),
            instance: self.instance.clone(),
            store_max_connections: None,
            store_acquire_timeout: None,
            store_statement_timeout: None,
        }
    }
}

/// The charters given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ChartersGiven {
    /// `--charter`, in order.
    pub charter: Vec<PathBuf>,
    /// `--charters`.
    pub charters: Option<PathBuf>,
}

/// Resolves the config, or prints why not.
pub fn resolve(flags: &GatewayFlags, charters: &ChartersGiven) -> Result<Config, ExitCode> {
    Config::resolve(&flags.raw(charters), flags.config.as_deref(), &ProcessEnv).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// Starts the gateway, or prints why it did not start.
pub async fn start(config: Config) -> Result<warden_gateway::RunningGateway, ExitCode> {
    match Gateway::start(config, Arc::new(SystemClock)).await {
        Ok(g) => Ok(g),
        Err(StartError::Charter(d)) => {
            eprint!("{d}");
            eprintln!("error: the charter does not compile; nothing was started");
            Err(ExitCode::from(EXIT_USAGE))
        }
        Err(StartError::Shadow(warden_gateway::governor::shadow::ShadowError::Compile(d))) => {
            eprint!("{d}");
            eprintln!(
                "error: the shadow charter (`--shadow-charter`) does not compile; nothing was started"
            );
            Err(ExitCode::from(EXIT_USAGE))
        }
        Err(StartError::Shadow(e)) => {
            eprintln!("error: {e}; nothing was started");
            Err(ExitCode::from(EXIT_USAGE))
        }
        Err(StartError::UnsetVariables(e)) => {
            eprintln!("error: {e}");
            eprintln!("error: a stdio server's environment is incomplete; nothing was started");
            Err(ExitCode::from(EXIT_USAGE))
        }
        Err(StartError::Other(e)) => {
            eprintln!("error: {e:#}");
            // A configuration the operator must fix, as a charter that does not compile.
            if let Some(KeyCheckError::Mismatch(_)) = e.downcast_ref::<KeyCheckError>() {
                return Err(ExitCode::from(EXIT_USAGE));
            }
            Err(ExitCode::FAILURE)
        }
    }
}

/// Runs `warden serve`.
pub fn execute(args: &ServeArgs) -> ExitCode {
    crate::init_tracing();
    let given = ChartersGiven {
        charter: args.charter.clone(),
        charters: args.charters.clone(),
    };
    let config = match resolve(&args.flags, &given) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::runtime(async move {
        // Watched before the gateway starts: a stop asked for as soon as it answers is clean.
        let signals = warden_gateway::shutdown::StopSignals::watch();
        let gateway = match start(config).await {
            Ok(g) => g,
            Err(code) => return code,
        };
        let agent_tls = gateway.tls.agent.is_some();
        let operator_tls = gateway.tls.operator.is_some();
        let scheme = |tls: bool| if tls { "https" } else { "http" };
        println!(
            "agent plane     {}://{}  (MCP at /mcp, decide API at /v1/decide)",
            scheme(agent_tls),
            gateway.agent_addr
        );
        println!(
            "operator plane  {}://{}",
            scheme(operator_tls),
            gateway.operator_addr
        );
        for (plane, addr, tls) in [
            ("agent", gateway.agent_addr, agent_tls),
            ("operator", gateway.operator_addr, operator_tls),
        ] {
            if warden_gateway::tls::exposed_without_tls(addr, tls) {
                println!(
                    "WARNING: the {plane} plane listens on {addr}, beyond loopback, WITHOUT TLS: its tokens and traffic cross the network in clear (set --{plane}-tls-cert and --{plane}-tls-key)"
                );
            }
        }
        if gateway.bootstrap_operator_token.is_some() {
            println!(
                "first operator token written to {}",
                gateway
                    .state
                    .config
                    .data_dir
                    .join(warden_gateway::OPERATOR_TOKEN_FILE)
                    .display()
            );
        }
        gateway.run_until_signal(signals).await;
        ExitCode::SUCCESS
    })
}
