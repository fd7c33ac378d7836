//! Reading the ledger in pages, in order, through the read-only `LedgerReader` (which never
//! creates or changes a file), the next page read while the current one is replayed. A record
//! that cannot be read is handed on as malformed, and reading goes on after it.

use warden_audit::{LedgerError, LedgerReader, Record};

/// Records read at a time.
pub const PAGE: u64 = 4096;

/// One page: the records read, and the record after them that could not be read, if any.
pub(crate) struct Page {
    pub(crate) records: Vec<Record>,
    pub(crate) malformed: Option<(u64, String)>,
}

impl Page {
    /// Where the next page starts; `None` at the end of the ledger.
    fn next(&self) -> Option<u64> {
        match (&self.malformed, self.records.last()) {
            (Some((seq, _)), _) => Some(seq.saturating_add(1)),
            (None, Some(last)) => Some(last.seq.saturating_add(1)),
            (None, None) => None,
        }
    }
}

async fn fetch(reader: &LedgerReader, from: u64) -> Result<Page, LedgerError> {
    match reader.range(from, PAGE).await {
        Ok(records) => Ok(Page {
            records,
            malformed: None,
        }),
        Err(LedgerError::Malformed { seq, reason }) => {
            let bad = u64::try_from(seq)
                .ok()
                .filter(|s| *s >= from)
                .ok_or_else(|| LedgerError::Malformed {
                    seq,
                    reason: reason.clone(),
                })?;
            // The records before the first bad one read well.
            let records = if bad > from {
                reader.range(from, bad - from).await?
            } else {
                Vec::new()
            };
            Ok(Page {
                records,
                malformed: Some((bad, reason)),
            })
        }
        Err(e) => Err(e),
    }
}

/// Whether `page`, read from `from`, holds exactly the records `from..from + PAGE`: then the
/// page read from `from + PAGE` at the same time follows it.
fn dense(page: &Page, from: u64) -> bool {
    page.malformed.is_none()
        && page.records.len() as u64 == PAGE
        && page.records.first().map(|r| r.seq) == Some(from)
        && page.records.last().map(|r| r.seq) == Some(from + PAGE - 1)
}

/// Reads the whole ledger from its first record, calling `each` for every page in order. The
/// next two pages are read (on blocking threads, one connection each) while `each` runs on
/// the current ones; the second is used only when the first was a whole page of consecutive
/// sequences (the ledger's are, past a pruned start), otherwise it is read again.
pub(crate) async fn pages(
    reader: &LedgerReader,
    mut each: impl FnMut(Page),
) -> Result<(), LedgerError> {
    let mut current = vec![fetch(reader, 1).await?];
    loop {
        let Some(from) = current.last().and_then(Page::next) else {
            for page in current {
                each(page);
            }
            return Ok(());
        };
        let after = from.saturating_add(PAGE);
        let (first, second, ()) = tokio::join!(fetch(reader, from), fetch(reader, after), async {
            for page in current.drain(..) {
                each(page);
            }
        });
        let first = first?;
        if dense(&first, from) {
            current = vec![first, second?];
        } else {
            current = vec![first];
        }
    }
}
