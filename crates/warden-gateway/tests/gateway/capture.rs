//! What is recorded about an action (issue 10, points 8, 13, 18, 24): labels that depend only
//! on the action are in force once it is allowed; results' content is captured, bounded and
//! redacted; what a session may have recorded is bounded per record and per session.

use std::sync::Arc;

use serde_json::json;
use warden_core::SystemClock;

use super::{Harness, Start as _};

/// `echo.echo` with a `text` under `/vault/` is allowed and labels the session `secret`; a
/// session labelled `secret` may not call `echo.echo` at all.
const SECRET_SOURCE: &str = r#"data:
  labels:
    - { id: secret }
  sources:
    - { label: secret, tool: echo.echo, path: "/vault/**", path_argument: text }
"#;
const SECRET_RULES: &str = r#"    - { id: secret-read, tool: echo.echo, tier: autonomous, args: { text: { prefix: /vault/ } } }
    - { id: after-secret, tool: echo.echo, tier: prohibited, labels: { any: [secret] } }
"#;

/// Issue 10, point 18: a label that depends only on the action (its tool and path) attaches
/// when the action is allowed, so the next call of the session is decided with it even though
/// the first one's result has not been reported. Before, it attached only with the result, and
/// the second call was allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_10_action_labels_apply_at_decision_time() {
    let h =
        Harness::start_charter(Arc::new(SystemClock), SECRET_RULES, SECRET_SOURCE, |_| {}).await;
    let (_, token) = h.open_session("1h").await;
    let (status, first) = h.decide(&token, "/vault/plans", None).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["verdict"], "allow", "{first}");
    // No result reported for the first action: the second is decided with the label anyway.
    let (status, second) = h.decide(&token, "hello", None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["verdict"], "deny", "{second}");
    let added = h.records_of("labels_added").await;
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["labels"], json!(["secret"]));
    assert_eq!(added[0]["action"], first["action"]);
    // The label is recorded in the commit that forwards the action, before the forward.
    let kinds = h.kinds().await;
    let labelled = kinds.iter().position(|k| k == "labels_added").unwrap();
    assert_eq!(kinds[labelled + 1], "action_forwarded", "{kinds:?}");
    h.stop().await;
}
