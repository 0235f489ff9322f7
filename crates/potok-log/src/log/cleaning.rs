//! The log's side of compaction: what a cleaning may touch (taken under the caller's lock),
//! the swap of a cleaned segment in place of the segments it replaces, the
//! `cleaner-offset-checkpoint`, and the completion or rollback of a swap a crash interrupted.
//!
//! # Swap procedure (Kafka's `UnifiedLog.replaceSegments` and `LogLoader`)
//!
//! The cleaner writes the replacement of a group of segments as
//! `{base}.log.cleaned`, `{base}.index.cleaned`, `{base}.timeindex.cleaned` (base = the
//! group's first segment) and fsyncs them, without the log's lock. The swap, under the lock:
//!
//! 1. rename the three `.cleaned` files to `.swap` (the `.log` last), fsync the directory;
//! 2. rename every file of every replaced segment to `{name}.deleted`, fsync the directory;
//! 3. rename the `.swap` files to their final names, fsync the directory;
//! 4. remove the `.deleted` files and open the new segment.
//!
//! On open, before segments are listed: `.cleaned` and `.deleted` files are removed (a swap
//! that had not reached step 1 is rolled back; one past step 2 has its old files gone
//! already). For each `{base}.log.swap` the offset range `[base, next offset of its last
//! batch)` is read from the file, every ordinary segment file whose base offset lies in that
//! range (or equals `base`) is removed, index `.swap` files are removed (the indexes are rebuilt)
//! and the `.log.swap` is renamed to `.log`: the swap is completed. The cleaned data only ever
//! covers offsets of the segments it replaces, so an old segment outside the range (one whose
//! records were all cleaned away) survives with its original data, which is still a correct
//! log: nothing is lost, it is only less compact.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use potok_records::{BatchHeader, Offset, BATCH_HEADER_LEN};

use super::Log;
use crate::checkpoint::{read_checkpoint, write_checkpoint};
use crate::cleaner::{CleanableStats, CleanedGroup, CleaningJob, SegmentRef};
use crate::segment::{
    parse_segment_file_name, segment_file, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
};
use crate::storage::{read_exact_at, Storage};
use crate::{LogError, Result};

/// The checkpoint of the first offset not yet cleaned ("first dirty offset"). Kafka keeps one
/// such file per log directory for all its partitions; Potok keeps one per partition
/// directory, beside the recovery point, in the same text format.
pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";

/// Suffix of a replacement segment being written by the cleaner.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a replacement segment being swapped in.
pub(crate) const SWAP_SUFFIX: &str = ".swap";
/// Suffix of a replaced segment's files about to be removed.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// The `.txnindex` comes first: a replaced segment's is renamed to `.deleted` before its
/// `.log`, so while completing a swap a `.txnindex` at the swap's base without a `.log` beside
/// it can only be the cleaned segment's (see `recover_interrupted_swaps`).
const SUFFIXES: [&str; 4] = [
    TXN_INDEX_SUFFIX,
    LOG_SUFFIX,
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
];

/// What the log keeps for its cleaner.
#[derive(Debug, Default)]
pub(crate) struct CleaningState {
    /// The `cleaner-offset-checkpoint` value (`None`: never cleaned or unreadable).
    first_dirty: Option<i64>,
    /// Bumped by every truncation, so a cleaning prepared before one does not swap in data
    /// of segments that were cut and written again under the same base offset.
    pub(crate) truncations: u64,
}

impl CleaningState {
    pub(crate) fn load(storage: &dyn Storage, dir: &Path) -> CleaningState {
        let first_dirty = read_checkpoint(storage, dir, CLEANER_OFFSET_FILE).unwrap_or_else(|e| {
            // Losing it only costs a cleaning of the whole log, as in Kafka.
            tracing::warn!(error = %e, "unreadable cleaner offset checkpoint; cleaning from the log start");
            None
        });
        CleaningState {
            first_dirty,
            truncations: 0,
        }
    }
}

