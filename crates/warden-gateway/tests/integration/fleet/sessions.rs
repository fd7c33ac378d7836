//! Sessions and credentials are the fleet's: opened on one instance, used and revoked on any.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_instance_is_used_and_revoked_on_the_others() {
    let (_db, fleet) = three().await;
    let [a, b, c] = [
        &fleet.instances[0],
        &fleet.instances[1],
        &fleet.instances[2],
    ];
    let (session, token) = a.open_session("1h").await;

    // Used on B (MCP) and C (the decide API) without ever being opened there.
    let on_b = b.call(&token, "hello from b").await;
    assert!(!is_error(&on_b), "{on_b}");
    assert_eq!(text_of(&on_b), "hello from b");
    let (status, on_c) = c.decide(&token, "hello from c", None).await;
    assert_eq!(status, 200, "{on_c}");
    assert_eq!(on_c["verdict"], "allow", "{on_c}");
    let denied = b.call(&token, "hello secret").await;
    assert!(is_error(&denied), "{denied}");

    // Each call is recorded in the chain of the instance that decided it.
    let attempted = |records: Vec<warden_audit::Record>| {
        records
            .into_iter()
            .filter(|r| r.kind.as_str() == "action_attempted")
            .map(|r| r.payload["arguments"]["text"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(attempted(a.records().await).is_empty());
    assert_eq!(
        attempted(b.records().await),
        ["hello from b", "hello secret"]
    );
    assert_eq!(attempted(c.records().await), ["hello from c"]);

    // Revoked through C: refused on A and B at their next request.
    let (status, body) = c
        .operator(
            reqwest::Method::POST,
            &format!("/v1/sessions/{session}/revoke"),
            &fleet.operator_token,
            Some(json!({ "reason": "fleet test" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (name, gw) in [("a", a), ("b", b)] {
        let (status, body) = gw
            .mcp(
                &token,
                "tools/call",
                json!({ "name": "echo.echo", "arguments": { "text": format!("hello after revocation on {name}") } }),
            )
            .await;
        assert!(
            status == 401 || is_error(&body),
            "a revoked session still works on {name}: {status} {body}"
        );
    }
    assert_eq!(
        warden_testkit::echo::count(&fleet.calls),
        1,
        "only B's call ran"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operator_token_and_no_second_bootstrap_across_the_fleet() {
    let (_db, fleet) = three().await;
    // The first instance's bootstrap token works on every instance; nothing else was made.
    for gw in &fleet.instances {
        let (status, body) = gw
            .operator(
                reqwest::Method::GET,
                "/v1/sessions",
                &fleet.operator_token,
                None,
            )
            .await;
        assert_eq!(status, 200, "{} refused the fleet's token: {body}", gw.id);
        assert_eq!(
            gw.data.join(warden_gateway::OPERATOR_TOKEN_FILE).exists(),
            gw.id.as_str() == "gw-a",
            "only the first instance writes the bootstrap token"
        );
    }
    // An approver credential issued through B is accepted on C; a forged one nowhere.
    let bob = fleet.instances[1].approver_token("bob").await;
    let (status, _) = fleet.instances[2]
        .operator(reqwest::Method::GET, "/v1/approvals", &bob, None)
        .await;
    assert_eq!(status, 200);
    let forged = format!("{}x", &bob[..bob.len() - 1]);
    for gw in &fleet.instances {
        let (status, _) = gw
            .operator(reqwest::Method::GET, "/v1/approvals", &forged, None)
            .await;
        assert_eq!(status, 401, "{} accepted a forged credential", gw.id);
    }
    fleet.stop().await;
}
