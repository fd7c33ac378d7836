//! `warden up` starts the observer beside the gateway, with its own credential, and stops it
//! with the gateway.

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

use std::path::Path;

#[test]
fn up_starts_the_observer_with_its_own_credential_and_stops_it_with_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut up = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "up",
            "--data",
            &data.to_string_lossy(),
            "--agent-listen",
            "127.0.0.1:0",
            "--operator-listen",
            "127.0.0.2:0",
        ])
        .current_dir(super::repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let (mut operator, mut pid) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("operator plane") {
            operator = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(rest) = line.trim().strip_prefix("observer") {
            pid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u32>().ok());
        }
        if line.contains("Press Ctrl-C to stop.") {
            break;
        }
    }
    let (operator, pid) = (
        operator.expect("operator plane printed"),
        pid.expect("observer pid printed"),
    );
    assert!(alive(pid), "the observer runs");

    // Its credential: the owner's only, an `observer`, the only live one of its name.
    let token = data.join("observer.token");
    let mode = std::fs::metadata(&token).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let listed = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "operator",
            "list-tokens",
            "--json",
            "--operator-url",
            &operator,
            "--data",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let observers: Vec<_> = listed["operator_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "warden-up-observer" && t["revoked_at"].is_null())
        .collect();
    assert_eq!(observers.len(), 1, "{listed}");
    assert_eq!(observers[0]["role"], "observer");
    // Its own store, the owner's only.
    let db = data.join("observer/observer.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !db.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::metadata(data.join("observer"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Stopping the gateway stops the observer.
    Command::new("kill")
        .args(["-TERM", &up.id().to_string()])
        .status()
        .unwrap();
    let status = up.wait().unwrap();
    assert!(status.success(), "{status}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(pid), "the observer stopped with the gateway");
}
