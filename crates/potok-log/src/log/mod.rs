//! [`Log`]: one partition's ordered set of segments, with append, read, truncation, retention,
//! flushing, checkpoints and recovery on open.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use potok_records::{LeaderEpoch, Offset};

use crate::checkpoint::{
    write_checkpoint, write_clean_shutdown, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
};
use crate::flusher::{BackgroundFlusher, FlushTracker};
use crate::leader_epoch::{EpochEntry, LeaderEpochCache};
use crate::producer_state::{self, ProducerStateManager};
use crate::segment::Segment;
use crate::storage::Storage;
use crate::{LogConfig, LogError, Result};

mod append;
pub(crate) mod cleaning;
mod flush;
mod open;
mod read;
mod retention;
mod truncate;

pub use read::ReadSlice;
pub use retention::DeletedSegments;

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// Largest batch max timestamp among the appended batches (-1 when none has one).
    pub max_timestamp: i64,
    /// Last offset of the batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: Offset,
    /// The append time stamped into the batches under `LogAppendTime`, else `None`.
    pub log_append_time_ms: Option<i64>,
    /// Number of batches appended.
    pub batches: usize,
    /// Number of records appended (sum of the batches' record counts).
    pub records: u64,
    /// Bytes appended.
    pub bytes: usize,
    /// The log start offset after the append.
    pub log_start_offset: Offset,
    /// The batch was a retry of an idempotent batch already in the log: nothing was written,
    /// and the offsets and timestamp above are the original's (the broker acknowledges it as
    /// Kafka does, with no error and the original base offset).
    pub duplicate: bool,
}

/// Summary of an [`Log::open`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous process closed the log cleanly, so no segment was scanned.
    pub clean_shutdown: bool,
    /// Base offsets of the segments whose batches were scanned and CRC-checked.
    pub scanned_segments: Vec<i64>,
    /// Bytes cut off torn or invalid tails.
    pub truncated_bytes: u64,
    /// Base offsets of segments deleted because an earlier segment had to be truncated.
    pub deleted_segments: Vec<i64>,
    /// Base offsets of segments whose index files were rebuilt.
    pub rebuilt_indexes: Vec<i64>,
    /// Closed segments with invalid data in them that could not be repaired; their data from
    /// the reported byte position on is not served.
    pub corrupt_segments: Vec<(i64, u64, String)>,
    /// Offset of the producer state snapshot the producer state was loaded from, if any.
    pub producer_snapshot: Option<Offset>,
    /// Idempotent batches replayed into the producer state after that snapshot.
    pub producer_batches_replayed: u64,
}

/// What a data directory's checkpoint files say about one partition, for
/// [`Log::open_managed`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirCheckpoint {
    /// The data directory's clean-shutdown marker was present and this partition was listed.
    pub clean_shutdown: bool,
    /// The partition's entry in the directory's `recovery-point-offset-checkpoint`.
    pub recovery_point: Option<i64>,
    /// The partition's entry in the directory's `log-start-offset-checkpoint`.
    pub log_start_offset: Option<i64>,
}

/// A partition's log. See the crate docs for the API overview.
///
/// Thread-safety: `Log` is `Send + Sync`; mutating methods take `&mut self`, so the broker
/// wraps each log in a `Mutex` (never held across an `.await`). Reads take `&self`; the only
/// interior mutability is the small bounded set of memory-mapped closed indexes, guarded by
/// `mapped` (a leaf lock: nothing else is locked while it is held).
///
/// A `Log` must be the only writer of its directory; files are changed only through its
/// [`Storage`].
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    storage: Arc<dyn Storage>,
    /// Segments by base offset; the last is the active one. Never empty.
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    /// Records appended since the last flush (`flush.messages`).
    unflushed_records: u64,
    /// Clock of the first append since the last flush (`flush.ms`).
    first_unflushed_ms: Option<i64>,
    /// Base offsets of closed segments whose indexes are mapped, oldest first.
    mapped: Mutex<VecDeque<i64>>,
    /// Set when an IO failure left the files and memory possibly disagreeing.
    offline: bool,
    last_recovery: RecoveryReport,
    /// Idempotent producers' epochs and last batches (see [`crate::producer_state`]); always
    /// reflects every batch below the log end offset.
    producers: ProducerStateManager,
    /// Clock of the last `producer.id.expiration.ms` sweep.
    last_expiration_check_ms: i64,
    /// The values the two checkpoint files hold on disk (`None`: unknown or absent), so that
    /// unchanged values are not rewritten: every rewrite costs two fsyncs, and opening and
    /// closing thousands of partitions must not pay them for nothing (issue #14).
    on_disk: OnDisk,
    /// Epoch -> start offset of the batches in the log (`leader-epoch-checkpoint`).
    epochs: LeaderEpochCache,
    /// State the log cleaner keeps with the log (see `log/cleaning.rs`).
    cleaning: cleaning::CleaningState,
    /// The caller keeps the recovery point, log start offset and clean-shutdown marker in
    /// per-data-directory files ([`Log::open_managed`]); the log writes none of its own.
    managed: bool,
    /// Runs the fsyncs of rolls and of `flush.ms` off the appending thread when set (see
    /// [`crate::flusher`]); `None` runs them inline.
    background: Option<Arc<BackgroundFlusher>>,
    /// What this log's background flushes have completed; the recovery point follows it.
    flushes: Arc<FlushTracker>,
}

