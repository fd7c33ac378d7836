//! The data directory, before anything in it is opened: the owner's only.
//!
//! It holds every prompt, argument and result (the ledger, `state.db`, the search index) and
//! the secrets (`operator.token`, `approval.key`). At start: the directory is created 0700, or
//! an existing one that group or others may use is tightened to the owner's bits (and logged);
//! the files warden keeps there are tightened the same way (earlier versions created them
//! world-readable); a secret file group or others may use stops the start — it may have been
//! read, so changing its mode quietly would hide that: the operator decides (`chmod 600`, and
//! a new secret if anyone else may have read it). Anything that cannot be tightened stops the
//! start. The stores create their own files 0600 (see `warden_core::private`).

use std::path::Path;

use anyhow::Context as _;
use warden_core::private::{self, SHARED_BITS, Tightened};

/// The file the first operator token is written to, in the data directory.
pub const OPERATOR_TOKEN_FILE: &str = "operator.token";
/// The file holding the secret that signs approval links and webhook bodies (created at first
/// start, mode 0600).
pub const APPROVAL_KEY_FILE: &str = "approval.key";

/// The SQLite databases warden keeps in the data directory.
const DATABASES: [&str; 3] = [
    warden_audit::store::DB_FILE,
    warden_session::state_db::STATE_DB_FILE,
    warden_audit::search::INDEX_FILE,
];

/// The other files warden keeps there that are not secrets.
const OTHER_FILES: [&str; 1] = [warden_audit::store::LOCK_FILE];

/// Makes the data directory private, tightens what warden keeps in it, and refuses a secret
/// that group or others may use. Errors name the file and say what to do.
pub(crate) fn prepare(dir: &Path) -> anyhow::Result<()> {
    let tightened = private::private_dir(dir).with_context(|| {
        format!(
            "cannot create the data directory `{}` with mode 0700",
            dir.display()
        )
    })?;
    report(tightened.as_ref());
    for secret in [OPERATOR_TOKEN_FILE, APPROVAL_KEY_FILE] {
        let path = dir.join(secret);
        let mode = match private::mode_of(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read `{}`", path.display()));
            }
        };
        if mode & SHARED_BITS != 0 {
            anyhow::bail!(
                "`{path}` holds a secret, and group or others may read it (mode {mode:04o}): run `chmod 600 {path}` before starting warden (and replace the secret if anyone else may have read it)",
                path = path.display()
            );
        }
    }
    for name in DATABASES {
        let db = dir.join(name);
        for path in std::iter::once(db.clone()).chain(private::companions(&db)) {
            tighten(&path)?;
        }
    }
    for name in OTHER_FILES {
        tighten(&dir.join(name))?;
    }
    Ok(())
}

fn tighten(path: &Path) -> anyhow::Result<()> {
    let tightened = private::tighten_existing(path)
        .with_context(|| format!("cannot make `{}` mode 0600", path.display()))?;
    report(tightened.as_ref());
    Ok(())
}

fn report(tightened: Option<&Tightened>) {
    if let Some(t) = tightened {
        tracing::warn!(path = %t.path.display(), was = %format!("{:04o}", t.was), now = %format!("{:04o}", t.now), "Group or others could use this file of the data directory; it is now the owner's only.");
    }
}
