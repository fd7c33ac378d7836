//! `warden operator create-token`: an operator credential made offline, by whoever can write
//! the data directory (the first one is written by `warden serve` to `operator.token`); the
//! gateway records its issue before its first use. `warden operator list-tokens` and
//! `revoke-token` go through the operator plane (an admin's token), which records a
//! revocation before it takes effect. With `--store postgres://…` (or `WARDEN_STORE`) the
//! credential is made in the fleet's shared store and works on every instance.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::EXIT_USAGE;
use crate::commands::session::OperatorClient;
use warden_core::StoreLocation;
use warden_session::{OperatorCredentials, OperatorRole, PoolBounds, StateDb};

/// `warden operator …`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: OperatorCommand,
}

/// Operator commands.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create an operator token and print it (it is stored only as a hash).
    CreateToken {
        /// A name for the token, kept in the state store and the records.
        #[arg(long)]
        name: String,
        /// Make it an approver's credential, tied to this principal of the charter: it may
        /// read and decide approval requests, and nothing else. Without it the token is an
        /// admin's (sessions, tokens; never deciding approvals).
        #[arg(long, conflicts_with = "observer")]
        principal: Option<String>,
        /// Make it the observer's credential: it may read the ledger stream and the metrics,
        /// send the observer's heartbeat and set controls, and nothing else (it never lifts a
        /// control, decides an approval, opens a session or issues a credential).
        #[arg(long)]
        observer: bool,
        /// Data directory. Env `WARDEN_DATA`; default `./warden-data`.
        #[arg(long = "data")]
        data_dir: Option<PathBuf>,
        /// The store: `sqlite` (the data directory's `state.db`) or the fleet's PostgreSQL URL
        /// (the credential then works on every instance). Env `WARDEN_STORE` (prefer it to
        /// the flag: the command line is visible to other users); default `sqlite`.
        #[arg(long, env = "WARDEN_STORE", hide_env_values = true)]
        store: Option<String>,
    },
    /// List the operator credentials (never their tokens), through the operator plane.
    ListTokens {
        /// Print the operator plane's JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The operator plane.
        #[command(flatten)]
        client: OperatorClient,
    },
    /// Revoke an operator credential by id (from `list-tokens`), through the operator plane:
    /// it never authenticates again, and votes it cast no longer release a grant.
    RevokeToken {
        /// The credential's id.
        id: String,
        /// The operator plane.
        #[command(flatten)]
        client: OperatorClient,
    },
}

/// Runs `warden operator …`.
pub fn execute(args: &OperatorArgs) -> ExitCode {
    let (name, principal, observer, data_dir, store) = match &args.command {
        OperatorCommand::CreateToken {
            name,
            principal,
            observer,
            data_dir,
            store,
        } => (name, principal, *observer, data_dir, store),
        OperatorCommand::ListTokens { json, client } => return list_tokens(client, *json),
        OperatorCommand::RevokeToken { id, client } => return revoke_token(client, id),
    };
    let role = match (principal.clone(), observer) {
        (Some(p), _) => OperatorRole::Approver(p),
        (None, true) => OperatorRole::Observer,
        (None, false) => OperatorRole::Admin,
    };
    let location = match store.as_deref().map(StoreLocation::parse) {
        None => StoreLocation::Sqlite,
        Some(Ok(l)) => l,
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let dir = data_dir
        .clone()
        .or_else(|| std::env::var("WARDEN_DATA").ok().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(warden_gateway::config::DEFAULT_DATA_DIR));
    crate::runtime(async move {
        if let StoreLocation::Postgres(url) = &location {
            // The shared store: no data directory is needed or made. The URL is shown without
            // its password in any error.
            let db = match StateDb::connect(&location, &dir, PoolBounds::default()).await {
                Ok(db) => db,
                Err(e) => {
                    eprintln!("error: {url}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            return issue(&db, name, role).await;
        }
        match warden_core::private::private_dir(&dir) {
            Ok(None) => {}
            Ok(Some(t)) => eprintln!("note: the data directory was open to group or others: {t}"),
            Err(e) => {
                eprintln!(
                    "error: cannot create `{}` with mode 0700: {e}",
                    dir.display()
                );
                return ExitCode::FAILURE;
            }
        }
        let db = match StateDb::open(&dir).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        issue(&db, name, role).await
    })
}

/// Issues the credential in `db`, prints its token, closes `db`.
async fn issue(db: &StateDb, name: &str, role: OperatorRole) -> ExitCode {
    let now = time::OffsetDateTime::now_utc();
    // Offline: the ledger is the gateway's; the gateway records this issue before the
    // credential's first use.
    let result = OperatorCredentials::open(db)
        .create(name, role, now, false)
        .await;
    db.close().await;
    match result {
        Ok(issued) => {
            println!("{}", issued.token);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list_tokens(client: &OperatorClient, json: bool) -> ExitCode {
    let client = client.clone();
    crate::runtime(async move {
        match client
            .call(reqwest::Method::GET, "/v1/operator-tokens", None)
            .await
        {
            Ok(v) if json => {
                println!("{v:#}");
                ExitCode::SUCCESS
            }
            Ok(v) => {
                print!("{}", render_tokens(&v));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        }
    })
}

/// The credentials as a table: id, name, role, principal, created, state.
fn render_tokens(v: &Value) -> String {
    let field = |t: &Value, k: &str| t.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
    let mut rows = vec![[
        "id".to_owned(),
        "name".to_owned(),
        "role".to_owned(),
        "principal".to_owned(),
        "created at".to_owned(),
        "state".to_owned(),
    ]];
    for t in v
        .get("operator_tokens")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let state = match (
            t.get("revoked_at").and_then(Value::as_str),
            t.get("recorded_at").and_then(Value::as_str),
        ) {
            (Some(at), _) => format!("revoked {at}"),
            (None, None) => "active (made offline, not used yet)".to_owned(),
            (None, Some(_)) => "active".to_owned(),
        };
        rows.push([
            field(t, "id"),
            field(t, "name"),
            field(t, "role"),
            field(t, "principal"),
            field(t, "created_at"),
            state,
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn revoke_token(client: &OperatorClient, id: &str) -> ExitCode {
    let client = client.clone();
    let path = format!(
        "/v1/operator-tokens/{}/revoke",
        warden_core::text::percent_encode(id)
    );
    let id = id.to_owned();
    crate::runtime(async move {
        match client.call(reqwest::Method::POST, &path, None).await {
            Ok(v) if v.get("revoked") == Some(&Value::Bool(true)) => {
                println!("revoked {id}");
                ExitCode::SUCCESS
            }
            Ok(_) => {
                println!("{id} was already revoked");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests;