fn name_with(dir: &Path, base: i64, suffix: &str, extra: &str) -> std::path::PathBuf {
    segment_file(dir, base, &format!("{suffix}{extra}"))
}

fn remove_if_exists(storage: &dyn Storage, path: &Path) -> Result<()> {
    match storage.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

fn rename_if_exists(storage: &dyn Storage, from: &Path, to: &Path) -> Result<()> {
    match storage.rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(from, e)),
    }
}

/// Removes the three files of a cleaned segment that will not be swapped in.
pub(crate) fn remove_cleaned(storage: &dyn Storage, dir: &Path, base: i64) -> Result<()> {
    for suffix in SUFFIXES {
        remove_if_exists(storage, &name_with(dir, base, suffix, CLEANED_SUFFIX))?;
    }
    Ok(())
}

/// The offset after the last whole batch of `path` (its base offset when it has none), read
/// from the batch headers only.
fn next_offset_of(storage: &dyn Storage, path: &Path, base: i64) -> Result<i64> {
    let file = storage
        .open(path, false)
        .map_err(|e| LogError::io(path, e))?;
    let len = file.len().map_err(|e| LogError::io(path, e))?;
    let mut pos = 0u64;
    let mut next = base;
    let mut hdr = [0u8; BATCH_HEADER_LEN];
    while pos + BATCH_HEADER_LEN as u64 <= len {
        read_exact_at(&*file, &mut hdr, pos).map_err(|e| LogError::io(path, e))?;
        let Ok(h) = BatchHeader::parse(&hdr) else {
            break;
        };
        let size = h.total_size() as u64;
        if pos + size > len || h.base_offset < next {
            break;
        }
        next = h.next_offset().0;
        pos += size;
    }
    Ok(next)
}

/// Completes or rolls back the swaps a crash interrupted (see the module docs).
pub(crate) fn recover_interrupted_swaps(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let entries = storage.list_dir(dir).map_err(|e| LogError::io(dir, e))?;
    let mut swaps = Vec::new();
    let mut segment_files = Vec::new();
    let mut txn_swaps = Vec::new();
    let mut changed = false;
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((base, suffix)) = parse_segment_file_name(name) else {
            continue;
        };
        if suffix.ends_with(CLEANED_SUFFIX) || suffix.ends_with(DELETED_SUFFIX) {
            tracing::info!(path = %path.display(), "removing a leftover of an interrupted log cleaning");
            remove_if_exists(storage, &path)?;
            changed = true;
        } else if let Some(kind) = suffix.strip_suffix(SWAP_SUFFIX) {
            if kind == LOG_SUFFIX {
                swaps.push((base, path));
            } else if kind == TXN_INDEX_SUFFIX {
                // Not rebuilt from the batches like the other indexes (the segment is below the
                // recovery point): moved into place with its `.log` below.
                txn_swaps.push((base, path));
            } else {
                remove_if_exists(storage, &path)?;
                changed = true;
            }
        } else if SUFFIXES.contains(&suffix) {
            segment_files.push((base, path));
        }
    }
    for (base, swap) in &swaps {
        let next = next_offset_of(storage, swap, *base)?.max(base + 1);
        tracing::info!(path = %swap.display(), base, next, "completing an interrupted segment swap of the log cleaner");
        // A `.txnindex` at the swap's base without the `.log` beside it was moved into place
        // by the swap's last step (the replaced segment's went to `.deleted` before its `.log`).
        let base_log = segment_file(dir, *base, LOG_SUFFIX);
        let new_txn = segment_file(dir, *base, TXN_INDEX_SUFFIX);
        let keep_txn = !segment_files.iter().any(|(_, p)| *p == base_log);
        for (b, path) in &segment_files {
            if (*base..next).contains(b) && !(keep_txn && *path == new_txn) {
                remove_if_exists(storage, path)?;
            }
        }
        if let Some((_, txn)) = txn_swaps.iter().find(|(b, _)| b == base) {
            let target = segment_file(dir, *base, TXN_INDEX_SUFFIX);
            storage
                .rename(txn, &target)
                .map_err(|e| LogError::io(txn, e))?;
        }
        let target = segment_file(dir, *base, LOG_SUFFIX);
        storage
            .rename(swap, &target)
            .map_err(|e| LogError::io(swap, e))?;
        changed = true;
    }
    for (base, txn) in &txn_swaps {
        if !swaps.iter().any(|(b, _)| b == base) {
            remove_if_exists(storage, txn)?;
            changed = true;
        }
    }
    if changed {
        storage.sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
    }
    Ok(())
}

