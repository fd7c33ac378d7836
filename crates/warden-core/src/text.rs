//! Small text encodings every surface shares: RFC 3339 times, durations as charters and
//! configs write them, cutting text at a character boundary, and percent-encoding.
//! One copy each, so that the ledger, the API and the CLI agree on every format.

use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The longest duration [`parse_duration`] accepts: ten years. Anything longer is a typo,
/// and a bound keeps deadline arithmetic (`now + duration`) far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 86_400);

/// Parses a duration written as a positive whole number and a unit: `90s`, `15m`, `2h`, `7d`.
/// `None` for anything else, for zero, and for more than [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0 && secs <= MAX_DURATION.as_secs()).then(|| Duration::from_secs(secs))
}

/// `t` in RFC 3339 (`2026-12-06T04:00:00Z`); a time RFC 3339 cannot write (a year outside
/// 0..=9999) falls back to `time`'s own display rather than failing.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Parses an RFC 3339 time.
pub fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// The longest prefix of `s` of at most `max_bytes` bytes that ends on a character boundary.
pub fn prefix_within(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// `s` cut to at most `max_bytes` bytes at a character boundary, with `…` appended when it
/// was cut.
pub fn ellipsize(s: &str, max_bytes: usize) -> String {
    let kept = prefix_within(s, max_bytes);
    if kept.len() == s.len() {
        s.to_owned()
    } else {
        format!("{kept}…")
    }
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes everything but RFC 3986's unreserved characters: safe as a path segment
/// or a query value.
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_positive_whole_numbers_with_a_unit_and_bounded() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2h "), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            parse_duration("3660d"),
            Some(Duration::from_secs(3660 * 86_400))
        );
        assert_eq!(parse_duration("3661d"), None);
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5w"), None);
        assert_eq!(parse_duration("-5s"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
        assert_eq!(parse_duration("999999999999999999d"), None);
    }

    #[test]
    fn cutting_text_never_splits_a_character() {
        assert_eq!(prefix_within("héllo", 2), "h");
        assert_eq!(prefix_within("héllo", 3), "hé");
        assert_eq!(prefix_within("abc", 10), "abc");
        assert_eq!(ellipsize("héllo", 2), "h…");
        assert_eq!(ellipsize("abc", 3), "abc");
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(percent_encode("a/b c?é"), "a%2Fb%20c%3F%C3%A9");
    }

    #[test]
    fn times_round_trip_through_rfc3339() {
        let t = time::macros::datetime!(2026-12-06 04:00:00 UTC);
        assert_eq!(rfc3339(t), "2026-12-06T04:00:00Z");
        assert_eq!(parse_rfc3339("2026-12-06T04:00:00Z"), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
