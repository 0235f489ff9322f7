//! Log compaction (`cleanup.policy=compact`): the cleaner keeps the latest record of every key
//! and drops tombstones `delete.retention.ms` after the cleaning that first kept them, as
//! Kafka's `LogCleaner` does.
//!
//! # One cleaning of one log ([`Cleaner::clean`])
//!
//! 1. Under the log's lock, [`Log::cleanable_stats`] bounds the dirty section:
//!    `[first dirty offset, first uncleanable offset)`, where the first dirty offset comes from
//!    the partition's `cleaner-offset-checkpoint` and the first uncleanable offset is the
//!    active segment, the segment holding the high watermark, or the first segment newer than
//!    `min.compaction.lag.ms`. The closed segments below it are taken with shared file handles.
//! 2. Without the lock, the [`OffsetMap`] is filled with the latest offset of every key of the
//!    dirty section, within `log.cleaner.dedupe.buffer.size`. When the map fills, the round
//!    stops where it got to, and the next round continues from there (Kafka's behaviour).
//! 3. Without the lock, every segment from the log start to the end of the map's reach is
//!    rewritten in groups (consecutive segments whose sizes and index sizes together fit one
//!    segment, Kafka's `groupSegmentsBySize`) into one replacement segment per group, written as
//!    `.cleaned` files and fsynced. Offsets never move: dropped records leave holes.
//! 4. Under the lock, each replacement is swapped in (`.cleaned` -> `.swap` -> final names, see
//!    `docs/format.md`), after checking that the segments it replaces are unchanged; if the log
//!    changed (retention, truncation), the replacement is discarded and the round ends.
//! 5. Under the lock, the checkpoint records the end of the round as the new first dirty offset.
//!
//! The lock is therefore held only for the short steps 1, 4 and 5, never while records are
//! read, filtered or written. Cleaning reads and writes go through a caller-supplied
//! [`CleanerIo`], which throttles them (`log.cleaner.io.max.bytes.per.second`) and can stop a
//! cleaning (shutdown, partition deletion).
//!
//! # Differences from Kafka
//!
//! * The offset map stores keys, not MD5 digests (see [`offset_map`]).
//! * Transactions: nothing at or above the first unstable offset is cleaned; the records of
//!   aborted transactions (found through the `.txnindex` entries of the whole log) neither
//!   enter the offset map nor survive a cleaning, as in Kafka. Unlike Kafka, transaction
//!   markers are never removed (Kafka drops a marker `delete.retention.ms` after the data of
//!   its transaction is gone, KIP-534), and the `.txnindex` entries stay.
//! * A replacement segment keeps the files' own modification time rather than the replaced
//!   segment's; `retention.ms` uses it only for segments whose records carry no timestamp.

mod filter;
pub mod offset_map;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use potok_records::{Offset, DEFAULT_MAX_DECOMPRESSED_BYTES};

use crate::log::cleaning::{remove_cleaned, CLEANED_SUFFIX};
use crate::segment::{segment_file, PendingBatch, Segment, LOG_SUFFIX};
use crate::storage::{Storage, StorageFile};
use crate::{Log, LogConfig, LogError, Result};

use filter::{filter_batch, BatchReader, FilterContext};
pub use offset_map::OffsetMap;

pub use crate::log::cleaning::CLEANER_OFFSET_FILE;

