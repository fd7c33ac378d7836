use proptest::prelude::*;
use serde_json::json;

use super::*;

const KEY: &str = "sk-provider-secret-1234";

#[test]
fn secrets_are_replaced_in_text_bytes_and_json() {
    let s = Secrets::new([KEY, "short", "", "https://hooks.example/T0/B0/xyz"]).unwrap();
    assert!(!s.is_empty());
    assert_eq!(
        s.redact_str(&format!("Incorrect API key provided: {KEY}.")),
        "Incorrect API key provided: [REDACTED]."
    );
    assert!(matches!(
        s.redact_str("nothing here, short"),
        Cow::Borrowed(_)
    ));
    assert_eq!(
        &*s.redact_bytes(format!("a{KEY}b{KEY}").as_bytes()),
        b"a[REDACTED]b[REDACTED]"
    );
    let mut v = json!({ "error": { "message": format!("bad key {KEY}"), KEY: [1, KEY] } });
    assert!(s.redact_json(&mut v));
    assert_eq!(
        v,
        json!({ "error": { "message": "bad key [REDACTED]", "[REDACTED]": [1, "[REDACTED]"] } })
    );
    // Nothing to replace: untouched, and said so.
    for clean in [json!({ "a": ["short", 1, null] }), json!("text"), json!([])] {
        let mut v = clean.clone();
        assert!(!s.redact_json(&mut v));
        assert_eq!(v, clean);
    }
    // A secret only in a key, or only deep inside, is reported.
    for dirty in [json!({ KEY: 1 }), json!([[{ "x": [format!("..{KEY}")] }]])] {
        let mut v = dirty;
        assert!(s.redact_json(&mut v), "{v}");
        assert!(!v.to_string().contains(KEY));
    }
    assert!(format!("{s:?}").contains("count: 2"), "{s:?}");
    assert!(!format!("{s:?}").contains(KEY));
}

#[test]
fn the_longer_of_two_overlapping_secrets_is_replaced_whole() {
    let s = Secrets::new(["abcdefgh", "abcdefghijkl"]).unwrap();
    assert_eq!(s.redact_str("xabcdefghijkly"), "x[REDACTED]y");
}

#[test]
fn a_secret_split_across_chunks_is_replaced() {
    let s = Secrets::new([KEY]).unwrap();
    let text = format!("data: {{\"error\": \"bad key {KEY}\"}}\n\n");
    for split in 0..text.len() {
        let (a, b) = text.split_at(split);
        let mut r = s.stream();
        let mut out = r.push(a.as_bytes());
        out.extend(r.push(b.as_bytes()));
        out.extend(r.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"error\": \"bad key [REDACTED]\"}\n\n",
            "split at {split}"
        );
    }
    // Complete lines are released at once.
    let mut r = s.stream();
    assert_eq!(r.push(b"data: x\n\ndata: sk-pro"), b"data: x\n\n");
    assert_eq!(r.push(b"vider-secret-1234\n"), b"data: [REDACTED]\n");
    // With no secrets, nothing is held back.
    let mut none = Secrets::default().stream();
    assert_eq!(none.push(b"abc"), b"abc");
}

proptest! {
    #[test]
    fn streaming_equals_redacting_the_whole(
        parts in prop::collection::vec(prop_oneof![
            Just(KEY.to_owned()), Just("sk-pro".to_owned()), "[a-z \n-]{0,12}"
        ], 0..12),
        cuts in prop::collection::vec(0usize..64, 0..8),
    ) {
        let s = Secrets::new([KEY, "provider"]).unwrap();
        let text = parts.concat();
        let mut r = s.stream();
        let mut out = Vec::new();
        let mut at = 0;
        let mut cuts = cuts;
        cuts.sort_unstable();
        for c in cuts {
            let c = c.min(text.len()).max(at);
            out.extend(r.push(&text.as_bytes()[at..c]));
            at = c;
        }
        out.extend(r.push(&text.as_bytes()[at..]));
        out.extend(r.finish());
        prop_assert_eq!(out, s.redact_bytes(text.as_bytes()).into_owned());
    }
}
