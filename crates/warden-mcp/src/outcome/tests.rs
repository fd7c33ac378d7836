use rmcp::model::{CallToolResult, ReadResourceResult};
use serde::Deserialize;
use serde_json::json;

use super::*;

const KEY: &str = "sk-upstream-secret-5a7c";

fn secrets() -> Secrets {
    Secrets::new([KEY]).unwrap()
}

fn size_of<T: Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).unwrap().len()
}

#[test]
fn json_size_is_the_length_of_the_compact_json() {
    let controls: String = (0u8..0x20).map(char::from).collect();
    let values = [
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(0.1),
        json!(1.0),
        json!(-0.0),
        json!(1e300),
        json!(2.5e-8),
        json!(""),
        json!(controls),
        json!("quote \" backslash \\ slash / del \u{7f} é 😀 \u{2028}"),
        json!([]),
        json!({}),
        json!([[], {}, [null]]),
        json!({ "b": 1, "a": [1, "x\ny"], "é\"": { "": "" } }),
    ];
    for v in values {
        assert_eq!(json_size(&v), size_of(&v) as u64, "{v}");
    }
}

/// A tool result with a secret in its text, in its structured content and in a key: the
/// relayed answer and the record both hold `[REDACTED]`, the recorded size is the size of the
/// answer relayed, the label text is every string of it, the parts are listed.
#[test]
fn a_secret_is_redacted_from_the_answer_and_the_record_and_the_size_is_what_is_relayed() {
    let answer: CallToolResult = serde_json::from_value(json!({
        "content": [
            { "type": "text", "text": format!("token {KEY}") },
            { "type": "image", "data": "aGVsbG8=", "mimeType": "image/png" },
        ],
        "structuredContent": { "token": KEY, KEY: "as a key" },
        "isError": false,
    }))
    .unwrap();
    let (outcome, relayed) = settle_answer(&secrets(), answer, |r: &CallToolResult| {
        if r.is_error == Some(true) {
            "tool_error"
        } else {
            "ok"
        }
    })
    .unwrap();
    let relayed_json = serde_json::to_string(&relayed).unwrap();
    assert!(!relayed_json.contains(KEY), "{relayed_json}");
    assert!(relayed_json.contains("token [REDACTED]"), "{relayed_json}");
    assert_eq!(outcome.status, "ok");
    assert_eq!(outcome.size_bytes, size_of(&relayed));
    assert_eq!(outcome.error, None);
    assert!(!outcome.text.contains(KEY), "{}", outcome.text);
    assert!(
        outcome.text.contains("token [REDACTED]\n"),
        "{}",
        outcome.text
    );
    assert!(outcome.text.contains("as a key\n"), "{}", outcome.text);
    let image = json!({ "type": "image", "data": "aGVsbG8=", "mimeType": "image/png" });
    assert_eq!(
        outcome.content,
        vec![
            ContentPart::Text("token [REDACTED]".to_owned()),
            ContentPart::Other {
                kind: "image".to_owned(),
                bytes: size_of(&image),
            },
        ]
    );
}

/// With nothing to redact, the answer is relayed as it came and measured as it is.
#[test]
fn an_answer_without_secrets_is_relayed_as_it_came() {
    let wire = json!({
        "contents": [
            { "uri": "file:///a", "text": "hello\n\"world\"" },
            { "uri": "file:///b", "blob": "AAAA" },
        ],
    });
    let answer: ReadResourceResult = serde_json::from_value(wire).unwrap();
    let expected = serde_json::to_value(&answer).unwrap();
    for secrets in [secrets(), Secrets::default()] {
        let (outcome, relayed) =
            settle_answer(&secrets, answer.clone(), |_: &ReadResourceResult| "ok").unwrap();
        assert_eq!(serde_json::to_value(&relayed).unwrap(), expected);
        assert_eq!(outcome.size_bytes, size_of(&expected));
        assert_eq!(
            outcome.content,
            vec![
                ContentPart::Text("hello\n\"world\"".to_owned()),
                ContentPart::Other {
                    kind: "blob".to_owned(),
                    bytes: 4,
                },
            ]
        );
        assert!(
            outcome.text.contains("hello\n\"world\"\n"),
            "{}",
            outcome.text
        );
    }
}

/// An answer whose redacted form no longer reads as its type is withheld, never relayed with
/// the secret.
#[test]
fn an_answer_that_cannot_be_redacted_is_withheld() {
    #[derive(Serialize, Deserialize)]
    enum Mode {
        #[serde(rename = "sk-upstream-secret-5a7c")]
        Secret,
    }
    #[derive(Serialize, Deserialize)]
    struct Strict {
        mode: Mode,
    }
    let r = settle_answer(&secrets(), Strict { mode: Mode::Secret }, |_| "ok");
    let Err(e) = r else {
        panic!("an answer that could not be redacted was relayed");
    };
    assert!(e.message.contains("withheld"), "{e:?}");
}
