//! `warden audit verify --store --pubkey` against a real fleet: two gateways on one
//! PostgreSQL database, each signing checkpoints of its own chain with its own key (the
//! gateway's signer, as `[checkpoints]` configures it), verified by the real binary per
//! instance; a forged or mismatched key, a changed record and a chain cut short (its mark
//! lowered to match) are found in the one chain and leave the other intact.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use warden_audit::checkpoint::SigningKey;
use warden_gateway::config::checkpoints::CheckpointConfig;
use warden_testkit::fleet::Fleet;
use warden_testkit::postgres::TestDb;

use super::{audit, err, out};

fn charter(echo_url: &str) -> String {
    format!(
        r#"version: 1
identity: {{ id: agent-1, name: Agent, purpose: tests, serves: signed checkpoints on a fleet }}
inventory:
  servers:
    - {{ id: echo, url: "{echo_url}", tools: [echo] }}
actions:
  rules:
    - {{ id: echo-hello, tool: echo.echo, tier: autonomous, args: {{ text: {{ prefix: hello }} }} }}
authority:
  principals:
    - {{ id: alice }}
"#
    )
}

/// A signing key in its own 0600 file, and its verifier key's text.
fn key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = SigningKey::generate(name).unwrap();
    let path = dir.join(format!("{name}.key"));
    key.write_new(&path).unwrap();
    (path, key.verifier().to_string())
}

/// Two gateways (`gw-a`, `gw-b`) on the store at `url`, each signing its chain every 4
/// records with its own key; 6 calls on each, then stopped (a final checkpoint each). Returns
/// the verifier keys of A and B.
pub(super) async fn signed_fleet(url: &str, keys: &Path) -> (String, String) {
    let (key_a, pub_a) = key(keys, "gw-a-checkpoints");
    let (key_b, pub_b) = key(keys, "gw-b-checkpoints");
    let fleet = Fleet::builder(2, charter, url)
        .configure(move |i, config| {
            let mut settings =
                CheckpointConfig::with_key(if i == 0 { key_a.clone() } else { key_b.clone() });
            settings.every_records = 4;
            settings.every = Duration::from_secs(3600);
            config.checkpoints = Some(settings);
        })
        .start()
        .await;
    for instance in &fleet.instances {
        let (_, token) = instance.open_session("1h").await;
        for i in 0..6 {
            let (_, d) = instance.decide(&token, &format!("hello {i}"), None).await;
            assert_eq!(d["verdict"], "allow", "{d}");
        }
    }
    fleet.stop().await;
    (pub_a, pub_b)
}

