//! The meaningful parts of normalised text: words, e-mail addresses, URLs and hosts, IBANs,
//! account numbers, numbers and phrases (word shingles).
//!
//! The same scanner serves both sides: [`content_keys`] lists every key under which untrusted
//! content is indexed, [`value_parts`] the parts of a value looked up in that index. A part
//! shorter than [`MIN_PART_CHARS`] characters is never a key nor a part.

use std::collections::HashSet;

use crate::PartKind;
use crate::normalise::trim_ends;

/// Parts shorter than this many characters are ignored.
pub const MIN_PART_CHARS: usize = 4;

/// Words per phrase (word shingle).
pub const SHINGLE_WORDS: usize = 4;

/// Most consecutive groups (words) joined into one IBAN or account number.
const MAX_GROUPS: usize = 9;

/// The words of normalised text: its space-separated tokens with quoting and trailing
/// punctuation trimmed, empty ones dropped.
pub(crate) fn words(norm: &str) -> Vec<&str> {
    norm.split(' ')
        .map(trim_ends)
        .filter(|w| !w.is_empty())
        .collect()
}

fn long_enough(s: &str) -> bool {
    s.chars().nth(MIN_PART_CHARS - 1).is_some()
}

/// Whether `s` looks like a host name: dot-separated labels of letters, digits and `-`, the
/// last of at least two letters.
pub(crate) fn is_host(s: &str) -> bool {
    if !s.contains('.') || !long_enough(s) {
        return false;
    }
    let mut labels = s.split('.').peekable();
    while let Some(label) = labels.next() {
        if label.is_empty() || !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return false;
        }
        if labels.peek().is_none()
            && (label.chars().count() < 2 || !label.chars().all(char::is_alphabetic))
        {
            return false;
        }
    }
    true
}

/// The host of a URL (`scheme://[user@]host[:port]/...` or `www.host/...`).
fn url_host(url: &str) -> Option<&str> {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => url,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?;
    is_host(host).then_some(host)
}

/// The canonical form of a number run (`1,200.50` → `1200.5`, `007` → `7`, `12,5` → `12.5`),
/// and the count of its significant digits.
fn canonical_number(run: &str) -> (String, usize) {
    let commas = run.matches(',').count();
    let decimal_comma = !run.contains('.')
        && commas == 1
        && run
            .rsplit(',')
            .next()
            .is_some_and(|tail| (1..=2).contains(&tail.len()));
    let mut s: String = run
        .chars()
        .filter_map(|c| match c {
            ',' if decimal_comma => Some('.'),
            ',' => None,
            c => Some(c),
        })
        .collect();
    if s.matches('.').count() > 1 {
        // `1.200.000` (dots as thousands separators).
        s.retain(|c| c != '.');
    }
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    let trimmed = s.trim_start_matches('0');
    let s = if trimmed.is_empty() || trimmed.starts_with('.') {
        format!("0{trimmed}")
    } else {
        trimmed.to_owned()
    };
    let significant = s
        .chars()
        .filter(char::is_ascii_digit)
        .skip_while(|c| *c == '0')
        .count();
    (s, significant)
}

/// Calls `f` with every number in `word` with at least 3 significant digits.
fn numbers(word: &str, f: &mut impl FnMut(PartKind, &str)) {
    if !word.bytes().any(|b| b.is_ascii_digit()) {
        return;
    }
    let mut run = String::new();
    let mut chars = word.chars().peekable();
    let flush = |run: &mut String, f: &mut dyn FnMut(PartKind, &str)| {
        if !run.is_empty() {
            let (canon, significant) = canonical_number(run);
            if significant >= 3 {
                f(PartKind::Number, &canon);
            }
            run.clear();
        }
    };
    while let Some(c) = chars.next() {
        let separator = (c == '.' || c == ',')
            && !run.is_empty()
            && chars.peek().is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() || separator {
            run.push(c);
        } else {
            flush(&mut run, f);
        }
    }
    flush(&mut run, f);
}

/// Calls `f` with the parts of one word: e-mail address and its host, URL and its host, host,
/// numbers.
fn word_parts(word: &str, f: &mut impl FnMut(PartKind, &str)) {
    let url =
        word.starts_with("http://") || word.starts_with("https://") || word.starts_with("www.");
    if url {
        f(PartKind::Url, word);
        if let Some(host) = url_host(word) {
            f(PartKind::Host, host);
        }
    } else if let Some((local, domain)) = word.rsplit_once('@') {
        let local = local.trim_start_matches("mailto:");
        if !local.is_empty() && is_host(domain) {
            if local.len() + 1 + domain.len() == word.len() {
                f(PartKind::Email, word);
            } else {
                f(PartKind::Email, &format!("{local}@{domain}"));
            }
            f(PartKind::Host, domain);
        }
    } else if is_host(word) {
        f(PartKind::Host, word);
    }
    numbers(word, f);
}

