//! Operator credentials shared by the fleet, and the bootstrap credential of an empty store.

use warden_session::OperatorRole;

use super::support::{instance, t0, two};

#[tokio::test]
async fn an_operator_token_made_on_one_instance_works_on_the_other_until_revoked_anywhere() {
    let (_pg, a, b) = two().await;
    let issued = a
        .operators
        .create(
            "ops",
            OperatorRole::Approver("alice".to_owned()),
            t0(),
            true,
        )
        .await
        .unwrap();
    let who = b
        .operators
        .authenticate(&issued.token)
        .await
        .unwrap()
        .expect("works on the other instance");
    assert_eq!(who.id, issued.id);
    assert_eq!(who.role, OperatorRole::Approver("alice".to_owned()));
    assert!(who.recorded);
    assert!(b.operators.is_active(&issued.id).await.unwrap());
    assert_eq!(b.operators.list().await.unwrap().len(), 1);
    assert_eq!(
        b.operators.get(&issued.id).await.unwrap().unwrap().name,
        "ops"
    );

    assert!(b.operators.revoke(&issued.id, t0()).await.unwrap());
    assert!(!a.operators.revoke(&issued.id, t0()).await.unwrap(), "once");
    assert!(
        a.operators
            .authenticate(&issued.token)
            .await
            .unwrap()
            .is_none(),
        "refused on a at the next request"
    );
    assert!(!a.operators.is_active(&issued.id).await.unwrap());
    assert!(
        a.operators
            .get(&issued.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );

    // One made offline is marked recorded by whichever instance records it.
    let offline = a
        .operators
        .create("cli", OperatorRole::Admin, t0(), false)
        .await
        .unwrap();
    assert!(
        !b.operators
            .authenticate(&offline.token)
            .await
            .unwrap()
            .unwrap()
            .recorded
    );
    b.operators.mark_recorded(&offline.id, t0()).await.unwrap();
    assert!(
        a.operators
            .authenticate(&offline.token)
            .await
            .unwrap()
            .unwrap()
            .recorded
    );
}

/// Instances starting together on an empty store: exactly one writes the bootstrap token.
#[tokio::test]
async fn instances_starting_on_an_empty_store_make_exactly_one_bootstrap_credential() {
    let pg = warden_testkit::postgres::TestDb::new().await.unwrap();
    let mut instances = Vec::new();
    for n in 0..4 {
        instances.push(instance(pg.url(), &format!("gw-{n}")).await);
    }
    let made = futures::future::join_all(instances.iter().map(|i| {
        i.operators
            .create_first("bootstrap", OperatorRole::Admin, t0())
    }))
    .await;
    let issued: Vec<_> = made.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(issued.len(), 1, "one bootstrap credential");
    assert_eq!(instances[0].operators.count().await.unwrap(), 1);
    let token = &issued[0].token;
    for i in &instances {
        assert!(i.operators.authenticate(token).await.unwrap().is_some());
    }
    // A later start finds credentials there and writes none.
    let later = instance(pg.url(), "gw-late").await;
    assert!(
        later
            .operators
            .create_first("bootstrap", OperatorRole::Admin, t0())
            .await
            .unwrap()
            .is_none()
    );
}
