//! The ledger as the [`Recorder`] components append through.

use warden_core::record::{NewRecord, RecordError, RecordFuture, Recorder, SeqFuture};

use super::Ledger;

impl Recorder for Ledger {
    fn append_batch(&self, records: Vec<NewRecord>) -> RecordFuture<'_> {
        Box::pin(async move {
            Ledger::append_batch(self, records)
                .await
                .map(drop)
                .map_err(RecordError::from_store)
        })
    }

    fn append_seq(&self, record: NewRecord) -> SeqFuture<'_> {
        Box::pin(async move {
            Ledger::append_batch(self, vec![record])
                .await
                .map(|appended| appended.first().map(|a| a.seq))
                .map_err(RecordError::from_store)
        })
    }
}
