//! The meaningful parts of a value, and the keys content is indexed under.
//!
//! | kind | what | minimum |
//! |---|---|---|
//! | `whole` | the whole value: one term, or a run of 2–3 terms | 4 characters (a number: 3 digits) |
//! | `email` | a term with `@` and a dot after it | 4 characters |
//! | `url` | a term with `://` | 4 characters |
//! | `host` | the host of a URL or an e-mail address, or a term that looks like a host name (`a.b`) | 4 characters |
//! | `iban` | 2 letters, 2 digits, then letters and digits, possibly in groups of ≤ 4 (`DE89 3704 …`), compared without spaces | 15 characters |
//! | `account` | a run of digits, possibly in groups or with dashes, compared as digits only | 8 digits |
//! | `number` | a number term, compared by value | 3 digits |
//! | `phrase` | every run of 4 consecutive terms (a word shingle) of a value of 4 terms or more | 4 terms |
//!
//! Content is indexed under the same keys: every term (≥ 4 characters, numbers ≥ 3 digits),
//! the hosts of its URLs and addresses, its IBAN and account groups, and every run of 2, 3 and
//! 4 consecutive terms.

use std::hash::{Hash, Hasher};

use crate::PartKind;
use crate::normalize::{compact, number, terms};

/// Terms shorter than this (in characters) are not meaningful on their own.
pub(crate) const MIN_TERM_CHARS: usize = 4;
/// Numbers with fewer digits than this are not meaningful on their own.
pub(crate) const MIN_NUMBER_DIGITS: usize = 3;
/// Longest word shingle indexed, and the length of a phrase.
pub(crate) const PHRASE_TERMS: usize = 4;

/// One meaningful part of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub kind: PartKind,
    /// The normalised text (digits only for an account, without spaces for an IBAN); empty
    /// for a run of terms, which `span` names instead (built only when it is reported).
    pub text: String,
    /// For a run of terms: its first term and the term after its last.
    pub span: Option<(usize, usize)>,
    /// The index key.
    pub key: u64,
}

/// The namespaces of index keys.
#[derive(Clone, Copy)]
enum Space {
    Term = 1,
    Shingle = 2,
    Compact = 3,
}

/// A key: a 64-bit SipHash (fixed keys) of the namespace and the text. A collision can only
/// make a value look as if it came from content it did not come from (fail closed); trusted
/// text is never compared by key.
fn key(space: Space, text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (space as u8).hash(&mut h);
    text.hash(&mut h);
    h.finish()
}

/// The key of a run of terms, as [`key`] of the terms joined by one space would be, without
/// joining them (the decision path pays no allocation per shingle).
fn shingle_key(terms: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (Space::Shingle as u8).hash(&mut h);
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            h.write(b" ");
        }
        h.write(t.as_bytes());
    }
    // `str::hash` ends with a 0xff byte: the same, so both spell one key.
    h.write_u8(0xff);
    h.finish()
}

fn is_email(t: &str) -> bool {
    t.split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && host.contains('.') && !host.contains('@'))
}

fn is_url(t: &str) -> bool {
    t.contains("://")
}

/// The host of a URL or an e-mail address term.
fn host_of(t: &str) -> Option<&str> {
    let host = if let Some((_, rest)) = t.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        authority.split(':').next().unwrap_or("")
    } else {
        t.split_once('@').map(|(_, h)| h)?
    };
    let host = host.trim_end_matches('.');
    (host.chars().count() >= MIN_TERM_CHARS).then_some(host)
}

/// A bare term that looks like a host name: letters, digits, dots and dashes, with a dot
/// inside and a letter in its last label.
fn looks_like_host(t: &str) -> bool {
    t.contains('.')
        && !t.starts_with('.')
        && t.chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        && t.rsplit('.')
            .next()
            .is_some_and(|tld| tld.chars().any(char::is_alphabetic))
}

