//! Opening an existing segment: the quick check of a cleanly closed segment's tail and
//! indexes, and the full scan that validates every batch and rebuilds the indexes after a crash.

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use potok_records::{BatchHeader, RecordBatch, BATCH_HEADER_LEN};

use super::{segment_file, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use super::{Invalid, Segment};
use crate::index::{offset_entry_at, time_entry_at, IndexFile, OFFSET_ENTRY_SIZE, TIME_ENTRY_SIZE};
use crate::storage::{read_exact_at, Storage};
use crate::{LogConfig, LogError, Result};

impl Segment {
    /// Opens an existing segment and rebuilds its indexes by scanning the `.log` file (with
    /// CRC checks when `validate`). Invalid data from the first bad batch on is cut off when
    /// `truncate_invalid`, and otherwise left on disk but excluded from the segment. The
    /// segment is left active (index entries in memory); call [`Segment::close_indexes`] for a
    /// non-last segment.
    pub(crate) fn open_and_rebuild(
        storage: &dyn Storage,
        dir: &Path,
        base: i64,
        config: &LogConfig,
        validate: bool,
        truncate_invalid: bool,
        now_ms: i64,
    ) -> Result<(Segment, Option<Invalid>)> {
        let log_path = segment_file(dir, base, LOG_SUFFIX);
        let log = storage
            .open_cached(&log_path, false)
            .map_err(|e| LogError::io(&log_path, e))?;
        let mut seg = Segment::with_files(storage, dir, base, log_path, log, config, true, "")?;
        seg.first_seen_ms = Some(now_ms);
        let invalid = seg.rebuild(config, validate)?;
        if let Some(inv) = &invalid {
            if truncate_invalid {
                seg.log
                    .set_len(inv.position)
                    .map_err(|e| LogError::io(&seg.log_path, e))?;
                seg.dirty = true;
            }
        }
        Ok((seg, invalid))
    }

    /// Opens an existing segment trusting its files after sanity checks (the clean-shutdown or
    /// below-recovery-point path). Returns `None` when the indexes fail the checks and must be
    /// rebuilt instead. The segment is left closed when `!active`.
    pub(crate) fn open_checked(
        storage: &dyn Storage,
        dir: &Path,
        base: i64,
        config: &LogConfig,
        active: bool,
        now_ms: i64,
    ) -> Result<Option<Segment>> {
        let log_path = segment_file(dir, base, LOG_SUFFIX);
        let index_path = segment_file(dir, base, INDEX_SUFFIX);
        let time_path = segment_file(dir, base, TIME_INDEX_SUFFIX);
        for p in [&index_path, &time_path] {
            if !storage.exists(p).map_err(|e| LogError::io(p, e))? {
                tracing::warn!(path = %p.display(), "index file missing; rebuilding");
                return Ok(None);
            }
        }
        let log = storage
            .open_cached(&log_path, false)
            .map_err(|e| LogError::io(&log_path, e))?;
        let size = log.len().map_err(|e| LogError::io(&log_path, e))?;
        let index_len = storage
            .open(&index_path, false)
            .and_then(|f| f.len())
            .map_err(|e| LogError::io(&index_path, e))?;
        let time_len = storage
            .open(&time_path, false)
            .and_then(|f| f.len())
            .map_err(|e| LogError::io(&time_path, e))?;
        if index_len % OFFSET_ENTRY_SIZE as u64 != 0 || time_len % TIME_ENTRY_SIZE as u64 != 0 {
            tracing::warn!(
                segment = base,
                "index file length is not a whole number of entries; rebuilding"
            );
            return Ok(None);
        }
        let index = IndexFile::open_closed(
            storage,
            &index_path,
            OFFSET_ENTRY_SIZE,
            (index_len / OFFSET_ENTRY_SIZE as u64) as usize,
        )?;
        let time_index = IndexFile::open_closed(
            storage,
            &time_path,
            TIME_ENTRY_SIZE,
            (time_len / TIME_ENTRY_SIZE as u64) as usize,
        )?;
        let txn = crate::txn_index::TxnIndex::new(super::txn_index_path(&log_path));
        let mut seg = Segment {
            base,
            log_path,
            log,
            deferred: None,
            size,
            index,
            time_index,
            txn,
            next_offset: base,
            max_timestamp: -1,
            offset_of_max_timestamp: base,
            time_index_last: -1,
            bytes_since_last_index_entry: 0,
            first_batch_timestamp: None,
            first_seen_ms: Some(now_ms),
            dirty: false,
            log_map: Mutex::new(None),
        };
        if let Err(reason) = seg.check_and_load_tail(storage)? {
            tracing::warn!(segment = base, %reason, "index files inconsistent with the log; rebuilding");
            // Release the mappings before the caller rebuilds the files.
            drop(seg);
            return Ok(None);
        }
        if active {
            seg.make_active(storage, config)?;
        }
        Ok(Some(seg))
    }

    /// Checks a trusted segment's indexes (monotonic entries within the log) and scans the
    /// batches after the last index entry to the end of the file, which must end exactly on a
    /// batch boundary. Fills in `next_offset`, the max timestamp and the bytes since the last
    /// index entry. The outer `Result` is IO; the inner one says whether the files agree.
    fn check_and_load_tail(&mut self, storage: &dyn Storage) -> Result<Result<(), String>> {
        let (idx, _) = self.index.bytes(storage)?;
        let n = idx.len() / OFFSET_ENTRY_SIZE;
        for i in 1..n {
            let (o0, p0) = offset_entry_at(&idx, i - 1);
            let (o1, p1) = offset_entry_at(&idx, i);
            if o1 <= o0 || p1 <= p0 {
                return Ok(Err(format!("offset index entry {i} is not increasing")));
            }
        }
        let last_index = n.checked_sub(1).map(|i| offset_entry_at(&idx, i));
        drop(idx);
        let (tidx, _) = self.time_index.bytes(storage)?;
        let tn = tidx.len() / TIME_ENTRY_SIZE;
        for i in 1..tn {
            let (t0, o0) = time_entry_at(&tidx, i - 1);
            let (t1, o1) = time_entry_at(&tidx, i);
            if t1 <= t0 || o1 < o0 {
                return Ok(Err(format!("time index entry {i} is not increasing")));
            }
        }
        let last_time = tn.checked_sub(1).map(|i| time_entry_at(&tidx, i));
        drop(tidx);
        self.index.unmap();
        self.time_index.unmap();

        let mut pos = 0u64;
        let mut next = self.base;
        if let Some((rel, p)) = last_index {
            pos = u64::from(p);
            if pos >= self.size {
                return Ok(Err("offset index points beyond the log".into()));
            }
            match self.header_at(pos, None) {
                Ok(h) if h.last_offset().0 == self.base + i64::from(rel) => {}
                Ok(_) => return Ok(Err("offset index entry does not match its batch".into())),
                Err(e) => return Ok(Err(e.to_string())),
            }
        }
        let (max_ts, max_off) = match last_time {
            Some((ts, rel)) => (ts, self.base + i64::from(rel)),
            None => (-1, self.base),
        };
        self.time_index_last = max_ts;
        // Every segment that stopped being active got a final time index entry for its largest
        // timestamp, so no batch may carry a larger one. Only the batches after the last offset
        // index entry are scanned; a time index that lost entries is caught here when the
        // lost maximum lies in that tail (and always when the file was cut mid-entry or emptied).
        let index_pos = pos;
        while pos < self.size {
            let h = match self.header_at(pos, None) {
                Ok(h) => h,
                Err(e) => return Ok(Err(format!("tail scan at byte {pos}: {e}"))),
            };
            if h.max_timestamp > max_ts {
                return Ok(Err(format!(
                    "batch at byte {pos} has timestamp {} above the time index maximum {max_ts}",
                    h.max_timestamp
                )));
            }
            next = h.next_offset().0;
            pos += h.total_size() as u64;
        }
        if pos != self.size {
            return Ok(Err("log does not end on a batch boundary".into()));
        }
        if self.size > 0 && next == self.base && last_index.is_none() {
            return Ok(Err("no batch found in a non-empty log".into()));
        }
        if self.size > 0 {
            self.first_batch_timestamp =
                Some(self.header_at(0, None).map_or(-1, |h| h.max_timestamp));
        }
        self.next_offset = next;
        self.max_timestamp = max_ts;
        self.offset_of_max_timestamp = max_off;
        self.bytes_since_last_index_entry = self.size - index_pos.min(self.size);
        Ok(Ok(()))
    }

    /// Scans the whole `.log` file from byte 0 and rebuilds both indexes. Stops at the first
    /// batch that is torn, malformed, fails its CRC (when `validate`) or has offsets that do not
    /// follow the previous batch; `size` is set to the valid prefix.
    fn rebuild(&mut self, config: &LogConfig, validate: bool) -> Result<Option<Invalid>> {
        self.index.truncate_entries(0);
        self.time_index.truncate_entries(0);
        self.size = 0;
        self.next_offset = self.base;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base;
        self.time_index_last = -1;
        self.bytes_since_last_index_entry = 0;
        self.first_batch_timestamp = None;
        let file_len = self
            .log
            .len()
            .map_err(|e| LogError::io(&self.log_path, e))?;
        let mut pos = 0u64;
        let invalid = loop {
            if pos >= file_len {
                break None;
            }
            match self.check_batch_at(pos, file_len, validate)? {
                Ok(h) => {
                    let len = h.total_size() as u64;
                    self.index_batch(config, &h, pos, len);
                    pos += len;
                    self.size = pos;
                }
                Err(reason) => {
                    break Some(Invalid {
                        position: pos,
                        reason,
                        file_len,
                    })
                }
            }
        };
        Ok(invalid)
    }

    /// Reads and checks the batch at `pos` for recovery. Outer error: IO; inner: invalid data.
    fn check_batch_at(
        &self,
        pos: u64,
        file_len: u64,
        validate: bool,
    ) -> Result<Result<BatchHeader, String>> {
        let avail = file_len - pos;
        if avail < BATCH_HEADER_LEN as u64 {
            return Ok(Err(format!(
                "{avail} trailing bytes are too few for a batch header"
            )));
        }
        let mut hb = [0u8; BATCH_HEADER_LEN];
        read_exact_at(&*self.log, &mut hb, pos).map_err(|e| LogError::io(&self.log_path, e))?;
        let h = match BatchHeader::parse(&hb) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let total = h.total_size() as u64;
        if total > avail {
            return Ok(Err(format!(
                "batch of {total} bytes is cut off after {avail} bytes"
            )));
        }
        if h.base_offset < self.next_offset {
            return Ok(Err(format!(
                "batch base offset {} is below the expected {}",
                h.base_offset, self.next_offset
            )));
        }
        if h.last_offset_delta < 0 || h.records_count < 0 {
            return Ok(Err("negative record count or offset delta".into()));
        }
        if h.last_offset().0.saturating_sub(self.base) > i64::from(u32::MAX) {
            return Ok(Err("batch offset too far from the segment base".into()));
        }
        if validate {
            let mut buf = vec![0u8; total as usize];
            read_exact_at(&*self.log, &mut buf, pos)
                .map_err(|e| LogError::io(&self.log_path, e))?;
            let checked = RecordBatch::new(Bytes::from(buf)).and_then(|b| b.validate());
            if let Err(e) = checked {
                return Ok(Err(e.to_string()));
            }
        }
        Ok(Ok(h))
    }
}
