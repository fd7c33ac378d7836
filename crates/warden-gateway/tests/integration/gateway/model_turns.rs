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

/// Opens the turns of the state store in `dir` (SQLite), with the write-behind running until
/// the returned token is cancelled.
async fn turns_in(
    dir: &std::path::Path,
) -> (
    std::sync::Arc<warden_models::ModelTurns>,
    warden_session::StoredTurns,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let db = warden_session::StateDb::open(dir).await.unwrap();
    let (store, stored) = warden_session::TurnStore::open(&db).await.unwrap();
    let copy = warden_session::StoredTurns {
        sessions: stored.sessions.clone(),
        last_seq: stored.last_seq,
    };
    let turns = std::sync::Arc::new(warden_models::ModelTurns::restored(store, stored));
    let stop = tokio_util::sync::CancellationToken::new();
    let writing = turns.clone();
    let until = stop.clone();
    let task = tokio::spawn(async move { writing.write_behind(until).await });
    (turns, copy, stop, task)
}

#[tokio::test]
async fn turns_are_written_behind_the_latest_per_session_and_all_of_them_at_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (turns, stored, stop, task) = turns_in(dir.path()).await;
    assert!(stored.sessions.is_empty());
    // Many turns in a burst: pushing never waits for the store, and the store ends with the
    // latest turns of each session once the writer stops (its last write).
    for i in 0..200u64 {
        turns.push(&format!("s{}", i % 3), json!({ "n": i }));
    }
    stop.cancel();
    task.await.unwrap();
    let (_, stored, _, task) = turns_in(dir.path()).await;
    task.abort();
    let mut sessions = stored.sessions.clone();
    sessions.sort_by(|a, b| a.0.cmp(&b.0));
    let last = |s: u64| -> Vec<serde_json::Value> {
        let all: Vec<u64> = (0..200u64).filter(|i| i % 3 == s).collect();
        let from = all.len() - warden_models::TURNS_PER_SESSION;
        all[from..].iter().map(|n| json!({ "n": n })).collect()
    };
    assert_eq!(
        sessions,
        vec![
            ("s0".to_owned(), last(0)),
            ("s1".to_owned(), last(1)),
            ("s2".to_owned(), last(2))
        ]
    );
    assert_eq!(
        stored.last_seq, 200,
        "every push ordered, the last one stored"
    );
}

#[tokio::test]
async fn turns_are_written_while_the_writer_runs_not_only_at_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (turns, _, stop, task) = turns_in(dir.path()).await;
    turns.push("s", json!({ "prompt": "first" }));
    // Read back through a second connection while the writer runs: written within a few
    // intervals of `WRITE_EVERY` (bounded wait).
    let db = warden_session::StateDb::open(dir.path()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..100 {
        let (_, stored) = warden_session::TurnStore::open(&db).await.unwrap();
        seen = stored.sessions;
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(warden_models::turns::WRITE_EVERY).await;
    }
    assert_eq!(
        seen,
        vec![("s".to_owned(), vec![json!({ "prompt": "first" })])]
    );
    stop.cancel();
    task.await.unwrap();
}
