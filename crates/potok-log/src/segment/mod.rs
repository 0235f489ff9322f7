//! One log segment: a `.log` file of record batches plus its `.index` and `.timeindex`, and a
//! `.txnindex` of the transactions aborted in it (made by the first ABORT marker appended).
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

use memmap2::Mmap;
use potok_records::BatchHeader;

use crate::deferred_file::DeferredFile;
use crate::index::{
    offset_entry, offset_entry_at, time_entry, time_entry_at, IndexFile, OFFSET_ENTRY_SIZE,
    TIME_ENTRY_SIZE,
};
use crate::storage::{write_all_at, Storage, StorageFile};
use crate::txn_index::{AbortedTxn, TxnIndex};
use crate::{LogConfig, LogError, Result};

mod read;
mod recovery;
mod timestamp;

/// Extension of the record data file.
pub const LOG_SUFFIX: &str = "log";
/// Extension of the offset index.
pub const INDEX_SUFFIX: &str = "index";
/// Extension of the time index.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";
/// Extension of the transaction index (aborted transactions, KIP-98).
pub const TXN_INDEX_SUFFIX: &str = "txnindex";

/// The path of a segment file: `{dir}/{base:020}.{suffix}`.
pub fn segment_file(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

/// The `.txnindex` beside a `.log` file (keeping an extra suffix such as `.cleaned`).
pub(crate) fn txn_index_path(log_path: &Path) -> PathBuf {
    let name = log_path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .replacen(
            &format!(".{LOG_SUFFIX}"),
            &format!(".{TXN_INDEX_SUFFIX}"),
            1,
        );
    log_path.with_file_name(name)
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
    /// The offset after the last batch read (`first_offset` when nothing is read).
    pub(crate) end_offset: i64,
}

pub(crate) struct Segment {
    pub(crate) base: i64,
    log_path: PathBuf,
    log: Arc<dyn StorageFile>,
    /// The `.log` file when it is created on first use ([`Segment::create_deferred`]); until
    /// then the segment has no files at all, and closing it writes no index files.
    deferred: Option<Arc<DeferredFile>>,
    /// Valid bytes of the `.log` file.
    size: u64,
    index: IndexFile,
    time_index: IndexFile,
    /// The transactions whose ABORT marker is in this segment.
    pub(crate) txn: TxnIndex,
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

    /// An empty segment at `base` whose files do not exist yet: the `.log` file is created by
    /// the first write to it (see [`DeferredFile`]) and the index files when the segment stops
    /// being active with data in it. The caller knows that no file of this segment exists (it
    /// listed the directory or just made it), so nothing stale is truncated.
    pub(crate) fn create_deferred(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        base: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Segment {
        let log_path = segment_file(dir, base, LOG_SUFFIX);
        let deferred = Arc::new(DeferredFile::new(
            log_path.clone(),
            Arc::clone(storage),
            now_ms,
        ));
        let index = IndexFile::new_unwritten(
            segment_file(dir, base, INDEX_SUFFIX),
            OFFSET_ENTRY_SIZE,
            config.segment_index_bytes,
        );
        let time_index = IndexFile::new_unwritten(
            segment_file(dir, base, TIME_INDEX_SUFFIX),
            TIME_ENTRY_SIZE,
            config.segment_index_bytes,
        );
        let log: Arc<dyn StorageFile> = Arc::clone(&deferred) as Arc<dyn StorageFile>;
        let mut seg = Segment::assemble(log_path, log, base, index, time_index);
        seg.deferred = Some(deferred);
        seg.first_seen_ms = Some(now_ms);
        seg
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
        Ok(Segment::assemble(log_path, log, base, index, time_index))
    }

    /// An empty segment over the given files.
    fn assemble(
        log_path: PathBuf,
        log: Arc<dyn StorageFile>,
        base: i64,
        index: IndexFile,
        time_index: IndexFile,
    ) -> Segment {
        let txn = TxnIndex::new(txn_index_path(&log_path));
        Segment {
            base,
            log_path,
            log,
            deferred: None,
            size: 0,
            index,
            time_index,
            txn,
            next_offset: base,
            max_timestamp: -1,
            offset_of_max_timestamp: base,
            time_index_last: -1,
            bytes_since_last_index_entry: 0,
            first_batch_timestamp: None,
            first_seen_ms: None,
            dirty: false,
            log_map: Mutex::new(None),
        }
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
        // Kafka's `LogSegment.truncateTo` cuts the transaction index at the same offset: the
        // removed batches held the markers of these entries.
        self.txn
            .truncate_to(storage, potok_records::Offset(offset))?;
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
        if self.deferred.as_ref().is_some_and(|d| !d.created()) {
            // Nothing was ever written or read: the segment has no files and, being empty,
            // no index entries to keep.
            return Ok(());
        }
        self.maybe_append_time_entry(true);
        self.index.make_closed(storage, sync)?;
        self.time_index.make_closed(storage, sync)
    }

    /// fsyncs the `.log` file if anything was appended or truncated since the last sync, and
    /// the `.txnindex` if it changed (Kafka's `LogSegment.flush` syncs both).
    pub(crate) fn flush(&mut self, storage: &dyn Storage) -> Result<()> {
        if self.dirty {
            self.log
                .sync_data()
                .map_err(|e| LogError::io(&self.log_path, e))?;
            self.dirty = false;
        }
        self.txn.sync(storage)
    }

    /// Loads the segment's `.txnindex` when the file exists. `Ok(Err(reason))`: the file is
    /// not a valid index (the segment keeps none).
    pub(crate) fn load_txn_index_if_present(
        &mut self,
        storage: &dyn Storage,
    ) -> Result<std::result::Result<(), String>> {
        let path = self.txn.path().to_path_buf();
        if !storage.exists(&path).map_err(|e| LogError::io(&path, e))? {
            return Ok(Ok(()));
        }
        Ok(TxnIndex::load(storage, path)?.map(|t| self.txn = t))
    }

    /// Empties the `.txnindex` (recovery rebuilds it from the batches).
    pub(crate) fn reset_txn_index(&mut self, storage: &dyn Storage) -> Result<()> {
        self.txn.reset(storage)
    }

    /// Records an aborted transaction whose marker was just appended to this segment.
    pub(crate) fn append_aborted(&mut self, storage: &dyn Storage, e: AbortedTxn) -> Result<()> {
        self.txn.append(storage, e)
    }

    /// Deletes the segment's files. Open handles (e.g. a `ReadSlice` being sent) stay valid.
    pub(crate) fn delete_files(self, storage: &dyn Storage) -> Result<()> {
        let paths = self.paths();
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

    /// Renames the segment's files to `{name}.deleted` (retention; the caller removes them
    /// later, outside the log's lock) and returns the new paths. A missing file (an index not
    /// written yet) is skipped. Open handles (a `ReadSlice` being sent) stay valid.
    pub(crate) fn rename_for_deletion(self, storage: &dyn Storage) -> Result<Vec<PathBuf>> {
        let paths = self.paths();
        drop(self);
        let mut renamed = Vec::with_capacity(paths.len());
        for p in paths {
            let mut name = p.as_os_str().to_owned();
            name.push(crate::log::cleaning::DELETED_SUFFIX);
            let to = PathBuf::from(name);
            match storage.rename(&p, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(&p, e)),
            }
        }
        Ok(renamed)
    }

    /// The paths of the segment's `.log`, `.index`, `.timeindex` and `.txnindex` files (the
    /// last may not exist).
    pub(crate) fn paths(&self) -> [PathBuf; 4] {
        [
            self.log_path.clone(),
            self.index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
            self.txn.path().to_path_buf(),
        ]
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
