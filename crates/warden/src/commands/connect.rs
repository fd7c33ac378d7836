//! `warden connect --url URL --token TOKEN`: a stdio bridge to the gateway's MCP endpoint
//! (the bridge itself is [`warden_mcp::connect`]).

use std::process::ExitCode;

use clap::Args;

/// Arguments of `warden connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The gateway's MCP endpoint (`http://127.0.0.1:8700/mcp`). Env `WARDEN_URL`.
    #[arg(long, env = "WARDEN_URL")]
    pub url: String,
    /// The session token. Env `WARDEN_TOKEN`.
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    pub token: String,
}

/// Runs `warden connect`: bridges stdin and stdout to the gateway until stdin ends.
pub fn execute(args: &ConnectArgs) -> ExitCode {
    // stdout belongs to the MCP client (JSON-RPC only); the human is told on stderr.
    if !args.url.trim_end_matches('/').ends_with("/mcp") {
        eprintln!(
            "warden connect: `{}` does not end in `/mcp`; the gateway's MCP endpoint is `http://HOST:PORT/mcp`",
            args.url
        );
    }
    crate::runtime(async move {
        let bridged = warden_mcp::connect::bridge(
            &args.url,
            &args.token,
            tokio::io::stdin(),
            tokio::io::stdout(),
        )
        .await;
        match bridged {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warden connect: error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
