//! `warden session open|list|show|revoke|instruct`: sessions, through the operator plane.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::EXIT_USAGE;

/// Where the operator plane is and how to authenticate to it.
#[derive(Debug, Args, Clone)]
pub struct OperatorClient {
    /// Operator plane URL. Env `WARDEN_OPERATOR_URL`; default `http://127.0.0.1:8701`.
    #[arg(long, global = true)]
    pub operator_url: Option<String>,
    /// Operator token. Env `WARDEN_OPERATOR_TOKEN`; default: the `operator.token` file in the
    /// data directory.
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Data directory, to find `operator.token`. Env `WARDEN_DATA`; default `./warden-data`.
    #[arg(long = "data", global = true)]
    pub data_dir: Option<PathBuf>,
}

/// `warden session …`.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SessionCommand,
    /// The operator plane.
    #[command(flatten)]
    pub client: OperatorClient,
}

/// Session commands.
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Open a session and print its token.
    Open {
        /// The agent (the charter's identity id).
        #[arg(long)]
        agent: String,
        /// The principal the agent acts for.
        #[arg(long)]
        user: String,
        /// The task.
        #[arg(long)]
        task: Option<String>,
        /// Lifetime (`30m`, `8h`); default `1h`.
        #[arg(long)]
        ttl: Option<String>,
        /// Print the whole response as JSON instead of the token alone.
        #[arg(long)]
        json: bool,
    },
    /// List sessions (JSON).
    List,
    /// Show one session (JSON), with its trusted text and the sources of each piece.
    Show {
        /// The session id.
        id: String,
    },
    /// Revoke a session.
    Revoke {
        /// The session id.
        id: String,
    },
    /// Add an instruction, in the principal's own words, to a session's trusted text (as
    /// trusted as its task; recorded before it is in force). Admin credentials only.
    Instruct {
        /// The session id.
        id: String,
        /// The instruction (at most 16 KiB).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        text: Option<String>,
        /// Read the instruction from this file instead.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// The longest instruction the operator plane accepts, in bytes.
const MAX_INSTRUCTION_BYTES: u64 = 16 * 1024;

/// The instruction's text: given, or read (bounded) from `file`.
fn instruction_text(text: Option<&String>, file: Option<&PathBuf>) -> Result<String, String> {
    match (text, file) {
        (Some(t), _) => Ok(t.clone()),
        (None, Some(path)) => warden_core::small_file::read_text(path, MAX_INSTRUCTION_BYTES)
            .map_err(|e| format!("cannot read the instruction from `{}`: {e}", path.display())),
        (None, None) => Err("give the instruction's text, or `--file`".to_owned()),
    }
}

impl OperatorClient {
    fn url(&self) -> String {
        self.operator_url
            .clone()
            .or_else(|| std::env::var("WARDEN_OPERATOR_URL").ok())
            .unwrap_or_else(|| {
                format!("http://{}", warden_gateway::config::DEFAULT_OPERATOR_LISTEN)
            })
            .trim_end_matches('/')
            .to_owned()
    }

    fn token(&self) -> Result<String, String> {
        if let Some(t) = self
            .token
            .clone()
            .or_else(|| std::env::var("WARDEN_OPERATOR_TOKEN").ok())
        {
            return Ok(t);
        }
        let dir = self
            .data_dir
            .clone()
            .or_else(|| std::env::var("WARDEN_DATA").ok().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(warden_gateway::config::DEFAULT_DATA_DIR));
        let path = dir.join(warden_gateway::OPERATOR_TOKEN_FILE);
        // A token is a few dozen characters; the bound keeps a device or FIFO from hanging the CLI.
        warden_core::small_file::read_text(&path, 4096).map(|t| t.trim().to_owned()).map_err(|e| {
            format!(
                "no operator token: pass `--token`, set `WARDEN_OPERATOR_TOKEN`, or let `warden serve` write `{}` ({e})",
                path.display()
            )
        })
    }

    /// Sends a request to the operator plane; returns the JSON body of a 2xx answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let (status, body) = self.send(method, path, body).await?;
        if status.is_success() {
            Ok(body)
        } else {
            let message = body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map_or_else(|| body.to_string(), str::to_owned);
            Err(format!("{status}: {message}"))
        }
    }

    /// Sends a request to the operator plane; returns the status and the JSON answer (`null`
    /// when it is not JSON), whatever the status.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(reqwest::StatusCode, Value), String> {
        let token = self.token()?;
        let url = format!("{}{path}", self.url());
        let mut req = reqwest::Client::new()
            .request(method, &url)
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("cannot reach the operator plane at {url}: {e}"))?;
        let status = resp.status();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }
}

/// Runs `warden session …`.
pub fn execute(args: &SessionArgs) -> ExitCode {
    let client = args.client.clone();
    crate::runtime(async move {
        let result = match &args.command {
            SessionCommand::Open {
                agent,
                user,
                task,
                ttl,
                json: as_json,
            } => client
                .call(
                    reqwest::Method::POST,
                    "/v1/sessions",
                    Some(json!({ "agent": agent, "user": user, "task": task, "ttl": ttl })),
                )
                .await
                .map(|v| {
                    if *as_json {
                        format!("{v:#}")
                    } else {
                        v.get("token")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    }
                }),
            SessionCommand::List => client
                .call(reqwest::Method::GET, "/v1/sessions", None)
                .await
                .map(|v| format!("{v:#}")),
            SessionCommand::Show { id } => client
                .call(reqwest::Method::GET, &format!("/v1/sessions/{id}"), None)
                .await
                .map(|v| format!("{v:#}")),
            SessionCommand::Instruct { id, text, file } => {
                match instruction_text(text.as_ref(), file.as_ref()) {
                    Ok(text) => client
                        .call(
                            reqwest::Method::POST,
                            &format!("/v1/sessions/{id}/instructions"),
                            Some(json!({ "text": text })),
                        )
                        .await
                        .map(|v| {
                            let seq = v
                                .get("seq")
                                .map_or_else(String::new, |s| format!(" (ledger #{s})"));
                            format!("instruction added to session {id}{seq}")
                        }),
                    Err(e) => Err(e),
                }
            }
            SessionCommand::Revoke { id } => client
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/sessions/{id}/revoke"),
                    None,
                )
                .await
                .map(|_| format!("session {id} revoked")),
        };
        match result {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        }
    })
}
