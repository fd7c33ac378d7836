//! Where the gateway keeps its state and its ledger ([`StoreLocation`]), and which gateway
//! instance of a fleet is writing ([`InstanceId`]).
//!
//! - `sqlite` (the default): `state.db` and `ledger.db` in the data directory, one gateway.
//! - `postgres://…` (or `postgresql://…`): one PostgreSQL database shared by every instance of
//!   a fleet. The URL may hold a password: [`PostgresUrl`] never shows it (`Debug` and
//!   `Display` print the URL with the password replaced by `***`), so it cannot reach a log, an
//!   error or a page.

use std::fmt;

/// Where state and ledger live.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StoreLocation {
    /// SQLite files in the data directory (the embedded default).
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by the fleet.
    Postgres(PostgresUrl),
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite => f.write_str("Sqlite"),
            StoreLocation::Postgres(url) => write!(f, "Postgres({url})"),
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite => f.write_str("sqlite"),
            StoreLocation::Postgres(url) => url.fmt(f),
        }
    }
}

/// A store setting that is neither `sqlite` nor a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the store must be `sqlite` or a PostgreSQL URL (`postgres://user@host:port/database`); got {0}"
)]
pub struct BadStore(String);

/// The longest store setting accepted.
pub const MAX_STORE_SETTING_BYTES: usize = 4096;

impl StoreLocation {
    /// Reads a store setting: `sqlite`, or a URL starting `postgres://` or `postgresql://`.
    /// The error never repeats a URL's password.
    pub fn parse(text: &str) -> Result<StoreLocation, BadStore> {
        let text = text.trim();
        if text.len() > MAX_STORE_SETTING_BYTES {
            return Err(BadStore(format!("{} bytes", text.len())));
        }
        if text.eq_ignore_ascii_case("sqlite") {
            return Ok(StoreLocation::Sqlite);
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            if text.chars().any(char::is_control) {
                return Err(BadStore("a URL with control characters".to_owned()));
            }
            return Ok(StoreLocation::Postgres(PostgresUrl(text.to_owned())));
        }
        Err(BadStore(format!(
            "`{}`",
            crate::text::ellipsize(&redact_url(text), 80)
        )))
    }

    /// Whether this is the shared PostgreSQL store.
    pub fn is_postgres(&self) -> bool {
        matches!(self, StoreLocation::Postgres(_))
    }
}

/// A PostgreSQL connection URL. Only [`PostgresUrl::expose`] gives its text; `Debug` and
/// `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The URL itself, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// `url` with the password of its user-info (`user:password@`) and any `password=` query
/// parameter replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _)) => format!("{user}:***@{host}"),
                    None => format!("{userinfo}@{host}"),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let parts: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

/// The identity of one gateway instance: its ledger chain is named by it, and every record it
/// writes to a shared store carries it. 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(String);

/// An instance identity outside the allowed characters or length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an instance id is 1 to 64 characters of A-Z a-z 0-9 . _ - ; got {0}")]
pub struct BadInstanceId(String);

/// The longest instance identity.
pub const MAX_INSTANCE_ID_CHARS: usize = 64;

impl InstanceId {
    /// Checks `text` as an instance identity.
    pub fn parse(text: &str) -> Result<InstanceId, BadInstanceId> {
        let ok = !text.is_empty()
            && text.len() <= MAX_INSTANCE_ID_CHARS
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(InstanceId(text.to_owned()))
        } else {
            Err(BadInstanceId(format!(
                "`{}`",
                crate::text::ellipsize(text, 80)
            )))
        }
    }

    /// The identity's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_and_postgres_urls_are_read_and_anything_else_refused() {
        assert_eq!(StoreLocation::parse("sqlite"), Ok(StoreLocation::Sqlite));
        assert_eq!(StoreLocation::parse(" SQLite "), Ok(StoreLocation::Sqlite));
        let pg = StoreLocation::parse("postgres://w:secret@db:5432/warden").unwrap();
        assert!(pg.is_postgres());
        assert!(
            StoreLocation::parse("postgresql://db/warden")
                .unwrap()
                .is_postgres()
        );
        for bad in ["", "mysql://x", "postgres:/x", "postgres://a\nb"] {
            assert!(StoreLocation::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("postgres://{}", "a".repeat(MAX_STORE_SETTING_BYTES));
        assert!(StoreLocation::parse(&long).is_err());
    }

    #[test]
    fn a_password_is_never_shown() {
        let pg =
            StoreLocation::parse("postgres://w:s3cret@db:5432/warden?password=also&x=1").unwrap();
        for shown in [format!("{pg}"), format!("{pg:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(!shown.contains("also"), "{shown}");
            assert!(shown.contains("db:5432/warden"), "{shown}");
        }
        let err = StoreLocation::parse("mysql://u:hidden@h/d")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hidden"), "{err}");
    }

    #[test]
    fn instance_ids_are_bounded_names() {
        assert_eq!(
            InstanceId::parse("gw-1.eu_west").unwrap().as_str(),
            "gw-1.eu_west"
        );
        for bad in ["", "a b", "x/../y", "é", &"a".repeat(65)] {
            assert!(InstanceId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
