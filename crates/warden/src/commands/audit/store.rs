//! `warden audit verify|tail|show --store URL [--instance ID]`: the ledger of a fleet, read
//! from its shared PostgreSQL store, where each instance keeps a hash chain of its own.
//!
//! `verify` checks each instance's chain alone (every instance by default, one report line
//! each): the chain from record 1, that it starts with `charter_loaded`, and that it reaches
//! its mark (the last record its writer committed, recorded in the same transaction as the
//! records; a chain that ends before it is `truncated`). Exit 3 on a finding in any chain.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use sqlx::PgPool;
use warden_audit::chain::hex;
use warden_audit::signed::{OpenNote, Report};
use warden_audit::{LedgerReader, VerifyReport};
use warden_core::{InstanceId, StoreLocation};
use warden_session::PoolBounds;
use warden_session::state_db::postgres;

use super::{EXIT_BROKEN, EXIT_IO, VerifyArgs, failure, missing_start, signed, with_causes};
use crate::EXIT_USAGE;
use crate::output::Format;

/// Where the ledger is read from instead of the data directory.
#[derive(Debug, Args)]
pub struct StoreArg {
    /// Read the ledger from the fleet's shared store, a PostgreSQL URL (`sqlite`: the data
    /// directory, as without it). Env `WARDEN_STORE`. Give it through the environment: the
    /// command line is visible to other users.
    #[arg(long, env = "WARDEN_STORE", hide_env_values = true, value_name = "URL")]
    pub store: Option<String>,
    /// With `--store`: only this instance's chain [default: every instance; `tail` merges
    /// them by time and names each record's instance].
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
}

/// What [`StoreArg`] asks for.
pub(crate) enum Source {
    /// The data directory (no `--store`, or `--store sqlite`).
    Dir,
    /// The shared store, one instance or all.
    Store(PgPool, Option<InstanceId>),
}

impl StoreArg {
    /// For a command that reads a data directory only: a usage error (64) saying `why` when a
    /// PostgreSQL store is named (`--store` or WARDEN_STORE), so it is never silently
    /// ignored; a URL that is not a store location is a usage error too.
    pub(super) fn refuse_postgres(&self, why: &str) -> Result<(), ExitCode> {
        match self.store.as_deref().map(StoreLocation::parse) {
            None | Some(Ok(StoreLocation::Sqlite)) if self.instance.is_none() => Ok(()),
            None | Some(Ok(StoreLocation::Sqlite)) => {
                eprintln!(
                    "error: `--instance` reads the shared store: give `--store URL` (or WARDEN_STORE)"
                );
                Err(ExitCode::from(EXIT_USAGE))
            }
            Some(Ok(StoreLocation::Postgres(_))) => {
                eprintln!("error: {why}");
                Err(ExitCode::from(EXIT_USAGE))
            }
            Some(Err(e)) => {
                eprintln!("error: {e}");
                Err(ExitCode::from(EXIT_USAGE))
            }
        }
    }

    /// Connects to the store if one is named; a bad URL, a bad instance name, or
    /// `--instance` without a store is a usage error (64), an unreachable store 74.
    pub(crate) async fn source(&self) -> Result<Source, ExitCode> {
        let usage = |message: String| {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_USAGE)
        };
        let location = match self.store.as_deref().map(StoreLocation::parse) {
            None => StoreLocation::Sqlite,
            Some(Ok(location)) => location,
            Some(Err(e)) => return Err(usage(e.to_string())),
        };
        let instance = match self.instance.as_deref().map(InstanceId::parse) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(e)) => return Err(usage(e.to_string())),
        };
        let StoreLocation::Postgres(url) = location else {
            return match instance {
                None => Ok(Source::Dir),
                Some(_) => Err(usage(
                    "`--instance` reads the shared store: give `--store URL` (or WARDEN_STORE)"
                        .to_owned(),
                )),
            };
        };
        let bounds = PoolBounds {
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(600),
        };
        match postgres::connect(&url, bounds).await {
            Ok(pool) => Ok(Source::Store(pool, instance)),
            Err(e) => {
                // The error never repeats the URL's password (`PostgresUrl`'s Display).
                eprintln!(
                    "error: cannot connect to the store {url}: {}",
                    with_causes(&e)
                );
                Err(ExitCode::from(EXIT_IO))
            }
        }
    }
}

