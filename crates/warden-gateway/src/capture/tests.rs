use warden_charter::{Source, compile};
use warden_core::gate::ContentPart;
use warden_session::{CaptureLimits, CaptureQuota};

use super::*;

fn data(redact: &str) -> warden_charter::CompiledCharter {
    let text = format!(
        "version: 1
identity: {{ id: t, name: T, purpose: p, serves: s }}
inventory:
  servers:
    - {{ id: fs, command: [x], tools: [read_file] }}
data:
  redact: {redact}
"
    );
    compile(&[Source::new("c.yaml", &text)]).unwrap().charter
}

#[test]
fn content_is_redacted_then_cut_to_the_record_and_the_session() {
    let charter = data(r#"['sk-[a-z0-9]{8}']"#);
    let quota = CaptureQuota::new(CaptureLimits {
        max_record_bytes: 40,
        max_session_bytes: 50,
    });
    let parts = vec![
        ContentPart::Text("key sk-abcdefgh end".to_owned()),
        ContentPart::Other {
            kind: "image".to_owned(),
            bytes: 1234,
        },
        ContentPart::Text("é".repeat(20)),
    ];
    let c = capture_content(&parts, &charter.data, &quota, "s");
    assert_eq!(c.redacted, 1);
    assert_eq!(c.content[0]["text"], "key [REDACTED] end");
    assert_eq!(c.content[1], json!({ "type": "image", "bytes": 1234 }));
    // 40 bytes for the record: 18 of the first part, 22 left, cut at a char boundary.
    assert_eq!(c.content[2]["text"], "é".repeat(11));
    let t = c.truncated.unwrap();
    assert_eq!(t["original_bytes"], 19 + 40);
    let mut all = Vec::new();
    all.extend_from_slice(b"key sk-abcdefgh end");
    all.extend_from_slice("é".repeat(20).as_bytes());
    assert_eq!(t["sha256"], sha256_hex(&all));
    assert_eq!(quota.remaining("s"), 10);
    // The session's last 10 bytes: then nothing.
    let c = capture_content(&parts[2..], &charter.data, &quota, "s");
    assert_eq!(c.content[0]["text"], "é".repeat(5));
    let c = capture_content(&parts[2..], &charter.data, &quota, "s");
    assert_eq!(c.content[0]["text"], "");
    assert!(c.truncated.is_some());
}

#[test]
fn an_invalid_redaction_pattern_is_a_located_charter_error() {
    let text = "version: 1
identity: { id: t, name: T, purpose: p, serves: s }
data:
  redact: ['(']
";
    let err = compile(&[Source::new("c.yaml", text)]).unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("c.yaml:4:"), "{shown}");
}

#[test]
fn at_most_max_parts_are_listed() {
    let charter = data("[]");
    let quota = CaptureQuota::new(CaptureLimits::default());
    let parts: Vec<ContentPart> = (0..MAX_PARTS + 5)
        .map(|_| ContentPart::Other {
            kind: "image".to_owned(),
            bytes: 1,
        })
        .collect();
    let c = capture_content(&parts, &charter.data, &quota, "s");
    assert_eq!(c.content.len(), MAX_PARTS);
    assert!(c.truncated.is_some());
}
