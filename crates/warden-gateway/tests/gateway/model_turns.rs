//! Model turns on approval requests survive a restart: the turns of a session before the
//! gateway restarts are shown on an approval the session raises after it.

use serde_json::json;

use super::models::{chat, post, setup, wait_records};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_raised_after_a_restart_shows_the_turns_before_it() {
    let s = setup(0, "", "").await;
    let text = r#"Before the restart: [tool:echo.echo {"text": "ask after restart"}]"#;
    let (status, _, _) = post(&s, "/v1/chat/completions", chat("fast", text), false).await;
    assert_eq!(status, 200);
    wait_records(&s.h, "model_completed", 1).await;

    s.h.restart().await;

    let (status, body) = s.h.decide(&s.token, "ask after restart", None).await;
    assert_eq!(status, 202, "{body}");
    let id = body["approval"]["id"].as_str().unwrap();
    let bob = s.h.approver_token("bob").await;
    let (_, shown) =
        s.h.operator(
            reqwest::Method::GET,
            &format!("/v1/approvals/{id}"),
            &bob,
            None,
        )
        .await;
    let turns = shown["model_turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "{shown}");
    assert!(
        turns[0]["prompt"]
            .as_str()
            .unwrap()
            .contains("Before the restart"),
        "{shown}"
    );
    assert_eq!(
        turns[0]["intents"][0]["arguments"],
        json!({ "text": "ask after restart" })
    );
    s.h.stop().await;
}
