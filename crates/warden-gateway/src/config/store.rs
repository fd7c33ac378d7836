//! Where state and ledger live, and this instance's identity in a fleet.
//!
//! | setting | flag | environment | file key | default |
//! |---|---|---|---|---|
//! | store | `--store` | `WARDEN_STORE` | `store` | `sqlite` (the data directory) |
//! | instance identity | `--instance` | `WARDEN_INSTANCE` | `instance` | kept in `DATA/instance` (made once) |
//! | PostgreSQL connections | | `WARDEN_STORE_MAX_CONNECTIONS` | `store_max_connections` | `16` |
//! | PostgreSQL connection wait | | `WARDEN_STORE_ACQUIRE_TIMEOUT` | `store_acquire_timeout` | `5s` |
//! | PostgreSQL statement limit | | `WARDEN_STORE_STATEMENT_TIMEOUT` | `store_statement_timeout` | `10s` |
//!
//! The store's URL may hold a password; it is never echoed (see
//! [`warden_core::store::PostgresUrl`]).

use warden_core::{InstanceId, StoreLocation};
use warden_session::PoolBounds;

use super::parse::pick;
use super::{ConfigError, ConfigSource, RawConfig};

/// The resolved store settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreSettings {
    /// SQLite in the data directory, or the fleet's PostgreSQL.
    pub location: StoreLocation,
    /// This instance's identity, when given; otherwise the one kept in the data directory.
    pub instance: Option<InstanceId>,
    /// The PostgreSQL pool's bounds.
    pub pool: PoolBounds,
}

/// The most connections one instance may be configured to open.
const MAX_CONNECTIONS: u64 = 1024;

pub(super) fn resolve(
    flags: &RawConfig,
    file: &RawConfig,
    env: &dyn ConfigSource,
) -> Result<StoreSettings, ConfigError> {
    let location = match pick(&flags.store, env.var("WARDEN_STORE"), &file.store) {
        None => StoreLocation::Sqlite,
        Some((text, origin)) => StoreLocation::parse(&text).map_err(|e| ConfigError::Invalid {
            setting: "store",
            origin,
            value: warden_core::store::redact_url(&warden_core::text::ellipsize(&text, 200)),
            reason: e.to_string(),
        })?,
    };
    let instance = match pick(&flags.instance, env.var("WARDEN_INSTANCE"), &file.instance) {
        None => None,
        Some((text, origin)) => {
            Some(InstanceId::parse(&text).map_err(|e| ConfigError::Invalid {
                setting: "instance",
                origin,
                value: warden_core::text::ellipsize(&text, 80),
                reason: e.to_string(),
            })?)
        }
    };
    let mut pool = PoolBounds::default();
    if let Some((n, origin)) = pick(
        &file.store_max_connections.map(|n| n.to_string()),
        env.var("WARDEN_STORE_MAX_CONNECTIONS"),
        &None,
    ) {
        let parsed = n
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=MAX_CONNECTIONS).contains(n));
        pool.max_connections =
            parsed
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ConfigError::Invalid {
                    setting: "store_max_connections",
                    origin,
                    value: n.clone(),
                    reason: format!("a whole number from 1 to {MAX_CONNECTIONS}"),
                })?;
    }
    for (setting, var, value, target) in [
        (
            "store_acquire_timeout",
            "WARDEN_STORE_ACQUIRE_TIMEOUT",
            &file.store_acquire_timeout,
            &mut pool.acquire_timeout,
        ),
        (
            "store_statement_timeout",
            "WARDEN_STORE_STATEMENT_TIMEOUT",
            &file.store_statement_timeout,
            &mut pool.statement_timeout,
        ),
    ] {
        if let Some((text, origin)) = pick(&None, env.var(var), value) {
            *target =
                warden_core::text::parse_duration(&text).ok_or_else(|| ConfigError::Invalid {
                    setting,
                    origin,
                    value: warden_core::text::ellipsize(&text, 80),
                    reason: "a duration such as `5s`".to_owned(),
                })?;
        }
    }
    Ok(StoreSettings {
        location,
        instance,
        pool,
    })
}
