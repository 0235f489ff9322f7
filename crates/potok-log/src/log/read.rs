//! Reading a [`Log`]: byte ranges of whole batches for Fetch ([`ReadSlice`]), timestamp
//! lookups, and the bounded set of memory-mapped closed indexes.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use potok_records::Offset;

use super::{last_segment, Log};
use crate::segment::Segment;
use crate::storage::{read_exact_at, StorageFile};
use crate::txn_index::{collect_aborted, AbortedTxn};
use crate::{LogError, Result};

/// A byte range of one segment file holding whole record batches, ready for `sendfile`
/// (`file`, `position`, `len`) or for [`ReadSlice::read_bytes`].
///
/// The range is chosen under the log's lock but read after it; a later `truncate_to` may cut
/// the file under it (a short `sendfile`), and retention may delete the file, which the open
/// handle keeps readable. Both are the same trade-offs Kafka makes.
#[derive(Clone, Debug)]
pub struct ReadSlice {
    /// The segment's `.log` file.
    pub file: Arc<File>,
    /// Byte position of the first batch.
    pub position: u64,
    /// Length in bytes (0 at the log end).
    pub len: usize,
    /// Base offset of the first batch (which may be below the offset asked for, because a
    /// batch is never split); the requested offset when the slice is empty.
    pub first_offset: Offset,
    /// The offset after the slice's last batch (`first_offset` when the slice is empty): the
    /// upper bound of the aborted transactions a read_committed fetch reports.
    pub end_offset: Offset,
    pub(super) source: Arc<dyn StorageFile>,
}

impl ReadSlice {
    /// Whether the slice holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the slice into memory (for callers that cannot use `sendfile`).
    pub fn read_bytes(&self) -> io::Result<Bytes> {
        let mut buf = vec![0u8; self.len];
        read_exact_at(&*self.source, &mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }

    /// Reads the slice into `buf`, which must be exactly `len` bytes long.
    pub fn read_into(&self, buf: &mut [u8]) -> io::Result<()> {
        if buf.len() != self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer length differs from the slice length",
            ));
        }
        read_exact_at(&*self.source, buf, self.position)
    }
}

/// A [`ReadSlice`] of `seg` that holds the segment's file open itself, so closing the
/// segment's descriptor to stay within the open-file bound, or deleting the segment, does not
/// end a read in flight.
fn pinned_slice(
    seg: &Segment,
    position: u64,
    len: usize,
    first_offset: i64,
    end_offset: i64,
) -> Result<ReadSlice> {
    let handle = seg.file();
    let io = |e| LogError::io(seg.log_path(), e);
    let source = handle
        .pinned()
        .map_err(io)?
        .unwrap_or_else(|| Arc::clone(handle));
    Ok(ReadSlice {
        file: source.std_file().map_err(io)?,
        position,
        len,
        first_offset: Offset(first_offset),
        end_offset: Offset(end_offset),
        source,
    })
}

impl Log {
    fn note_mapped(&self, base: i64) {
        let mut lru = self.mapped.lock().unwrap_or_else(|e| e.into_inner());
        lru.retain(|&b| b != base);
        lru.push_back(base);
        while lru.len() > self.config.max_mapped_closed_indexes {
            if let Some(old) = lru.pop_front() {
                if let Some(seg) = self.segments.get(&old) {
                    seg.unmap_indexes();
                }
            }
        }
    }

    pub(super) fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset: Offset(offset),
            log_start_offset: Offset(self.log_start_offset),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Reads whole batches starting with the one containing `from`, up to `max_bytes` (but at
    /// least one whole batch), only batches whose last offset is below `max_offset` when given
    /// (the high watermark for consumers), from a single segment (as Kafka does). At the log
    /// end, or when the first batch reaches `max_offset`, the slice is empty.
    /// `from` outside `[log_start_offset, log_end_offset]` is [`LogError::OffsetOutOfRange`].
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        max_offset: Option<Offset>,
    ) -> Result<ReadSlice> {
        let leo = self.log_end_offset().0;
        if from.0 < self.log_start_offset || from.0 > leo {
            return Err(self.out_of_range(from.0));
        }
        self.read_held(from, max_bytes, max_offset)
    }

