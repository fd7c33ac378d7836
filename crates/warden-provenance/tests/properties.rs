//! Properties of provenance (issue 13): a value occurring only in untrusted content is never
//! judged trusted; a value in the trusted text always is; normalisation is idempotent; the
//! index stays within its bounds.

use std::sync::Arc;

use proptest::prelude::*;
use warden_core::TrustedSource;
use warden_provenance::{Limits, Origin, SessionProvenance, normalize};

fn label() -> Arc<str> {
    Arc::from("untrusted_mail")
}

/// Words, addresses, URLs, IBAN-like and numeric tokens, with quoting and odd whitespace.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Zéü]{1,9}",
        "[a-z]{3,8}@[a-z]{3,8}\\.(com|example|test)",
        "https://[a-z]{3,8}\\.example/[a-z0-9]{0,6}",
        "[A-Z]{2}[0-9]{2}( [A-Z0-9]{4}){3,5}",
        "[0-9]{1,9}(\\.[0-9]{1,2})?",
        "[\"'<(]?[a-z]{2,6}[\"'>).,;!?]?",
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec((token(), "[ \t\n]{1,2}"), 0..max)
        .prop_map(|v| v.into_iter().map(|(t, s)| t + &s).collect::<String>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalisation_is_idempotent(s in "\\PC{0,60}") {
        let once = normalize(&s);
        prop_assert_eq!(normalize(&once), once.clone());
    }

    #[test]
    fn a_value_in_the_trusted_text_is_always_trusted(
        before in text(6), value in token(), after in text(6), content in text(30)
    ) {
        let mut p = SessionProvenance::new(Limits::default());
        p.add_trusted(&format!("{before} {value} {after}"), TrustedSource::Task).unwrap();
        p.add_untrusted(&format!("{content} {value}"), Origin { seq: 1, labels: vec![label()] });
        let t = p.trace(&value);
        // A value that normalises to nothing (pure punctuation) states nothing either way.
        if !normalize(&value).is_empty() {
            prop_assert!(t.is_stated(), "{value:?} in {before:?}/{after:?}: {t:?}");
            prop_assert!(!t.from_any(&[label()]));
        }
    }

    #[test]
    fn a_value_only_in_untrusted_content_is_never_trusted(
        task in text(8), before in text(10), value in token(), after in text(10)
    ) {
        let mut p = SessionProvenance::new(Limits::default());
        p.add_trusted(&task, TrustedSource::Task).unwrap();
        p.add_untrusted(&format!("{before} {value} {after}"), Origin { seq: 9, labels: vec![label()] });
        let t = p.trace(&value);
        let n = normalize(&value);
        let in_task = normalize(&task).contains(n.as_str())
            || warden_provenance::normalize(&task).split(' ').any(|w| !w.is_empty() && n.contains(w));
        // Only when the task does not contain it (nor anything it could be stated by).
        if !in_task && !n.is_empty() {
            prop_assert!(!t.is_stated(), "{value:?} stated by {task:?}");
            // And when it has a meaningful part, it is found in the content.
            let meaningful = match n.replace(',', "").parse::<f64>() {
                Ok(x) => format!("{x}").chars().filter(char::is_ascii_digit).count() >= 3,
                Err(_) => n.chars().count() >= 4 && !n.contains(' '),
            };
            if meaningful {
                prop_assert!(t.from_any(&[label()]), "{value:?} not found: {t:?}");
            }
        }
    }

    #[test]
    fn the_index_stays_within_its_bounds(chunks in prop::collection::vec(text(40), 1..20), max_keys in 1usize..300, max_bytes in 1usize..2000) {
        let limits = Limits { max_untrusted_bytes: max_bytes, max_keys, max_trusted_bytes: 100 };
        let mut p = SessionProvenance::new(limits);
        for (i, c) in chunks.iter().enumerate() {
            p.add_untrusted(c, Origin { seq: i as u64, labels: vec![label()] });
            prop_assert!(p.keys() <= max_keys);
        }
        prop_assert!(p.memory_bytes() <= max_keys * 40 + 20 * std::mem::size_of::<Origin>());
        // Incomplete means fail closed for anything not stated.
        if !p.is_complete() {
            prop_assert!(p.trace("never-seen-anywhere.example").from_any(&[label()]));
        }
    }
}
