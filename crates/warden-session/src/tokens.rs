//! Bearer tokens: 256-bit random, shown once, stored only as BLAKE3 hashes, compared in
//! constant time.
//!
//! A token's prefix names its plane — `wa_` for agent sessions, `wo_` for operators — so a
//! token presented on the wrong plane is refused with a message that says why, without a
//! lookup.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Prefix of agent session tokens.
pub const AGENT_PREFIX: &str = "wa_";
/// Prefix of operator tokens.
pub const OPERATOR_PREFIX: &str = "wo_";

/// A token's plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// The agent plane (MCP, decide API, model proxy).
    Agent,
    /// The operator plane (sessions, approvals, control).
    Operator,
}

impl Plane {
    fn prefix(self) -> &'static str {
        match self {
            Plane::Agent => AGENT_PREFIX,
            Plane::Operator => OPERATOR_PREFIX,
        }
    }
}

/// The stored form of a token.
pub type TokenHash = [u8; 32];

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// A new random token for `plane`, and its hash.
pub fn generate(plane: Plane) -> Result<(String, TokenHash), RandomError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| RandomError(e.to_string()))?;
    let token = format!("{}{}", plane.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&token);
    Ok((token, hash))
}

/// The hash a token is stored under.
pub fn hash(token: &str) -> TokenHash {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Which plane a presented token claims by its prefix, if any.
pub fn plane_of(token: &str) -> Option<Plane> {
    if token.starts_with(AGENT_PREFIX) {
        Some(Plane::Agent)
    } else if token.starts_with(OPERATOR_PREFIX) {
        Some(Plane::Operator)
    } else {
        None
    }
}

/// Constant-time equality of two hashes.
pub fn hashes_equal(a: &TokenHash, b: &TokenHash) -> bool {
    // blake3::Hash implements constant-time equality.
    blake3::Hash::from_bytes(*a) == blake3::Hash::from_bytes(*b)
}

/// The bearer token of an `Authorization: Bearer …` header value (or an `x-api-key` value).
pub fn bearer(value: &str) -> Option<&str> {
    let v = value.trim();
    let token = match v.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None if v.eq_ignore_ascii_case("bearer") => return None,
        None => v,
    };
    (!token.is_empty() && token.len() <= 256).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (a, ha) = generate(Plane::Agent).unwrap();
        let (b, hb) = generate(Plane::Agent).unwrap();
        assert!(a.starts_with("wa_") && a.len() == 3 + 43, "{a}");
        assert_ne!(a, b);
        assert_ne!(ha, hb);
        assert!(hashes_equal(&hash(&a), &ha));
        assert_eq!(plane_of(&a), Some(Plane::Agent));
        let (o, _) = generate(Plane::Operator).unwrap();
        assert_eq!(plane_of(&o), Some(Plane::Operator));
        assert_eq!(plane_of("nope"), None);
        assert_eq!(bearer("Bearer wa_x"), Some("wa_x"));
        assert_eq!(bearer("wa_x"), Some("wa_x"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("bearer  wa_y "), Some("wa_y"));
        assert_eq!(bearer("Basic abc"), None);
    }
}
