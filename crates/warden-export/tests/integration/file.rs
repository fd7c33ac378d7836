//! The file sink: every record once, in order, across rotations and restarts; a torn last
//! line cut; the exact lines the ledger hashes; the copy verifies.

use std::path::{Path, PathBuf};

use warden_export::cursor::Cursor;
use warden_export::file::file_name;
use warden_export::{Exporter, SinkConfig, Target};

use super::common::*;

fn sink(dir: &Path, max_file_bytes: u64) -> SinkConfig {
    let mut s = SinkConfig::new(
        "files",
        Target::File {
            dir: dir.to_path_buf(),
        },
    );
    s.max_file_bytes = max_file_bytes;
    s
}

/// The export's files, in name order, and all their lines.
fn export(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{}", f.display());
        lines.extend(text.lines().map(str::to_owned));
    }
    (files, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_once_in_order_across_rotations_and_the_copy_verifies() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 3000).await;
    let run = Running::start(sink(out.path(), 64 * 1024), data.path(), &ledger).await;
    run.acked(3000).await;
    append(&ledger, 500).await;
    run.acked(3500).await;
    run.stop().await;
    let (files, lines) = export(out.path());
    assert!(files.len() > 5, "rotated: {}", files.len());
    let records = all(&reader).await;
    assert_eq!(check_copy(&lines, &records, false), 0);
    // Each file is named after its first record and stays within the size (one line over at
    // most when a single line is larger).
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let first = warden_audit::Record::from_json_line(text.lines().next().unwrap()).unwrap();
        assert_eq!(
            f.file_name().unwrap().to_str().unwrap(),
            file_name(first.seq)
        );
        assert!(
            text.len() as u64 <= 64 * 1024,
            "{}: {}",
            f.display(),
            text.len()
        );
    }
    assert_eq!(Cursor::load(data.path(), "files").unwrap().get(), 3500);
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_a_torn_line_is_cut_and_the_export_resumes_without_a_repeat() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 700).await;
    let run = Running::start(sink(out.path(), 32 * 1024), data.path(), &ledger).await;
    run.acked(700).await;
    run.stop().await;
    // The crash: the cursor had not moved past 450 yet, and a write was cut mid-line.
    Cursor::load(data.path(), "files")
        .unwrap()
        .store(450)
        .unwrap();
    let (files, _) = export(out.path());
    let newest = files.last().unwrap();
    let next = reader.get(701).await.unwrap();
    assert!(next.is_none());
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(newest)
            .unwrap();
        f.write_all(b"{\"seq\":701,\"time\":\"2026-").unwrap();
    }
    append(&ledger, 300).await;
    let run = Running::start(sink(out.path(), 32 * 1024), data.path(), &ledger).await;
    run.acked(1000).await;
    run.stop().await;
    let (_, lines) = export(out.path());
    assert_eq!(check_copy(&lines, &all(&reader).await, false), 0);
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_stop_what_was_committed_is_flushed() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    let run = Running::start(sink(out.path(), 1 << 20), data.path(), &ledger).await;
    append(&ledger, 2000).await;
    // Stopped at once: the final flush sends what the ledger holds.
    run.stop().await;
    let (_, lines) = export(out.path());
    assert_eq!(check_copy(&lines, &all(&reader).await, false), 0);
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_export_of_another_ledger_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = tempfile::tempdir().unwrap();
    let (la, _) = ledger(a.path()).await;
    append(&la, 50).await;
    let run = Running::start(sink(out.path(), 1 << 20), a.path(), &la).await;
    run.acked(50).await;
    run.stop().await;
    let (lb, rb) = ledger(b.path()).await;
    append(&lb, 80).await;
    let e = Exporter::open(sink(out.path(), 1 << 20), b.path(), &rb, "b")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not continue this ledger"), "{e}");
    // A shorter ledger than the export: refused too.
    let c = tempfile::tempdir().unwrap();
    let (lc, rc) = ledger(c.path()).await;
    append(&lc, 10).await;
    let e = Exporter::open(sink(out.path(), 1 << 20), c.path(), &rc, "c")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("ledger ends at"), "{e}");
    for l in [la, lb, lc] {
        l.shutdown().await.unwrap();
    }
}
