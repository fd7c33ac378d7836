//! `warden audit keygen`: a checkpoint signing key in its own 0600 file.
//!
//! Writes the private key (the `golang.org/x/mod/sumdb/note` text `PRIVATE+KEY+…`) to `--out`
//! with mode 0600, never replacing a file, and the verifier key to `--out` + `.pub`; prints the
//! verifier key on stdout. Exit codes: 0 written, 64 (`EX_USAGE`) a bad name or a file already
//! there, 74 (`EX_IOERR`) a file could not be written.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use warden_audit::checkpoint::{KeyError, SigningKey};

use super::EXIT_IO;
use crate::EXIT_USAGE;

/// The key name when `--name` is not given.
pub const DEFAULT_KEY_NAME: &str = "warden";

/// Arguments of `warden audit keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (mode 0600; never overwritten). The verifier (public)
    /// key goes to the same path with `.pub` appended.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The key's name, written in every signature line: no spaces and no `+` (a
    /// schema-less URL such as `example.com/warden` is a good choice).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_KEY_NAME)]
    pub name: String,
}

/// Runs `warden audit keygen`.
pub(super) fn execute(args: &KeygenArgs) -> ExitCode {
    match keygen(args) {
        Ok(verifier) => {
            println!("{verifier}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            match e {
                KeyError::Io { .. } | KeyError::Random { .. } => ExitCode::from(EXIT_IO),
                _ => ExitCode::from(EXIT_USAGE),
            }
        }
    }
}

fn keygen(args: &KeygenArgs) -> Result<String, KeyError> {
    let public_path = pub_path(&args.out);
    // Refuse before anything is written, so a refused run leaves no half pair behind.
    for path in [&args.out, &public_path] {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let key = SigningKey::generate(&args.name)?;
    key.write_new(&args.out)?;
    let verifier = key.verifier().to_string();
    if let Err(e) = write_public(&public_path, &verifier) {
        // The private key alone is of no use to anyone who cannot verify: take it back.
        let _ = std::fs::remove_file(&args.out);
        return Err(e);
    }
    Ok(verifier)
}

/// `path` with `.pub` appended.
fn pub_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".pub");
    PathBuf::from(name)
}

fn write_public(path: &Path, verifier: &str) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source: std::sync::Arc::new(source),
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_owned(),
                }
            } else {
                io(e)
            }
        })?;
    file.write_all(verifier.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(io)
}
