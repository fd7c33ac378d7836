//! Trusted text: the pieces the principal stated (the task, instructions, confirmed values),
//! kept as given and normalised, compared as text (never by hash).

use warden_core::TrustedSource;

use crate::normalise::{QUOTING, TRAILING, normalise};

/// One piece of trusted text.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) raw: String,
    pub(crate) norm: String,
    pub(crate) source: TrustedSource,
}

impl Piece {
    pub(crate) fn new(raw: &str, source: TrustedSource) -> Piece {
        Piece {
            raw: raw.to_owned(),
            norm: normalise(raw),
            source,
        }
    }

    /// Whether this piece states normalised `needle`: it occurs at token boundaries, or — for
    /// an IBAN or account number, written with or without spaces and dashes — its letters and
    /// digits equal those of a run of whole words of the piece (`DE89370400440532013000` is
    /// stated by `DE89 3704 0044 0532 0130 00`; a prefix of it is not).
    pub(crate) fn states(&self, needle: &str) -> bool {
        occurs_at_boundaries(&self.norm, needle) || self.states_compact(needle)
    }

    fn states_compact(&self, needle: &str) -> bool {
        let want: String = needle.chars().filter(|c| c.is_alphanumeric()).collect();
        if want.len() < 8 || want.chars().filter(char::is_ascii_digit).count() < 4 {
            return false;
        }
        let words: Vec<&str> = self.norm.split(' ').collect();
        (0..words.len()).any(|start| {
            let mut run = String::with_capacity(want.len() + 8);
            for w in words.iter().skip(start) {
                run.extend(w.chars().filter(|c| c.is_alphanumeric()));
                if run.len() >= want.len() {
                    break;
                }
            }
            run == want
        })
    }
}

/// Whether `c` may precede a token.
fn before_ok(c: Option<char>) -> bool {
    c.is_none_or(|c| c.is_whitespace() || QUOTING.contains(&c) || "{},;:=".contains(c))
}

/// Whether the text after a match (`rest`) starts at a token boundary: nothing, a space,
/// quoting, or sentence punctuation followed by one of those.
fn after_ok(rest: &str) -> bool {
    let mut chars = rest.chars();
    match chars.next() {
        None => true,
        Some(c) if c.is_whitespace() || QUOTING.contains(&c) || "{},;".contains(c) => true,
        Some(c) if TRAILING.contains(&c) => chars
            .next()
            .is_none_or(|n| n.is_whitespace() || QUOTING.contains(&n) || TRAILING.contains(&n)),
        Some(_) => false,
    }
}

/// Whether normalised `needle` occurs in normalised `hay` at token boundaries.
pub(crate) fn occurs_at_boundaries(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let step = needle.chars().next().map_or(1, char::len_utf8);
    let mut from = 0;
    while let Some(found) = hay.get(from..).and_then(|rest| rest.find(needle)) {
        let start = from + found;
        let end = start + needle.len();
        let before = hay.get(..start).and_then(|h| h.chars().next_back());
        if before_ok(before) && after_ok(hay.get(end..).unwrap_or_default()) {
            return true;
        }
        from = start + step;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_at_token_boundaries() {
        let task = normalise("Send it to bob@x.com. Then pay DE89 3704 0044 0532 0130 00!");
        assert!(occurs_at_boundaries(&task, "bob@x.com"));
        assert!(!occurs_at_boundaries(&task, "ob@x.co"));
        assert!(!occurs_at_boundaries(&task, "bob@x.co"));
        assert!(occurs_at_boundaries(&task, "de89 3704 0044 0532 0130 00"));
        assert!(occurs_at_boundaries(&task, "send it to"));
        assert!(!occurs_at_boundaries(&task, "end it"));
        assert!(!occurs_at_boundaries(&task, ""));
        assert!(occurs_at_boundaries("to: \"alice\", please", "alice"));
        assert!(occurs_at_boundaries("aab aa", "aa"));
        assert!(!occurs_at_boundaries("aab", "aa"));
        assert!(occurs_at_boundaries("x.com.", "x.com"));
        assert!(!occurs_at_boundaries("x.com.au", "x.com"));
    }

    #[test]
    fn unicode_haystacks() {
        assert!(occurs_at_boundaries("grüße an jürgen", "jürgen"));
        assert!(!occurs_at_boundaries("ßjürgen", "jürgen"));
        assert!(occurs_at_boundaries("日本 東京", "東京"));
    }
}
