//! Fuzzes the path canonicaliser: never a panic; the result is a fixpoint, holds no `.` or
//! `..` segment, and a path that matches `/srv/data/**` lies inside `/srv/data`.

#![no_main]

use std::sync::LazyLock;

use globset::{GlobBuilder, GlobMatcher};
use libfuzzer_sys::fuzz_target;
use warden_core::path::canonicalize;

static ROOT: LazyLock<Option<GlobMatcher>> = LazyLock::new(|| {
    GlobBuilder::new("/srv/data/**")
        .literal_separator(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
});

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for input in [raw.to_owned(), format!("/srv/data/{raw}")] {
        let Ok(once) = canonicalize(&input) else {
            continue;
        };
        assert_eq!(
            canonicalize(&once).as_deref(),
            Ok(once.as_str()),
            "not idempotent: {input:?}"
        );
        assert!(
            once == "." || !once.split('/').any(|s| s == "." || s == ".."),
            "dot segment left: {input:?} -> {once:?}"
        );
        if let Some(root) = ROOT.as_ref()
            && root.is_match(&once)
        {
            assert!(
                once.starts_with("/srv/data/"),
                "{input:?} -> {once:?} left the root"
            );
        }
    }
});