fn iban_start(w: &str) -> bool {
    let b = w.as_bytes();
    matches!(b, [a, c, x, y, ..]
        if a.is_ascii_lowercase() && c.is_ascii_lowercase() && x.is_ascii_digit() && y.is_ascii_digit())
        && b.iter().all(u8::is_ascii_alphanumeric)
}

fn digit_group(w: &str) -> bool {
    w.bytes().any(|b| b.is_ascii_digit()) && w.bytes().all(|b| b.is_ascii_digit() || b == b'-')
}

/// Calls `f` with the IBANs and account numbers that start at each word (written in groups
/// over several words, or in one).
fn grouped_parts(words: &[&str], f: &mut impl FnMut(PartKind, &str)) {
    let mut buf = String::new();
    for (i, first) in words.iter().enumerate() {
        if iban_start(first) {
            buf.clear();
            for w in words.iter().skip(i).take(MAX_GROUPS) {
                let group = w.len() <= 4 || buf.is_empty();
                if !group
                    || !w.chars().all(|c| c.is_ascii_alphanumeric())
                    || buf.len() + w.len() > 34
                {
                    break;
                }
                buf.push_str(w);
                if buf.len() >= 15 {
                    f(PartKind::Iban, &buf);
                }
            }
        }
        if digit_group(first) {
            buf.clear();
            for w in words.iter().skip(i).take(MAX_GROUPS) {
                if !digit_group(w) {
                    break;
                }
                buf.extend(w.chars().filter(char::is_ascii_digit));
                if buf.len() >= 8 {
                    f(PartKind::Account, &buf);
                }
            }
        }
    }
}

/// `w` without leading and trailing characters that are neither letters nor digits (`«x»`,
/// `*x*`, `#x` keep `x`), when that differs from `w`.
fn core(w: &str) -> Option<&str> {
    let c = w.trim_matches(|c: char| !c.is_alphanumeric());
    (c.len() != w.len() && !c.is_empty()).then_some(c)
}

/// Whether every word of `ws` is shorter than [`MIN_PART_CHARS`] (no word of it is a key).
fn all_short(ws: &[&str]) -> bool {
    ws.iter().all(|w| !long_enough(w))
}

/// `buf` set to the words of `ws` joined by single spaces.
fn joined(ws: &[&str], buf: &mut String) {
    buf.clear();
    for (n, w) in ws.iter().enumerate() {
        if n > 0 {
            buf.push(' ');
        }
        buf.push_str(w);
    }
}

/// Calls `f` with every key under which normalised untrusted content is indexed: each word of
/// at least [`MIN_PART_CHARS`] characters (and its core without wrapping punctuation), each
/// phrase of [`SHINGLE_WORDS`] words, each run of two or three words that are all shorter than
/// [`MIN_PART_CHARS`] (so that `bo li` is traced), and every e-mail address, URL, host, IBAN,
/// account number and number. Keys may repeat.
pub(crate) fn content_keys(norm: &str, mut f: impl FnMut(&str)) {
    let words = words(norm);
    let mut emit = |_: PartKind, s: &str| {
        if long_enough(s) {
            f(s);
        }
    };
    for w in &words {
        emit(PartKind::Whole, w);
        if let Some(c) = core(w) {
            emit(PartKind::Whole, c);
        }
        word_parts(w, &mut emit);
    }
    grouped_parts(&words, &mut emit);
    let mut buf = String::new();
    for n in 2..SHINGLE_WORDS {
        for run in words.windows(n).filter(|r| all_short(r)) {
            joined(run, &mut buf);
            emit(PartKind::Phrase, &buf);
        }
    }
    for shingle in words.windows(SHINGLE_WORDS) {
        joined(shingle, &mut buf);
        emit(PartKind::Phrase, &buf);
    }
}

