//! Reading segment files batch by batch and deciding, batch by batch and record by record, what
//! a cleaning keeps (Kafka's `Cleaner.cleanInto` with `MemoryRecords.filterTo`).

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use potok_records::{BatchHeader, Record, RecordBatch, BATCH_HEADER_LEN};

use super::{CleanerIo, OffsetMap};
use crate::storage::{read_exact_at, StorageFile};
use crate::{LogError, Result};

/// Reads the whole batches of `[0, size)` of a segment file in chunks of about `chunk` bytes
/// (larger when one batch is larger), CRC-checking each. Every chunk read is reported to
/// the throttle.
pub(crate) struct BatchReader<'a> {
    file: &'a dyn StorageFile,
    path: &'a std::path::Path,
    size: u64,
    pos: u64,
    chunk: usize,
    buf: Bytes,
    /// File position of `buf[0]`.
    buf_pos: u64,
}

impl<'a> BatchReader<'a> {
    pub(crate) fn new(
        file: &'a dyn StorageFile,
        path: &'a std::path::Path,
        size: u64,
        chunk: usize,
    ) -> BatchReader<'a> {
        BatchReader {
            file,
            path,
            size,
            pos: 0,
            chunk: chunk.max(BATCH_HEADER_LEN),
            buf: Bytes::new(),
            buf_pos: 0,
        }
    }

    fn corrupt(&self, reason: String) -> LogError {
        LogError::Corrupt {
            path: self.path.to_path_buf(),
            reason,
        }
    }

    /// Makes `[pos, pos + need)` available in `buf`, reading a new chunk when it is not.
    fn fill(&mut self, need: u64, io: &mut dyn CleanerIo) -> Result<()> {
        let have_end = self.buf_pos + self.buf.len() as u64;
        if self.pos >= self.buf_pos && self.pos + need <= have_end {
            return Ok(());
        }
        let len = need.max(self.chunk as u64).min(self.size - self.pos);
        let len = usize::try_from(len).map_err(|_| self.corrupt("batch too large".into()))?;
        let mut b = BytesMut::zeroed(len);
        read_exact_at(self.file, &mut b, self.pos).map_err(|e| LogError::io(self.path, e))?;
        io.throttle(len as u64);
        self.buf = b.freeze();
        self.buf_pos = self.pos;
        Ok(())
    }

    /// The next batch and its file position, `None` at the end.
    pub(crate) fn next_batch(
        &mut self,
        io: &mut dyn CleanerIo,
    ) -> Result<Option<(u64, RecordBatch)>> {
        if self.pos >= self.size {
            return Ok(None);
        }
        if self.size - self.pos < BATCH_HEADER_LEN as u64 {
            return Err(self.corrupt(format!("torn batch header at byte {}", self.pos)));
        }
        self.fill(BATCH_HEADER_LEN as u64, io)?;
        let at = (self.pos - self.buf_pos) as usize;
        let h = BatchHeader::parse(self.buf.get(at..).unwrap_or(&[]))
            .map_err(|e| self.corrupt(format!("at byte {}: {e}", self.pos)))?;
        let total = h.total_size() as u64;
        if self.pos + total > self.size {
            return Err(self.corrupt(format!(
                "batch at byte {} extends past the segment end",
                self.pos
            )));
        }
        self.fill(total, io)?;
        let at = (self.pos - self.buf_pos) as usize;
        let bytes = self.buf.slice(at..at + total as usize);
        let batch = RecordBatch::new(bytes)
            .and_then(|b| b.validate().map(|()| b))
            .map_err(|e| self.corrupt(format!("batch at byte {}: {e}", self.pos)))?;
        let pos = self.pos;
        self.pos += total;
        Ok(Some((pos, batch)))
    }
}

