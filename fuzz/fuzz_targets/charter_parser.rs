//! Fuzzes the charter compiler: any input yields a charter or diagnostics, never a panic, and
//! every diagnostic points at a line and column inside the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_charter::{Source, compile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // YAML breaks lines at `\n`, `\r` and `\r\n`: count every break character as an upper bound.
    let breaks = text.bytes().filter(|b| matches!(b, b'\n' | b'\r')).count();
    let lines = u32::try_from(breaks).unwrap_or(u32::MAX).saturating_add(1);
    if let Err(diagnostics) = compile(&[Source::new("fuzz.yaml", text)]) {
        assert!(diagnostics.has_errors());
        for d in &diagnostics.0 {
            assert!(d.location.line >= 1 && d.location.line <= lines + 1, "{d}");
            assert!(d.location.column >= 1, "{d}");
        }
    }
});
