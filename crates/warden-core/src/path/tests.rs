use proptest::prelude::*;

use super::*;

#[test]
fn collapses_dots_and_slashes() {
    assert_eq!(canonicalize("/srv//data/./a/../b").unwrap(), "/srv/data/b");
    assert_eq!(canonicalize("/").unwrap(), "/");
    assert_eq!(canonicalize("a/./b/").unwrap(), "a/b");
    assert_eq!(canonicalize("a/..").unwrap(), ".");
}

#[test]
fn refuses_escapes() {
    assert_eq!(canonicalize("/.."), Err(PathError::EscapesRoot));
    assert_eq!(canonicalize("/srv/../../etc"), Err(PathError::EscapesRoot));
    assert_eq!(canonicalize("../x"), Err(PathError::EscapesRoot));
}

#[test]
fn refuses_percent_escapes_with_what_they_decode_to() {
    let refused = |p: &str, decoded: &str| {
        assert_eq!(
            canonicalize(p),
            Err(PathError::PercentEncoded(decoded.to_owned())),
            "{p}"
        );
    };
    refused("/srv/data/%2e%2e/secret", "/srv/data/../secret");
    refused("/srv/data/%252e%252e/secret", "/srv/data/../secret");
    refused("/srv%2fdata", "/srv/data");
    // A decoded `/` would change which segment `..` removes: warden and a literal server
    // would name different files.
    refused("/ws/a%2fb/../../etc/passwd", "/ws/a/b/../../etc/passwd");
    refused("/ws/caf%C3%A9", "/ws/caf\u{e9}");
    assert_eq!(
        canonicalize("/a/%25252525252e"),
        Err(PathError::TooDeeplyEncoded)
    );
    assert_eq!(canonicalize("/a/%ff"), Err(PathError::NotUtf8));
    assert_eq!(canonicalize("/a%00b"), Err(PathError::ControlCharacter(0)));
    // A `%` that starts no escape is an ordinary character.
    assert_eq!(canonicalize("/ws/100%/x%zz").unwrap(), "/ws/100%/x%zz");
}

#[test]
fn refuses_dangerous_characters() {
    assert_eq!(canonicalize("/a\0b"), Err(PathError::ControlCharacter(0)));
    assert_eq!(canonicalize("/a\\..\\b"), Err(PathError::Backslash));
    // Fullwidth full stops and solidus, one-dot leader, division slash.
    assert_eq!(
        canonicalize("/srv/\u{FF0E}\u{FF0E}/x"),
        Err(PathError::LookAlike(0xFF0E))
    );
    assert_eq!(
        canonicalize("/srv\u{FF0F}x"),
        Err(PathError::LookAlike(0xFF0F))
    );
    assert_eq!(
        canonicalize("/srv/\u{2024}\u{2024}/x"),
        Err(PathError::LookAlike(0x2024))
    );
    assert_eq!(
        canonicalize("/srv\u{2215}x"),
        Err(PathError::LookAlike(0x2215))
    );
}

#[test]
fn refuses_text_not_in_nfc() {
    // "é" as e + combining acute (NFD) is refused, naming its composed form; the composed
    // form itself is canonical. (Issue 10, point 20: the decomposed name was decided as its
    // composed twin while the server opened the decomposed entry.)
    assert_eq!(
        canonicalize("/caf\u{65}\u{301}"),
        Err(PathError::NotNfc("/caf\u{e9}".to_owned()))
    );
    assert_eq!(canonicalize("/caf\u{e9}").unwrap(), "/caf\u{e9}");
}

#[test]
fn glob_roots() {
    assert_eq!(glob_root("/srv/data/**"), "/srv/data");
    assert_eq!(glob_root("/srv/data/**/*.md"), "/srv/data");
    assert_eq!(glob_root("/srv/da*/x"), "/srv");
    assert_eq!(glob_root("/*"), "/");
    assert_eq!(glob_root("*.md"), "");
    assert_eq!(glob_root("/etc/passwd"), "/etc");
}

fn path_strategy() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%252e".to_owned()),
        Just("%2f".to_owned()),
        Just("data".to_owned()),
        Just("srv".to_owned()),
        Just("e\u{301}".to_owned()),
        "[a-z%0-9.é]{1,6}",
    ];
    (any::<bool>(), prop::collection::vec(segment, 0..10)).prop_map(|(abs, segs)| {
        let body = segs.join("/");
        if abs { format!("/{body}") } else { body }
    })
}

proptest! {
    #[test]
    fn canonicalisation_is_idempotent(p in path_strategy()) {
        if let Ok(once) = canonicalize(&p) {
            prop_assert_eq!(canonicalize(&once), Ok(once.clone()));
        }
    }

    #[test]
    fn canonical_paths_have_no_dot_segments(p in path_strategy()) {
        if let Ok(c) = canonicalize(&p) {
            prop_assert!(c == "." || !c.split('/').any(|s| s == "." || s == ".."), "{c}");
            prop_assert!(c == "/" || !c.contains("//"), "{c}");
        }
    }

    #[test]
    fn never_leaves_the_glob_root(p in path_strategy()) {
        let glob = globset::GlobBuilder::new("/srv/data/**")
            .literal_separator(true)
            .build()
            .unwrap()
            .compile_matcher();
        if let Ok(c) = canonicalize(&format!("/srv/data/{p}")) {
            if glob.is_match(&c) {
                prop_assert!(c.starts_with("/srv/data/"), "{p} -> {c}");
            } else {
                prop_assert!(!c.starts_with("/srv/data/"), "{p} -> {c} not matched");
            }
        }
    }
}
