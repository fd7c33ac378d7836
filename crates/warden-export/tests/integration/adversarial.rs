//! Hostile peers and hostile files: oversized and garbage answers (bounded reads), a redirect
//! that would carry the credential elsewhere (never followed), cursor files edited to a huge
//! number or garbage (refused, never skipped), and header values that never reach a log, an
//! error or a `Debug`.

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use warden_export::cursor::Cursor;
use warden_export::{ExportError, Exporter};

use super::common::*;
use super::http::sink;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_is_read_only_up_to_its_bound() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 300).await;
    let (url, rx, server) = receiver("127.0.0.1:0", None).await;
    // 64 MiB of garbage with every 200: acknowledged, and not read whole.
    rx.lock().unwrap().answer_bytes = 64 * 1024 * 1024;
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    run.acked(300).await;
    run.stop().await;
    let lines = rx.lock().unwrap().lines.clone();
    check_copy(&lines, &all(&reader).await, true);
    server.cancel();
    ledger.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_never_followed_and_the_credential_stays_home() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, _reader) = ledger(data.path()).await;
    append(&ledger, 10).await;
    let (elsewhere, other, other_server) = receiver("127.0.0.1:0", None).await;
    let (url, rx, server) = receiver("127.0.0.1:0", None).await;
    {
        let mut g = rx.lock().unwrap();
        g.mode = Mode::Status(307);
        g.answer_headers.insert("location".to_owned(), elsewhere);
    }
    let run = Running::start(sink(&url), data.path(), &ledger).await;
    let stats = run.stats.clone();
    wait_for("refused redirects", || {
        stats.failures.load(Ordering::Relaxed) >= 2
    })
    .await;
    assert_eq!(
        stats.acked.load(Ordering::Acquire),
        0,
        "a redirect is no acknowledgement"
    );
    assert!(
        other.lock().unwrap().headers.is_empty(),
        "nothing went to the Location"
    );
    run.stop().await;
    server.cancel();
    other_server.cancel();
    ledger.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_edited_cursor_refuses_to_start_and_never_skips() {
    let data = tempfile::tempdir().unwrap();
    let (ledger, reader) = ledger(data.path()).await;
    append(&ledger, 20).await;
    let path = Cursor::path_of(data.path(), "siem");
    Cursor::load(data.path(), "siem").unwrap();
    std::fs::write(&path, "18446744073709551615\n").unwrap();
    let e = Exporter::open(sink("http://127.0.0.1:9/x"), data.path(), &reader, "l")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            ExportError::CursorAhead {
                cursor: u64::MAX,
                head: 20,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("siem.cursor"), "{e}");
    std::fs::write(&path, "21\n").unwrap();
    assert!(matches!(
        Exporter::open(sink("http://127.0.0.1:9/x"), data.path(), &reader, "l")
            .await
            .unwrap_err(),
        ExportError::CursorAhead { .. }
    ));
    for garbage in ["twelve\n", "", "7\n8\n", "1e3"] {
        std::fs::write(&path, garbage).unwrap();
        let e = Exporter::open(sink("http://127.0.0.1:9/x"), data.path(), &reader, "l")
            .await
            .unwrap_err();
        assert!(
            matches!(e, ExportError::CursorGarbage { .. }),
            "{garbage:?}: {e}"
        );
    }
    // The file is left as it was for the operator to look at.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "1e3");
    ledger.shutdown().await.unwrap();
}

/// A log sink for the test: everything the exporter logs, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[test]
fn header_values_are_never_logged_shown_or_in_errors() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .finish();
    // One thread: the exporter's task logs on the thread the subscriber is set on.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let data = tempfile::tempdir().unwrap();
            let (ledger, reader) = ledger(data.path()).await;
            append(&ledger, 50).await;
            let (url, rx, server) = receiver("127.0.0.1:0", None).await;
            rx.lock().unwrap().mode = Mode::Status(401);
            let config = sink(&url);
            assert!(!format!("{config:?}").contains("s3cret"));
            let exporter = Exporter::open(config.clone(), data.path(), &reader, "l")
                .await
                .unwrap();
            assert!(!format!("{exporter:?}").contains("s3cret"));
            let run = Running::start(config, data.path(), &ledger).await;
            let stats = run.stats.clone();
            wait_for("refusals", || stats.failures.load(Ordering::Relaxed) >= 3).await;
            run.stop().await;
            // An invalid header value: the error names the header, not the value.
            let mut bad = sink(&url);
            if let warden_export::Target::Http { headers, .. } = &mut bad.target {
                headers[0].1 = "s3cret\nX-Injected: 1".to_owned();
            }
            let e = Exporter::open(bad, data.path(), &reader, "l")
                .await
                .unwrap_err();
            assert!(!e.to_string().contains("s3cret"), "{e}");
            server.cancel();
            ledger.shutdown().await.unwrap();
        });
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("was not delivered"),
        "the failures were logged: {text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
    let _ = std::io::stdout().flush();
}