/// The meaningful parts of a normalised value, each once, in this order: the whole value (and
/// its core without wrapping punctuation), its e-mail addresses, URLs, hosts, IBANs, account
/// numbers and numbers, then its phrases (each run of [`SHINGLE_WORDS`] words; for a value of
/// two or three words, each of its words and their cores). Parts shorter than
/// [`MIN_PART_CHARS`] characters are left out.
pub fn value_parts(norm: &str) -> Vec<(PartKind, String)> {
    let mut out: Vec<(PartKind, String)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut push = |kind: PartKind, s: &str| {
        if long_enough(s) && !seen.contains(s) {
            seen.insert(s.to_owned());
            out.push((kind, s.to_owned()));
        }
    };
    push(PartKind::Whole, norm);
    let words = words(norm);
    if let ([_], Some(c)) = (words.as_slice(), words.first().and_then(|w| core(w))) {
        // A one-word value: its core stands for the whole.
        push(PartKind::Whole, c);
    }
    for w in &words {
        word_parts(w, &mut push);
    }
    grouped_parts(&words, &mut push);
    if words.len() < SHINGLE_WORDS {
        if words.len() > 1 {
            for w in &words {
                push(PartKind::Phrase, w);
                if let Some(c) = core(w) {
                    push(PartKind::Phrase, c);
                }
            }
        }
    } else {
        let mut buf = String::new();
        for shingle in words.windows(SHINGLE_WORDS) {
            joined(shingle, &mut buf);
            push(PartKind::Phrase, &buf);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(v: &str) -> Vec<(&'static str, String)> {
        value_parts(v)
            .into_iter()
            .map(|(k, p)| (k.as_str(), p))
            .collect()
    }

    fn keys(c: &str) -> Vec<String> {
        let mut out = Vec::new();
        content_keys(c, |k| out.push(k.to_owned()));
        out
    }

    #[test]
    fn email_and_host() {
        let p = parts("write to bob@evil.example now");
        assert!(p.contains(&("email", "bob@evil.example".into())));
        assert!(p.contains(&("host", "evil.example".into())));
        assert!(parts("mailto:bob@x.com").contains(&("email", "bob@x.com".into())));
        assert!(!parts("a@b").iter().any(|(k, _)| *k == "email"));
    }

    #[test]
    fn url_and_host() {
        let p = parts("see https://user@pay.evil.example:8443/x?y=1");
        assert_eq!(p.first().map(|(k, _)| *k), Some("whole"));
        assert!(p.contains(&("url", "https://user@pay.evil.example:8443/x?y=1".into())));
        assert!(p.contains(&("host", "pay.evil.example".into())));
        assert!(parts("see www.evil.example/login").contains(&("host", "www.evil.example".into())));
        assert!(parts("visit evil.example").contains(&("host", "evil.example".into())));
        assert!(!is_host("1.2.3.4"));
        assert!(!is_host("a..b.com"));
    }

    #[test]
    fn iban_in_groups_and_whole() {
        let grouped = parts("de89 3704 0044 0532 0130 00");
        assert!(grouped.contains(&("iban", "de89370400440532013000".into())));
        assert!(
            parts("to de89370400440532013000").contains(&("iban", "de89370400440532013000".into()))
        );
        let k = keys("iban: de89 3704 0044 0532 0130 00, thanks");
        assert!(k.contains(&"de89370400440532013000".to_owned()));
    }

    #[test]
    fn accounts_and_numbers() {
        let p = parts("card 4111-1111 1111-1111");
        assert!(p.contains(&("account", "4111111111111111".into())));
        assert!(parts("eur 1,200.50").contains(&("number", "1200.5".into())));
        assert!(parts("12,50 eur").contains(&("number", "12.5".into())));
        assert!(!parts("5,00 eur").iter().any(|(k, _)| *k == "number"));
        assert!(parts("total 120.50").contains(&("number", "120.5".into())));
        assert!(keys("amount: 0120.500 eur").contains(&"120.5".to_owned()));
        assert!(!parts("007 x").iter().any(|(k, _)| *k == "number"));
    }

    #[test]
    fn phrases_and_short_values() {
        let p = parts("please wire the money today");
        assert!(p.contains(&("phrase", "please wire the money".into())));
        assert!(p.contains(&("phrase", "wire the money today".into())));
        let short = parts("john smith");
        assert!(short.contains(&("phrase", "john".into())));
        assert!(short.contains(&("phrase", "smith".into())));
        assert_eq!(parts("ab"), vec![]);
        assert_eq!(parts("alice"), vec![("whole", "alice".into())]);
    }

    #[test]
    fn content_keys_cover_words_and_shingles() {
        let k = keys("hello \"mallory\", send the funds to https://evil.example/pay.");
        for want in [
            "hello",
            "mallory",
            "send the funds to",
            "https://evil.example/pay",
            "evil.example",
        ] {
            assert!(k.contains(&want.to_owned()), "{want}: {k:?}");
        }
        assert!(!k.contains(&"the".to_owned()));
        assert!(k.contains(&"to https://evil.example/pay".to_owned()) || k.len() > 5);
    }

    #[test]
    fn short_word_runs_and_cores() {
        let k = keys("pay bo li now, «mallory» *urgent*");
        for want in [
            "pay bo",
            "bo li",
            "pay bo li",
            "bo li now",
            "mallory",
            "urgent",
        ] {
            assert!(k.contains(&want.to_owned()), "{want}: {k:?}");
        }
        assert!(!k.contains(&"li now «mallory»".to_owned()));
        assert!(parts("«mallory»").contains(&("whole", "mallory".into())));
        assert!(parts("bo li").contains(&("whole", "bo li".into())));
    }

    #[test]
    fn unicode_never_splits_a_char() {
        for s in [
            "ü@ß.日本",
            "€1.234,56",
            "ÿÿÿÿ ääää öööö üüüü ßßßß",
            "de89 ää 12",
        ] {
            let _ = parts(s);
            let _ = keys(s);
        }
        assert!(parts("an müller@straße.de").contains(&("email", "müller@straße.de".into())));
    }
}
