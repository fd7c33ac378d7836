//! `warden-mock-llm --listen 127.0.0.1:0 [--name NAME] [--fail-first N]`: the scripted mock model
//! provider (OpenAI `/v1/chat/completions`, Anthropic `/v1/messages`, `/v1/models`). Prints
//! `listening on http://ADDR` on stdout once bound, then serves until killed. The directives a
//! request can carry are described in `warden_testkit::mock_llm`.

use std::io::Write as _;

use clap::Parser;
use warden_testkit::mock_llm::{self, MockConfig, Observed};

/// The mock model provider.
#[derive(Debug, Parser)]
struct Args {
    /// Listen address; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Sent in the `x-mock-name` header and as a `[NAME] ` prefix of reply texts.
    #[arg(long, default_value = "")]
    name: String,
    /// Answer 503 to the first N model requests.
    #[arg(long, default_value_t = 0)]
    fail_first: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);
    let config = MockConfig {
        fail_first: args.fail_first,
        name: args.name,
    };
    axum::serve(listener, mock_llm::router(config, Observed::default())).await?;
    Ok(())
}
