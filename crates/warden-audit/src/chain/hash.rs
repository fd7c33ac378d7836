//! The record hash: BLAKE3 over an unambiguous, length-prefixed encoding of the record's
//! fields as they are stored. `docs/ledger.md` describes the encoding byte by byte.

/// The `prev_hash` of the first record: 32 zero bytes.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The first 16 bytes hashed for every record: names the format and its version, so a hash
/// of this format can never be taken for a hash of another.
pub const HASH_DOMAIN: &[u8; 16] = b"warden-ledger-v1";

/// The hash of one record.
///
/// The input, in order: [`HASH_DOMAIN`] (16 bytes), `prev_hash` (32 bytes), `seq` (8 bytes,
/// big-endian), then `time`, `session`, `kind` and `payload`, each as an 8-byte big-endian
/// length followed by its UTF-8 bytes, where `session` is preceded by one byte: 0 when absent
/// (and nothing follows), 1 when present.
///
/// `time` is the record's stored RFC 3339 text ([`format_time`](super::format_time)) and
/// `payload` its stored canonical JSON text ([`canonical_json`](super::canonical_json)), so
/// verification hashes what is stored and never re-serialises anything.
pub fn record_hash(
    prev_hash: &[u8; 32],
    seq: u64,
    time: &str,
    session: Option<&str>,
    kind: &str,
    payload: &str,
) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(HASH_DOMAIN);
    h.update(prev_hash);
    h.update(&seq.to_be_bytes());
    field(&mut h, time);
    match session {
        None => {
            h.update(&[0]);
        }
        Some(s) => {
            h.update(&[1]);
            field(&mut h, s);
        }
    }
    field(&mut h, kind);
    field(&mut h, payload);
    *h.finalize().as_bytes()
}

fn field(h: &mut blake3::Hasher, text: &str) {
    // A `usize` always fits in a `u64` on the platforms Rust supports.
    let len = u64::try_from(text.len()).unwrap_or(u64::MAX);
    h.update(&len.to_be_bytes());
    h.update(text.as_bytes());
}
