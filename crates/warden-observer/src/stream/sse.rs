//! A bounded reader of server-sent events. `sse-stream` (used elsewhere in the workspace)
//! drops comment lines, and the ledger stream's `: head N` comments carry the committed head the
//! observer measures its lag against, so the few rules of the format the stream uses are read
//! here: lines end with LF, CR or CRLF; `field: value` (one optional space after the colon);
//! a line starting with `:` is a comment; an empty line ends the event; a field other than
//! `id`, `event`, `data` or `retry` is ignored, as the specification says.

/// One event or comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SseItem {
    /// An event: its `id`, its `event` name and its `data` lines joined with `\n`.
    Event {
        id: Option<String>,
        event: Option<String>,
        data: String,
    },
    /// A comment line, without the colon and the one space after it.
    Comment(String),
}

/// Why the bytes cannot be read as events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SseError {
    /// A line, or an event's data, passed the limit.
    #[error("an event is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// A line is not UTF-8.
    #[error("a line of the stream is not UTF-8")]
    NotUtf8,
}

/// Reads events from chunks of bytes, however they are cut. Holds at most `limit` bytes of an
/// unfinished line plus `limit` bytes of an unfinished event's data.
#[derive(Debug)]
pub(crate) struct SseParser {
    limit: usize,
    line: Vec<u8>,
    skip_lf: bool,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// A parser refusing lines and events longer than `limit` bytes.
    pub(crate) fn new(limit: usize) -> SseParser {
        SseParser {
            limit,
            line: Vec::new(),
            skip_lf: false,
            id: None,
            event: None,
            data: None,
        }
    }

    /// Reads `chunk`, appending the events and comments it completes to `out`. After an error
    /// the parser is spent: drop it (and the connection).
    pub(crate) fn push(
        &mut self,
        mut chunk: &[u8],
        out: &mut Vec<SseItem>,
    ) -> Result<(), SseError> {
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while !chunk.is_empty() {
            let Some(end) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') else {
                self.extend_line(chunk)?;
                return Ok(());
            };
            let (head, rest) = chunk.split_at(end);
            self.extend_line(head)?;
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
            self.line = line;
            self.line.clear();
            // `rest` starts with the line end.
            let crlf = rest.starts_with(b"\r\n");
            let cr_at_end = rest == b"\r";
            chunk = rest.get(if crlf { 2 } else { 1 }..).unwrap_or_default();
            if cr_at_end {
                self.skip_lf = true;
            }
        }
        Ok(())
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len().saturating_add(bytes.len()) > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseItem>) -> Result<(), SseError> {
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(SseItem::Event {
                    id: self.id.take(),
                    event: self.event.take(),
                    data,
                });
            }
            self.id = None;
            self.event = None;
            return Ok(());
        }
        let text = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text, ""),
        };
        match field {
            "" => out.push(SseItem::Comment(value.to_owned())),
            "id" => self.id = Some(value.to_owned()),
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                let data = self.data.get_or_insert_with(String::new);
                let extra = usize::from(!data.is_empty());
                if data.len().saturating_add(value.len()).saturating_add(extra) > self.limit {
                    return Err(SseError::TooLarge { limit: self.limit });
                }
                if extra == 1 {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn read(chunks: &[&[u8]], limit: usize) -> Result<Vec<SseItem>, SseError> {
        let mut p = SseParser::new(limit);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out)?;
        }
        Ok(out)
    }

    fn event(id: &str, data: &str) -> SseItem {
        SseItem::Event {
            id: Some(id.to_owned()),
            event: Some("record".to_owned()),
            data: data.to_owned(),
        }
    }

    #[test]
    fn events_and_comments_however_the_bytes_are_cut() {
        let text = b"id: 1\nevent: record\ndata: {\"a\":1}\n\n: head 7\r\nid: 2\r\nevent: record\r\ndata: x\r\ndata: y\r\n\r\nretry: 5\nunknown: z\n\n";
        let want = vec![
            event("1", "{\"a\":1}"),
            SseItem::Comment("head 7".to_owned()),
            event("2", "x\ny"),
        ];
        assert_eq!(read(&[text], 1024).unwrap(), want);
        for cut in 1..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(read(&[a, b], 1024).unwrap(), want, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(read(&bytes, 1024).unwrap(), want);
    }

    #[test]
    fn a_line_or_an_event_past_the_limit_is_refused() {
        let long = vec![b'a'; 40];
        let err = read(&[b"data: ", &long, b"\n\n"], 32).unwrap_err();
        assert_eq!(err, SseError::TooLarge { limit: 32 });
        // Many short data lines cannot grow one event past the limit either.
        let lines = b"data: 0123456789\n".repeat(4);
        assert_eq!(
            read(&[&lines], 32).unwrap_err(),
            SseError::TooLarge { limit: 32 }
        );
        assert_eq!(
            read(&[b"data: \xff\n\n"], 32).unwrap_err(),
            SseError::NotUtf8
        );
    }
}
