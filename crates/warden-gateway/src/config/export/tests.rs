use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    export: Vec<RawExportSink>,
}

fn sinks(toml_text: &str) -> Vec<RawExportSink> {
    toml::from_str::<File>(toml_text).unwrap().export
}

fn error(toml_text: &str, e: &[(&str, &str)]) -> String {
    resolve(&sinks(toml_text), &env(e)).unwrap_err().to_string()
}

#[test]
fn the_three_types_resolve_with_their_defaults_and_limits() {
    let raw = sinks(
        r#"
[[export]]
name = "offsite"
type = "file"
dir = "/mnt/audit"
max_file_bytes = 1048576

[[export]]
name = "siem-1"
type = "http"
url = "https://siem.example.com/ingest"
headers = { Authorization = "env:SIEM_AUTH" }
max_lag_records = 10
max_lag_seconds = 60

[[export]]
name = "otel_logs"
type = "otlp_logs"
endpoint = "http://127.0.0.1:4318/"
"#,
    );
    let got = resolve(&raw, &env(&[("SIEM_AUTH", "Bearer s3cret")])).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0].target,
        Target::File {
            dir: PathBuf::from("/mnt/audit")
        }
    );
    assert_eq!(got[0].max_file_bytes, 1_048_576);
    assert_eq!(
        got[0].max_lag_records,
        warden_export::DEFAULT_MAX_LAG_RECORDS
    );
    assert_eq!(
        got[1].target,
        Target::Http {
            url: "https://siem.example.com/ingest".to_owned(),
            headers: vec![("authorization".to_owned(), "Bearer s3cret".to_owned())],
        }
    );
    assert_eq!(got[1].max_lag_records, 10);
    assert_eq!(got[1].max_lag, Duration::from_secs(60));
    assert_eq!(
        got[2].target,
        Target::OtlpLogs {
            endpoint: "http://127.0.0.1:4318".to_owned(),
            headers: vec![],
        }
    );
    assert_eq!(got[2].max_lag, warden_export::DEFAULT_MAX_LAG);
    // Debug shows header names, never values.
    assert!(!format!("{got:?}").contains("s3cret"));
}

#[test]
fn header_values_come_only_from_the_environment_and_are_never_shown() {
    let http = r#"
[[export]]
name = "h"
type = "http"
url = "http://127.0.0.1:9/x"
headers = { authorization = "env:SIEM_AUTH" }
"#;
    let e = error(http, &[]);
    assert!(e.contains("`SIEM_AUTH` is not set"), "{e}");
    let literal = r#"
[[export]]
name = "h"
type = "http"
url = "http://127.0.0.1:9/x"
headers = { authorization = "Bearer s3cret" }
"#;
    let e = error(literal, &[]);
    assert!(e.contains("env:VARIABLE") && !e.contains("s3cret"), "{e}");
    let e = error(http, &[("SIEM_AUTH", "line\nbreak-s3cret")]);
    assert!(!e.contains("s3cret"), "{e}");
    let file_with_headers = r#"
[[export]]
name = "f"
type = "file"
dir = "/x"
headers = { authorization = "env:SIEM_AUTH" }
"#;
    assert!(error(file_with_headers, &[("SIEM_AUTH", "v")]).contains("does not apply"));
}

#[test]
fn hostile_or_wrong_settings_are_refused_with_clear_errors() {
    let one = |body: &str| format!("[[export]]\n{body}\n");
    for (body, needle) in [
        (
            "name = \"Bad Name\"\ntype = \"file\"\ndir = \"/x\"",
            "a-z, 0-9",
        ),
        ("name = \"\"\ntype = \"file\"\ndir = \"/x\"", "a-z, 0-9"),
        (
            "name = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\ntype = \"file\"\ndir = \"/x\"",
            "1 to 32",
        ),
        (
            "name = \"x\"\ntype = \"kafka\"",
            "one of `file`, `http`, `otlp_logs`",
        ),
        ("name = \"x\"\ntype = \"file\"", "needs `dir`"),
        (
            "name = \"x\"\ntype = \"file\"\ndir = \"audit\"",
            "an absolute directory",
        ),
        (
            "name = \"x\"\ntype = \"file\"\ndir = \"/a/../etc\"",
            "without `..`",
        ),
        (
            "name = \"x\"\ntype = \"file\"\ndir = \"/a\"\nurl = \"http://h\"",
            "does not apply",
        ),
        (
            "name = \"x\"\ntype = \"file\"\ndir = \"/a\"\nmax_file_bytes = 10",
            "at least 4096",
        ),
        ("name = \"x\"\ntype = \"http\"", "missing"),
        (
            "name = \"x\"\ntype = \"http\"\nurl = \"file:///etc/passwd\"",
            "http or https",
        ),
        (
            "name = \"x\"\ntype = \"http\"\nurl = \"ftp://h/x\"",
            "http or https",
        ),
        (
            "name = \"x\"\ntype = \"http\"\nurl = \"http://u:p@h/x\"",
            "without credentials",
        ),
        (
            "name = \"x\"\ntype = \"http\"\nurl = \"http://h/x?token=1\"",
            "or query",
        ),
        (
            "name = \"x\"\ntype = \"http\"\nurl = \"h:80\"",
            "http or https",
        ),
        (
            "name = \"x\"\ntype = \"http\"\nurl = \"http://h\"\ndir = \"/a\"",
            "does not apply",
        ),
        (
            "name = \"x\"\ntype = \"otlp_logs\"\nendpoint = \"gopher://h\"",
            "http or https",
        ),
        (
            "name = \"x\"\ntype = \"http\"\nurl = \"http://h\"\nmax_lag_records = 0",
            "at least 1",
        ),
        (
            "name = \"x\"\ntype = \"http\"\nurl = \"http://h\"\nmax_lag_seconds = 0",
            "1 to",
        ),
    ] {
        let e = error(&one(body), &[]);
        assert!(e.contains(needle), "{body}: {e}");
    }
    assert!(
        toml::from_str::<File>(
            "[[export]]\nname = \"x\"\ntype = \"file\"\ndir = \"/a\"\nbatch = 1"
        )
        .is_err()
    );
    let dup = "[[export]]\nname = \"x\"\ntype = \"file\"\ndir = \"/a\"\n[[export]]\nname = \"x\"\ntype = \"file\"\ndir = \"/b\"\n";
    assert!(error(dup, &[]).contains("two `[[export]]` sinks"));
    let nine: String = (0..9)
        .map(|i| format!("[[export]]\nname = \"s{i}\"\ntype = \"file\"\ndir = \"/a{i}\"\n"))
        .collect();
    assert!(error(&nine, &[]).contains("at most 8"));
}
