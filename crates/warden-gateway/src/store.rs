//! The store the gateway keeps its state and ledger in (see `config::store`): `state.db` and
//! `ledger.db` in the data directory, or the fleet's PostgreSQL database, and this instance's
//! identity in the fleet.

use std::path::Path;

use anyhow::Context as _;
use warden_core::InstanceId;
use warden_session::StateDb;

use crate::config::Config;

/// The file in the data directory that keeps the instance identity made for this directory.
pub const INSTANCE_FILE: &str = "instance";

/// Connects the state store (migrating it; a schema of a newer warden is refused). On
/// PostgreSQL, before anything is written to the store, this instance's approval key is
/// checked against the fleet's (see `crate::fleet::approval_key`): another key stops the
/// start here.
pub async fn connect(config: &Config) -> anyhow::Result<StateDb> {
    let db = StateDb::connect(&config.store.location, &config.data_dir, config.store.pool)
        .await
        .with_context(|| format!("cannot open the state store ({})", config.store.location))?;
    if let Some(pool) = db.postgres() {
        let signer = crate::startup::secrets::approval_signer(&config.data_dir)?;
        let key_file = config.data_dir.join(crate::data_dir::APPROVAL_KEY_FILE);
        crate::fleet::approval_key::check(pool, &signer, &key_file).await?;
    }
    Ok(db)
}

/// This instance's identity: the configured one, or the one kept in `DATA/instance` (made
/// once, `gw-` and 12 random hex digits, so a restart continues the same ledger chain).
pub fn instance(config: &Config) -> anyhow::Result<InstanceId> {
    if let Some(id) = &config.store.instance {
        return Ok(id.clone());
    }
    kept_instance(&config.data_dir)
}

fn kept_instance(data_dir: &Path) -> anyhow::Result<InstanceId> {
    let path = data_dir.join(INSTANCE_FILE);
    match warden_core::small_file::read_text(&path, 1024) {
        Ok(text) => InstanceId::parse(text.trim())
            .with_context(|| format!("`{}` does not hold an instance id", path.display())),
        Err(warden_core::small_file::SmallFileError::Io(e))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            let mut bytes = [0u8; 6];
            getrandom::fill(&mut bytes).context("no randomness for an instance id")?;
            let id = InstanceId::parse(&format!("gw-{}", warden_core::hex(&bytes)))
                .context("instance id")?;
            crate::startup::secrets::write_secret(&path, id.as_str())
                .with_context(|| format!("cannot write `{}`", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    }
}
