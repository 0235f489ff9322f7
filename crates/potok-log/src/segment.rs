//! One log segment: a `.log` file of record batches plus its `.index` and `.timeindex`.
//!
//! File names are the segment's base offset zero-padded to 20 digits (Kafka's
//! `LogFileUtils.filenamePrefixFromOffset`), e.g. `00000000000000001234.log`. The `.log` file
//! holds v2 record batches exactly as on the wire, with their final offsets, back to back from
//! byte 0; there is no segment header. The segment's valid length is kept in memory
//! (`size`): bytes beyond it (a torn write being cleaned up) are never served.
//!
//! Indexing follows Kafka's `LogSegment.append`: before a batch is written, if more than
//! `index.interval.bytes` were appended since the last index entry, an `.index` entry
//! `(batch last offset, batch position)` and a `.timeindex` entry `(max timestamp so far, offset
//! of that max)` are added for it. When the segment stops being active, a final `.timeindex`
//! entry for the segment's max timestamp is added, so the time index's last entry always gives
//! the segment's largest timestamp after a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use memmap2::Mmap;
use potok_records::{BatchHeader, Compression, RecordBatch, TimestampType, BATCH_HEADER_LEN};

use crate::index::{
    bracket_offset, bracket_offset_hinted, lookup_position, lookup_time_below, offset_entry,
    offset_entry_at, time_entry, time_entry_at, IndexFile, OFFSET_ENTRY_SIZE, TIME_ENTRY_SIZE,
};
use crate::storage::{read_exact_at, write_all_at, Storage, StorageFile};
use crate::{LogConfig, LogError, Result};

/// Extension of the record data file.
pub const LOG_SUFFIX: &str = "log";
/// Extension of the offset index.
pub const INDEX_SUFFIX: &str = "index";
/// Extension of the time index.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// The path of a segment file: `{dir}/{base:020}.{suffix}`.
pub fn segment_file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

/// Parses a segment file name into its base offset and suffix.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<(i64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

/// A batch about to be appended: where it sits in the caller's buffer and its header (with
/// the final offsets already in it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingBatch {
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) header: BatchHeader,
}

/// Where a scan stopped on data it could not accept.
#[derive(Clone, Debug)]
pub(crate) struct Invalid {
    pub(crate) position: u64,
    pub(crate) reason: String,
    /// Length of the file when the scan started.
    pub(crate) file_len: u64,
}

/// A byte range of a segment chosen by [`Segment::read`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct SegmentRead {
    pub(crate) position: u64,
    pub(crate) len: u64,
    pub(crate) first_offset: i64,
}

