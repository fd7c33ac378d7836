//! Property tests of the provenance guarantees (docs/provenance.md): untrusted content never
//! makes a value trusted, trusted text always states what it contains, normalisation is
//! idempotent, the index stays within its bounds, and an incomplete index fails closed.

use std::sync::Arc;

use proptest::prelude::*;
use warden_core::TrustedSource;
use warden_provenance::{Limits, Origin, SessionProvenance, normalise, value_parts};

fn labels() -> Vec<Arc<str>> {
    vec![Arc::from("untrusted_mail")]
}

fn origin(seq: u64) -> Origin {
    Origin {
        seq,
        labels: labels(),
    }
}

/// Words of untrusted content: letters a–m (and a few non-ASCII ones), e-mail addresses,
/// digit runs, hosts.
fn content_word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-mA-M]{1,8}",
        "[a-mäöüé]{1,6}",
        "[a-m]{2,5}@[a-m]{2,5}\\.[a-m]{2,3}",
        "[0-9]{1,12}",
        "[a-m]{2,6}\\.[a-m]{2,3}",
    ]
}

/// Words of trusted text: letters n–z only, so that no content word occurs in it.
fn trusted_word() -> impl Strategy<Value = String> {
    "[n-zN-Z]{1,8}"
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just(" "),
        Just("  "),
        Just("\n"),
        Just(", "),
        Just(". "),
        Just("; "),
        Just(" \""),
        Just("\" "),
        Just("\t"),
    ]
}

/// Text of `words` joined by the separators (cycled).
fn join(words: &[String], seps: &[&str]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push_str(seps.get(i % seps.len().max(1)).copied().unwrap_or(" "));
        }
        out.push_str(w);
    }
    out
}

