//! Normalisation and terms: the one form every comparison uses.
//!
//! | step | what |
//! |---|---|
//! | Unicode | NFC (composed: `é` written as `e` + U+0301 equals `é`) |
//! | case | lower case (Unicode) |
//! | whitespace | every run of whitespace becomes one space; ends trimmed |
//! | terms | the text split at whitespace; each term loses the quoting and bracketing around it (`"'` `` ` `` `<>()[]{}`) and trailing sentence punctuation (`.,;:!?`) |
//! | numbers | a term that is a number (digits with `,` thousands separators and one `.`; a leading currency sign or `+`/`-` dropped) is compared by value: `1,200.50` = `1200.5` |
//!
//! [`normalize`] is idempotent (property-tested).

use unicode_normalization::UnicodeNormalization;

/// Characters stripped from both ends of a term.
const QUOTING: &[char] = &[
    '"', '\'', '`', '<', '>', '(', ')', '[', ']', '{', '}', '«', '»', '“', '”', '‘', '’',
];
/// Characters stripped from the end of a term (sentence punctuation), and from its start.
const PUNCTUATION: &[char] = &['.', ',', ';', ':', '!', '?'];

/// The normalised text: NFC, lower case, whitespace collapsed, each term stripped of quoting
/// and sentence punctuation, terms joined by one space.
pub fn normalize(text: &str) -> String {
    let composed: String = if text.is_ascii() {
        // ASCII is its own NFC, and lower-cases to ASCII.
        text.to_ascii_lowercase()
    } else {
        // Lower-casing can produce decomposed sequences (e.g. `İ`): compose again so the
        // result is a fixed point.
        text.nfc().collect::<String>().to_lowercase().nfc().collect()
    };
    let mut out = String::with_capacity(composed.len());
    for term in composed.split_whitespace().filter_map(clean_term) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(term);
    }
    out
}

/// A term without the quoting and punctuation around it; `None` when nothing is left.
pub(crate) fn clean_term(raw: &str) -> Option<&str> {
    let mut t = raw;
    loop {
        let before = t.len();
        t = t.trim_start_matches(QUOTING).trim_end_matches(QUOTING);
        t = t
            .trim_end_matches(PUNCTUATION)
            .trim_start_matches(PUNCTUATION);
        if t.len() == before {
            break;
        }
    }
    (!t.is_empty()).then_some(t)
}

/// The terms of already normalised text.
pub(crate) fn terms(normalized: &str) -> impl Iterator<Item = &str> {
    normalized.split(' ').filter(|t| !t.is_empty())
}

/// The canonical text of a number term (`1,200.50` → `1200.5`, `€300` → `300`), or `None`
/// when the term is not a number.
pub(crate) fn number(term: &str) -> Option<String> {
    let t = term.trim_start_matches(['€', '$', '£', '¥', '+']);
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t),
    };
    if t.is_empty() || !t.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits = String::with_capacity(t.len());
    let mut seen_dot = false;
    for c in t.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ',' if !seen_dot => {}
            '.' if !seen_dot => {
                seen_dot = true;
                digits.push('.');
            }
            _ => return None,
        }
    }
    if seen_dot {
        let trimmed = digits.trim_end_matches('0').trim_end_matches('.');
        digits.truncate(trimmed.len());
    }
    let int_start = digits.find(|c: char| c != '0').unwrap_or(digits.len());
    let mut canonical: String = digits.get(int_start..).unwrap_or("").to_owned();
    if canonical.is_empty() || canonical.starts_with('.') {
        canonical.insert(0, '0');
    }
    if negative {
        canonical.insert(0, '-');
    }
    Some(canonical)
}

/// The letters and digits of a text only (`DE89 3704-0044` → `de8937040044`), lower case.
pub(crate) fn compact(normalized: &str) -> String {
    normalized.chars().filter(|c| c.is_alphanumeric()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_composes_folds_collapses_and_strips_quoting() {
        assert_eq!(normalize("  \"Bob@X.com\".  "), "bob@x.com");
        assert_eq!(normalize("Cafe\u{301}\t\n Crème"), "café crème");
        assert_eq!(normalize("Pay <DE89 3704>, now!"), "pay de89 3704 now");
        assert_eq!(normalize("((('x')))"), "x");
        assert_eq!(normalize("..."), "");
    }

    #[test]
    fn numbers_compare_by_value() {
        assert_eq!(number("1,200.50").as_deref(), Some("1200.5"));
        assert_eq!(number("€300").as_deref(), Some("300"));
        assert_eq!(number("0042").as_deref(), Some("42"));
        assert_eq!(number("-7.0").as_deref(), Some("-7"));
        assert_eq!(number("0.50").as_deref(), Some("0.5"));
        assert_eq!(number("12a"), None);
        assert_eq!(number("abc"), None);
        assert_eq!(number("1.2.3"), None);
    }
}
