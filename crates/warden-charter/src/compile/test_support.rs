//! What the compiler's tests share: the opening of every test charter, a text as the one
//! source `charter.yaml`, and its errors.

use super::*;

/// The opening every test charter shares (lines 1 to 6): the version and a complete
/// identity. A literal, for `concat!` and `format!`.
macro_rules! header {
    () => {
        "version: 1\nidentity:\n  id: demo\n  name: Demo\n  purpose: test\n  serves: tests\n"
    };
}
pub(super) use header;

/// `text` as the one source `charter.yaml`.
pub(super) fn src(text: &str) -> Vec<Source> {
    vec![Source::new("charter.yaml", text)]
}

/// The errors of a charter that must not compile.
pub(super) fn errors(text: &str) -> Diagnostics {
    compile(&src(text)).expect_err("charter should not compile")
}

/// [`errors`], printed.
pub(super) fn error_text(text: &str) -> String {
    errors(text).to_string()
}
