//! Controls are in force everywhere: one set through B blocks the next call on A made a
//! second later (NOTIFY at once, the one-second poll as the fallback); lifted through C, A
//! allows again a second later.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tool_frozen_through_b_is_refused_on_a_one_second_later() {
    let (_db, fleet) = three().await;
    let [a, b, c] = [
        &fleet.instances[0],
        &fleet.instances[1],
        &fleet.instances[2],
    ];
    let (_, token) = a.open_session("1h").await;
    let (_, before) = a.decide(&token, "hello before", None).await;
    assert_eq!(before["verdict"], "allow", "{before}");

    let control = b
        .set_control(json!({ "action": "freeze_tool", "scope": "agent", "target": "agent-1", "tool": "echo.echo", "reason": "exfiltration" }))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, frozen) = a.decide(&token, "hello frozen", None).await;
    assert_eq!(status, 200, "{frozen}");
    assert_eq!(frozen["verdict"], "deny", "{frozen}");
    assert_eq!(frozen["decision"]["reason"], "tool_frozen", "{frozen}");
    let on_a = a.call(&token, "hello frozen over mcp").await;
    assert!(is_error(&on_a), "{on_a}");

    c.lift_control(control["id"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, after) = a.decide(&token, "hello after", None).await;
    assert_eq!(after["verdict"], "allow", "{after}");
    // The control is recorded where it was set and where it was lifted.
    assert_eq!(b.records_of("control_set").await.len(), 1);
    assert_eq!(c.records_of("control_lifted").await.len(), 1);
    fleet.stop().await;
}
