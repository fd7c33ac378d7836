//! `warden-echo-server --listen 127.0.0.1:9900`: the echo MCP server at `/mcp`.

#![allow(clippy::print_stdout, reason = "a tool that announces its address")]

use clap::Parser;

/// The echo MCP server.
#[derive(Debug, Parser)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9900")]
    listen: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("echo MCP server at http://{}/mcp", listener.local_addr()?);
    axum::serve(listener, warden_testkit::echo::router()).await?;
    Ok(())
}