/// What [`Log`] knows to be on disk, to skip rewriting unchanged files.
#[derive(Debug, Default, Clone, Copy)]
struct OnDisk {
    recovery_point: Option<i64>,
    log_start_offset: Option<i64>,
    /// The offset of a producer-state snapshot known to exist.
    producer_snapshot: Option<i64>,
}

fn last_segment(segments: &BTreeMap<i64, Segment>) -> Result<&Segment> {
    segments
        .values()
        .next_back()
        .ok_or_else(|| LogError::InvalidConfig("log has no segments".into()))
}

impl Log {
    /// What the last [`Log::open`] found and repaired.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.last_recovery
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the configuration (a topic config change). Takes effect for later appends,
    /// rolls and retention runs; existing index files keep their size until the next roll.
    pub fn set_config(&mut self, config: LogConfig) -> Result<()> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// The first offset that may be read.
    pub fn log_start_offset(&self) -> Offset {
        Offset(self.log_start_offset)
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> Offset {
        Offset(
            self.segments
                .values()
                .next_back()
                .map_or(self.log_start_offset, |s| s.next_offset()),
        )
    }

    /// Offset below which everything is fsynced.
    ///
    /// With a background flusher this includes the flushes completed so far, so it may lag the
    /// last roll by the time its fsync takes.
    pub fn recovery_point(&self) -> Offset {
        let flushed = self.flushes.state().flushed_to.unwrap_or(i64::MIN);
        Offset(
            self.recovery_point
                .max(flushed.min(self.log_end_offset().0)),
        )
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }

    /// Base offsets of the segments, oldest first (the last is the active segment).
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.segments.keys().map(|&b| Offset(b)).collect()
    }

    /// Number of closed segments whose indexes are currently memory-mapped (bounded by
    /// `max_mapped_closed_indexes`).
    pub fn mapped_closed_indexes(&self) -> usize {
        self.segments
            .values()
            .take(self.segments.len().saturating_sub(1))
            .filter(|s| s.indexes_mapped())
            .count()
    }

    /// `(offset index entries, time index entries)` of the segment with base `base`, for tests
    /// and diagnostics.
    pub fn index_entries(&self, base: Offset) -> Option<(usize, usize)> {
        self.segments.get(&base.0).map(|s| s.index_entries())
    }

    fn check_online(&self) -> Result<()> {
        if self.offline || self.flushes.failed() {
            Err(LogError::Offline)
        } else {
            Ok(())
        }
    }

