//! One batch of records, read from the ledger in order: at most [`MAX_BATCH_RECORDS`] records
//! and [`MAX_BATCH_BYTES`] bytes of JSON lines (one record alone when it is larger), each kept
//! as its JSON line and the few fields the sinks label it with (the parsed record is dropped).

use warden_audit::{LedgerError, LedgerReader, Record};
use warden_core::canonical::hex;

use crate::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS};

/// Records read from the ledger per query (a batch is read in a few pages).
const PAGE: usize = 256;

/// One record as the sinks send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's time, in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// The record's kind, as stored.
    pub kind: &'static str,
    /// The record's session, if any.
    pub session: Option<String>,
    /// The record's hash, in lowercase hex.
    pub hash: String,
    /// `Record::to_json_line()`, without the newline.
    pub line: String,
}

impl Item {
    /// `record` as the sinks send it.
    pub fn of(record: &Record) -> Item {
        Item {
            seq: record.seq,
            time_ns: u64::try_from(record.time.unix_timestamp_nanos()).unwrap_or(0),
            kind: record.kind.as_str(),
            session: record.session.clone(),
            hash: hex(&record.hash),
            line: record.to_json_line(),
        }
    }
}

/// Consecutive records of the ledger, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The records.
    pub items: Vec<Item>,
    /// The bytes of their JSON lines (without newlines).
    pub bytes: usize,
}

impl Batch {
    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The first record's sequence number.
    pub fn first(&self) -> Option<u64> {
        self.items.first().map(|i| i.seq)
    }

    /// The last record's sequence number.
    pub fn last(&self) -> Option<u64> {
        self.items.last().map(|i| i.seq)
    }

    /// Adds `item` if the batch has room for it (an empty batch always has).
    fn push(&mut self, item: Item) -> bool {
        let full = self.items.len() >= MAX_BATCH_RECORDS
            || (!self.items.is_empty()
                && self.bytes.saturating_add(item.line.len()) > MAX_BATCH_BYTES);
        if full {
            return false;
        }
        self.bytes = self.bytes.saturating_add(item.line.len());
        self.items.push(item);
        true
    }
}

/// Reads the next batch: records from `from` on, in ledger order. Empty when the ledger has
/// nothing from `from` on.
pub async fn read(reader: &LedgerReader, from: u64) -> Result<Batch, LedgerError> {
    let mut batch = Batch::default();
    let mut next = from;
    loop {
        let want = MAX_BATCH_RECORDS.saturating_sub(batch.len()).min(PAGE);
        if want == 0 {
            return Ok(batch);
        }
        let page = reader
            .range(next, u64::try_from(want).unwrap_or(u64::MAX))
            .await?;
        let got = page.len();
        for record in &page {
            if !batch.push(Item::of(record)) {
                return Ok(batch);
            }
            next = record.seq.saturating_add(1);
        }
        if got < want {
            return Ok(batch);
        }
    }
}
