//! Normalisation: the one form in which values, trusted text and untrusted content are
//! compared.
//!
//! | step | what |
//! |---|---|
//! | 1 | Unicode NFC |
//! | 2 | lower case (Unicode `to_lowercase`), then NFC again |
//! | 3 | every run of whitespace → one space |
//! | 4 | from both ends: whitespace and quoting `" ' \` < > ( ) [ ]`; from the end also `. , ; : ! ?` |
//!
//! The result is a fixed point: normalising it again changes nothing.

use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Quoting stripped from both ends of a value (and of every word).
pub(crate) const QUOTING: &[char] = &['"', '\'', '`', '<', '>', '(', ')', '[', ']'];

/// Sentence punctuation stripped from the end of a value (and of every word).
pub(crate) const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?'];

/// Whether `c` is stripped from the start of a value or word.
pub(crate) fn strip_start(c: char) -> bool {
    c.is_whitespace() || QUOTING.contains(&c)
}

/// Whether `c` is stripped from the end of a value or word.
pub(crate) fn strip_end(c: char) -> bool {
    c.is_whitespace() || QUOTING.contains(&c) || TRAILING.contains(&c)
}

/// `s` without the quoting and trailing punctuation at its ends.
pub(crate) fn trim_ends(s: &str) -> &str {
    s.trim_start_matches(strip_start)
        .trim_end_matches(strip_end)
}

/// The normalised form of `s` (see the module's table). Idempotent.
pub fn normalise(s: &str) -> String {
    // ASCII text is NFC already and lower-cases to ASCII: skip both NFC passes; text the quick
    // check finds composed already skips a pass too.
    let lowered: String = if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        let composed = if is_nfc_quick(s.chars()) == IsNormalized::Yes {
            s.to_lowercase()
        } else {
            s.nfc().collect::<String>().to_lowercase()
        };
        if is_nfc_quick(composed.chars()) == IsNormalized::Yes {
            composed
        } else {
            composed.nfc().collect()
        }
    };
    let mut out = String::with_capacity(lowered.len());
    let mut space = false;
    for c in lowered.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    let trimmed = trim_ends(&out);
    if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_space_and_quoting() {
        assert_eq!(normalise("  \"Bob@X.com\".  "), "bob@x.com");
        assert_eq!(normalise("Pay\t\n  Alice   NOW!"), "pay alice now");
        assert_eq!(normalise("(['`<x>`'])"), "x");
        assert_eq!(normalise("ends with dots...?!"), "ends with dots");
        assert_eq!(normalise(""), "");
        assert_eq!(normalise(" \"' "), "");
    }

    #[test]
    fn composes_unicode() {
        // e + combining acute → é; upper-case composed É → é.
        assert_eq!(normalise("Cafe\u{301}"), "café");
        assert_eq!(normalise("CAFÉ"), "café");
        assert_eq!(normalise("İstanbul"), normalise(&normalise("İstanbul")));
    }

    #[test]
    fn is_idempotent_on_awkward_input() {
        for s in [
            "ΣΑΣ. ",
            "\u{301}x",
            "\"\u{301}",
            "a \u{301} b",
            "ẞ",
            "x\u{2028}y",
            "(( a ))",
            ".,;",
        ] {
            let once = normalise(s);
            assert_eq!(normalise(&once), once, "{s:?}");
        }
    }
}