    /// The first offset of the earliest ongoing transaction, if any (Kafka's first unstable
    /// offset). Never below the log start offset: Kafka's `UnifiedLog` raises it there when
    /// retention or DeleteRecords removed the transaction's first batches.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.producers
            .first_unstable_offset()
            .map(|o| Offset(o.0.max(self.log_start_offset)))
    }

    /// The last stable offset (KIP-98): `read_committed` consumers read below it. It is the
    /// high watermark the caller keeps, lowered to the first offset of the earliest ongoing
    /// transaction.
    pub fn last_stable_offset(&self, high_watermark: Offset) -> Offset {
        match self.first_unstable_offset() {
            Some(o) => o.min(high_watermark),
            None => high_watermark,
        }
    }

    /// The idempotent producers' state (DescribeProducers, tests).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producers
    }

    /// Forgets producers whose last batch is `producer.id.expiration.ms` old (Kafka's
    /// `removeExpiredProducers`). Appends run this every 10 minutes of the injected clock on
    /// their own (`producer.id.expiration.check.interval.ms`); the broker may call it too.
    /// Returns how many were removed.
    pub fn remove_expired_producers(&mut self, now_ms: i64) -> usize {
        self.last_expiration_check_ms = now_ms;
        self.producers
            .remove_expired(now_ms, self.config.producer_id_expiration_ms)
    }

    /// Drops the leader-epoch entries below the (advanced) log start offset.
    ///
    /// The file is replaced without fsyncs, because retention and DeleteRecords do this under
    /// the partition's lock (Kafka made the same change in KAFKA-15046 after its produce
    /// latency spiked on these fsyncs). Losing the write is harmless: an older file's entries
    /// below the log start are trimmed again on open, and an unreadable file is rebuilt from
    /// the batches.
    fn truncate_epochs_from_start(&mut self) -> Result<()> {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.write_unsynced(&*self.storage)?;
        }
        Ok(())
    }

    /// Records that `epoch` starts at the log end offset, as Kafka's `Partition.makeLeader` does
    /// (`maybeAssignEpochStartOffset`) when this replica becomes leader in `epoch`, so that
    /// OffsetForLeaderEpoch for the current epoch answers the log end offset even before the
    /// first batch of the epoch is written.
    pub fn assign_leader_epoch(&mut self, epoch: LeaderEpoch) -> Result<()> {
        self.check_online()?;
        let leo = self.log_end_offset().0;
        if self.epochs.assign(epoch.0, leo) {
            self.epochs.write(&*self.storage)?;
        }
        Ok(())
    }

    /// The leader-epoch cache's entries, oldest first (`leader-epoch-checkpoint`).
    pub fn leader_epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// The epoch of the newest batch that carried one.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.epochs.latest_epoch().map(LeaderEpoch)
    }

    /// The epoch of the batch containing `offset`, as the cache knows it (Kafka's
    /// `epochForOffset`, used by ListOffsets).
    pub fn epoch_for_offset(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.epochs.epoch_for_offset(offset.0).map(LeaderEpoch)
    }

    /// OffsetForLeaderEpoch (KIP-101/KIP-279), Kafka's `LeaderEpochFileCache.endOffsetFor`:
    /// the largest known epoch `<= epoch` and the offset where it ended (the log end offset
    /// for the latest epoch). `None` is Kafka's (`UNDEFINED_EPOCH`, `UNDEFINED_EPOCH_OFFSET`):
    /// `epoch` is -1, newer than every known epoch, or the cache is empty.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let (e, o) = self.epochs.end_offset_for(epoch.0, self.log_end_offset().0);
        (e != crate::leader_epoch::UNDEFINED_EPOCH
            || o != crate::leader_epoch::UNDEFINED_EPOCH_OFFSET)
            .then_some((LeaderEpoch(e), Offset(o)))
    }

    /// Flushes everything, trims the active segment's indexes, writes both checkpoints and the
    /// clean-shutdown marker, so the next open skips recovery.
    pub fn close(mut self) -> Result<()> {
        self.check_online()?;
        self.flush()?;
        if let Some(seg) = self.segments.values_mut().next_back() {
            seg.close_indexes(&*self.storage, true)?;
        }
        self.checkpoint_recovery_point(self.recovery_point)?;
        self.checkpoint_log_start(self.log_start_offset)?;
        let leo = self.log_end_offset().0;
        // A log nothing was ever appended to has no producer state and needs no snapshot to
        // rebuild it (Kafka's `takeSnapshot` likewise skips when nothing was appended since the
        // last one); writing one cost two fsyncs per never-written partition at every shutdown.
        if leo > 0 || !self.producers.is_empty() {
            self.snapshot_producers(leo)?;
        }
        if self.managed {
            return Ok(());
        }
        write_clean_shutdown(&*self.storage, &self.dir)
    }

    /// Makes the recovery-point checkpoint hold `offset`, writing only if it does not already.
    fn checkpoint_recovery_point(&mut self, offset: i64) -> Result<()> {
        if !self.managed && self.on_disk.recovery_point != Some(offset) {
            // Forget the old value first: after a failed write the file's content is unknown.
            self.on_disk.recovery_point = None;
            write_checkpoint(&*self.storage, &self.dir, RECOVERY_POINT_FILE, offset)?;
            self.on_disk.recovery_point = Some(offset);
        }
        Ok(())
    }

    /// Makes the log-start-offset checkpoint hold `offset`, writing only if it does not already.
    fn checkpoint_log_start(&mut self, offset: i64) -> Result<()> {
        if !self.managed && self.on_disk.log_start_offset != Some(offset) {
            self.on_disk.log_start_offset = None;
            write_checkpoint(&*self.storage, &self.dir, LOG_START_OFFSET_FILE, offset)?;
            self.on_disk.log_start_offset = Some(offset);
        }
        Ok(())
    }

    /// Writes a producer-state snapshot at `offset` unless one at that offset is known to
    /// exist: the state at an offset only changes by appends, which move the offset (Kafka's
    /// `ProducerStateManager.takeSnapshot` likewise skips an offset it has a snapshot for).
    fn snapshot_producers(&mut self, offset: i64) -> Result<()> {
        if self.on_disk.producer_snapshot != Some(offset) {
            self.on_disk.producer_snapshot = None;
            producer_state::write_snapshot(&*self.storage, &self.dir, offset, &self.producers)?;
            self.on_disk.producer_snapshot = Some(offset);
        }
        Ok(())
    }

    /// Deletes the whole partition directory (the partition was deleted or moved away).
    pub fn delete(self) -> Result<()> {
        // A background flush still running would write into the directory being removed.
        self.flushes.wait_idle_and_take();
        let dir = self.dir.clone();
        let storage = Arc::clone(&self.storage);
        drop(self);
        storage
            .remove_dir_all(&dir)
            .map_err(|e| LogError::io(&dir, e))
    }
}