    /// [`Log::read`] from any offset a segment still holds, also below the log start offset:
    /// DeleteRecords moves the log start within a segment, and the producer-state replay at open
    /// must see the batches between the newest snapshot and the log start, or a producer whose
    /// last batches lie there would come back with an older sequence than the live log had.
    /// An offset below the first segment reads from the first segment; above the log end it is
    /// [`LogError::OffsetOutOfRange`].
    pub(super) fn read_held(
        &self,
        from: Offset,
        max_bytes: usize,
        max_offset: Option<Offset>,
    ) -> Result<ReadSlice> {
        let leo = self.log_end_offset().0;
        if from.0 > leo {
            return Err(self.out_of_range(from.0));
        }
        let active = last_segment(&self.segments)?;
        if from.0 == leo {
            return pinned_slice(active, active.size(), 0, from.0, from.0);
        }
        let start_base = self
            .segments
            .range(..=from.0)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for (&base, seg) in self.segments.range(start_base..) {
            let mut mapped = false;
            let r = seg.read(
                &*self.storage,
                from.0.max(base),
                max_bytes,
                max_offset.map(|o| o.0),
                &mut mapped,
            );
            // Only closed segments' indexes get mapped on demand (the active one always is).
            if mapped {
                self.note_mapped(base);
            }
            if let Some(r) = r? {
                let len = usize::try_from(r.len).unwrap_or(usize::MAX);
                return pinned_slice(seg, r.position, len, r.first_offset, r.end_offset);
            }
        }
        pinned_slice(active, active.size(), 0, from.0, from.0)
    }

    /// The aborted transactions a read_committed fetch of `[from, upper)` must report (Kafka's
    /// `UnifiedLog.collectAbortedTransactions`): every `.txnindex` entry whose ABORT marker is
    /// at or after `from` and whose first batch is below `upper`, from the segment holding
    /// `from` onwards, stopping at the first entry whose last stable offset reaches `upper`
    /// (no later segment can hold a transaction that was open below `upper`). The result is
    /// bounded by the range: one entry per ABORT marker in it, plus at most one per producer
    /// whose transaction was open at `upper`.
    pub fn collect_aborted_transactions(&self, from: Offset, upper: Offset) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        if upper <= from {
            return out;
        }
        let start_base = self
            .segments
            .range(..=from.0)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for seg in self.segments.range(start_base..).map(|(_, s)| s) {
            if collect_aborted(seg.txn.entries(), from, upper, &mut out) {
                break;
            }
        }
        out
    }

    /// The first record whose timestamp is `>= timestamp` at or after the log start offset,
    /// as `(offset, record timestamp)` (Kafka's ListOffsets by timestamp); `None` when every
    /// record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(Offset, i64)>> {
        for (&base, seg) in self.segments.iter() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            let mut mapped = false;
            let r = seg.find_by_timestamp(
                &*self.storage,
                timestamp,
                self.log_start_offset,
                &mut mapped,
            );
            if mapped {
                self.note_mapped(base);
            }
            if let Some((o, ts)) = r? {
                return Ok(Some((Offset(o), ts)));
            }
        }
        Ok(None)
    }

    /// The largest record timestamp in the log and the offset of the first record carrying it
    /// (ListOffsets `MAX_TIMESTAMP`, KIP-734); `None` for a log without timestamps.
    pub fn max_timestamp_and_offset(&self) -> Result<Option<(i64, Offset)>> {
        let max = self
            .segments
            .values()
            .map(|s| s.max_timestamp())
            .max()
            .unwrap_or(-1);
        if max < 0 {
            return Ok(None);
        }
        Ok(self.offset_for_timestamp(max)?.map(|(o, ts)| (ts, o)))
    }
}
