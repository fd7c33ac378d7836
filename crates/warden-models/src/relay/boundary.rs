//! [`EventBoundary`]: where the last complete server-sent event of a byte stream ends, so the
//! relay passes the provider's bytes on event by event — never a part of an event it may
//! still have to hold back (the terminal one) or replace (by an error event).

/// Finds the ends of events (a blank line, whatever its line ending: `\n`, `\r\n` or `\r`) in
/// a byte stream fed in chunks; its state is the little it needs across a chunk boundary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventBoundary {
    /// The last byte fed ended a line (or nothing was fed yet): the next terminator ends a
    /// blank line.
    at_line_start: bool,
    /// The last byte fed was a `\r` (a `\n` right after it belongs to the same terminator).
    after_cr: bool,
    /// That `\r` ended an event (its `\n` goes with the event).
    cr_ended_event: bool,
}

impl Default for EventBoundary {
    fn default() -> Self {
        EventBoundary {
            at_line_start: true,
            after_cr: false,
            cr_ended_event: false,
        }
    }
}

impl EventBoundary {
    /// Feeds `chunk`; returns the offset in it just after the last event end it holds, if any.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut end = None;
        for (i, b) in chunk.iter().enumerate() {
            match b {
                b'\n' if self.after_cr => {
                    // The `\n` of a `\r\n`: the line already ended at the `\r`.
                    self.after_cr = false;
                    if self.cr_ended_event {
                        end = Some(i + 1);
                    }
                }
                b'\r' | b'\n' => {
                    let ends_event = self.at_line_start;
                    if ends_event {
                        end = Some(i + 1);
                    }
                    self.at_line_start = true;
                    self.after_cr = *b == b'\r';
                    self.cr_ended_event = self.after_cr && ends_event;
                }
                _ => {
                    self.at_line_start = false;
                    self.after_cr = false;
                }
            }
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends(chunks: &[&str]) -> Vec<Option<usize>> {
        let mut b = EventBoundary::default();
        chunks.iter().map(|c| b.feed(c.as_bytes())).collect()
    }

    #[test]
    fn event_ends_are_found_across_chunks_and_line_endings() {
        assert_eq!(ends(&["data: 1\n\ndata: 2"]), [Some(9)]);
        assert_eq!(ends(&["data: 1\n", "\n"]), [None, Some(1)]);
        assert_eq!(ends(&["data: 1\r\n\r\n"]), [Some(11)]);
        assert_eq!(ends(&["data: 1\r\n\r", "\nx"]), [Some(10), Some(1)]);
        assert_eq!(ends(&["data: 1\r", "\ndata: 2"]), [None, None]);
        assert_eq!(ends(&["data: 1\r\rdata: 2\r"]), [Some(9)]);
        assert_eq!(ends(&["event: a\ndata: b\n\ndata: c\n\n"]), [Some(27)]);
        assert_eq!(ends(&["data: 1\n", "data: 2\n"]), [None, None]);
    }
}
