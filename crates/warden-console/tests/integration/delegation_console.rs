//! Issue 17, point 3: the delegation chain in the console, against a real gateway — the child
//! session's page names its chain with links to the ancestors' sessions, the sessions list
//! shows it, and the timeline reads `session_delegated` and `delegation_refused` as sentences.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed step is a failed test"
)]

use super::common;

use std::time::Duration;

use serde_json::json;
use warden_core::{NewRecord, RecordKind};

use common::admin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_sessions_page_shows_its_chain_and_its_delegation_records_read_well() {
    let h = common::start().await;
    let (parent_id, _) = h.open_session("1h").await;
    let state = h.app_state();
    let parent = state.sessions.get(&parent_id).unwrap();
    // The store opens the child (the gateway's checks are the delegation route's, tested in
    // the gateway suite); its records are what the route writes.
    let (opened, child) = state
        .sessions
        .open_child(
            &parent,
            "agent-1",
            "<b>help</b>",
            Some(Duration::from_secs(600)),
            state.governor.now(),
            8,
        )
        .await
        .unwrap();
    let chain = json!([{ "session": parent_id, "agent": "agent-1" }]);
    state
        .governor
        .ledger()
        .append_batch(vec![
            NewRecord::new(
                Some(&child.id),
                RecordKind::SessionDelegated,
                json!({ "session": child.id, "parent": parent_id, "agent": "agent-1", "by": "agent-1",
                        "principal": "alice", "chain": chain, "depth": 1, "via": "api",
                        "expires_at": opened.expires_at, "task": "<b>help</b>" }),
            ),
            NewRecord::new(
                Some(&child.id),
                RecordKind::DelegationRefused,
                json!({ "agent": "<script>x</script>", "by": "agent-1", "via": "api",
                        "chain": [{ "session": parent_id, "agent": "agent-1" }, { "session": child.id, "agent": "agent-1" }],
                        "refusal": "unknown_agent", "reason": "not an agent" }),
            ),
        ])
        .await
        .unwrap();
    let mut c = admin(&h).await;
    let page = c.get(&format!("/ui/sessions/{}", child.id)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<dt>delegated</dt>"), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("<a href=\"/ui/sessions/{parent_id}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains("delegated by `agent-1` to `agent-1`"));
    assert!(page.body.contains("refused (unknown_agent)"));
    assert!(!page.body.contains("<script>x</script>"), "escaped");
    assert!(!page.body.contains("<b>help</b>"), "escaped");
    let list = c.get("/ui/sessions").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains(&format!(
            "<a href=\"/ui/sessions/{parent_id}\">agent-1</a> → agent-1"
        )),
        "{}",
        list.body
    );
}
