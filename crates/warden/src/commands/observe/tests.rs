#![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "test code")]

use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn flags_win_over_the_config_file_whose_paths_are_relative_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("observer.toml");
    std::fs::write(
        &config,
        r#"
gateway = "http://10.0.0.1:8701"
token_file = "observer.token"
charter = "charter.yaml"
data = "obs"
metrics_listen = "127.0.0.1:9100"
alert_webhook = "https://hooks.example/x"
alert_format = "slack"
sweep_interval = "0s"
"#,
    )
    .unwrap();
    let args = ObserveArgs {
        config: Some(config.clone()),
        gateway: Some("http://127.0.0.1:18701".to_owned()),
        heartbeat_interval: Some("2s".to_owned()),
        ..ObserveArgs::default()
    };
    let s = settings(&args).unwrap();
    assert_eq!(s.gateway, "http://127.0.0.1:18701");
    assert_eq!(s.token_file, tmp.path().join("observer.token"));
    assert_eq!(s.charter, tmp.path().join("charter.yaml"));
    assert_eq!(s.data_dir, tmp.path().join("obs"));
    assert_eq!(s.metrics_listen, Some("127.0.0.1:9100".parse().unwrap()));
    assert_eq!(s.alert_format, AlertFormat::Slack);
    assert_eq!(s.heartbeat_interval, Some(Duration::from_secs(2)));
    assert_eq!(s.sweep_interval, None, "0s turns the sweep off");
    assert_eq!(s.checkpoint_interval, DEFAULT_CHECKPOINT_INTERVAL);

    std::fs::write(&config, "token = \"wo_secret\"\n").unwrap();
    let err = settings(&args).unwrap_err();
    assert!(err.contains("unknown field `token`"), "{err}");
}

#[test]
fn bad_settings_are_refused_with_a_clear_message() {
    let base = ObserveArgs {
        token_file: Some("t".into()),
        charter: vec!["c".into()],
        ..ObserveArgs::default()
    };
    let cases = [
        (
            ObserveArgs {
                token_file: None,
                ..base.clone()
            },
            "`--token-file` is required",
        ),
        (
            ObserveArgs {
                charter: Vec::new(),
                ..base.clone()
            },
            "`--charter` is required",
        ),
        (
            ObserveArgs {
                gateway: Some("127.0.0.1:8701".into()),
                ..base.clone()
            },
            "http:// or https:// URL",
        ),
        (
            ObserveArgs {
                metrics_listen: Some("nowhere".into()),
                ..base.clone()
            },
            "`--metrics-listen`",
        ),
        (
            ObserveArgs {
                alert_format: Some("xml".into()),
                ..base.clone()
            },
            "`json` or `slack`",
        ),
        (
            ObserveArgs {
                heartbeat_interval: Some("soon".into()),
                ..base.clone()
            },
            "`--heartbeat-interval` must be a duration",
        ),
    ];
    for (args, want) in cases {
        let err = settings(&args).unwrap_err();
        assert!(err.contains(want), "{err}");
    }
    assert_eq!(settings(&base).unwrap().gateway, DEFAULT_GATEWAY);
}

#[test]
fn the_token_file_must_be_the_owners_only_and_its_value_never_appears_in_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("observer.token");
    private(&path, "wo_observer_secret\n");
    let token = read_token(&path).unwrap();
    assert_eq!(token.expose(), "wo_observer_secret");
    assert!(!format!("{token:?}").contains("secret"));

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = read_token(&path).unwrap_err();
    assert!(
        err.contains("mode 0644") && err.contains("chmod 600"),
        "{err}"
    );
    assert!(!err.contains("wo_observer_secret"), "{err}");

    private(&path, "  \n");
    assert!(read_token(&path).unwrap_err().contains("is empty"));
    let err = read_token(&tmp.path().join("missing")).unwrap_err();
    assert!(err.contains("cannot be read"), "{err}");
}

#[test]
fn a_set_of_charters_from_the_flags_a_directory_or_the_config_files_list() {
    let tmp = tempfile::tempdir().unwrap();
    let base = ObserveArgs {
        token_file: Some("t".into()),
        ..ObserveArgs::default()
    };
    // `--charter` repeated: the first is the first agent's, the others follow.
    let s = settings(&ObserveArgs {
        charter: vec!["a.yaml".into(), "b.yaml".into(), "c.yaml".into()],
        ..base.clone()
    })
    .unwrap();
    assert_eq!(s.charter, PathBuf::from("a.yaml"));
    assert_eq!(
        s.others,
        vec![PathBuf::from("b.yaml"), PathBuf::from("c.yaml")]
    );
    // `--charters DIR`: every subdirectory is one charter.
    let dir = tmp.path().join("set");
    for agent in ["coordinator", "worker"] {
        std::fs::create_dir_all(dir.join(agent)).unwrap();
        std::fs::write(dir.join(agent).join("charter.yaml"), "version: 1\n").unwrap();
    }
    let s = settings(&ObserveArgs {
        charters: Some(dir.clone()),
        ..base.clone()
    })
    .unwrap();
    assert_eq!(s.others.len(), 1, "{s:?}");
    // The config file's list, relative to the file.
    let config = tmp.path().join("observer.toml");
    std::fs::write(&config, "charter = [\"x.yaml\", \"y.yaml\"]\n").unwrap();
    let s = settings(&ObserveArgs {
        config: Some(config.clone()),
        ..base.clone()
    })
    .unwrap();
    assert_eq!(s.charter, tmp.path().join("x.yaml"));
    assert_eq!(s.others, vec![tmp.path().join("y.yaml")]);
    // One charter: as before, no others.
    let s = settings(&ObserveArgs {
        charter: vec!["only.yaml".into()],
        ..base.clone()
    })
    .unwrap();
    assert!(s.others.is_empty());
    // Both kinds, or an unreadable directory: refused with a clear message.
    let err = settings(&ObserveArgs {
        charter: vec!["a.yaml".into()],
        charters: Some(dir),
        ..base.clone()
    })
    .unwrap_err();
    assert!(err.contains("not both"), "{err}");
    std::fs::write(&config, "charter = \"x.yaml\"\ncharters = \"set\"\n").unwrap();
    let err = settings(&ObserveArgs {
        config: Some(config),
        ..base.clone()
    })
    .unwrap_err();
    assert!(err.contains("not both"), "{err}");
    let err = settings(&ObserveArgs {
        charters: Some(tmp.path().join("missing")),
        ..base
    })
    .unwrap_err();
    assert!(err.contains("cannot be read"), "{err}");
}