impl Log {
    /// The first dirty offset as Kafka's `LogCleanerManager.cleanableOffsets` derives it: the
    /// checkpoint, reset to the log start when it lies below it or beyond the active segment.
    fn first_dirty_offset(&self, active_base: i64) -> i64 {
        match self.cleaning.first_dirty {
            Some(o) if o >= self.log_start_offset && o <= active_base => o,
            _ => self.log_start_offset,
        }
    }

    /// Dirty-ratio figures of a compacted log (Kafka's `LogToClean` and
    /// `LogCleanerManager.cleanableOffsets`): the first dirty offset, the first offset that
    /// may not be cleaned yet (the active segment, the segment holding `high_watermark`, and
    /// with `min.compaction.lag.ms` the first dirty segment whose largest timestamp is newer
    /// than the lag; always a segment base), the bytes on either side and how far the oldest
    /// dirty record is past `max.compaction.lag.ms`.
    pub fn cleanable_stats(&self, now_ms: i64, high_watermark: Option<Offset>) -> CleanableStats {
        let active_base = self.segments.keys().next_back().copied().unwrap_or(0);
        let first_dirty = self.first_dirty_offset(active_base);
        let mut first_uncleanable = active_base;
        if let Some(hw) = high_watermark {
            if let Some((&b, _)) = self.segments.range(..=hw.0).next_back() {
                first_uncleanable = first_uncleanable.min(b);
            }
        }
        // Nothing of an ongoing transaction is cleaned (Kafka's `cleanableOffsets` bounds by
        // `firstUnstableOffset`): whether its records count depends on a marker not written
        // yet, and a record of a transaction that will abort must not make the cleaner drop
        // an older committed value of its key.
        if let Some(unstable) = self.first_unstable_offset() {
            if let Some((&b, _)) = self.segments.range(..=unstable.0).next_back() {
                first_uncleanable = first_uncleanable.min(b);
            }
        }
        let dirty_from = self
            .segments
            .range(..=first_dirty)
            .next_back()
            .map_or(first_dirty, |(&b, _)| b);
        if self.config.min_compaction_lag_ms > 0 {
            let horizon = now_ms.saturating_sub(self.config.min_compaction_lag_ms);
            for (&b, seg) in self.segments.range(dirty_from..active_base) {
                let largest = seg.largest_timestamp_for_retention().unwrap_or(i64::MAX);
                if largest > horizon {
                    first_uncleanable = first_uncleanable.min(b);
                    break;
                }
            }
        }
        let mut clean_bytes = 0;
        let mut cleanable_bytes = 0;
        let mut earliest_dirty_ts: Option<i64> = None;
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for (i, (&b, seg)) in self.segments.iter().enumerate() {
            let upper = bases.get(i + 1).copied().unwrap_or(seg.next_offset());
            if b >= active_base {
                break;
            }
            if upper <= first_dirty {
                clean_bytes += seg.size();
            } else if b < first_uncleanable {
                cleanable_bytes += seg.size();
            }
            if upper > first_dirty {
                if let Some(ts) = seg.first_batch_timestamp().filter(|&t| t >= 0) {
                    earliest_dirty_ts = Some(earliest_dirty_ts.map_or(ts, |e: i64| e.min(ts)));
                }
            }
        }
        let total = clean_bytes + cleanable_bytes;
        let dirty_ratio = if total == 0 {
            0.0
        } else {
            cleanable_bytes as f64 / total as f64
        };
        // Kafka's `LogCleanerManager.maxCompactionDelay`.
        let max_compaction_delay_ms = match earliest_dirty_ts {
            Some(ts) if self.config.max_compaction_lag_ms < i64::MAX => now_ms
                .saturating_sub(ts)
                .saturating_sub(self.config.max_compaction_lag_ms)
                .max(0),
            _ => 0,
        };
        CleanableStats {
            first_dirty_offset: Offset(first_dirty),
            first_uncleanable_offset: Offset(first_uncleanable.max(first_dirty)),
            clean_bytes,
            cleanable_bytes,
            dirty_ratio,
            max_compaction_delay_ms,
        }
    }

