//! Adversarial: forged, altered, oversized and wrong-plane tokens, a flood of unknown tokens
//! (memory stays bounded), a replayed revoked credential, and a store that fails (refused,
//! never allowed).

use warden_session::OperatorRole;
use warden_session::sessions::MAX_TOKEN_BYTES;

use super::support::{open, t0, two};

#[tokio::test]
async fn forged_altered_and_wrong_plane_tokens_authenticate_nothing() {
    let (_pg, a, b) = two().await;
    let (token, _) = open(&a, "t").await;
    let op = a
        .operators
        .create("ops", OperatorRole::Admin, t0(), true)
        .await
        .unwrap();
    let mut altered = token.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let forged = format!("wa_{}", "A".repeat(43));
    for bad in [
        altered.as_str(),
        forged.as_str(),
        "wa_",
        "wa_' OR 1=1 --",
        "",
        op.token.as_str(),
        &token[3..],
    ] {
        assert!(
            b.sessions
                .authenticate_current(bad)
                .await
                .unwrap()
                .is_none(),
            "{bad:?}"
        );
    }
    // The agent's token is not an operator credential, anywhere.
    assert!(b.operators.authenticate(&token).await.unwrap().is_none());
    assert!(b.operators.authenticate(&altered).await.unwrap().is_none());
    // A revoked operator credential replayed on another instance is refused.
    a.operators.revoke(&op.id, t0()).await.unwrap();
    assert!(b.operators.authenticate(&op.token).await.unwrap().is_none());
}

#[tokio::test]
async fn a_flood_of_unknown_tokens_adds_nothing_to_memory() {
    let (_pg, a, b) = two().await;
    let (token, _) = open(&a, "t").await;
    b.sessions
        .authenticate_current(&token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.sessions.held(), 1);
    for n in 0..2_000u32 {
        let unknown = format!("wa_{n:0>43}");
        assert!(
            b.sessions
                .authenticate_current(&unknown)
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(b.sessions.held(), 1, "unknown tokens hold nothing");
}

#[tokio::test]
async fn an_oversized_token_is_refused_without_a_lookup() {
    let (_pg, _a, b) = two().await;
    let huge = format!("wa_{}", "x".repeat(1 << 20));
    assert!(
        b.sessions
            .authenticate_current(&huge)
            .await
            .unwrap()
            .is_none()
    );
    let just_over = format!("wa_{}", "x".repeat(MAX_TOKEN_BYTES));
    assert!(
        b.sessions
            .authenticate_current(&just_over)
            .await
            .unwrap()
            .is_none()
    );
    assert!(b.operators.authenticate(&huge).await.unwrap().is_none());
}

/// Fail closed: a store that cannot be reached answers an error (the agent plane refuses
/// with 503 `store_unavailable`), never a session; the same for held sessions and for
/// operator credentials.
#[tokio::test]
async fn a_store_error_on_authenticate_is_an_error_never_a_session() {
    let (_pg, a, b) = two().await;
    let (token, _) = open(&a, "t").await;
    let (held, _) = open(&b, "t").await;
    let op = a
        .operators
        .create("ops", OperatorRole::Admin, t0(), true)
        .await
        .unwrap();
    b.db.close().await;
    assert!(
        b.sessions.authenticate_current(&token).await.is_err(),
        "a miss"
    );
    assert!(
        b.sessions.authenticate_current(&held).await.is_err(),
        "a hit"
    );
    assert!(b.operators.authenticate(&op.token).await.is_err());
    assert!(b.sessions.list_current(t0()).await.is_err());
}
