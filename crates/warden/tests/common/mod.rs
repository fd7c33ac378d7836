//! What the `warden` crate's test binaries share: the repository's root and a free loopback
//! port.

#![allow(dead_code, reason = "each test binary uses a part of this module")]

use std::path::{Path, PathBuf};

/// The repository's root, canonical.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// A loopback port nothing listened on when it was asked for (another process could take it
/// before the test binds it: good enough for a test that starts a process on it at once).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free loopback port")
        .local_addr()
        .expect("the port's address")
        .port()
}