fn digit_count(s: &str) -> usize {
    s.chars().filter(char::is_ascii_digit).count()
}

/// The key of one term, if it is meaningful: numbers by value.
fn term_key(t: &str) -> Option<(PartKind, String, u64)> {
    if let Some(n) = number(t) {
        return (digit_count(&n) >= MIN_NUMBER_DIGITS).then(|| {
            let k = key(Space::Term, &n);
            (PartKind::Number, n, k)
        });
    }
    (t.chars().count() >= MIN_TERM_CHARS)
        .then(|| (PartKind::Whole, t.to_owned(), key(Space::Term, t)))
}

fn is_iban_start(t: &str) -> bool {
    let mut chars = t.chars();
    let letters = chars
        .by_ref()
        .take(2)
        .filter(char::is_ascii_alphabetic)
        .count();
    let digits = chars.by_ref().take(2).filter(char::is_ascii_digit).count();
    letters == 2 && digits == 2 && t.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_digit_group(t: &str) -> bool {
    !t.is_empty()
        && t.chars().all(|c| c.is_ascii_digit() || c == '-')
        && t.chars().any(|c| c.is_ascii_digit())
}

/// IBANs and account numbers written over several terms (or in one), compact.
fn groups(ts: &[&str]) -> Vec<(PartKind, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(t) = ts.get(i) {
        if is_iban_start(t) {
            // Every length the groups reach from 15 characters on is a candidate: where the
            // IBAN ends is not known without the country's format.
            let mut acc = compact(t);
            if (15..=34).contains(&acc.len()) {
                out.push((PartKind::Iban, acc.clone()));
            }
            let mut j = i + 1;
            while let Some(next) = ts.get(j) {
                let group = next.len() <= 4
                    && next.chars().all(|c| c.is_ascii_alphanumeric())
                    && (next.len() == 4 || next.chars().any(|c| c.is_ascii_digit()));
                if !group || acc.len() + next.len() > 34 {
                    break;
                }
                acc.push_str(next);
                if acc.len() >= 15 {
                    out.push((PartKind::Iban, acc.clone()));
                }
                j += 1;
            }
            i = j;
        } else if is_digit_group(t) {
            let mut acc: String = t.chars().filter(char::is_ascii_digit).collect();
            let mut j = i + 1;
            while let Some(next) = ts.get(j) {
                if !is_digit_group(next) {
                    break;
                }
                acc.extend(next.chars().filter(char::is_ascii_digit));
                j += 1;
            }
            if acc.len() >= 8 {
                out.push((PartKind::Account, acc));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// Every key normalised content is indexed under (duplicates included).
pub(crate) fn content_keys(normalized: &str, mut f: impl FnMut(u64)) {
    let ts: Vec<&str> = terms(normalized).collect();
    for t in &ts {
        if let Some((_, _, k)) = term_key(t) {
            f(k);
        }
        if (is_url(t) || is_email(t))
            && let Some(h) = host_of(t)
        {
            f(key(Space::Term, h));
        }
    }
    for (_, g) in groups(&ts) {
        f(key(Space::Compact, &g));
    }
    for n in 2..=PHRASE_TERMS {
        for w in ts.windows(n) {
            f(shingle_key(w));
        }
    }
}

/// The meaningful parts of a normalised value.
pub(crate) fn value_parts(ts: &[&str]) -> Vec<Part> {
    let mut parts = Vec::new();
    match ts.len() {
        0 => {}
        1 => {
            if let Some((kind, text, key)) = ts.first().and_then(|t| term_key(t)) {
                parts.push(Part {
                    kind,
                    text,
                    span: None,
                    key,
                });
            }
        }
        2..PHRASE_TERMS => {
            let text = ts.join(" ");
            let k = key(Space::Shingle, &text);
            parts.push(Part {
                kind: PartKind::Whole,
                text,
                span: None,
                key: k,
            });
        }
        _ => {
            for w in ts.windows(PHRASE_TERMS) {
                let text = w.join(" ");
                let k = key(Space::Shingle, &text);
                parts.push(Part {
                    kind: PartKind::Phrase,
                    text,
                    span: None,
                    key: k,
                });
            }
        }
    }
    let single = ts.len() == 1;
    for t in ts {
        let url = is_url(t);
        let email = is_email(t);
        if !single && (url || email) {
            let kind = if url { PartKind::Url } else { PartKind::Email };
            parts.push(Part {
                kind,
                text: (*t).to_owned(),
                span: None,
                key: key(Space::Term, t),
            });
        }
        if (url || email)
            && let Some(h) = host_of(t)
        {
            parts.push(Part {
                kind: PartKind::Host,
                text: h.to_owned(),
                span: None,
                key: key(Space::Term, h),
            });
        } else if !single && looks_like_host(t) && t.chars().count() >= MIN_TERM_CHARS {
            parts.push(Part {
                kind: PartKind::Host,
                text: (*t).to_owned(),
                span: None,
                key: key(Space::Term, t),
            });
        } else if !single
            && let Some(n) = number(t)
            && digit_count(&n) >= MIN_NUMBER_DIGITS
        {
            let k = key(Space::Term, &n);
            parts.push(Part {
                kind: PartKind::Number,
                text: n,
                span: None,
                key: k,
            });
        }
    }
    for (kind, g) in groups(ts) {
        let k = key(Space::Compact, &g);
        parts.push(Part {
            kind,
            text: g,
            span: None,
            key: k,
        });
    }
    parts.dedup_by(|a, b| a.key == b.key);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;

    fn kinds(v: &str) -> Vec<(PartKind, String)> {
        let n = normalize(v);
        let ts: Vec<&str> = terms(&n).collect();
        value_parts(&ts)
            .into_iter()
            .map(|p| {
                let text = match p.span {
                    Some((a, b)) => ts.get(a..b).unwrap_or_default().join(" "),
                    None => p.text,
                };
                (p.kind, text)
            })
            .collect()
    }

    #[test]
    fn a_run_of_terms_has_the_key_of_its_joined_text() {
        assert_eq!(
            shingle_key(&["acme", "energy"]),
            key(Space::Shingle, "acme energy")
        );
    }

    #[test]
    fn a_url_gives_its_host_and_an_address_its_domain() {
        let p = kinds("see https://evil.example/x?d=1 and mail eve@attacker.test now");
        assert!(
            p.contains(&(PartKind::Url, "https://evil.example/x?d=1".to_owned())),
            "{p:?}"
        );
        assert!(
            p.contains(&(PartKind::Host, "evil.example".to_owned())),
            "{p:?}"
        );
        assert!(
            p.contains(&(PartKind::Email, "eve@attacker.test".to_owned())),
            "{p:?}"
        );
        assert!(
            p.contains(&(PartKind::Host, "attacker.test".to_owned())),
            "{p:?}"
        );
        assert!(p.iter().any(|(k, _)| *k == PartKind::Phrase));
    }

    #[test]
    fn ibans_and_accounts_are_found_in_groups() {
        let p = kinds("DE89 3704 0044 0532 0130 00");
        assert!(
            p.contains(&(PartKind::Iban, "de89370400440532013000".to_owned())),
            "{p:?}"
        );
        let p = kinds("card 4111-1111-1111-1111 please");
        assert!(
            p.contains(&(PartKind::Account, "4111111111111111".to_owned())),
            "{p:?}"
        );
    }

    #[test]
    fn short_values_are_not_meaningful() {
        assert!(kinds("ab").is_empty());
        assert!(kinds("42").is_empty());
        assert_eq!(kinds("420"), vec![(PartKind::Number, "420".to_owned())]);
        assert_eq!(
            kinds("acme energy"),
            vec![(PartKind::Whole, "acme energy".to_owned())]
        );
    }
}
