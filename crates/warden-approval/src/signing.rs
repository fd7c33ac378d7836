//! Signatures for approval links and webhook bodies: HMAC-SHA256 under a secret only the
//! gateway holds.
//!
//! A link names the request, the action (approve or deny), the approver it was minted for, the
//! delivery target it was sent to ([`Signer::target_id`]) and its expiry; the signature covers
//! all five, so none can be changed. Verification is in
//! constant time. Webhook bodies are signed as `t=<unix>,v1=<base64url>`, the MAC over the
//! parts `warden-webhook-v1`, `<unix>` and the body, so a receiver can check both origin and
//! freshness. Every MAC input is a list of parts, each preceded by its length as a big-endian
//! u64, so no boundary between parts can be moved.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkAction {
    /// Approve.
    Approve,
    /// Deny.
    Deny,
}

impl LinkAction {
    /// `approve` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkAction::Approve => "approve",
            LinkAction::Deny => "deny",
        }
    }

    /// Parses `approve` or `deny`.
    pub fn parse(s: &str) -> Option<LinkAction> {
        match s {
            "approve" => Some(LinkAction::Approve),
            "deny" => Some(LinkAction::Deny),
            _ => None,
        }
    }
}

/// What a signed link says: approve or deny `request` as `approver`, delivered to the target
/// `via`, until `expires_unix`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link<'a> {
    /// Approve or deny.
    pub action: LinkAction,
    /// The request id.
    pub request: &'a str,
    /// The principal the link was minted for.
    pub approver: &'a str,
    /// The delivery target the link was sent to ([`Signer::target_id`]).
    pub via: &'a str,
    /// Expiry, Unix seconds.
    pub expires_unix: i64,
}

/// A signing key too short to be one.
#[derive(Debug, thiserror::Error)]
#[error("the approval signing secret must be at least 32 bytes")]
pub struct WeakKey;

/// Signs and verifies links and bodies.
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<secret>)")
    }
}

impl Signer {
    /// A signer over `key` (at least 32 bytes).
    pub fn new(key: &[u8]) -> Result<Signer, WeakKey> {
        if key.len() < 32 {
            return Err(WeakKey);
        }
        Ok(Signer { key: key.to_vec() })
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // HMAC accepts keys of any length; `new` checked the length already.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => HmacSha256::new(&Default::default()),
        };
        // Each part is length-prefixed, so no field boundary can be shifted.
        for p in parts {
            mac.update(&u64::try_from(p.len()).unwrap_or(u64::MAX).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    fn link_parts<'a>(link: &'a Link<'a>, expires: &'a str) -> [&'a [u8]; 6] {
        [
            b"warden-approval-link-v2",
            link.action.as_str().as_bytes(),
            link.request.as_bytes(),
            link.approver.as_bytes(),
            link.via.as_bytes(),
            expires.as_bytes(),
        ]
    }

    /// The signature of a link, base64url.
    pub fn sign_link(&self, link: &Link<'_>) -> String {
        let expires = link.expires_unix.to_string();
        let mac = self.mac(&Self::link_parts(link, &expires));
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is the link's, compared in constant time. The caller checks the
    /// expiry against its clock.
    pub fn verify_link(&self, link: &Link<'_>, signature: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(signature.trim()) else {
            return false;
        };
        let expires = link.expires_unix.to_string();
        self.mac(&Self::link_parts(link, &expires))
            .verify_slice(&sig)
            .is_ok()
    }

    /// The key's fingerprint (base64url): a keyed hash of a fixed label, the same for the
    /// same key and revealing nothing of it, so the instances of a fleet can tell whether
    /// they hold the same key without showing it.
    pub fn fingerprint(&self) -> String {
        let mac = self.mac(&[b"warden-approval-key-fingerprint-v1"]);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The id of a webhook delivery target: a keyed hash of its URL (16 base64url characters),
    /// stable while the key is, and revealing nothing of the URL (which may be a credential).
    /// Links carry it, so the workflow can tell which links went to the same place.
    pub fn target_id(&self, url: &str) -> String {
        let mac = self.mac(&[b"warden-webhook-target-v1", url.as_bytes()]);
        let bytes = mac.finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(bytes.get(..12).unwrap_or_default())
    }

    /// The `X-Warden-Signature` header value of a webhook body sent at `unix`.
    pub fn sign_body(&self, unix: i64, body: &[u8]) -> String {
        let t = unix.to_string();
        let mac = self.mac(&[b"warden-webhook-v1", t.as_bytes(), body]);
        format!(
            "t={t},v1={}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// Whether a `X-Warden-Signature` header value signs `body`; returns its time.
    pub fn verify_body(&self, header: &str, body: &[u8]) -> Option<i64> {
        let mut t = None;
        let mut v1 = None;
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", x)) => t = x.parse::<i64>().ok(),
                Some(("v1", x)) => v1 = URL_SAFE_NO_PAD.decode(x).ok(),
                _ => {}
            }
        }
        let (t, sig) = (t?, v1?);
        let ts = t.to_string();
        self.mac(&[b"warden-webhook-v1", ts.as_bytes(), body])
            .verify_slice(&sig)
            .is_ok()
            .then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(&[7u8; 32]).unwrap()
    }

    fn link<'a>(
        action: LinkAction,
        request: &'a str,
        approver: &'a str,
        via: &'a str,
        expires_unix: i64,
    ) -> Link<'a> {
        Link {
            action,
            request,
            approver,
            via,
            expires_unix,
        }
    }