pub(crate) struct Segment {
    pub(crate) base: i64,
    log_path: PathBuf,
    log: Arc<dyn StorageFile>,
    /// Valid bytes of the `.log` file.
    size: u64,
    index: IndexFile,
    time_index: IndexFile,
    /// The offset after the last batch (the base offset when empty).
    next_offset: i64,
    /// Largest batch max timestamp, -1 when none.
    max_timestamp: i64,
    /// Last offset of the batch that carried `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Timestamp of the time index's last entry, -1 when it is empty.
    time_index_last: i64,
    bytes_since_last_index_entry: u64,
    /// Max timestamp of the first batch: the reference for `segment.ms` (Kafka's
    /// `rollingBasedTimestamp`).
    first_batch_timestamp: Option<i64>,
    /// The clock when this process first saw the segment non-empty; the `segment.ms` reference
    /// when the first batch has no timestamp.
    first_seen_ms: Option<i64>,
    /// Data appended since the last fsync.
    dirty: bool,
    /// Read-only mapping of the `.log` file for timestamp lookups (see [`Segment::log_map`]).
    /// Lookups take it under this lock and use a clone of the `Arc` without the lock held.
    /// Dropped before the file is ever shrunk (`truncate_to`, which takes `&mut self`, so no
    /// lookup can hold a clone then) and by [`Segment::unmap_indexes`].
    log_map: Mutex<Option<Arc<Mmap>>>,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("base", &self.base)
            .field("size", &self.size)
            .field("next_offset", &self.next_offset)
            .field("max_timestamp", &self.max_timestamp)
            .field("index", &self.index)
            .field("time_index", &self.time_index)
            .finish()
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Segment {
    /// Creates a new, empty active segment at `base` (replacing any stale files of that name).
    pub(crate) fn create(
        storage: &dyn Storage,
        dir: &Path,
        base: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<Segment> {
        let log_path = segment_file(dir, base, LOG_SUFFIX);
        let log = storage
            .open_cached(&log_path, true)
            .map_err(|e| LogError::io(&log_path, e))?;
        log.set_len(0).map_err(|e| LogError::io(&log_path, e))?;
        let mut seg = Segment::with_files(storage, dir, base, log_path, log, config, true, "")?;
        seg.first_seen_ms = Some(now_ms);
        Ok(seg)
    }

    /// Creates an empty segment at `base` whose three files carry the extra suffix `extra`
    /// (e.g. `00000000000000000000.log.cleaned`), replacing stale files of those names: the
    /// log cleaner writes a replacement segment there before swapping it in.
    pub(crate) fn create_with_suffix(
        storage: &dyn Storage,
        dir: &Path,
        base: i64,
        config: &LogConfig,
        extra: &str,
        now_ms: i64,
    ) -> Result<Segment> {
        let log_path = segment_file(dir, base, &format!("{LOG_SUFFIX}{extra}"));
        let log = storage
            .open(&log_path, true)
            .map_err(|e| LogError::io(&log_path, e))?;
        log.set_len(0).map_err(|e| LogError::io(&log_path, e))?;
        let mut seg = Segment::with_files(storage, dir, base, log_path, log, config, true, extra)?;
        seg.first_seen_ms = Some(now_ms);
        Ok(seg)
    }

    #[allow(clippy::too_many_arguments)]
    fn with_files(
        storage: &dyn Storage,
        dir: &Path,
        base: i64,
        log_path: PathBuf,
        log: Arc<dyn StorageFile>,
        config: &LogConfig,
        fresh_indexes: bool,
        extra: &str,
    ) -> Result<Segment> {
        let index_path = segment_file(dir, base, &format!("{INDEX_SUFFIX}{extra}"));
        let time_path = segment_file(dir, base, &format!("{TIME_INDEX_SUFFIX}{extra}"));
        if fresh_indexes {
            for p in [&index_path, &time_path] {
                let f = storage.open(p, true).map_err(|e| LogError::io(p, e))?;
                f.set_len(0).map_err(|e| LogError::io(p, e))?;
            }
        }
        let index = IndexFile::open_active(
            storage,
            &index_path,
            OFFSET_ENTRY_SIZE,
            0,
            config.segment_index_bytes,
        )?;
        let time_index = IndexFile::open_active(
            storage,
            &time_path,
            TIME_ENTRY_SIZE,
            0,
            config.segment_index_bytes,
        )?;
        Ok(Segment {
            base,
            log_path,
            log,
            size: 0,
            index,
            time_index,
            next_offset: base,
            max_timestamp: -1,
            offset_of_max_timestamp: base,
            time_index_last: -1,
            bytes_since_last_index_entry: 0,
            first_batch_timestamp: None,
            first_seen_ms: None,
            dirty: false,
            log_map: Mutex::new(None),
        })
    }

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
        let mut seg = Segment {
            base,
            log_path,
            log,
            size,
            index,
            time_index,
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

    /// Updates the in-memory state and the indexes for a batch written at `pos`, following
    /// Kafka's `LogSegment.append`.
    fn index_batch(&mut self, config: &LogConfig, h: &BatchHeader, pos: u64, len: u64) {
        if pos == 0 {
            self.first_batch_timestamp = Some(h.max_timestamp);
        }
        let last = h.last_offset().0;
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = last;
        }
        if self.bytes_since_last_index_entry > config.index_interval_bytes {
            if let (Ok(rel), Ok(p)) = (u32::try_from(last - self.base), u32::try_from(pos)) {
                // A full index only makes the index sparser; lookups stay correct because they
                // scan forward from the entry they find.
                self.index.append(&offset_entry(rel, p));
            }
            self.maybe_append_time_entry(false);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += len;
        self.next_offset = h.next_offset().0;
    }

    /// Adds a time index entry for the running max timestamp if it grew. Except for the final
    /// entry of a closing segment (`last`), one slot is always left free so that final entry
    /// fits even when a rebuild (which cannot roll) fills the index.
    fn maybe_append_time_entry(&mut self, last: bool) {
        if !last && self.time_index.is_full(2) {
            return;
        }
        if self.max_timestamp > self.time_index_last {
            if let Ok(rel) = u32::try_from(self.offset_of_max_timestamp - self.base) {
                if self.time_index.append(&time_entry(self.max_timestamp, rel)) {
                    self.time_index_last = self.max_timestamp;
                }
            }
        }
    }

    /// Appends `buf[batches[0].start..last end]` (already validated batches with final
    /// offsets) in one write and indexes each batch. On a write error the file is cut back to
    /// its previous length; if even that fails the error says so via `Err(true)`-like flag.
    pub(crate) fn append(
        &mut self,
        config: &LogConfig,
        buf: &[u8],
        batches: &[PendingBatch],
        now_ms: i64,
    ) -> std::result::Result<(), (LogError, bool)> {
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Ok(());
        };
        let start = first.start;
        let end = last.start + last.len;
        let data = buf.get(start..end).ok_or_else(|| {
            (
                LogError::InvalidBatchFields("batch range outside the buffer".into()),
                false,
            )
        })?;
        let pos = self.size;
        if let Err(e) = write_all_at(&*self.log, data, pos) {
            // Undo a partial write so the file never holds a torn batch we know about.
            let undone = self.log.set_len(pos).is_ok();
            return Err((LogError::io(&self.log_path, e), !undone));
        }
        if self.size == 0 && self.first_seen_ms.is_none() {
            self.first_seen_ms = Some(now_ms);
        }
        for b in batches {
            let at = pos + (b.start - start) as u64;
            self.index_batch(config, &b.header, at, b.len as u64);
        }
        self.size = pos + data.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// The header of the batch at `pos`, checked to lie within the segment; taken from `map` (a
    /// mapping of the `.log` file) when given, else read with one `pread`.
    fn header_at(&self, pos: u64, map: Option<&[u8]>) -> Result<BatchHeader> {
        let avail = self.size.saturating_sub(pos);
        if avail < BATCH_HEADER_LEN as u64 {
            return Err(corrupt(
                &self.log_path,
                format!("batch header at byte {pos} extends past the segment end"),
            ));
        }
        let mut hb = [0u8; BATCH_HEADER_LEN];
        let mapped = map.and_then(|m| m.get(usize::try_from(pos).ok()?..)?.get(..BATCH_HEADER_LEN));
        match mapped {
            Some(b) => hb.copy_from_slice(b),
            None => read_exact_at(&*self.log, &mut hb, pos)
                .map_err(|e| LogError::io(&self.log_path, e))?,
        }
        let h = BatchHeader::parse(&hb)
            .map_err(|e| corrupt(&self.log_path, format!("at byte {pos}: {e}")))?;
        if h.total_size() as u64 > avail {
            return Err(corrupt(
                &self.log_path,
                format!("batch at byte {pos} extends past the segment end"),
            ));
        }
        Ok(h)
    }

    /// Finds the batch containing `offset` (the first batch whose last offset is `>= offset`):
    /// its position and header, or `None` when every batch here ends before `offset`.
    /// `mapped` is set when a closed index had to be mapped.
    pub(crate) fn translate(
        &self,
        storage: &dyn Storage,
        offset: i64,
        mapped: &mut bool,
    ) -> Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let (below, above, _) = {
            let (idx, m) = self.index.bytes(storage)?;
            *mapped |= m;
            let rel = u64::try_from(offset - self.base).unwrap_or(0);
            bracket_offset(&idx, rel)
        };
        // The batch holding `offset` starts after the `below` entry's batch and at or before
        // the `above` entry's batch. Two shortcuts save header reads: a short span is read in
        // one call and walked in memory; across a long span (large batches), the `above`
        // batch is checked first, since with large batches it usually is the one.
        let mut pos = below.map_or(0, |(_, p)| u64::from(p));
        if let Some((_, p)) = above {
            let p = u64::from(p);
            if p >= pos && p - pos <= SPAN_READ_BYTES {
                if let Some(found) = self.walk_span(pos, p, offset)? {
                    return Ok(Some(found));
                }
            } else {
                let h = self.header_at(p, None)?;
                if h.base_offset <= offset {
                    return Ok(Some((p, h)));
                }
            }
        }
        while pos < self.size {
            let h = self.header_at(pos, None)?;
            if h.last_offset().0 >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Reads `[from, to + header)` in one call and walks the batch headers in it, returning the
    /// first batch whose last offset is `>= offset`; `None` if the span does not show one (the
    /// caller then falls back to reading header by header).
    fn walk_span(&self, from: u64, to: u64, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let end = to.saturating_add(BATCH_HEADER_LEN as u64).min(self.size);
        let Some(len) = end.checked_sub(from).and_then(|l| usize::try_from(l).ok()) else {
            return Ok(None);
        };
        let mut buf = [0u8; SPAN_READ_BYTES as usize + BATCH_HEADER_LEN];
        let Some(span) = buf.get_mut(..len) else {
            return Ok(None);
        };
        read_exact_at(&*self.log, span, from).map_err(|e| LogError::io(&self.log_path, e))?;
        let mut at = 0usize;
        while let Some(rest) = span.get(at..) {
            if rest.len() < BATCH_HEADER_LEN {
                break;
            }
            let pos = from + at as u64;
            let h = BatchHeader::parse(rest)
                .map_err(|e| corrupt(&self.log_path, format!("at byte {pos}: {e}")))?;
            if pos + h.total_size() as u64 > self.size {
                return Err(corrupt(
                    &self.log_path,
                    format!("batch at byte {pos} extends past the segment end"),
                ));
            }
            if h.last_offset().0 >= offset {
                return Ok(Some((pos, h)));
            }
            at += h.total_size();
        }
        Ok(None)
    }

    /// Chooses the bytes to return for a fetch from `from`: whole batches starting with the one
    /// containing `from`, at most `max_bytes` unless the first batch alone is larger (then just
    /// that batch, as Kafka does so a consumer can always progress), and only batches whose last
    /// offset is below `max_offset`. `None` when no batch here contains `from` or later.
    pub(crate) fn read(
        &self,
        storage: &dyn Storage,
        from: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        mapped: &mut bool,
    ) -> Result<Option<SegmentRead>> {
        let Some((start, first)) = self.translate(storage, from, mapped)? else {
            return Ok(None);
        };
        let empty = SegmentRead {
            position: start,
            len: 0,
            first_offset: first.base_offset,
        };
        let mut limit = self.size;
        if let Some(mo) = max_offset {
            if first.last_offset().0 >= mo {
                return Ok(Some(empty));
            }
            if let Some((p, _)) = self.translate(storage, mo, mapped)? {
                limit = limit.min(p);
            }
        }
        let first_end = start + first.total_size() as u64;
        let budget_end = start.saturating_add(max_bytes as u64).min(limit);
        if budget_end <= first_end {
            return Ok(Some(SegmentRead {
                len: first_end - start,
                ..empty
            }));
        }
        // Jump close to the end with the index (its entries are batch boundaries), then walk.
        let mut pos = {
            let (idx, m) = self.index.bytes(storage)?;
            *mapped |= m;
            lookup_position(&idx, budget_end).map_or(0, |(_, p)| u64::from(p))
        }
        .max(first_end);
        while pos < budget_end {
            let h = self.header_at(pos, None)?;
            let end = pos + h.total_size() as u64;
            if end > budget_end {
                break;
            }
            pos = end;
        }
        Ok(Some(SegmentRead {
            len: pos - start,
            ..empty
        }))
    }

    /// The first record at or after `min_offset` whose timestamp is `>= target`, as
    /// `(offset, timestamp)`, found through the time index and a forward scan (Kafka's
    /// `LogSegment.findOffsetByTimestamp`). Records inside the matching batch are decoded to
    /// find the exact one.
    pub(crate) fn find_by_timestamp(
        &self,
        storage: &dyn Storage,
        target: i64,
        min_offset: i64,
        mapped: &mut bool,
    ) -> Result<Option<(i64, i64)>> {
        if self.max_timestamp < target {
            return Ok(None);
        }
        // The entry names the last offset of a batch whose running max is below the target,
        // so the first candidate batch is the one after it.
        let (hint, from_offset) = {
            let (t, m) = self.time_index.bytes(storage)?;
            *mapped |= m;
            match lookup_time_below(&t, target) {
                Some((i, (_, rel))) => (Some(i + 1), self.base + i64::from(rel) + 1),
                None => (Some(0), self.base),
            }
        };
        let from_offset = from_offset.max(min_offset);
        let map = self.log_map(storage, mapped);
        let map = map.as_deref().map(|m| &m[..]);
        if let Some(hit) =
            self.timestamp_fast_path(storage, map, from_offset, hint, target, min_offset, mapped)?
        {
            return Ok(Some(hit));
        }
        let Some((mut pos, mut h)) = self.translate(storage, from_offset, mapped)? else {
            return Ok(None);
        };
        loop {
            let len = h.total_size() as u64;
            if h.max_timestamp >= target && h.last_offset().0 >= min_offset {
                let hit = if matches!(h.compression(), Ok(Compression::None)) {
                    match map {
                        Some(m) => self.scan_prefixes(
                            pos,
                            &h,
                            &mut Prefixes::Mapped(m),
                            target,
                            min_offset,
                        )?,
                        None => with_scratch(SCAN_WINDOW_MAX, |window| {
                            let mut src = Prefixes::Read {
                                window,
                                loaded: (pos, 0),
                            };
                            self.scan_prefixes(pos, &h, &mut src, target, min_offset)
                        })?,
                    }
                } else {
                    self.scan_decoded(pos, &h, target, min_offset)?
                };
                if hit.is_some() {
                    return Ok(hit);
                }
            }
            pos += len;
            if pos >= self.size {
                return Ok(None);
            }
            h = self.header_at(pos, map)?;
        }
    }

    /// A read-only mapping of the `.log` file covering every valid byte, for timestamp lookups
    /// (which walk record prefixes scattered over a batch; through the mapping they touch a few
    /// cache lines instead of copying pages out of the page cache). Created on first use and
    /// re-created when the segment has grown past it; `None` when the storage does not map log
    /// files (the fault-injection storage) or mapping fails, and the caller then reads with
    /// `pread`. Sets `mapped` when a mapping was created, so the log can bound how many closed
    /// segments keep one.
    fn log_map(&self, storage: &dyn Storage, mapped: &mut bool) -> Option<Arc<Mmap>> {
        let len = usize::try_from(self.size).ok().filter(|&l| l > 0)?;
        let mut guard = self.log_map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = guard.as_ref().filter(|m| m.len() >= len) {
            return Some(Arc::clone(m));
        }
        match storage.map_log(&*self.log, len) {
            Ok(m) => {
                let m = Arc::new(m);
                *guard = Some(Arc::clone(&m));
                *mapped = true;
                Some(m)
            }
            Err(e) => {
                tracing::debug!(path = %self.log_path.display(), error = %e, "log file not mapped; timestamp lookups read it instead");
                *guard = None;
                None
            }
        }
    }

    /// Walks the record prefixes (length, attributes, timestamp delta, offset delta) of the
    /// uncompressed batch at `pos` for the first record at or after `min_offset` with a
    /// timestamp `>= target`, without allocating. The prefixes come from `src`: a mapping of
    /// the file, or reads through a page-sized window (see [`Prefixes`]).
    fn scan_prefixes(
        &self,
        pos: u64,
        h: &BatchHeader,
        src: &mut Prefixes<'_>,
        target: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>> {
        let bad = || {
            corrupt(
                &self.log_path,
                format!("malformed record in batch at byte {pos}"),
            )
        };
        let batch_end = pos + h.total_size() as u64;
        let mut at = pos + BATCH_HEADER_LEN as u64;
        for _ in 0..h.records_count.max(0) {
            let want = (at + RECORD_PREFIX_MAX).min(batch_end);
            let prefix = src.prefix(self, at, want, batch_end)?.ok_or_else(bad)?;
            let (body_len, used) = read_zigzag(prefix).ok_or_else(bad)?;
            let body_len = u64::try_from(body_len).map_err(|_| bad())?;
            let fields = prefix.get(used + 1..).ok_or_else(bad)?; // skip the attributes byte
            let (ts_delta, n) = read_zigzag(fields).ok_or_else(bad)?;
            let (offset_delta, _) =
                read_zigzag(fields.get(n..).ok_or_else(bad)?).ok_or_else(bad)?;
            let next = at
                .checked_add(used as u64 + body_len)
                .filter(|&e| e <= batch_end)
                .ok_or_else(bad)?;
            let ts = match h.timestamp_type() {
                TimestampType::LogAppendTime => h.max_timestamp,
                TimestampType::CreateTime => h.base_timestamp.wrapping_add(ts_delta),
            };
            let offset = h.base_offset.saturating_add(offset_delta);
            if ts >= target && offset >= min_offset {
                return Ok(Some((offset, ts)));
            }
            at = next;
        }
        Ok(None)
    }

    /// When the offset index brackets the batch holding `from_offset` exactly (an entry for it
    /// and the next entry right after it, as with batches larger than `index.interval.bytes`),
    /// looks for the match in that batch straight away: through the mapping when there is one,
    /// else by reading its header and first records in one call. `None` means "not applicable
    /// or not in this batch": the caller takes the general path.
    #[allow(clippy::too_many_arguments)]
    fn timestamp_fast_path(
        &self,
        storage: &dyn Storage,
        map: Option<&[u8]>,
        from_offset: i64,
        hint: Option<usize>,
        target: i64,
        min_offset: i64,
        mapped: &mut bool,
    ) -> Result<Option<(i64, i64)>> {
        let span = {
            let (idx, m) = self.index.bytes(storage)?;
            *mapped |= m;
            let rel = u64::try_from(from_offset - self.base).unwrap_or(0);
            match bracket_offset_hinted(&idx, rel, hint) {
                (_, Some((_, p)), next) => {
                    let p = u64::from(p);
                    let q = next.map_or(self.size, |(_, q)| u64::from(q));
                    (p, q)
                }
                _ => return Ok(None),
            }
        };
        let (p, q) = span;
        if q.saturating_sub(p) < BATCH_HEADER_LEN as u64 || q > self.size {
            return Ok(None);
        }
        let applies = |h: &BatchHeader| {
            h.base_offset <= from_offset
                && p + h.total_size() as u64 <= q
                && h.max_timestamp >= target
                && h.last_offset().0 >= min_offset
                && matches!(h.compression(), Ok(Compression::None))
        };
        if let Some(m) = map {
            let Ok(h) = self.header_at(p, Some(m)) else {
                return Ok(None);
            };
            if !applies(&h) {
                return Ok(None);
            }
            return self.scan_prefixes(p, &h, &mut Prefixes::Mapped(m), target, min_offset);
        }
        // The first window covers the header and the first record's prefix, up to the end of
        // that page.
        let end = align_up(p + BATCH_HEADER_LEN as u64 + RECORD_PREFIX_MAX)
            .min(q)
            .max(p + BATCH_HEADER_LEN as u64);
        let Ok(len) = usize::try_from(end - p) else {
            return Ok(None);
        };
        with_scratch(SCAN_WINDOW_MAX, |window| {
            let Some(first) = window.get_mut(..len) else {
                return Ok(None);
            };
            read_exact_at(&*self.log, first, p).map_err(|e| LogError::io(&self.log_path, e))?;
            let Ok(h) = BatchHeader::parse(first) else {
                return Ok(None);
            };
            if !applies(&h) {
                return Ok(None);
            }
            let mut src = Prefixes::Read {
                window,
                loaded: (p, len),
            };
            self.scan_prefixes(p, &h, &mut src, target, min_offset)
        })
    }

    /// Finds the first matching record of a compressed batch by decompressing it.
    fn scan_decoded(
        &self,
        pos: u64,
        h: &BatchHeader,
        target: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>> {
        let mut buf = vec![0u8; h.total_size()];
        read_exact_at(&*self.log, &mut buf, pos).map_err(|e| LogError::io(&self.log_path, e))?;
        let bad = |e: potok_records::RecordsError| {
            corrupt(&self.log_path, format!("batch at byte {pos}: {e}"))
        };
        let batch = RecordBatch::new(Bytes::from(buf)).map_err(bad)?;
        for r in batch.records().map_err(bad)? {
            let r = r.map_err(bad)?;
            let (o, ts) = (r.offset(h).0, r.timestamp(h));
            if ts >= target && o >= min_offset {
                return Ok(Some((o, ts)));
            }
        }
        Ok(None)
    }

    /// Removes every batch whose last offset is `>= offset` (whole batches, as Kafka does).
    /// Returns whether anything was removed.
    pub(crate) fn truncate_to(&mut self, storage: &dyn Storage, offset: i64) -> Result<bool> {
        let mut mapped = false;
        let Some((pos, _)) = self.translate(storage, offset, &mut mapped)? else {
            return Ok(false);
        };
        // Pages past the new end would fault (SIGBUS) through a mapping made before the cut.
        *self.log_map.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
        self.log
            .set_len(pos)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        self.size = pos;
        self.dirty = true;
        // Drop index entries at or after the cut.
        let keep = {
            let (idx, _) = self.index.bytes(storage)?;
            let n = idx.len() / OFFSET_ENTRY_SIZE;
            (0..n)
                .take_while(|&i| u64::from(offset_entry_at(&idx, i).1) < pos)
                .count()
        };
        self.index.truncate_entries(keep);
        // Find the new next offset and max timestamp: the time index entries that survive
        // give the max up to their offset; the batches after the last surviving offset index
        // entry are rescanned.
        let scan_from = if keep == 0 {
            0
        } else {
            let (idx, _) = self.index.bytes(storage)?;
            u64::from(offset_entry_at(&idx, keep - 1).1)
        };
        let mut next = self.base;
        let mut tail_max = (-1i64, self.base);
        let mut p = scan_from;
        while p < pos {
            let h = self.header_at(p, None)?;
            next = h.next_offset().0;
            if h.max_timestamp > tail_max.0 {
                tail_max = (h.max_timestamp, h.last_offset().0);
            }
            p += h.total_size() as u64;
        }
        if keep > 0 && next == self.base {
            // Only reachable if the index pointed past the cut, which the count above rules out.
            next = self.next_offset.min(offset);
        }
        self.next_offset = next;
        let tkeep = {
            let (t, _) = self.time_index.bytes(storage)?;
            let n = t.len() / TIME_ENTRY_SIZE;
            (0..n)
                .take_while(|&i| self.base + i64::from(time_entry_at(&t, i).1) < next)
                .count()
        };
        let last_time = if tkeep == 0 {
            None
        } else {
            let (t, _) = self.time_index.bytes(storage)?;
            Some(time_entry_at(&t, tkeep - 1))
        };
        self.time_index.truncate_entries(tkeep);
        self.time_index_last = last_time.map_or(-1, |t| t.0);
        let (mut mts, mut moff) = last_time.map_or((-1, self.base), |(ts, rel)| {
            (ts, self.base + i64::from(rel))
        });
        // Batches between the last time entry and the scan start are covered by that entry
        // (time entries are taken at offset index points), so the tail scan completes the max.
        if tail_max.0 > mts {
            mts = tail_max.0;
            moff = tail_max.1;
        }
        self.max_timestamp = mts;
        self.offset_of_max_timestamp = moff;
        self.bytes_since_last_index_entry = pos - scan_from;
        if pos == 0 {
            self.first_batch_timestamp = None;
            self.first_seen_ms = None;
        }
        Ok(true)
    }

    /// Makes a closed segment appendable again (its index entries loaded into memory).
    pub(crate) fn make_active(&mut self, storage: &dyn Storage, config: &LogConfig) -> Result<()> {
        self.index
            .make_active(storage, config.segment_index_bytes)?;
        self.time_index
            .make_active(storage, config.segment_index_bytes)
    }

    /// Stops the segment being active: adds the final time index entry (Kafka's
    /// `onBecomeInactiveSegment`) and trims both indexes to their entries, syncing them when
    /// `sync`.
    pub(crate) fn close_indexes(&mut self, storage: &dyn Storage, sync: bool) -> Result<()> {
        self.maybe_append_time_entry(true);
        self.index.make_closed(storage, sync)?;
        self.time_index.make_closed(storage, sync)
    }

    /// fsyncs the `.log` file if anything was appended or truncated since the last sync.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.dirty {
            self.log
                .sync_data()
                .map_err(|e| LogError::io(&self.log_path, e))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Deletes the segment's files. Open handles (e.g. a `ReadSlice` being sent) stay valid.
    pub(crate) fn delete_files(self, storage: &dyn Storage) -> Result<()> {
        let paths = [
            self.log_path.clone(),
            self.index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ];
        drop(self);
        for p in paths {
            match storage.remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(&p, e)),
            }
        }
        Ok(())
    }

    /// Drops closed indexes' read-only mappings and the `.log` file's lookup mapping.
    pub(crate) fn unmap_indexes(&self) {
        self.index.unmap();
        self.time_index.unmap();
        *self.log_map.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether a closed index of this segment, or its `.log` file, is currently mapped.
    pub(crate) fn indexes_mapped(&self) -> bool {
        self.index.is_mapped()
            || self.time_index.is_mapped()
            || self
                .log_map
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The max timestamp of the segment's first batch (-1 when it has none), for
    /// `max.compaction.lag.ms` (Kafka's `LogSegment.getFirstBatchTimestamp`).
    pub(crate) fn first_batch_timestamp(&self) -> Option<i64> {
        self.first_batch_timestamp
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub(crate) fn file(&self) -> &Arc<dyn StorageFile> {
        &self.log
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The largest timestamp for `retention.ms`: the max record timestamp, or the file's
    /// modification time when no batch carries a timestamp (Kafka's `LogSegment.largestTimestamp`).
    pub(crate) fn largest_timestamp_for_retention(&self) -> Result<i64> {
        if self.max_timestamp >= 0 {
            return Ok(self.max_timestamp);
        }
        self.log
            .modified_ms()
            .map_err(|e| LogError::io(&self.log_path, e))
    }

    /// Whether appending a batch whose max timestamp is `batch_max_timestamp` at `now_ms` rolls
    /// the segment by `segment.ms` (Kafka's `LogSegment.shouldRoll` time condition, without
    /// jitter). As in Kafka's `timeWaitedForRoll`, the time waited is measured between record
    /// timestamps — the incoming batch's against the segment's first batch's — when the segment
    /// has one, and by the clock only when it has none. Measuring `now` against the first
    /// batch's timestamp instead would roll a new segment for every batch of old-timestamped
    /// data (a replay, a migration, a producer with a skewed clock).
    pub(crate) fn is_older_than(
        &self,
        now_ms: i64,
        batch_max_timestamp: i64,
        segment_ms: i64,
    ) -> bool {
        if self.size == 0 {
            return false;
        }
        match self.first_batch_timestamp {
            Some(ts) if ts >= 0 => batch_max_timestamp.saturating_sub(ts) > segment_ms,
            _ => match self.first_seen_ms {
                Some(ms) => now_ms.saturating_sub(ms) > segment_ms,
                None => false,
            },
        }
    }

    /// Whether appending `pending_batches` more batches might overflow an index. The time index
    /// keeps one spare slot for the final entry added when the segment closes.
    pub(crate) fn indexes_full(&self, pending_batches: usize) -> bool {
        self.index.is_full(pending_batches + 1) || self.time_index.is_full(pending_batches + 2)
    }

    /// Number of index entries, for tests and diagnostics.
    pub(crate) fn index_entries(&self) -> (usize, usize) {
        (self.index.entries(), self.time_index.entries())
    }
}

/// Index spans up to this long are read in one call when translating an offset (the default
/// `index.interval.bytes` is 4096, so a span usually holds a few small batches).
const SPAN_READ_BYTES: u64 = 8192;

/// The page size a timestamp lookup's read windows end on (see `Segment::scan_window`); a read
/// that ends on a page boundary does not touch a page it does not need.
const PAGE: u64 = 4096;

/// The largest read window: a batch header and a record prefix, then up to a page.
const SCAN_WINDOW_MAX: usize = BATCH_HEADER_LEN + RECORD_PREFIX_MAX as usize + PAGE as usize;

/// The longest record prefix a lookup decodes: length varint (5) + attributes (1) + timestamp
/// delta varlong (10) + offset delta varint (5).
const RECORD_PREFIX_MAX: u64 = 21;

/// Scratch buffers up to this size are kept per thread; larger requests get a buffer of their
/// own, so the scratch never pins more than this much memory per thread.
const SCRATCH_MAX: usize = 1 << 20;

thread_local! {
    /// Reused buffer for timestamp lookups, so a lookup does not allocate and zero a batch-sized
    /// buffer each time.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where a timestamp lookup gets record prefixes from.
enum Prefixes<'a> {
    /// A mapping of the whole `.log` file: prefixes are borrowed, nothing is copied.
    Mapped(&'a [u8]),
    /// Reads into `window`, which holds the file bytes `[loaded.0, loaded.0 + loaded.1)`. When
    /// the next prefix lies beyond it, the window is refilled from that record to the end of its
    /// page: a lookup copies the pages up to the matching record instead of the whole batch, and
    /// the bodies of records larger than a page are skipped without being read.
    Read {
        window: &'a mut [u8],
        loaded: (u64, usize),
    },
}

impl Prefixes<'_> {
    /// The file bytes from `at` to at least `want` (more when already at hand), never past
    /// `batch_end`; `None` when the mapping is shorter than that (a corrupt length).
    fn prefix(
        &mut self,
        seg: &Segment,
        at: u64,
        want: u64,
        batch_end: u64,
    ) -> Result<Option<&[u8]>> {
        match self {
            Prefixes::Mapped(m) => {
                let (Ok(from), Ok(to)) = (usize::try_from(at), usize::try_from(want)) else {
                    return Ok(None);
                };
                Ok(m.get(from..to))
            }
            Prefixes::Read { window, loaded } => {
                if at < loaded.0 || want > loaded.0 + loaded.1 as u64 {
                    let end = align_up(want).min(batch_end).min(at + window.len() as u64);
                    let Some(dst) = usize::try_from(end.saturating_sub(at))
                        .ok()
                        .and_then(|len| window.get_mut(..len))
                    else {
                        return Ok(None);
                    };
                    read_exact_at(&*seg.log, dst, at)
                        .map_err(|e| LogError::io(&seg.log_path, e))?;
                    *loaded = (at, dst.len());
                }
                let from = usize::try_from(at - loaded.0).unwrap_or(usize::MAX);
                Ok(window.get(from..loaded.1))
            }
        }
    }
}

/// Rounds a file position up to the next page boundary.
fn align_up(pos: u64) -> u64 {
    pos.saturating_add(PAGE - 1) & !(PAGE - 1)
}

/// Runs `f` on a zero-initialised-once buffer of exactly `len` bytes (contents unspecified).
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
    if len > SCRATCH_MAX {
        return f(&mut vec![0u8; len]);
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(buf.get_mut(..len).unwrap_or(&mut []))
        }
        // Not reachable (lookups do not nest), but a fresh buffer is always correct.
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// Decodes one zigzag varint (up to 10 bytes, as Kafka's varlong) from the start of `b`,
/// returning the value and the bytes used; `None` when `b` ends first or it is too long.
fn read_zigzag(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::read_zigzag;

    #[test]
    fn zigzag_varints_decode() {
        assert_eq!(read_zigzag(&[0x00]), Some((0, 1)));
        assert_eq!(read_zigzag(&[0x01]), Some((-1, 1)));
        assert_eq!(read_zigzag(&[0x02]), Some((1, 1)));
        assert_eq!(read_zigzag(&[0xac, 0x02]), Some((150, 2)));
        assert_eq!(read_zigzag(&[0x80]), None);
        assert_eq!(read_zigzag(&[]), None);
    }
}