/// Settings of one cleaner (one cleaner thread), with Kafka's broker config names.
#[derive(Clone, Debug, PartialEq)]
pub struct CleanerConfig {
    /// This cleaner's share of `log.cleaner.dedupe.buffer.size` (Kafka divides the setting,
    /// default 128 MiB, among `log.cleaner.threads`).
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor` (default 0.9): the fraction of the dedupe buffer
    /// the offset map may fill.
    pub load_factor: f64,
    /// This cleaner's share of `log.cleaner.io.buffer.size` (default 512 KiB in total): the
    /// size of each read.
    pub io_buffer_bytes: usize,
    /// Largest decompressed records section of one batch the cleaner will handle.
    pub max_decompressed_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            dedupe_buffer_bytes: 128 << 20,
            load_factor: 0.9,
            io_buffer_bytes: 512 << 10,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
        }
    }
}

/// The IO policy of a cleaning: throttling and cancellation.
pub trait CleanerIo {
    /// Called after `bytes` were read or written; may sleep to keep a rate limit.
    fn throttle(&mut self, bytes: u64);
    /// Whether the cleaning should stop now (checked between chunks and before each swap).
    fn should_abort(&self) -> bool {
        false
    }
}

/// No throttle, never aborts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unthrottled;

impl CleanerIo for Unthrottled {
    fn throttle(&mut self, _bytes: u64) {}
}

/// How the cleaner reaches a log: runs `f` with the log locked, or returns `None` when the log
/// is gone (deleted or closed). The broker implements it for its partitions; tests use the
/// `Mutex<Log>` implementation.
pub trait LogAccess {
    /// Runs `f` on the locked log.
    fn with_log<R>(&self, f: impl FnOnce(&mut Log) -> R) -> Option<R>;
}

impl LogAccess for Mutex<Log> {
    fn with_log<R>(&self, f: impl FnOnce(&mut Log) -> R) -> Option<R> {
        let mut guard = self.lock().unwrap_or_else(|e| e.into_inner());
        Some(f(&mut guard))
    }
}

impl LogAccess for Mutex<Option<Log>> {
    fn with_log<R>(&self, f: impl FnOnce(&mut Log) -> R) -> Option<R> {
        let mut guard = self.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_mut().map(f)
    }
}

/// Dirty-section figures of a compacted log, from [`Log::cleanable_stats`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CleanableStats {
    /// Everything below is clean (the checkpoint, or the log start).
    pub first_dirty_offset: Offset,
    /// Nothing at or above may be cleaned yet (a segment base).
    pub first_uncleanable_offset: Offset,
    /// Bytes of the segments wholly below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the segments in the dirty, cleanable section.
    pub cleanable_bytes: u64,
    /// `cleanable / (clean + cleanable)`, compared with `min.cleanable.dirty.ratio`.
    pub dirty_ratio: f64,
    /// How far past `max.compaction.lag.ms` the oldest dirty batch is (0 when it is not);
    /// a log with a positive delay is cleaned whatever its dirty ratio.
    pub max_compaction_delay_ms: i64,
}

/// What one [`Cleaner::clean`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// First dirty offset at the start.
    pub first_dirty_offset: Offset,
    /// End of the round: the new first dirty offset when the round completed.
    pub end_offset: Offset,
    /// Bytes read (offset map and rewrite).
    pub bytes_read: u64,
    /// Bytes of replacement segments written.
    pub bytes_written: u64,
    /// Bytes of the segments replaced.
    pub bytes_replaced: u64,
    /// Records read while rewriting.
    pub records_read: u64,
    /// Records kept.
    pub records_retained: u64,
    /// Segments replaced.
    pub segments_replaced: usize,
    /// Replacement segments swapped in.
    pub groups: usize,
    /// The offset map filled before the end of the dirty section.
    pub map_full: bool,
    /// The round stopped early: the log changed under it or the caller aborted it.
    pub aborted: bool,
}

/// A closed segment as a cleaning sees it.
#[derive(Clone, Debug)]
pub(crate) struct SegmentRef {
    pub(crate) base: i64,
    pub(crate) file: Arc<dyn StorageFile>,
    pub(crate) size: u64,
    pub(crate) next_offset: i64,
    pub(crate) index_bytes: u64,
    pub(crate) time_index_bytes: u64,
    /// The segment's aborted transactions (`.txnindex`), carried to the cleaned segment.
    pub(crate) aborted: Vec<crate::txn_index::AbortedTxn>,
}

/// Everything a cleaning needs, taken under the lock by `Log::prepare_cleaning`.
#[derive(Debug)]
pub(crate) struct CleaningJob {
    pub(crate) dir: PathBuf,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: LogConfig,
    /// The segments below the first uncleanable offset, oldest first.
    pub(crate) segments: Vec<SegmentRef>,
    pub(crate) first_dirty: i64,
    pub(crate) first_uncleanable: i64,
    pub(crate) active_producers: HashMap<i64, i64>,
    /// Every aborted transaction with data below the first uncleanable offset.
    pub(crate) aborted: AbortedSet,
    pub(crate) truncations: u64,
}

/// The aborted transactions a cleaning knows of, by producer: `[first offset, marker offset]`
/// ranges from the `.txnindex` entries. Below the first uncleanable offset every transaction is
/// complete, so a transactional batch is aborted data exactly when it lies in one of them.
#[derive(Debug, Default)]
pub(crate) struct AbortedSet {
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedSet {
    pub(crate) fn insert(&mut self, e: &crate::txn_index::AbortedTxn) {
        self.by_producer
            .entry(e.producer_id.0)
            .or_default()
            .push((e.first_offset.0, e.last_offset.0));
    }

    /// Whether a data batch (not a marker) with header `h` belongs to an aborted transaction.
    pub(crate) fn holds(&self, h: &potok_records::BatchHeader) -> bool {
        if !h.is_transactional() || h.is_control() {
            return false;
        }
        let base = h.base_offset;
        self.by_producer.get(&h.producer_id).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|&(first, last)| first <= base && base < last)
        })
    }
}

/// A replaced segment's identity at preparation time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Replaced {
    pub(crate) base: i64,
    pub(crate) size: u64,
    pub(crate) next_offset: i64,
}

/// A replacement segment written as `.cleaned` files, ready to swap in.
#[derive(Debug)]
pub(crate) struct CleanedGroup {
    pub(crate) base: i64,
    pub(crate) replaces: Vec<Replaced>,
    pub(crate) truncations: u64,
}

/// One cleaner: its offset map and settings. Not shared between threads; the broker runs one
/// per `log.cleaner.threads`.
#[derive(Debug)]
pub struct Cleaner {
    config: CleanerConfig,
    map: OffsetMap,
}

impl Cleaner {
    /// A cleaner whose offset map may use `dedupe_buffer_bytes * load_factor` bytes.
    pub fn new(config: CleanerConfig) -> Cleaner {
        let limit =
            (config.dedupe_buffer_bytes as f64 * config.load_factor.clamp(0.0, 1.0)) as usize;
        Cleaner {
            config,
            map: OffsetMap::new(limit),
        }
    }

    /// The offset map's fill after the last cleaning (Kafka's `max-buffer-utilization-percent`).
    pub fn map_utilization(&self) -> f64 {
        self.map.utilization()
    }

    /// Cleans `log` once (see the module docs). `now_ms` is the clock for
    /// `min.compaction.lag.ms` and delete horizons; `high_watermark` bounds what may be
    /// cleaned. `Ok(None)`: nothing to clean (not compacted, nothing dirty, log gone).
    pub fn clean<A: LogAccess>(
        &mut self,
        log: &A,
        now_ms: i64,
        high_watermark: Option<Offset>,
        io: &mut dyn CleanerIo,
    ) -> Result<Option<CleanStats>> {
        let Some(Some(job)) = log.with_log(|l| l.prepare_cleaning(now_ms, high_watermark)) else {
            return Ok(None);
        };
        let mut stats = CleanStats {
            first_dirty_offset: Offset(job.first_dirty),
            ..CleanStats::default()
        };
        stats.map_full = self.build_offset_map(&job, &mut stats, io)?;
        let end = self.map.latest_offset().saturating_add(1);
        if end <= job.first_dirty {
            tracing::warn!(
                dir = %job.dir.display(),
                "log.cleaner.dedupe.buffer.size is too small for even one batch of this log; it is not cleaned"
            );
            return Ok(None);
        }
        stats.end_offset = Offset(end);
        let ctx = FilterContext {
            map: &self.map,
            now_ms,
            delete_retention_ms: job.config.delete_retention_ms,
            active_producers: &job.active_producers,
            aborted: &job.aborted,
            round_end: job.first_uncleanable,
            max_decompressed: self.config.max_decompressed_bytes,
        };
        for group in group_segments(&job, end) {
            if io.should_abort() {
                stats.aborted = true;
                return Ok(Some(stats));
            }
            let cleaned = match clean_group(
                &job,
                group,
                &ctx,
                self.config.io_buffer_bytes,
                now_ms,
                &mut stats,
                io,
            ) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    stats.aborted = true;
                    return Ok(Some(stats));
                }
                Err(e) => {
                    let _ = remove_cleaned(&*job.storage, &job.dir, group[0].base);
                    return Err(e);
                }
            };
            match log.with_log(|l| l.replace_segments(&cleaned, now_ms)) {
                Some(Ok(true)) => {
                    stats.groups += 1;
                    stats.segments_replaced += cleaned.replaces.len();
                    stats.bytes_replaced += group.iter().map(|s| s.size).sum::<u64>();
                }
                Some(Ok(false)) => {
                    stats.aborted = true;
                    return Ok(Some(stats));
                }
                Some(Err(e)) => return Err(e),
                None => {
                    let _ = remove_cleaned(&*job.storage, &job.dir, cleaned.base);
                    return Ok(None);
                }
            }
        }
        match log.with_log(|l| l.set_first_dirty_offset(end)) {
            Some(r) => r?,
            None => return Ok(None),
        }
        Ok(Some(stats))
    }

    /// Fills the map from the dirty section; returns whether it filled up before the end.
    fn build_offset_map(
        &mut self,
        job: &CleaningJob,
        stats: &mut CleanStats,
        io: &mut dyn CleanerIo,
    ) -> Result<bool> {
        self.map.clear();
        let start = job.first_dirty;
        for (i, seg) in job.segments.iter().enumerate() {
            let next_base = job
                .segments
                .get(i + 1)
                .map_or(job.first_uncleanable, |s| s.base);
            if next_base <= start {
                continue;
            }
            let path = segment_file(&job.dir, seg.base, LOG_SUFFIX);
            let mut reader =
                BatchReader::new(&*seg.file, &path, seg.size, self.config.io_buffer_bytes);
            while let Some((_, batch)) = reader.next_batch(io)? {
                if io.should_abort() {
                    return Ok(true);
                }
                let h = *batch.header();
                stats.bytes_read += batch.len() as u64;
                if h.last_offset().0 < start {
                    continue;
                }
                // Aborted data must not hide an older committed value of its key.
                if !h.is_control() && !job.aborted.holds(&h) {
                    let records = batch
                        .records_with_limit(self.config.max_decompressed_bytes)
                        .map_err(LogError::InvalidBatch)?;
                    for r in records {
                        let r = r.map_err(LogError::InvalidBatch)?;
                        let offset = r.offset(&h).0;
                        if let (Some(key), true) = (&r.key, offset >= start) {
                            if !self.map.put(key, offset) {
                                return Ok(true);
                            }
                        }
                    }
                }
                self.map.update_latest_offset(h.last_offset().0);
            }
            // Offsets with no batch at the end of the segment are covered too.
            self.map.update_latest_offset(next_base - 1);
        }
        Ok(false)
    }
}

/// Kafka's `groupSegmentsBySize`: consecutive segments below `end` whose data, offset index
/// and time index each fit one segment, and whose offsets stay within `i32` of the group's
/// base.
fn group_segments(job: &CleaningJob, end: i64) -> Vec<&[SegmentRef]> {
    let segs: Vec<&SegmentRef> = job.segments.iter().filter(|s| s.base < end).collect();
    let n = segs.len();
    let mut groups = Vec::new();
    let mut i = 0;
    while i < n {
        let first = segs[i];
        let (mut size, mut idx, mut tidx) = (first.size, first.index_bytes, first.time_index_bytes);
        let mut j = i + 1;
        while j < n {
            let s = segs[j];
            let upper = job
                .segments
                .get(j + 1)
                .map_or(job.first_uncleanable, |t| t.base)
                - 1;
            let fits = size + s.size <= job.config.segment_bytes
                && idx + s.index_bytes <= job.config.segment_index_bytes
                && tidx + s.time_index_bytes <= job.config.segment_index_bytes
                && (s.size == 0 || upper - first.base <= i64::from(i32::MAX));
            if !fits {
                break;
            }
            size += s.size;
            idx += s.index_bytes;
            tidx += s.time_index_bytes;
            j += 1;
        }
        groups.push(&job.segments[i..j]);
        i = j;
    }
    groups
}

/// Writes the replacement of `group` as `.cleaned` files. `Ok(None)`: aborted by `io`.
#[allow(clippy::too_many_arguments)]
fn clean_group(
    job: &CleaningJob,
    group: &[SegmentRef],
    ctx: &FilterContext<'_>,
    io_buffer: usize,
    now_ms: i64,
    stats: &mut CleanStats,
    io: &mut dyn CleanerIo,
) -> Result<Option<CleanedGroup>> {
    let base = group[0].base;
    let st = &*job.storage;
    let mut out =
        Segment::create_with_suffix(st, &job.dir, base, &job.config, CLEANED_SUFFIX, now_ms)?;
    let mut buf: Vec<u8> = Vec::new();
    let mut pending: Vec<PendingBatch> = Vec::new();
    let flush = |out: &mut Segment,
                 buf: &mut Vec<u8>,
                 pending: &mut Vec<PendingBatch>,
                 stats: &mut CleanStats,
                 io: &mut dyn CleanerIo|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        out.append(&job.config, buf, pending, now_ms)
            .map_err(|(e, _)| e)?;
        stats.bytes_written += buf.len() as u64;
        io.throttle(buf.len() as u64);
        buf.clear();
        pending.clear();
        Ok(())
    };
    for seg in group {
        let path = segment_file(&job.dir, seg.base, LOG_SUFFIX);
        let mut reader = BatchReader::new(&*seg.file, &path, seg.size, io_buffer);
        while let Some((_, batch)) = reader.next_batch(io)? {
            if io.should_abort() {
                drop(out);
                remove_cleaned(st, &job.dir, base)?;
                return Ok(None);
            }
            stats.bytes_read += batch.len() as u64;
            let (kept, counts) = filter_batch(&batch, ctx)?;
            stats.records_read += counts.records_read;
            stats.records_retained += counts.records_retained;
            if let Some(b) = kept {
                let bytes = b.as_bytes();
                pending.push(PendingBatch {
                    start: buf.len(),
                    len: bytes.len(),
                    header: *b.header(),
                });
                buf.extend_from_slice(bytes);
                if buf.len() >= io_buffer {
                    flush(&mut out, &mut buf, &mut pending, stats, io)?;
                }
            }
        }
    }
    flush(&mut out, &mut buf, &mut pending, stats, io)?;
    // Every aborted transaction of the replaced segments stays listed: the offsets are kept
    // (as holes), and an entry whose data the cleaning removed only names batches a
    // read_committed consumer will not find, while a missing entry would show aborted data.
    for seg in group {
        for e in &seg.aborted {
            out.append_aborted(st, *e)?;
        }
    }
    out.close_indexes(st, true)?;
    out.flush(st)?;
    drop(out);
    Ok(Some(CleanedGroup {
        base,
        replaces: group
            .iter()
            .map(|s| Replaced {
                base: s.base,
                size: s.size,
                next_offset: s.next_offset,
            })
            .collect(),
        truncations: job.truncations,
    }))
}
