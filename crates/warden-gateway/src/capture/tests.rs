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

/// A model record's payload with keys out of order, escapes, non-ASCII text and numbers: its
/// canonical form (what the ledger stores) is what the quota must count.
fn model_payload() -> Value {
    json!({
        "z": "line\n\"quoted\"\ttab \u{1} é 😀",
        "call": "c-1",
        "a": [1, 2.5, -3, null, true, { "y": 1, "b": "</script>" }],
        "provider": "openai",
    })
}

/// Review finding (hot path): the quota charged a model record by serialising it again. It
/// now counts the canonical bytes the ledger stores, once; the count equals the stored size.
#[tokio::test]
async fn a_model_record_is_charged_exactly_its_stored_size() {
    use warden_audit::{LedgerConfig, LedgerReader};
    use warden_core::SystemClock;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), Arc::new(SystemClock), LedgerConfig::default())
        .await
        .unwrap();
    let quota = Arc::new(CaptureQuota::new(CaptureLimits {
        max_record_bytes: 1 << 20,
        max_session_bytes: 1 << 20,
    }));
    let recorder = QuotaRecorder::new(ledger.clone(), quota.clone());
    for kind in [RecordKind::ModelRequested, RecordKind::ModelCompleted] {
        let before = quota.remaining("s1");
        recorder
            .append_batch(vec![NewRecord::new(Some("s1"), kind, model_payload())])
            .await
            .unwrap();
        let charged = before - quota.remaining("s1");
        let reader = LedgerReader::open(dir.path()).await.unwrap();
        let stored = reader.tail(1).await.unwrap().pop().unwrap();
        reader.close().await;
        assert_eq!(stored.kind, kind);
        let stored_bytes = warden_core::canonical::canonical_json(&stored.payload).len() as u64;
        assert_eq!(charged, stored_bytes, "{kind:?}");
    }
    // Records of no session, or not the model's, are not charged.
    let before = quota.remaining("s1");
    recorder
        .append_batch(vec![
            NewRecord::new(None, RecordKind::ModelRequested, model_payload()),
            NewRecord::new(Some("s1"), RecordKind::ActionAttempted, model_payload()),
        ])
        .await
        .unwrap();
    assert_eq!(quota.remaining("s1"), before);
    ledger.shutdown().await.unwrap();
}

/// The refusal is unchanged: a request that fits the quota to the byte is recorded, one byte
/// more is refused and a small `model_refused` recorded in its place.
#[tokio::test]
async fn a_model_request_one_byte_over_the_quota_is_refused() {
    use warden_audit::{LedgerConfig, LedgerReader};
    use warden_core::SystemClock;
    let size = CanonicalRecord::new(NewRecord::new(
        Some("s"),
        RecordKind::ModelRequested,
        model_payload(),
    ))
    .payload_bytes();
    for (limit, accepted) in [(size, true), (size - 1, false)] {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path(), Arc::new(SystemClock), LedgerConfig::default())
            .await
            .unwrap();
        let quota = Arc::new(CaptureQuota::new(CaptureLimits {
            max_record_bytes: limit,
            max_session_bytes: limit,
        }));
        let recorder = QuotaRecorder::new(ledger.clone(), quota.clone());
        let r = recorder
            .append_batch(vec![NewRecord::new(
                Some("s"),
                RecordKind::ModelRequested,
                model_payload(),
            )])
            .await;
        assert_eq!(r.is_ok(), accepted, "limit {limit}: {r:?}");
        let reader = LedgerReader::open(dir.path()).await.unwrap();
        let last = reader.tail(1).await.unwrap().pop().unwrap();
        reader.close().await;
        if accepted {
            assert_eq!(last.kind, RecordKind::ModelRequested);
            assert_eq!(quota.remaining("s"), 0);
        } else {
            assert_eq!(last.kind, RecordKind::ModelRefused);
            assert_eq!(last.payload["call"], "c-1");
            assert_eq!(last.payload["request_bytes"], size);
            assert_eq!(last.payload["reason"], "capture_quota_exhausted");
        }
        ledger.shutdown().await.unwrap();
    }
}
