//! `warden control list|set|lift`: controls, through the operator plane (the same client
//! flags as `warden session`).

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::EXIT_USAGE;
use crate::commands::session::OperatorClient;

/// `warden control …`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ControlCommand,
    /// The operator plane.
    #[command(flatten)]
    pub client: OperatorClient,
}

/// What a control does.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Action {
    /// Autonomous and preapproved actions need approval.
    Conservative,
    /// Every action and model call is refused.
    Frozen,
    /// One tool (`--tool`) is refused.
    FreezeTool,
    /// Every action of the sessions in scope is refused (a session scope revokes the session).
    RevokeSession,
    /// Record an alert; nothing is put in force.
    Alert,
}

/// What a control applies to.
#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Scope {
    /// Every session.
    Gateway,
    /// The sessions of one agent (`--target`).
    Agent,
    /// The sessions acting for one principal (`--target`).
    Principal,
    /// One session (`--target`).
    Session,
}

/// Control commands.
#[derive(Debug, Subcommand)]
pub enum ControlCommand {
    /// List the controls in force.
    List {
        /// Include lifted and expired controls and alerts (the newest 1000).
        #[arg(long)]
        all: bool,
        /// Print JSON instead of one line per control.
        #[arg(long)]
        json: bool,
    },
    /// Set a control; prints its id.
    Set {
        /// What it does.
        #[arg(value_enum)]
        action: Action,
        /// What it applies to.
        #[arg(long, value_enum)]
        scope: Scope,
        /// The agent, principal or session id (not for `--scope gateway`).
        #[arg(long)]
        target: Option<String>,
        /// The tool of a `freeze_tool` (`server.tool`).
        #[arg(long)]
        tool: Option<String>,
        /// Why (shown to the agent in every refusal it causes).
        #[arg(long)]
        reason: String,
        /// When it lifts itself (`10m`, `2h`; at most a year).
        #[arg(long)]
        expires: Option<String>,
        /// The ledger sequence numbers that led to it (`12,13`).
        #[arg(long, value_delimiter = ',')]
        evidence: Vec<u64>,
    },
    /// Lift a control (admin only).
    Lift {
        /// The control's id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

fn name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

/// One line for a control: id, action, scope and target, tool, reason.
fn line(c: &Value) -> String {
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let state = if c.get("lifted_at").is_some_and(|v| !v.is_null()) {
        " (lifted)"
    } else {
        ""
    };
    format!(
        "{}  {}{state}  {}:{}  tool={}  by={}  {}",
        s("id"),
        s("action"),
        s("scope"),
        s("target"),
        s("tool"),
        c.pointer("/set_by/name")
            .and_then(Value::as_str)
            .unwrap_or("-"),
        s("reason"),
    )
}

/// The request body of `warden control set`, or why the arguments are wrong.
fn set_body(command: &ControlCommand) -> Result<Value, String> {
    let ControlCommand::Set {
        action,
        scope,
        target,
        tool,
        reason,
        expires,
        evidence,
    } = command
    else {
        return Err("not a `set`".to_owned());
    };
    let expires_in_secs = match expires {
        None => None,
        Some(e) => Some(
            warden_core::text::parse_duration(e)
                .map(|d| d.as_secs())
                .ok_or_else(|| format!("`--expires` `{e}` must be a duration such as `10m`"))?,
        ),
    };
    let mut body = json!({ "action": name(action), "scope": name(scope), "reason": reason });
    if let Some(obj) = body.as_object_mut() {
        if let Some(t) = target {
            obj.insert("target".to_owned(), json!(t));
        }
        if let Some(t) = tool {
            obj.insert("tool".to_owned(), json!(t));
        }
        if let Some(s) = expires_in_secs {
            obj.insert("expires_in_secs".to_owned(), json!(s));
        }
        if !evidence.is_empty() {
            obj.insert("evidence".to_owned(), json!(evidence));
        }
    }
    Ok(body)
}

/// Runs `warden control …`.
pub fn execute(args: &ControlArgs) -> ExitCode {
    let client = args.client.clone();
    crate::runtime(async move {
        let result = match &args.command {
            ControlCommand::List { all, json } => client
                .call(
                    reqwest::Method::GET,
                    if *all {
                        "/v1/controls?all=true"
                    } else {
                        "/v1/controls"
                    },
                    None,
                )
                .await
                .map(|v| {
                    if *json {
                        format!("{v:#}")
                    } else {
                        let controls = v
                            .get("controls")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        if controls.is_empty() {
                            "no controls".to_owned()
                        } else {
                            controls.iter().map(line).collect::<Vec<_>>().join("\n")
                        }
                    }
                }),
            set @ ControlCommand::Set { .. } => match set_body(set) {
                Ok(body) => client
                    .call(reqwest::Method::POST, "/v1/controls", Some(body))
                    .await
                    .map(|v| {
                        v.pointer("/control/id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    }),
                Err(e) => Err(e),
            },
            ControlCommand::Lift { id, reason } => client
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/controls/{id}/lift"),
                    Some(json!({ "reason": reason })),
                )
                .await
                .map(|_| format!("control {id} lifted")),
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