/// What the filter needs to know about the cleaning round.
pub(crate) struct FilterContext<'a> {
    pub(crate) map: &'a OffsetMap,
    pub(crate) now_ms: i64,
    pub(crate) delete_retention_ms: i64,
    /// Producer id -> offset of its last data record (Kafka's `lastRecordsOfActiveProducers`).
    pub(crate) active_producers: &'a HashMap<i64, i64>,
    /// The aborted transactions: their data is dropped.
    pub(crate) aborted: &'a super::AbortedSet,
    /// The first uncleanable offset: the batch ending just below it is kept, even empty, so
    /// the cleaned log still shows where its data ended (Kafka's
    /// `upperBoundOffsetOfCleaningRound`).
    pub(crate) round_end: i64,
    pub(crate) max_decompressed: usize,
}

/// Counts of one filtered batch.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FilterCounts {
    pub(crate) records_read: u64,
    pub(crate) records_retained: u64,
}

/// The batch to write in place of `batch`, or `None` to drop it. Kafka's rules:
///
/// * a record above the offset map's last offset is kept (it was not looked at);
/// * a record without a key is dropped (a compacted topic refuses them at produce time; older
///   ones remain from before the topic was compacted);
/// * a keyed record is kept when no later record of its key is in the map, and, for a
///   tombstone (null value), when its batch's delete horizon has not passed;
/// * a batch holding tombstones that survive for the first time gets the horizon
///   `now + delete.retention.ms` (KIP-534), so tombstones live `delete.retention.ms` from the
///   cleaning that first kept them;
/// * a batch left without records is dropped unless it holds an active idempotent producer's
///   last record (its sequence must survive) or ends the cleaning round; then its header is
///   kept with no records;
/// * every record of a batch of an aborted transaction is dropped (the batch then follows the
///   rule for batches left without records);
/// * control batches (transaction markers) are kept as they are (Kafka removes a marker once
///   its transaction's data is gone and `delete.retention.ms` passed; Potok does not yet).
pub(crate) fn filter_batch(
    batch: &RecordBatch,
    ctx: &FilterContext<'_>,
) -> Result<(Option<RecordBatch>, FilterCounts)> {
    let h = *batch.header();
    let mut counts = FilterCounts::default();
    if h.is_control() {
        counts.records_read = u64::try_from(h.records_count).unwrap_or(0);
        counts.records_retained = counts.records_read;
        return Ok((Some(batch.clone()), counts));
    }
    let aborted = ctx.aborted.holds(&h);
    let horizon_passed = h.delete_horizon_ms().is_some_and(|t| ctx.now_ms >= t);
    let mut retained: Vec<Record> = Vec::new();
    let mut all = true;
    let mut tombstones = false;
    let bad = |e: potok_records::RecordsError| LogError::InvalidBatch(e);
    for r in batch
        .records_with_limit(ctx.max_decompressed)
        .map_err(bad)?
    {
        let r = r.map_err(bad)?;
        counts.records_read += 1;
        let offset = r.offset(&h).0;
        let keep = if aborted {
            false
        } else if offset > ctx.map.latest_offset() {
            true
        } else if let Some(key) = &r.key {
            let latest = ctx.map.get(key).is_none_or(|o| offset >= o);
            latest && (r.value.is_some() || !horizon_passed)
        } else {
            false
        };
        if keep {
            tombstones |= r.value.is_none();
            retained.push(r);
        } else {
            all = false;
        }
    }
    counts.records_retained = retained.len() as u64;
    if retained.is_empty() {
        let producer_last = h.producer_id >= 0
            && ctx.active_producers.get(&h.producer_id) == Some(&h.last_offset().0);
        let round_last = h.next_offset().0 == ctx.round_end;
        if producer_last || round_last {
            return Ok((Some(batch.empty_like().map_err(bad)?), counts));
        }
        return Ok((None, counts));
    }
    let set_horizon = tombstones && h.delete_horizon_ms().is_none();
    if all && !set_horizon {
        return Ok((Some(batch.clone()), counts));
    }
    let horizon = set_horizon.then(|| ctx.now_ms.saturating_add(ctx.delete_retention_ms));
    let out = batch
        .with_retained_records(&retained, horizon)
        .map_err(bad)?;
    Ok((Some(out), counts))
}
