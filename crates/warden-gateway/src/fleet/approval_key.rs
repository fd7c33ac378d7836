//! One approval key for the fleet: signed approval links and webhook bodies are signed with
//! each instance's `approval.key`, so a link minted by one instance verifies on another only
//! if every instance holds the same key. The store keeps the key's fingerprint (a keyed hash,
//! [`warden_approval::Signer::fingerprint`], revealing nothing of the key; never the key): the
//! first instance to start records its own, and an instance whose key gives another
//! fingerprint refuses to start.

use std::path::{Path, PathBuf};

use sqlx::PgPool;
use warden_approval::Signer;

/// The `fleet_settings` row holding the fingerprint.
const SETTING: &str = "approval_key_fingerprint";

/// This instance's approval key is not the fleet's.
#[derive(Debug, thiserror::Error)]
#[error(
    "the approval key `{}` is not the key of the other instances of this fleet (the store holds the fingerprint of another key): copy the `approval.key` of the first instance into this instance's data directory (mode 0600), then start it again; to change the fleet's key, stop every instance, give each the new key, and delete the fingerprint (`DELETE FROM fleet_settings WHERE name = 'approval_key_fingerprint'`)",
    path.display()
)]
pub struct KeyMismatch {
    /// This instance's key file.
    pub path: PathBuf,
}

/// Why the key could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    /// The key is not the fleet's.
    #[error(transparent)]
    Mismatch(#[from] KeyMismatch),
    /// The store failed.
    #[error("cannot check the approval key against the fleet's: {0}")]
    Store(#[from] sqlx::Error),
}

/// Records `signer`'s fingerprint as the fleet's if there is none yet (atomically: of
/// instances starting together, one records its own), then refuses a key whose fingerprint is
/// not the recorded one. `key_file` names the key in the error.
pub async fn check(pool: &PgPool, signer: &Signer, key_file: &Path) -> Result<(), KeyCheckError> {
    let mine = signer.fingerprint();
    sqlx::query(
        "INSERT INTO fleet_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(SETTING)
    .bind(&mine)
    .execute(pool)
    .await?;
    let fleet: String = sqlx::query_scalar("SELECT value FROM fleet_settings WHERE name = $1")
        .bind(SETTING)
        .fetch_one(pool)
        .await?;
    // Fingerprints are not secrets; a plain comparison reveals nothing.
    if fleet == mine {
        Ok(())
    } else {
        Err(KeyMismatch {
            path: key_file.to_owned(),
        }
        .into())
    }
}
