#![allow(clippy::unwrap_used, reason = "test code")]
use super::*;

#[test]
fn a_new_sink_starts_at_zero_and_a_stored_cursor_survives() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cursor::load(dir.path(), "copy").unwrap();
    assert_eq!(c.get(), 0);
    c.store(42).unwrap();
    assert_eq!(Cursor::load(dir.path(), "copy").unwrap().get(), 42);
    let text = std::fs::read_to_string(Cursor::path_of(dir.path(), "copy")).unwrap();
    assert_eq!(text, "42\n");
}

#[test]
fn garbage_is_refused_never_guessed() {
    let dir = tempfile::tempdir().unwrap();
    Cursor::load(dir.path(), "x").unwrap();
    let path = Cursor::path_of(dir.path(), "x");
    for bad in [
        "",
        "abc\n",
        "-1\n",
        "12 \n",
        "1e9",
        "99999999999999999999\n",
        "123456789012345678901234567890",
    ] {
        std::fs::write(&path, bad).unwrap();
        let e = Cursor::load(dir.path(), "x").unwrap_err();
        assert!(
            matches!(e, ExportError::CursorGarbage { .. }),
            "{bad:?}: {e}"
        );
        assert!(e.to_string().contains("x.cursor"), "{e}");
    }
    std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
    assert!(matches!(
        Cursor::load(dir.path(), "x").unwrap_err(),
        ExportError::CursorGarbage { .. }
    ));
    std::fs::write(&path, vec![b'1'; 10_000]).unwrap();
    assert!(matches!(
        Cursor::load(dir.path(), "x").unwrap_err(),
        ExportError::CursorGarbage { .. }
    ));
}