    #[test]
    fn the_fingerprint_tells_keys_apart_and_shows_neither() {
        let a = signer();
        let b = Signer::new(&[8u8; 32]).unwrap();
        assert_eq!(a.fingerprint(), signer().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
        // Not the key in any encoding the key file uses.
        let key_text = URL_SAFE_NO_PAD.encode([7u8; 32]);
        assert!(!a.fingerprint().contains(&key_text));
        // Not a signature of anything else the key signs.
        assert_ne!(a.fingerprint(), a.target_id(""));
    }

    #[test]
    fn links_verify_only_unchanged() {
        let s = signer();
        let l = link(LinkAction::Approve, "r1", "bob", "t1", 1_900_000_000);
        let sig = s.sign_link(&l);
        assert!(s.verify_link(&l, &sig));
        // Every field is covered.
        for changed in [
            Link {
                action: LinkAction::Deny,
                ..l
            },
            Link { request: "r2", ..l },
            Link {
                approver: "eve",
                ..l
            },
            Link { via: "t2", ..l },
            Link {
                expires_unix: 1_900_000_001,
                ..l
            },
        ] {
            assert!(!s.verify_link(&changed, &sig));
        }
        // A forged signature, an empty one, garbage.
        let other = Signer::new(&[8u8; 32]).unwrap();
        let forged = other.sign_link(&l);
        assert!(!s.verify_link(&l, &forged));
        assert!(!s.verify_link(&l, ""));
        assert!(!s.verify_link(&l, "%%%"));
        // Field boundaries cannot be shifted.
        let a = s.sign_link(&link(LinkAction::Approve, "r1\nbob", "x", "t", 1));
        assert!(!s.verify_link(&link(LinkAction::Approve, "r1", "bob\nx", "t", 1), &a));
    }

    #[test]
    fn target_ids_are_stable_and_distinct() {
        let s = signer();
        assert_eq!(
            s.target_id("https://a.example/x"),
            s.target_id("https://a.example/x")
        );
        assert_ne!(
            s.target_id("https://a.example/x"),
            s.target_id("https://a.example/y")
        );
        assert_eq!(s.target_id("https://a.example/x").len(), 16);
    }

    #[test]
    fn bodies_verify_only_unchanged() {
        let s = signer();
        let h = s.sign_body(1_700_000_000, b"{\"a\":1}");
        assert_eq!(s.verify_body(&h, b"{\"a\":1}"), Some(1_700_000_000));
        assert_eq!(s.verify_body(&h, b"{\"a\":2}"), None);
        assert_eq!(
            s.verify_body(&h.replace("t=17", "t=18"), b"{\"a\":1}"),
            None
        );
        assert_eq!(s.verify_body("t=1", b""), None);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Signer::new(&[1u8; 31]).is_err());
    }
}
