use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn precedence_is_flag_env_file_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warden.toml");
    std::fs::write(&file, "agent_listen = \"127.0.0.1:9000\"\noperator_listen = \"127.0.0.1:9001\"\ncharter = \"from-file.yaml\"\nmax_body_bytes = 2048\n").unwrap();
    let flags = RawConfig {
        agent_listen: Some("127.0.0.1:7000".into()),
        ..RawConfig::default()
    };
    let c = Config::resolve(
        &flags,
        Some(&file),
        &env(&[("WARDEN_OPERATOR_LISTEN", "127.0.0.1:8001")]),
    )
    .unwrap();
    assert_eq!(c.agent_listen.to_string(), "127.0.0.1:7000");
    assert_eq!(c.operator_listen.to_string(), "127.0.0.1:8001");
    assert_eq!(c.charters, CharterSource::one("from-file.yaml"));
    assert_eq!(c.max_body_bytes, 2048);
    assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    let c = Config::resolve(
        &RawConfig::default(),
        None,
        &env(&[
            ("WARDEN_CHARTER", "c.yaml"),
            ("WARDEN_CONFIG", file.to_str().unwrap()),
        ]),
    )
    .unwrap();
    assert_eq!(c.agent_listen.to_string(), "127.0.0.1:9000");
    assert_eq!(c.charters, CharterSource::one("c.yaml"));
}

#[test]
fn bad_values_are_named_with_their_origin() {
    let e = Config::resolve(
        &RawConfig::default(),
        None,
        &env(&[("WARDEN_CHARTER", "c"), ("WARDEN_AGENT_LISTEN", "nope")]),
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid `agent_listen` (from environment): `nope`"),
        "{e}"
    );
    let e = Config::resolve(&RawConfig::default(), None, &env(&[])).unwrap_err();
    assert!(matches!(e, ConfigError::NoCharter));
    let same = RawConfig {
        agent_listen: Some("127.0.0.1:1".into()),
        operator_listen: Some("127.0.0.1:1".into()),
        charter: Some("c".into()),
        ..RawConfig::default()
    };
    assert!(
        Config::resolve(&same, None, &env(&[]))
            .unwrap_err()
            .to_string()
            .contains("separate listeners")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.toml");
    std::fs::write(&file, "agent_lissen = 1\n").unwrap();
    let e = Config::resolve(&RawConfig::default(), Some(&file), &env(&[])).unwrap_err();
    assert!(
        e.to_string().contains("unknown field `agent_lissen`"),
        "{e}"
    );
}

/// Issue 10 point 17: a duration in the config file beyond what deadline arithmetic can
/// take is refused with the setting named, never a panic later.
#[test]
fn issue_10_a_huge_config_duration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.toml");
    for (key, value) in [
        ("result_deadline", "18446744073709551615s"),
        ("approval_progress_interval", "99999999999d"),
        ("header_timeout", "4000d"),
        ("upstream_timeout", "0s"),
    ] {
        std::fs::write(&file, format!("charter = \"c\"\n{key} = \"{value}\"\n")).unwrap();
        let e = Config::resolve(&RawConfig::default(), Some(&file), &env(&[])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("invalid `{key}` (from config file): `{value}`")),
            "{e}"
        );
    }
}

#[test]
fn issue_10_connection_caps_and_timeouts_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.toml");
    std::fs::write(
        &file,
        "charter = \"c\"\nagent_max_connections = 10\noperator_max_connections = 5\nheader_timeout = \"2s\"\nbody_timeout = \"3s\"\nrequest_timeout = \"4s\"\n",
    )
    .unwrap();
    let c = Config::resolve(&RawConfig::default(), Some(&file), &env(&[])).unwrap();
    assert_eq!(
        c.limits,
        Limits {
            agent_max_connections: 10,
            operator_max_connections: 5,
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(4),
        }
    );
    std::fs::write(&file, "charter = \"c\"\noperator_max_connections = 0\n").unwrap();
    let e = Config::resolve(&RawConfig::default(), Some(&file), &env(&[])).unwrap_err();
    assert!(e.to_string().contains("operator_max_connections"), "{e}");
    let c = Config::resolve(
        &RawConfig::default(),
        None,
        &env(&[("WARDEN_CHARTER", "c")]),
    )
    .unwrap();
    assert_eq!(c.limits, Limits::default());
}

#[test]
fn a_config_file_that_is_a_device_or_too_large_is_refused_without_reading_it_all() {
    // Before the bounded reader, `/dev/zero` as the config file grew memory without bound.
    let e = Config::resolve(
        &RawConfig::default(),
        Some(Path::new("/dev/zero")),
        &env(&[]),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "config file `/dev/zero` is a device, not a regular file"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.toml");
    let big = vec![b'#'; usize::try_from(MAX_CONFIG_FILE_BYTES).unwrap() + 1];
    std::fs::write(&file, big).unwrap();
    let e = Config::resolve(&RawConfig::default(), Some(&file), &env(&[])).unwrap_err();
    assert!(e.to_string().contains("larger than the limit"), "{e}");
}

#[test]
fn the_shadow_charter_is_a_flag_an_env_variable_or_a_file_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("warden.toml");
    std::fs::write(
        &file,
        "charter = \"live.yaml\"\nshadow_charter = \"from-file.yaml\"\n",
    )
    .unwrap();
    let none = Config::resolve(
        &RawConfig::default(),
        None,
        &env(&[("WARDEN_CHARTER", "c")]),
    )
    .unwrap();
    assert_eq!(none.shadow_charter, None);
    let from_file = Config::resolve(&RawConfig::default(), Some(&file), &env(&[])).unwrap();
    assert_eq!(
        from_file.shadow_charter,
        Some(PathBuf::from("from-file.yaml"))
    );
    let from_env = Config::resolve(
        &RawConfig::default(),
        Some(&file),
        &env(&[("WARDEN_SHADOW_CHARTER", "from-env.yaml")]),
    )
    .unwrap();
    assert_eq!(
        from_env.shadow_charter,
        Some(PathBuf::from("from-env.yaml"))
    );
    let flags = RawConfig {
        shadow_charter: Some("from-flag.yaml".into()),
        ..RawConfig::default()
    };
    let from_flag = Config::resolve(
        &flags,
        Some(&file),
        &env(&[("WARDEN_SHADOW_CHARTER", "from-env.yaml")]),
    )
    .unwrap();
    assert_eq!(
        from_flag.shadow_charter,
        Some(PathBuf::from("from-flag.yaml"))
    );
}
