use super::*;

/// Issue 10, point 15: a server that never finishes the MCP initialisation is marked down
/// after the handshake timeout (and retried), instead of "connecting" for ever.
#[tokio::test]
async fn issue_10_a_server_that_never_initialises_is_marked_down() {
    let up = Arc::new(Upstream {
        id: "mute".to_owned(),
        transport: Transport::Stdio {
            command: vec!["/bin/sleep".to_owned(), "60".to_owned()],
            env: Vec::new(),
        },
        env: ChildEnv::default(),
        sandbox: None,
        credentials: HttpCredentials::default(),
        oauth: None,
        direct: None,
        principals: PrincipalPool::default(),
        stderr: Arc::default(),
        state: RwLock::new(State::Connecting),
        tools: RwLock::new(Vec::new()),
        resources: RwLock::new(Vec::new()),
        connected: tokio::sync::Notify::new(),
    });
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(up.clone().supervise(
        cancel.clone(),
        Duration::from_millis(200),
        tasks.clone(),
        Secrets::default(),
    ));
    let down = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Err(UpstreamError::Unavailable { reason, .. }) = up.peer()
                && reason.contains("did not finish")
            {
                break reason;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    assert!(down.is_ok(), "still connecting after the handshake timeout");
}