pub(super) fn json_line(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_instance_signs_its_own_chain_and_verifies_against_its_own_key() {
    let db = TestDb::new().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (pub_a, pub_b) = signed_fleet(db.url(), keys.path()).await;
    let url = Some(db.url());

    let mut origins = Vec::new();
    for (name, key) in [("gw-a", &pub_a), ("gw-b", &pub_b)] {
        let o = audit(
            &[
                "verify",
                "--instance",
                name,
                "--pubkey",
                key,
                "--format",
                "json",
            ],
            url,
        );
        assert_eq!(o.status.code(), Some(0), "{name}: {}{}", out(&o), err(&o));
        let report = json_line(&out(&o));
        assert_eq!(report["instance"], name);
        assert_eq!(report["intact"], true);
        // Several checkpoints, the last (at shutdown) covering every record before it.
        assert!(report["checkpoints"].as_u64().unwrap() >= 2, "{report}");
        let head = report["head"]["seq"].as_u64().unwrap();
        assert_eq!(report["signed"].as_u64().unwrap(), head - 1, "{report}");
        assert_eq!(report["records"].as_u64().unwrap(), head, "{report}");
        let origin = report["origin"].as_str().unwrap().to_owned();
        assert!(origin.starts_with("warden/ledger/"), "{origin}");
        origins.push(origin);
        let human = audit(&["verify", "--instance", name, "--pubkey", key], url);
        assert_eq!(human.status.code(), Some(0));
        assert!(
            out(&human).starts_with(&format!(
                "instance {name}: ledger intact and signed: {head} records verified in the chain of instance `{name}`"
            )),
            "{}",
            out(&human)
        );
    }
    // Each chain's origin is its own ledger's.
    assert_ne!(origins[0], origins[1]);

    // The other instance's key opens none of a chain's checkpoints: a finding, exit 3.
    let crossed = audit(
        &[
            "verify",
            "--instance",
            "gw-b",
            "--pubkey",
            &pub_a,
            "--format",
            "json",
        ],
        url,
    );
    assert_eq!(crossed.status.code(), Some(3), "{}", err(&crossed));
    let report = json_line(&out(&crossed));
    assert_eq!(report["finding"]["finding"], "bad_checkpoint", "{report}");

    // Every instance with A's key (no `--instance`): A intact, B's line the finding, exit 3.
    let all = audit(&["verify", "--pubkey", &pub_a], url);
    assert_eq!(all.status.code(), Some(3), "{}", err(&all));
    let text = out(&all);
    assert!(
        text.contains("instance gw-a: ledger intact and signed"),
        "{text}"
    );
    assert!(text.contains("instance gw-b: ledger NOT intact"), "{text}");

    // A key made by someone else under A's key name: refused the same way.
    let forged = SigningKey::generate("gw-a-checkpoints")
        .unwrap()
        .verifier()
        .to_string();
    let o = audit(&["verify", "--instance", "gw-a", "--pubkey", &forged], url);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(out(&o).contains("finding: bad_checkpoint"), "{}", out(&o));

    // Not a key at all: a usage error.
    let o = audit(
        &["verify", "--instance", "gw-a", "--pubkey", "gw-a+1234+AAAA"],
        url,
    );
    assert_eq!(o.status.code(), Some(64), "{}", err(&o));
    assert!(
        err(&o).contains("`--pubkey` is not a verifier key"),
        "{}",
        err(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampering_with_one_chain_is_found_by_its_checkpoints_and_leaves_the_other_intact() {
    let db = TestDb::new().await.unwrap();
    let keys = tempfile::tempdir().unwrap();
    let (pub_a, pub_b) = signed_fleet(db.url(), keys.path()).await;
    let url = Some(db.url());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(db.url())
        .await
        .unwrap();

    // The auditor keeps A's last checkpoint outside the store (the anchor).
    let note: String = sqlx::query_scalar(
        "SELECT payload::json->>'note' FROM ledger_records WHERE instance = 'gw-a' \
         AND kind = 'checkpoint_signed' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let anchor = keys.path().join("gw-a.note");
    std::fs::write(&anchor, &note).unwrap();
    let anchor = anchor.to_str().unwrap();

    // A's chain cut back to its first checkpoint record and its mark lowered to match: the
    // chain alone still links and reaches its mark ...
    let first_checkpoint: i64 = sqlx::query_scalar(
        "SELECT min(seq) FROM ledger_records WHERE instance = 'gw-a' AND kind = 'checkpoint_signed'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM ledger_records WHERE instance = 'gw-a' AND seq > $1")
        .bind(first_checkpoint)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE ledger_instances SET mark = $1 WHERE instance = 'gw-a'")
        .bind(first_checkpoint)
        .execute(&pool)
        .await
        .unwrap();
    let unsigned = audit(&["verify", "--instance", "gw-a"], url);
    assert_eq!(unsigned.status.code(), Some(0), "{}", out(&unsigned));

    // ... but the anchor checkpoint kept outside finds it rolled back to an older checkpoint.
    let o = audit(
        &[
            "verify",
            "--instance",
            "gw-a",
            "--pubkey",
            &pub_a,
            "--checkpoint",
            anchor,
            "--format",
            "json",
        ],
        url,
    );
    assert_eq!(o.status.code(), Some(3), "{}{}", out(&o), err(&o));
    let report = json_line(&out(&o));
    assert_eq!(report["instance"], "gw-a");
    assert_eq!(report["finding"]["finding"], "rolled_back", "{report}");
    assert_eq!(
        report["finding"]["first_record"].as_u64().unwrap(),
        u64::try_from(first_checkpoint).unwrap() + 1,
        "{report}"
    );
    // B's chain is untouched by any of it.
    let o = audit(&["verify", "--instance", "gw-b", "--pubkey", &pub_b], url);
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));

    // A record of B's chain changed: found at that record by B's own verification.
    sqlx::query(
        "UPDATE ledger_records SET payload = '{\"changed\":true}' WHERE instance = 'gw-b' AND seq = 3",
    )
    .execute(&pool)
    .await
    .unwrap();
    let o = audit(&["verify", "--instance", "gw-b", "--pubkey", &pub_b], url);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(
        out(&o).starts_with("instance gw-b: ledger NOT intact: record 3 was changed"),
        "{}",
        out(&o)
    );
    pool.close().await;
}

#[tokio::test]
async fn store_verification_with_a_key_refuses_what_it_cannot_check() {
    let (db, _pool) = super::fleet().await;
    let keys = tempfile::tempdir().unwrap();
    let (_, vkey) = key(keys.path(), "k");
    let url = Some(db.url());
    for (args, needle) in [
        (
            vec![
                "verify",
                "--instance",
                "gw-1",
                "--pubkey",
                &vkey,
                "--file",
                "/tmp",
            ],
            "`--file` verifies an exported copy by itself",
        ),
        (
            vec!["verify", "--pubkey", &vkey, "--checkpoint", "/nonexistent"],
            "give `--instance ID` with it",
        ),
        (
            vec![
                "verify",
                "--instance",
                "gw-1",
                "--checkpoint",
                "/nonexistent",
            ],
            "need `--pubkey KEY`",
        ),
        (
            vec!["verify", "--instance", "gw-9", "--pubkey", &vkey],
            "no ledger of instance `gw-9`",
        ),
    ] {
        let o = audit(&args, url);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(needle), "{args:?}: {}", err(&o));
    }
    // The chains hold no checkpoint: with a key, an unsigned chain is a finding (exit 3), a
    // warning with `--allow-unsigned-tail`.
    let o = audit(&["verify", "--instance", "gw-1", "--pubkey", &vkey], url);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert!(out(&o).contains("unsigned_tail"), "{}", out(&o));
    let o = audit(
        &[
            "verify",
            "--instance",
            "gw-1",
            "--pubkey",
            &vkey,
            "--allow-unsigned-tail",
        ],
        url,
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", out(&o), err(&o));
    assert!(err(&o).contains("warning: instance gw-1:"), "{}", err(&o));
}