    /// Everything a cleaning of this log needs to run without the log's lock: the segments
    /// below the first uncleanable offset (with shared handles to their files, which stay
    /// readable even if retention removes them meanwhile), the offsets bounding the dirty
    /// section and the last offset of every idempotent producer. `None` when the log is not
    /// compacted, is offline or has nothing dirty below its first uncleanable offset.
    pub(crate) fn prepare_cleaning(
        &self,
        now_ms: i64,
        high_watermark: Option<Offset>,
    ) -> Option<CleaningJob> {
        if !self.config.compact || self.offline {
            return None;
        }
        let stats = self.cleanable_stats(now_ms, high_watermark);
        let (first_dirty, first_uncleanable) =
            (stats.first_dirty_offset.0, stats.first_uncleanable_offset.0);
        if first_dirty >= first_uncleanable {
            return None;
        }
        let mut segments: Vec<SegmentRef> = Vec::new();
        for (&base, seg) in self.segments.range(..first_uncleanable) {
            let (index_entries, time_entries) = seg.index_entries();
            // Pin the descriptor for the cleaning: a handle the open-file bound may close
            // while idle would reopen by name, and retention may remove the file meanwhile.
            let file = match seg.file().pinned() {
                Ok(pinned) => pinned.unwrap_or_else(|| Arc::clone(seg.file())),
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), segment = base, error = %e, "cannot open a segment to clean it");
                    return None;
                }
            };
            segments.push(SegmentRef {
                base,
                file,
                size: seg.size(),
                next_offset: seg.next_offset(),
                index_bytes: (index_entries * crate::index::OFFSET_ENTRY_SIZE) as u64,
                time_index_bytes: (time_entries * crate::index::TIME_ENTRY_SIZE) as u64,
                aborted: seg.txn.entries().to_vec(),
            });
        }
        // The aborted transactions of the whole log: an ABORT marker, and so its entry, may
        // lie above the first uncleanable offset while the transaction's data lies below.
        let mut aborted = crate::cleaner::AbortedSet::default();
        for seg in self.segments.values() {
            for e in seg.txn.entries() {
                if e.first_offset.0 < first_uncleanable {
                    aborted.insert(e);
                }
            }
        }
        let active_producers: HashMap<i64, i64> = self
            .producers
            .entries()
            .filter_map(|e| e.last_offset().map(|o| (e.producer_id.0, o.0)))
            .collect();
        Some(CleaningJob {
            dir: self.dir.clone(),
            storage: Arc::clone(&self.storage),
            config: self.config.clone(),
            segments,
            first_dirty,
            first_uncleanable,
            active_producers,
            aborted,
            truncations: self.cleaning.truncations,
        })
    }

    /// Swaps a cleaned segment in for the segments it replaces (see the module docs). Returns
    /// `Ok(false)`, removing the cleaned files, when the log changed since the cleaning was
    /// prepared (a replaced segment is gone, was truncated or became active); a failure half-way
    /// takes the log offline, and the next open completes the swap.
    pub(crate) fn replace_segments(&mut self, cleaned: &CleanedGroup, now_ms: i64) -> Result<bool> {
        self.check_online()?;
        let active_base = self.segments.keys().next_back().copied().unwrap_or(0);
        let current = cleaned.truncations == self.cleaning.truncations
            && cleaned.replaces.iter().all(|r| {
                r.base < active_base
                    && self
                        .segments
                        .get(&r.base)
                        .is_some_and(|s| s.size() == r.size && s.next_offset() == r.next_offset)
            });
        if !current {
            remove_cleaned(&*self.storage, &self.dir, cleaned.base)?;
            return Ok(false);
        }
        let r = self.swap_in(cleaned, now_ms);
        if r.is_err() {
            self.offline = true;
        }
        r.map(|()| true)
    }

    fn swap_in(&mut self, cleaned: &CleanedGroup, now_ms: i64) -> Result<()> {
        let storage = Arc::clone(&self.storage);
        let st = &*storage;
        let dir = self.dir.clone();
        let sync = |st: &dyn Storage| st.sync_dir(&dir).map_err(|e| LogError::io(&dir, e));
        let base = cleaned.base;
        // 1. `.cleaned` -> `.swap`, the `.log` last: its `.swap` marks the swap as decided.
        // The `.txnindex` exists only when a replaced segment had an aborted transaction.
        rename_if_exists(
            st,
            &name_with(&dir, base, TXN_INDEX_SUFFIX, CLEANED_SUFFIX),
            &name_with(&dir, base, TXN_INDEX_SUFFIX, SWAP_SUFFIX),
        )?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, LOG_SUFFIX] {
            let from = name_with(&dir, base, suffix, CLEANED_SUFFIX);
            let to = name_with(&dir, base, suffix, SWAP_SUFFIX);
            st.rename(&from, &to).map_err(|e| LogError::io(&from, e))?;
        }
        sync(st)?;
        // 2. The replaced segments leave the log and their files become `.deleted`.
        for r in &cleaned.replaces {
            if let Some(seg) = self.segments.remove(&r.base) {
                seg.unmap_indexes();
                drop(seg);
            }
            self.mapped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&x| x != r.base);
            for suffix in SUFFIXES {
                let from = segment_file(&dir, r.base, suffix);
                rename_if_exists(st, &from, &name_with(&dir, r.base, suffix, DELETED_SUFFIX))?;
            }
        }
        sync(st)?;
        // 3. `.swap` -> final names.
        // The `.txnindex` before the `.log`, whose `.swap` keeps the swap decided until last.
        rename_if_exists(
            st,
            &name_with(&dir, base, TXN_INDEX_SUFFIX, SWAP_SUFFIX),
            &segment_file(&dir, base, TXN_INDEX_SUFFIX),
        )?;
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let from = name_with(&dir, base, suffix, SWAP_SUFFIX);
            let to = segment_file(&dir, base, suffix);
            st.rename(&from, &to).map_err(|e| LogError::io(&from, e))?;
        }
        sync(st)?;
        // 4. Open handles (a fetch being sent) keep the removed files readable.
        for r in &cleaned.replaces {
            for suffix in SUFFIXES {
                remove_if_exists(st, &name_with(&dir, r.base, suffix, DELETED_SUFFIX))?;
            }
        }
        let seg = match Segment::open_checked(st, &dir, base, &self.config, false, now_ms)? {
            Some(s) => s,
            None => {
                let (mut s, _) =
                    Segment::open_and_rebuild(st, &dir, base, &self.config, false, false, now_ms)?;
                s.close_indexes(st, true)?;
                s
            }
        };
        let mut seg = seg;
        if let Err(reason) = seg.load_txn_index_if_present(st)? {
            return Err(LogError::Corrupt {
                path: segment_file(&dir, base, TXN_INDEX_SUFFIX),
                reason,
            });
        }
        self.segments.insert(base, seg);
        Ok(())
    }

    /// Records that everything below `offset` is clean (the `cleaner-offset-checkpoint`).
    pub(crate) fn set_first_dirty_offset(&mut self, offset: i64) -> Result<()> {
        if self.cleaning.first_dirty != Some(offset) {
            self.cleaning.first_dirty = None;
            write_checkpoint(&*self.storage, &self.dir, CLEANER_OFFSET_FILE, offset)?;
            self.cleaning.first_dirty = Some(offset);
        }
        Ok(())
    }
}
