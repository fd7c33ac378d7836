//! The console sessions in memory: keyed by the BLAKE3 hash of the cookie's value (the value
//! itself is never kept), bounded by [`MAX_SIGNINS`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use warden_session::OperatorIdentity;
use warden_session::tokens::TokenHash;

/// Most console sessions at once. Beyond it a new sign-in is refused with a page (`503`);
/// no signed-in operator is ever evicted to make room.
pub const MAX_SIGNINS: usize = 1024;

/// One console session.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleSession {
    /// Its id: random, not secret (recorded, and what a live stream is tied to).
    pub(crate) id: String,
    /// The operator credential it was opened with.
    pub(crate) identity: OperatorIdentity,
    /// Its CSRF token.
    pub(crate) csrf: String,
    /// When it ends, whatever happens.
    pub(crate) expires: OffsetDateTime,
    /// Whether its sign-in is recorded (until then it is not usable).
    pub(crate) ready: bool,
    /// Cancelled when it ends (sign-out, expiry, revocation): its live streams end.
    pub(crate) ended: CancellationToken,
}

/// What a cookie leads to.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// A usable console session.
    Found(ConsoleSession),
    /// A console session past its expiry (now removed).
    Expired(ConsoleSession),
    /// Nothing (unknown, ended, or not yet recorded).
    Missing,
}

/// The console sessions: bounded, in memory, keyed by the hash of the cookie's value.
#[derive(Debug, Default)]
pub struct SignIns {
    inner: Mutex<HashMap<TokenHash, ConsoleSession>>,
}

impl SignIns {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, ConsoleSession>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many console sessions there are (including those whose sign-in is being recorded).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Takes a place for `session` under `key`, not usable yet; `false` when the console is
    /// full (nothing changes then).
    pub(crate) fn reserve(&self, key: TokenHash, session: ConsoleSession) -> bool {
        let mut map = self.map();
        if map.len() >= MAX_SIGNINS {
            return false;
        }
        map.insert(
            key,
            ConsoleSession {
                ready: false,
                ..session
            },
        );
        true
    }

    /// Makes the session under `key` usable (its sign-in is recorded).
    pub(crate) fn activate(&self, key: &TokenHash) {
        if let Some(s) = self.map().get_mut(key) {
            s.ready = true;
        }
    }

    /// Removes the session under `key`, ending its live streams.
    pub(crate) fn remove(&self, key: &TokenHash) -> Option<ConsoleSession> {
        let removed = self.map().remove(key);
        if let Some(s) = &removed {
            s.ended.cancel();
        }
        removed
    }

    /// The session under `key` at `now`. One past its expiry is removed (its live streams
    /// end) and returned as [`Lookup::Expired`], so its end can be recorded once.
    pub(crate) fn lookup(&self, key: &TokenHash, now: OffsetDateTime) -> Lookup {
        let mut map = self.map();
        match map.get(key) {
            Some(s) if !s.ready => Lookup::Missing,
            Some(s) if s.expires <= now => match map.remove(key) {
                Some(s) => {
                    s.ended.cancel();
                    Lookup::Expired(s)
                }
                None => Lookup::Missing,
            },
            Some(s) => Lookup::Found(s.clone()),
            None => Lookup::Missing,
        }
    }

    /// Removes the session `id`, ending its live streams.
    pub(crate) fn remove_by_id(&self, id: &str) -> Option<ConsoleSession> {
        let mut map = self.map();
        let key = map.iter().find(|(_, s)| s.id == id).map(|(k, _)| *k)?;
        let removed = map.remove(&key);
        if let Some(s) = &removed {
            s.ended.cancel();
        }
        removed
    }

    /// Removes every session past its expiry at `now` (their live streams end); the removed.
    pub(crate) fn take_expired(&self, now: OffsetDateTime) -> Vec<ConsoleSession> {
        let mut map = self.map();
        let keys: Vec<TokenHash> = map
            .iter()
            .filter(|(_, s)| s.ready && s.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        keys.iter()
            .filter_map(|k| map.remove(k))
            .inspect(|s| s.ended.cancel())
            .collect()
    }

    /// Whether the session `id` is still there and usable at `now`.
    pub(crate) fn is_live(&self, id: &str, now: OffsetDateTime) -> bool {
        self.map()
            .values()
            .any(|s| s.id == id && s.ready && s.expires > now)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use warden_session::OperatorRole;

    use super::*;

    fn session(id: &str, expires: OffsetDateTime) -> ConsoleSession {
        ConsoleSession {
            id: id.to_owned(),
            identity: OperatorIdentity {
                id: "cred".to_owned(),
                name: "admin".to_owned(),
                role: OperatorRole::Admin,
                recorded: true,
            },
            csrf: "c".to_owned(),
            expires,
            ready: true,
            ended: CancellationToken::new(),
        }
    }

    #[test]
    fn a_session_is_usable_only_once_activated_and_until_it_expires() {
        let s = SignIns::default();
        let now = datetime!(2026-12-06 12:00 UTC);
        let end = now + time::Duration::hours(8);
        assert!(s.reserve([1; 32], session("a", end)));
        assert!(matches!(s.lookup(&[1; 32], now), Lookup::Missing));
        s.activate(&[1; 32]);
        assert!(matches!(s.lookup(&[1; 32], now), Lookup::Found(_)));
        assert!(s.is_live("a", now));
        let ended = match s.lookup(&[1; 32], end) {
            Lookup::Expired(x) => x.ended,
            other => panic!("{other:?}"),
        };
        assert!(ended.is_cancelled());
        assert!(matches!(s.lookup(&[1; 32], now), Lookup::Missing));
    }

    #[test]
    fn a_full_console_refuses_new_sessions_and_evicts_nobody() {
        let s = SignIns::default();
        let end = datetime!(2026-12-06 20:00 UTC);
        for i in 0..MAX_SIGNINS {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            assert!(s.reserve(key, session("x", end)));
        }
        assert!(!s.reserve([255; 32], session("y", end)));
        assert_eq!(s.len(), MAX_SIGNINS);
        let swept = s.take_expired(datetime!(2026-12-06 12:00 UTC));
        assert!(swept.is_empty(), "not yet activated, not yet expired");
    }

    #[test]
    fn the_sweep_takes_the_expired_only_and_ends_their_streams() {
        let s = SignIns::default();
        let now = datetime!(2026-12-06 12:00 UTC);
        for (key, id, end) in [
            ([1; 32], "old", now),
            ([2; 32], "new", now + time::Duration::hours(1)),
        ] {
            assert!(s.reserve(key, session(id, end)));
            s.activate(&key);
        }
        let swept = s.take_expired(now);
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].id, "old");
        assert!(swept[0].ended.is_cancelled());
        assert!(s.is_live("new", now));
        assert!(!s.is_live("old", now));
        let gone = s.remove_by_id("new").unwrap();
        assert!(gone.ended.is_cancelled());
        assert!(s.is_empty());
    }
}
