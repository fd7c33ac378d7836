//! What the `warden` crate's test modules share: the repository's root, a free loopback
//! port, and the one-tool charter the operator-plane CLI tests run against.

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

/// A charter with one autonomous tool (`echo.echo` on the server at `echo_url`) and one
/// approver (`alice`): what the operator-plane CLI tests run a gateway with.
pub(crate) fn echo_charter(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: the test suite }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous }}
authority:
  roles: [{{ id: ops, approve: [default] }}]
  principals: [{{ id: alice, roles: [ops] }}]
"#
    )
}
