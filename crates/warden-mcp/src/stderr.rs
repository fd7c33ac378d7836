//! The stderr of a stdio server's child: read line by line, redacted, logged, and its last
//! lines kept for start-up reports (`warden up` prints them when the server fails).
//!
//! Bounds: a line is read up to [`MAX_RAW_LINE_BYTES`] (the rest of a longer line is
//! discarded), redacted with the gateway's secrets, then cut to [`MAX_LINE_BYTES`] (redacting
//! before cutting, so a secret is never cut in two and half-logged); at most
//! [`LINES_PER_MINUTE`] lines a minute are logged per child (the others are counted, and the
//! count logged); the last [`TAIL_LINES`] are kept.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::time::Instant;
use warden_core::redact::Secrets;

/// The longest stderr line logged, in bytes.
pub const MAX_LINE_BYTES: usize = 4 * 1024;
/// The longest stderr line read before it is cut, in bytes.
pub const MAX_RAW_LINE_BYTES: usize = 16 * 1024;
/// Lines logged per child and minute.
pub const LINES_PER_MINUTE: u32 = 60;
/// Lines kept for start-up reports.
pub const TAIL_LINES: usize = 10;

/// The last stderr lines of a server's children (across restarts), redacted.
#[derive(Debug, Default)]
pub struct StderrTail {
    lines: Mutex<VecDeque<String>>,
}

impl StderrTail {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.lines.lock() {
            if lines.len() >= TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    /// The last lines, oldest first (redacted, each at most [`MAX_LINE_BYTES`]).
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Reads `stderr` until it ends (the child exited), logging each line at warn with `server`,
/// within the bounds of the module.
pub(crate) async fn relay(
    server: String,
    stderr: impl AsyncRead + Unpin,
    secrets: Secrets,
    tail: std::sync::Arc<StderrTail>,
) {
    let mut reader = BufReader::new(stderr);
    let mut line: Vec<u8> = Vec::new();
    let mut cut = false;
    let mut window = Instant::now();
    let mut logged: u32 = 0;
    let mut suppressed: u64 = 0;
    let mut emit = |raw: &[u8], cut: bool| {
        let text = String::from_utf8_lossy(raw);
        let redacted = secrets.redact_str(text.trim_end_matches('\r'));
        let mut shown = truncate(&redacted, MAX_LINE_BYTES).to_owned();
        if cut || shown.len() < redacted.len() {
            shown.push_str(" [cut]");
        }
        if window.elapsed() >= Duration::from_secs(60) {
            if suppressed > 0 {
                tracing::warn!(server = %server, suppressed, "Upstream server stderr lines were not logged (more than 60 a minute).");
            }
            window = Instant::now();
            logged = 0;
            suppressed = 0;
        }
        if logged < LINES_PER_MINUTE {
            logged = logged.saturating_add(1);
            tracing::warn!(server = %server, line = %shown, "Upstream server wrote to stderr.");
        } else {
            suppressed = suppressed.saturating_add(1);
        }
        tail.push(shown);
    };
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let newline = buf.iter().position(|&b| b == b'\n');
        let (chunk, consumed) = match newline {
            Some(i) => (buf.split_at(i).0, i.saturating_add(1)),
            None => (buf, buf.len()),
        };
        let room = MAX_RAW_LINE_BYTES.saturating_sub(line.len());
        if chunk.len() > room {
            cut = true;
        }
        line.extend(chunk.iter().take(room));
        reader.consume(consumed);
        if newline.is_some() {
            emit(&line, cut);
            line.clear();
            cut = false;
        }
    }
    if !line.is_empty() {
        emit(&line, cut);
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Issue 11, point 1: stderr lines are kept redacted and bounded.
    #[tokio::test]
    async fn issue_11_stderr_lines_are_redacted_and_bounded() {
        let secrets = Secrets::new(["s3cr3t-token-value"]).unwrap();
        let long = "x".repeat(MAX_RAW_LINE_BYTES * 2);
        let input = format!("boom: token s3cr3t-token-value\r\n{long}\nlast");
        let tail = Arc::new(StderrTail::default());
        relay("srv".into(), input.as_bytes(), secrets, tail.clone()).await;
        let lines = tail.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "boom: token [REDACTED]");
        assert!(lines[1].len() <= MAX_LINE_BYTES + 6 && lines[1].ends_with("[cut]"));
        assert_eq!(lines[2], "last");
        let many: String = (0..TAIL_LINES * 2).map(|i| format!("line {i}\n")).collect();
        let tail = Arc::new(StderrTail::default());
        relay(
            "srv".into(),
            many.as_bytes(),
            Secrets::default(),
            tail.clone(),
        )
        .await;
        assert_eq!(tail.lines().len(), TAIL_LINES);
        assert_eq!(tail.lines().last().map(String::as_str), Some("line 19"));
    }
}