/// `verify --store`: each instance's chain alone, one line each.
pub(super) async fn verify(pool: PgPool, only: Option<InstanceId>, format: Format) -> ExitCode {
    let names = match names(&pool, only).await {
        Ok(names) => names,
        Err(code) => return code,
    };
    let (mut broken, mut unread, mut unknown) = (false, false, false);
    for name in names {
        match verify_one(&pool, &name).await {
            Ok((report, beyond)) => {
                broken |= !report.is_intact() || beyond.is_some();
                let line = match format {
                    Format::Human => human(&name, &report, beyond.as_ref()),
                    Format::Json => json(&name, &report, beyond.as_ref()).to_string(),
                };
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            Err(e) => {
                match e {
                    warden_audit::LedgerError::UnknownInstance { .. } => unknown = true,
                    _ => unread = true,
                }
                eprintln!("error: instance `{name}`: {}", with_causes(&e));
            }
        }
    }
    pool.close().await;
    exit_code(broken, unread, unknown)
}

/// The instances to verify: `only`, else every instance of the store (none: a usage error).
async fn names(pool: &PgPool, only: Option<InstanceId>) -> Result<Vec<String>, ExitCode> {
    let names: Vec<String> = match only {
        Some(id) => vec![id.as_str().to_owned()],
        None => {
            let listed = match LedgerReader::open_postgres(pool.clone(), None).await {
                Ok(merged) => merged.instances().await,
                Err(e) => Err(e),
            };
            match listed {
                Ok(list) => list.into_iter().map(|i| i.instance).collect(),
                Err(e) => return Err(failure(&e)),
            }
        }
    };
    if names.is_empty() {
        eprintln!("error: the store holds no instance's ledger");
        return Err(ExitCode::from(EXIT_USAGE));
    }
    Ok(names)
}

/// The exit code of a verification of several chains: 3 a finding in any, else 74 one could
/// not be read, else 64 one is unknown, else 0.
fn exit_code(broken: bool, unread: bool, unknown: bool) -> ExitCode {
    if broken {
        ExitCode::from(EXIT_BROKEN)
    } else if unread {
        ExitCode::from(EXIT_IO)
    } else if unknown {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::SUCCESS
    }
}

/// An instance name read back from the store, as an id.
fn instance_id(name: &str) -> Result<InstanceId, warden_audit::LedgerError> {
    InstanceId::parse(name).map_err(|e| {
        warden_audit::LedgerError::Postgres(std::sync::Arc::new(std::io::Error::other(
            e.to_string(),
        )))
    })
}

/// A finding beyond the chain itself: its kind and sentence.
type Beyond = (&'static str, String);

async fn verify_one(
    pool: &PgPool,
    name: &str,
) -> Result<(VerifyReport, Option<Beyond>), warden_audit::LedgerError> {
    let reader = LedgerReader::open_postgres(pool.clone(), Some(instance_id(name)?)).await?;
    let report = reader.verify().await?;
    let first = reader.get(1).await?;
    let mark = reader.mark().await?.unwrap_or(0);
    let head = report.head.map_or(0, |h| h.seq);
    let beyond = if report.is_intact() {
        missing_start(first.as_ref())
            .map(|why| ("missing_start", why))
            .or_else(|| {
                (head < mark).then(|| {
                    (
                        "truncated",
                        format!(
                            "truncated: the chain ends at record {head}, but its writer \
                             recorded that record {mark} was committed (records after {head} \
                             were removed?)"
                        ),
                    )
                })
            })
    } else {
        None
    };
    Ok((report, beyond))
}

fn human(name: &str, report: &VerifyReport, beyond: Option<&Beyond>) -> String {
    if let Some((_, why)) = beyond {
        return format!("instance {name}: ledger NOT intact: {why}");
    }
    match (&report.first_problem, report.head) {
        (None, Some(h)) => format!(
            "instance {name}: ledger intact: {} records verified; head is record {} (hash {})",
            report.records,
            h.seq,
            hex(&h.hash)
        ),
        (None, None) => format!("instance {name}: ledger intact: no records"),
        (Some(problem), head) => format!(
            "instance {name}: ledger NOT intact: {problem} ({} records verified before it{})",
            report.records,
            head.map(|h| format!("; last intact record {}", h.seq))
                .unwrap_or_default()
        ),
    }
}

fn json(name: &str, report: &VerifyReport, beyond: Option<&Beyond>) -> serde_json::Value {
    let problem = match (beyond, &report.first_problem) {
        (Some((kind, why)), _) => Some(serde_json::json!({ "kind": kind, "message": why })),
        (None, Some(p)) => {
            let mut v = serde_json::to_value(p).unwrap_or_default();
            if let Some(map) = v.as_object_mut() {
                map.insert("message".to_owned(), p.to_string().into());
            }
            Some(v)
        }
        (None, None) => None,
    };
    serde_json::json!({
        "instance": name,
        "intact": problem.is_none(),
        "records": report.records,
        "head": report.head,
        "problem": problem,
    })
}

/// `tail --store`: the last `n` records of one instance, or of every instance merged by
/// time, each line naming its instance.
pub(super) async fn tail(pool: PgPool, only: Option<InstanceId>, n: u64) -> ExitCode {
    let reader = match LedgerReader::open_postgres(pool.clone(), only).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    let records = match reader.tail_tagged(n).await {
        Ok(r) => r,
        Err(e) => return failure(&e),
    };
    pool.close().await;
    let mut out = std::io::stdout().lock();
    for (instance, record) in records {
        if writeln!(out, "{}", tagged_line(&instance, &record)).is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// The record's JSON line with its instance as the first member.
fn tagged_line(instance: &str, record: &warden_audit::Record) -> String {
    let line = record.to_json_line();
    let name = serde_json::Value::from(instance);
    match line.strip_prefix('{') {
        Some(rest) if rest.starts_with('}') => format!("{{\"instance\":{name}}}"),
        Some(rest) => format!("{{\"instance\":{name},{rest}"),
        None => line,
    }
}

/// `show --store --instance ID SEQ`.
pub(super) async fn show(pool: PgPool, only: Option<InstanceId>, seq: u64) -> ExitCode {
    let Some(instance) = only else {
        eprintln!(
            "error: a sequence number names a record in one instance's chain: give `--instance ID`"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let name = instance.as_str().to_owned();
    let record = match LedgerReader::open_postgres(pool.clone(), Some(instance)).await {
        Ok(reader) => reader.get(seq).await,
        Err(e) => Err(e),
    };
    pool.close().await;
    match record {
        Ok(Some(r)) => {
            let _ = writeln!(std::io::stdout().lock(), "{}", tagged_line(&name, &r));
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("error: the chain of instance `{name}` has no record {seq}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(e) => failure(&e),
    }
}

/// `verify --store [--instance ID] --pubkey KEY [--checkpoint FILE]`: each instance's chain
/// (every instance by default, one report each) against the signed checkpoints among its
/// records, opened with `key`, and against its mark; with `--checkpoint`, the one instance's
/// chain against that anchor too. The report, findings and exit codes are those of a data
/// directory's ledger (`signed.rs`), each line naming its instance.
pub(super) async fn verify_signed(
    pool: PgPool,
    only: Option<InstanceId>,
    args: &VerifyArgs,
    pubkey: &str,
) -> ExitCode {
    if args.file.is_some() {
        eprintln!(
            "error: `--file` verifies an exported copy by itself (its records and checkpoints \
             are all in its files), not a chain of the store: run it without `--store` (and \
             without WARDEN_STORE)"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    if only.is_none() && args.checkpoint.is_some() {
        eprintln!(
            "error: a `--checkpoint` signs one instance's chain: give `--instance ID` with it"
        );
        return ExitCode::from(EXIT_USAGE);
    }
    let key: Arc<dyn OpenNote + Send + Sync> = match signed::key(pubkey) {
        Ok(k) => Arc::new(k),
        Err(code) => return code,
    };
    let anchor = match args.checkpoint.as_deref().map(signed::read_checkpoint) {
        None => None,
        Some(Ok(text)) => Some(text),
        Some(Err(code)) => return code,
    };
    let names = match names(&pool, only).await {
        Ok(names) => names,
        Err(code) => return code,
    };
    let (mut broken, mut unread, mut unknown) = (false, false, false);
    for name in names {
        match verify_signed_one(&pool, &name, key.clone(), anchor.clone()).await {
            Ok((report, mark)) => {
                let (finding, warning) =
                    signed::verdict(&report, Some(mark), args.allow_unsigned_tail);
                broken |= finding.is_some();
                let line = signed::render(
                    args.format,
                    Some(&name),
                    &format!("the chain of instance `{name}`"),
                    &report,
                    (finding.as_ref(), warning.as_ref()),
                    anchor.is_some(),
                );
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            Err(e) => {
                match e {
                    warden_audit::LedgerError::UnknownInstance { .. } => unknown = true,
                    _ => unread = true,
                }
                eprintln!("error: instance `{name}`: {}", with_causes(&e));
            }
        }
    }
    pool.close().await;
    exit_code(broken, unread, unknown)
}

/// One instance's chain against the signed checkpoints, and its mark.
async fn verify_signed_one(
    pool: &PgPool,
    name: &str,
    key: Arc<dyn OpenNote + Send + Sync>,
    anchor: Option<String>,
) -> Result<(Report, u64), warden_audit::LedgerError> {
    let reader = LedgerReader::open_postgres(pool.clone(), Some(instance_id(name)?)).await?;
    let report = reader.verify_signed(key, anchor).await?;
    let mark = reader.mark().await?.unwrap_or(0);
    Ok((report, mark))
}