/// Words of text (as the index sees them): normalised, split on spaces, quoting and trailing
/// punctuation trimmed.
fn norm_words(text: &str) -> Vec<String> {
    normalise(text)
        .split(' ')
        .map(|w| {
            w.trim_start_matches(|c: char| "\"'`<>()[]".contains(c))
                .trim_end_matches(|c: char| "\"'`<>()[].,;:!?".contains(c))
                .to_owned()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn normalisation_is_idempotent(s in any::<String>()) {
        let once = normalise(&s);
        prop_assert_eq!(normalise(&once), once);
    }

    #[test]
    fn normalisation_is_idempotent_on_text(s in "[ a-zA-Z0-9\"'`<>()\\[\\].,;:!?\u{301}\u{300}éÉßİΣ\t\n]{0,40}") {
        let once = normalise(&s);
        prop_assert_eq!(normalise(&once), once);
    }

    /// A value made of words that occur only in untrusted content is never stated, and it
    /// comes from the content's labels whenever it has a meaningful part.
    #[test]
    fn untrusted_only_values_are_never_trusted(
        content in prop::collection::vec(content_word(), 1..40),
        seps in prop::collection::vec(separator(), 1..6),
        task in prop::collection::vec(trusted_word(), 0..20),
        start in 0usize..40,
        len in 1usize..7,
    ) {
        let text = join(&content, &seps);
        let mut p = SessionProvenance::new(Limits::default());
        p.add_trusted(&task.join(" "), TrustedSource::Task).unwrap();
        p.add_untrusted(&text, origin(5));
        let words = norm_words(&text);
        let start = start % words.len().max(1);
        let value = words.iter().skip(start).take(len).cloned().collect::<Vec<_>>().join(" ");
        let t = p.trace(&value);
        prop_assert!(!t.is_stated(), "{value:?} stated by {task:?}");
        if !value_parts(&normalise(&value)).is_empty() {
            prop_assert!(t.from_any(&labels()), "{value:?} not traced to {text:?}");
            prop_assert!(t.untrusted.iter().all(|f| f.seq == 5));
        }
    }

    /// A value that occurs in the trusted text (a run of its words, as written) is stated,
    /// whatever untrusted content holds.
    #[test]
    fn values_in_trusted_text_are_stated(
        task in prop::collection::vec("[a-zA-Z0-9äÖßé@.-]{1,10}", 1..30),
        seps in prop::collection::vec(separator(), 1..6),
        content in prop::collection::vec(content_word(), 0..30),
        start in 0usize..30,
        len in 1usize..6,
    ) {
        let mut p = SessionProvenance::new(Limits::default());
        p.add_untrusted(&content.join(" "), origin(2));
        let text = join(&task, &seps);
        p.add_trusted(&text, TrustedSource::Task).unwrap();
        let start = start % task.len();
        let end = (start + len).min(task.len());
        let mut value = String::new();
        for (i, w) in task.iter().enumerate().take(end).skip(start) {
            if i > start {
                value.push_str(seps.get(i % seps.len()).copied().unwrap_or(" "));
            }
            value.push_str(w);
        }
        prop_assume!(!normalise(&value).is_empty());
        let t = p.trace(&value);
        prop_assert_eq!(t.stated.clone(), Some(TrustedSource::Task), "{:?} not stated by {:?}", value, text);
        prop_assert!(!t.from_any(&labels()));
    }

    /// No part reported as untrusted occurs in trusted text; no trace lists more than 16 parts.
    #[test]
    fn reported_parts_are_not_in_trusted_text(
        content in prop::collection::vec(content_word(), 1..40),
        task in prop::collection::vec(content_word(), 0..10),
        value in prop::collection::vec(content_word(), 1..8),
    ) {
        let mut p = SessionProvenance::new(Limits::default());
        p.add_trusted(&task.join(" "), TrustedSource::Task).unwrap();
        p.add_untrusted(&content.join(" "), origin(1));
        let t = p.trace(&value.join(" "));
        let task_words = norm_words(&task.join(" "));
        for f in &t.untrusted {
            prop_assert!(!task_words.contains(&f.part), "{} is in the task", f.part);
        }
        let parts: std::collections::HashSet<&str> = t.untrusted.iter().map(|f| f.part.as_str()).collect();
        prop_assert!(parts.len() <= 16);
    }

    /// Whatever is added, the index keeps at most `max_keys` keys, its memory stays bounded
    /// by the limits, and content past a bound marks it incomplete.
    #[test]
    fn the_index_stays_within_its_bounds(
        adds in prop::collection::vec(prop::collection::vec(content_word(), 0..60), 1..12),
        max_keys in 1usize..200,
        max_bytes in 1usize..2000,
    ) {
        let limits = Limits { max_untrusted_bytes: max_bytes, max_keys, max_trusted_bytes: 64 };
        let mut p = SessionProvenance::new(limits);
        let mut total = 0usize;
        for (seq, words) in adds.iter().enumerate() {
            let text = words.join(" ");
            total += text.len();
            p.add_untrusted(&text, origin(seq as u64));
            prop_assert!(p.keys() <= max_keys);
            prop_assert!(p.memory_bytes() <= 80 * max_keys.max(4) + 256 * (seq + 1) + 4096,
                "{} bytes for {} keys", p.memory_bytes(), p.keys());
        }
        if total > max_bytes {
            prop_assert!(!p.is_complete());
        }
    }

    /// An incomplete index judges every value the trusted text does not state as coming from
    /// any label.
    #[test]
    fn incomplete_means_from_any_for_unstated_values(
        content in prop::collection::vec(content_word(), 0..20),
        task in prop::collection::vec(trusted_word(), 0..10),
        value in "\\PC{0,30}",
    ) {
        let mut p = SessionProvenance::new(Limits::default());
        p.add_trusted(&task.join(" "), TrustedSource::Task).unwrap();
        p.add_untrusted(&content.join(" "), origin(1));
        p.mark_incomplete();
        let t = p.trace(&value);
        prop_assert!(t.incomplete);
        if !t.is_stated() {
            prop_assert!(t.from_any(&labels()));
            prop_assert!(t.from_any(&[Arc::from("any_other_label")]));
        }
    }
}
