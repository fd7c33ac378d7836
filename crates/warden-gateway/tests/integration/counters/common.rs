//! What the tests share: instances on one database.

use std::path::Path;

use warden_core::StoreLocation;
use warden_session::{PoolBounds, StateDb};
use warden_testkit::postgres::TestDb;

/// `n` state stores ("instances": each its own pool) on one fresh database.
pub(crate) async fn instances(n: usize) -> (TestDb, tempfile::TempDir, Vec<StateDb>) {
    let db = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(connect(db.url(), dir.path()).await);
    }
    (db, dir, out)
}

/// One more instance on the database at `url`.
pub(crate) async fn connect(url: &str, dir: &Path) -> StateDb {
    let location = StoreLocation::parse(url).unwrap();
    StateDb::connect(&location, dir, PoolBounds::default())
        .await
        .unwrap()
}

/// A store whose database cannot be reached: every statement fails (after at most half a
/// second).
pub(crate) fn unreachable() -> StateDb {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://warden@127.0.0.1:1/none")
        .unwrap();
    StateDb::from_postgres_pool(pool)
}
