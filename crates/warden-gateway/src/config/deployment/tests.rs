use std::collections::HashMap;

use super::super::Config;
use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn hosts_and_tls_come_from_flag_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warden.toml");
    std::fs::write(
        &file,
        "charter = \"c.yaml\"\nagent_allowed_hosts = [\"A.example.com\", \"*.b.example.com\"]\noperator_tls_cert = \"op.crt\"\noperator_tls_key = \"op.key\"\n",
    )
    .unwrap();
    let c = Config::resolve(
        &RawConfig::default(),
        Some(&file),
        &env(&[(
            "WARDEN_OPERATOR_ALLOWED_HOSTS",
            " ops.example.com, [fd00::1] ,",
        )]),
    )
    .unwrap();
    assert_eq!(
        c.deployment.agent.allowed_hosts,
        ["a.example.com", "*.b.example.com"]
    );
    assert_eq!(
        c.deployment.operator.allowed_hosts,
        ["ops.example.com", "fd00::1"]
    );
    assert_eq!(
        c.deployment.operator.tls,
        Some(TlsFiles {
            cert: "op.crt".into(),
            key: "op.key".into()
        })
    );
    assert_eq!(c.deployment.agent.tls, None);
    // A flag wins over the file.
    let flags = RawConfig {
        agent_allowed_hosts: Some(vec!["flag.example.com".to_owned()]),
        ..RawConfig::default()
    };
    let c = Config::resolve(&flags, Some(&file), &env(&[])).unwrap();
    assert_eq!(c.deployment.agent.allowed_hosts, ["flag.example.com"]);
}

#[test]
fn bad_hosts_and_half_a_tls_pair_are_refused() {
    for bad in [
        "https://a.example.com",
        "a.example.com:8700",
        "a.example.com/path",
        "*",
        "*.",
        "a..example.com",
        "a b",
        "**.example.com",
    ] {
        let e = Config::resolve(
            &RawConfig::default(),
            None,
            &env(&[("WARDEN_CHARTER", "c"), ("WARDEN_AGENT_ALLOWED_HOSTS", bad)]),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid `agent_allowed_hosts` (from environment)"),
            "{bad}: {e}"
        );
    }
    let e = Config::resolve(
        &RawConfig::default(),
        None,
        &env(&[("WARDEN_CHARTER", "c"), ("WARDEN_AGENT_TLS_CERT", "a.crt")]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("set `agent_tls_key` too"), "{e}");
    let e = Config::resolve(
        &RawConfig::default(),
        None,
        &env(&[
            ("WARDEN_CHARTER", "c"),
            ("WARDEN_OPERATOR_TLS_KEY", "a.key"),
        ]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("set `operator_tls_cert` too"), "{e}");
}
