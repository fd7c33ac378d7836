//! The gateway's own secrets at start-up: the approval signing key (created at first start,
//! owner-only), the files secrets are written to, and the list of secret values every surface
//! redacts from what it relays and records.

use std::path::Path;

use anyhow::Context as _;
use warden_charter::CharterSet;
use warden_mcp::PreparedUpstreams;

use super::APPROVAL_KEY_FILE;
use crate::config::Config;

/// The secrets the gateway holds besides the provider keys, which the model proxy redacts
/// from what it relays and records: every stdio server's `${NAME}` environment value (read as
/// `prepare_upstreams` reads it), every Streamable HTTP server's credential values (as
/// `prepared` resolved them) and the approval webhook URL (a Slack-style URL is itself the
/// credential).
pub(super) fn other_secrets(
    config: &Config,
    set: &CharterSet,
    prepared: &PreparedUpstreams,
) -> Vec<String> {
    let mut secrets: Vec<String> = set
        .iter()
        .flat_map(|c| c.inventory.servers.iter())
        .filter_map(|s| match &s.transport {
            warden_charter::Transport::Stdio { env, .. } => Some(env),
            _ => None,
        })
        .flat_map(|env| env.iter())
        .filter_map(|(_, v)| v.strip_prefix("${").and_then(|r| r.strip_suffix('}')))
        .filter_map(|name| std::env::var(name).ok())
        .collect();
    secrets.extend(prepared.secret_values());
    secrets.extend(config.approval_webhook.as_ref().map(|w| w.url.to_string()));
    secrets
}

/// Reads the approval signing secret, creating it at first start.
pub(crate) fn approval_signer(data_dir: &Path) -> anyhow::Result<warden_approval::Signer> {
    use base64::Engine as _;
    let path = data_dir.join(APPROVAL_KEY_FILE);
    if !path.exists() {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key);
        write_secret(&path, &text).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    // The key is 43 characters; a few kilobytes bound the read whatever the file became.
    let text = warden_core::small_file::read_text(&path, 4096)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .with_context(|| format!("`{}` is not a base64url secret", path.display()))?;
    warden_approval::Signer::new(&key).with_context(|| format!("`{}`", path.display()))
}

/// Writes `secret` to a new file only its owner may read (0600); fails if the file exists.
pub(crate) fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")
}
