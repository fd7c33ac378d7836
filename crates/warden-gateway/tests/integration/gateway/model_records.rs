//! Issue 10, points 5 and 23 on the model path: a stream ends with the protocol's error event,
//! not its terminal event, when its completion cannot be recorded; and the gateway's secrets
//! (provider keys, upstream environment values) never reach the agent, the ledger or the
//! search index, even when a provider echoes them.

use std::sync::Arc;

use serde_json::{Value, json};
use warden_core::SystemClock;
use warden_testkit::mock_llm::{self, MockConfig};

use super::{Harness, Start as _};

const OPENAI_KEY: &str = "sk-proj-0penai-Secret-Key-4242";
const ANTHROPIC_KEY: &str = "sk-ant-api03-Anthropic-Secret-7777";

async fn post(h: &Harness, token: &str, body: Value, anthropic: bool) -> (u16, String) {
    let req = if anthropic {
        h.http
            .post(format!("http://{}/v1/messages", h.agent_addr))
            .header("x-api-key", token)
            .header("anthropic-version", "2023-06-01")
    } else {
        h.http
            .post(format!("http://{}/v1/chat/completions", h.agent_addr))
            .bearer_auth(token)
    };
    let resp = req.json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    // A stream aborted by the proxy is read up to where it ended.
    let mut text = Vec::new();
    let mut resp = resp;
    while let Ok(Some(chunk)) = resp.chunk().await {
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&text).into_owned())
}

fn body(alias: &str, text: &str, stream: bool) -> Value {
    json!({ "model": alias, "max_tokens": 64, "stream": stream, "messages": [{ "role": "user", "content": text }] })
}

/// Issue 10, point 23: a provider that echoes its API key — in a 401 body, in a complete
/// answer, in a stream — has it replaced by `[REDACTED]` for the agent, in the ledger and in
/// the search index. Before the fix the key reached the agent and the ledger as the provider
/// sent it (every assertion on `contains(KEY)` below failed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_echoing_its_key_never_shows_it_to_the_agent_or_the_ledger() {
    let gpt = mock_llm::spawn(MockConfig::default()).await.unwrap();
    let claude = mock_llm::spawn(MockConfig::default()).await.unwrap();
    let inventory = format!(
        r#"  models:
    - alias: gpt
      routes: [{{ provider: openai, base_url: "{}", model: gpt-mock, api_key_env: WARDEN_TEST_OPENAI_KEY }}]
    - alias: claude
      routes: [{{ provider: anthropic, base_url: "{}", model: claude-mock, api_key_env: WARDEN_TEST_ANTHROPIC_KEY }}]
"#,
        gpt.url, claude.url
    );
    let h = Harness::start_charter(Arc::new(SystemClock), "", &inventory, |c| {
        c.provider_keys = Some(
            [
                ("WARDEN_TEST_OPENAI_KEY", OPENAI_KEY),
                ("WARDEN_TEST_ANTHROPIC_KEY", ANTHROPIC_KEY),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
    })
    .await;
    let (session, token) = h.open_session("1h").await;
    for (alias, anthropic, key) in [("gpt", false, OPENAI_KEY), ("claude", true, ANTHROPIC_KEY)] {
        let (status, text) = post(
            &h,
            &token,
            body(alias, "[error:401] [echo-key]", false),
            anthropic,
        )
        .await;
        assert_eq!(status, 401, "{text}");
        assert!(!text.contains(key), "{text}");
        assert!(
            text.contains("Incorrect API key provided: [REDACTED]"),
            "{text}"
        );
        let (status, text) = post(
            &h,
            &token,
            body(alias, "hello [echo-key]", false),
            anthropic,
        )
        .await;
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains(key) && text.contains("[REDACTED]"), "{text}");
        let (status, text) =
            post(&h, &token, body(alias, "hello [echo-key]", true), anthropic).await;
        assert_eq!(status, 200, "{text}");
        assert!(!text.contains(key) && text.contains("[REDACTED]"), "{text}");
    }
    let completed = h.records_of("model_completed").await;
    assert_eq!(completed.len(), 6);
    for record in h.records().await {
        let payload = record.payload.to_string();
        assert!(
            !payload.contains(OPENAI_KEY) && !payload.contains(ANTHROPIC_KEY),
            "{payload}"
        );
    }
    assert!(
        completed.iter().any(|c| c["response"]
            .to_string()
            .contains("Incorrect API key provided: [REDACTED]")),
        "the provider's error is recorded, redacted"
    );
    h.stop().await;
    let mut index = warden_audit::SearchIndex::open(&h.data).unwrap();
    index.update().unwrap();
    for key in [OPENAI_KEY, ANTHROPIC_KEY] {
        assert!(
            index.search(key, None, 10).unwrap().is_empty(),
            "{key} is indexed"
        );
    }
    assert!(
        !index
            .search("REDACTED", Some(&session), 10)
            .unwrap()
            .is_empty()
    );
}

/// Issue 10, point 5: a stream's terminal event (`[DONE]`, `message_stop`) reaches the agent
/// only once its completion is recorded; when the ledger cannot take it (a full 64 KiB ledger
/// and completions far larger than their requests), the agent's stream ends with the
/// protocol's error event instead. Before the fix the stream ended normally, `[DONE]`
/// included, with no completion in the ledger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_completion_cannot_be_recorded_ends_with_an_error_event() {
    for anthropic in [false, true] {
        let provider = mock_llm::spawn(MockConfig::default()).await.unwrap();
        let inventory = format!(
            r#"  models:
    - alias: m
      routes: [{{ provider: {}, base_url: "{}", model: mock, api_key_env: WARDEN_TEST_KEY }}]
"#,
            if anthropic { "anthropic" } else { "openai" },
            provider.url
        );
        let h = Harness::start_charter(Arc::new(SystemClock), "", &inventory, |c| {
            c.ledger_max_bytes = Some(64 * 1024);
            c.provider_keys = Some(
                [(
                    "WARDEN_TEST_KEY".to_owned(),
                    "sk-test-key-123456".to_owned(),
                )]
                .into_iter()
                .collect(),
            );
        })
        .await;
        let (_, token) = h.open_session("1h").await;
        let terminal = if anthropic { "message_stop" } else { "[DONE]" };
        let mut complete = 0;
        let mut failed = None;
        for i in 0..100 {
            let (status, text) = post(
                &h,
                &token,
                body("m", &format!("{i} [long:12000]"), true),
                anthropic,
            )
            .await;
            if status != 200 {
                break;
            }
            if text.contains(terminal) {
                complete += 1;
            } else {
                failed = Some(text);
                break;
            }
        }
        let text = failed.expect("the ledger never refused a completion");
        assert!(
            text.contains("ledger_unavailable") || text.contains("could not be recorded"),
            "{text}"
        );
        if anthropic {
            assert!(text.contains("event: error"), "{text}");
        } else {
            assert!(text.contains("data: {\"error\""), "{text}");
        }
        assert!(text.contains("filler"), "the stream itself was relayed");
        assert_eq!(
            h.records_of("model_completed").await.len(),
            complete,
            "every completed stream is recorded"
        );
        h.stop().await;
    }
}
