//! Flushing and rolling a [`Log`]: the flush policy (`flush.messages`, `flush.ms`), segment
//! roll, and the hand-off of their fsyncs to a [`BackgroundFlusher`] (see [`crate::flusher`]).
//!
//! Without a flusher everything runs inline, under the caller's lock. With one, a roll does
//! only what the next append needs (the old segment's final time index entry and its indexes
//! written into the page cache, the new segment's files created) and queues the rest: the
//! fdatasync of every `.log` file from the recovery point up to the new segment, the fsync of
//! the old segment's indexes and of the directory, then the producer-state snapshot of the
//! roll. The recovery point advances when that job completes (Kafka's `UnifiedLog.roll`
//! schedules `flushUptoOffsetExclusive` the same way). A `flush.ms` flush is queued likewise.
//! `flush.messages` and `fsync_before_ack` flush inline, because their caller asked for the
//! data to be durable before the append returns.
//!
//! A log without its own checkpoint files ([`Log::open_managed`]) needs nothing else; one with
//! them writes its recovery-point checkpoint with a background flusher only on truncation and
//! close, so a crash may scan a little more than necessary, never less.

use std::path::PathBuf;
use std::sync::Arc;

use super::{last_segment, Log};
use crate::flusher::{BackgroundFlusher, FlushJob};
use crate::producer_state;
use crate::segment::Segment;
use crate::{LogError, Result};

impl Log {
    /// Runs this log's rolls' and `flush.ms` flushes' fsyncs on `flusher`'s threads from now on
    /// (`None`: inline again). Jobs already queued complete as before.
    pub fn set_background_flusher(&mut self, flusher: Option<Arc<BackgroundFlusher>>) {
        self.background = flusher;
    }

    /// The background flusher in use, if any.
    pub fn background_flusher(&self) -> Option<Arc<BackgroundFlusher>> {
        self.background.clone()
    }

    /// Folds the background flushes completed so far into the recovery point; a failed one
    /// takes the log offline.
    pub(super) fn absorb_flushes(&mut self) {
        let s = self.flushes.state();
        if s.failure.is_some() {
            self.offline = true;
        }
        if let Some(f) = s.flushed_to {
            let f = f.min(self.log_end_offset().0);
            self.recovery_point = self.recovery_point.max(f);
        }
    }

    /// Waits until this log's background flushes have completed and folds them into the
    /// recovery point. Called before anything that removes data (truncation) or needs every
    /// flush done (a synchronous flush, close), so no job can write a producer snapshot for
    /// data that is gone or be overtaken by a later state of the log.
    pub(super) fn await_flushes(&mut self) -> Result<()> {
        let s = self.flushes.wait_idle_and_take();
        if s.failure.is_some() {
            self.offline = true;
            return Err(LogError::Offline);
        }
        if let Some(f) = s.flushed_to {
            let f = f.min(self.log_end_offset().0);
            self.recovery_point = self.recovery_point.max(f);
        }
        Ok(())
    }

    /// The job that makes everything below `upto` durable: the `.log` files of every segment
    /// from the one holding the recovery point up to `upto`.
    fn flush_job(
        &self,
        upto: i64,
        indexes: Vec<PathBuf>,
        snapshot: Option<(PathBuf, Vec<u8>)>,
    ) -> FlushJob {
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        let logs = self
            .segments
            .range(from..upto)
            .map(|(_, s)| (s.log_path().to_path_buf(), Arc::clone(s.file())))
            .collect();
        // Transaction indexes changed since their last fsync go with their segments' data
        // (Kafka's `LogSegment.flush` syncs the `.txnindex` with the `.log`).
        let mut indexes = indexes;
        indexes.extend(
            self.segments
                .range(from..upto)
                .filter(|(_, s)| s.txn.is_dirty())
                .map(|(_, s)| s.txn.path().to_path_buf()),
        );
        FlushJob {
            storage: Arc::clone(&self.storage),
            dir: self.dir.clone(),
            logs,
            indexes,
            snapshot,
            upto,
            tracker: Arc::clone(&self.flushes),
        }
    }

    /// Queues `job` on the background flusher, or runs it here when the queue is full.
    fn submit(&mut self, job: FlushJob) -> Result<()> {
        self.flushes.started();
        let rejected = match &self.background {
            Some(b) => b.submit(job),
            None => Some(job),
        };
        if let Some(job) = rejected {
            job.run();
            self.absorb_flushes();
            self.check_online()?;
        }
        Ok(())
    }

    /// Flushes if `flush.ms` has passed since the first unflushed append. The broker calls this
    /// periodically (Kafka's `log.flush.scheduler.interval.ms`); appends call it too. With a
    /// background flusher the flush is queued and the recovery point advances when it is done.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool> {
        if let (Some(ms), Some(first)) = (self.config.flush_ms, self.first_unflushed_ms) {
            if now_ms.saturating_sub(first) >= ms {
                if self.background.is_some() {
                    self.check_online()?;
                    self.absorb_flushes();
                    let leo = self.log_end_offset().0;
                    self.unflushed_records = 0;
                    self.first_unflushed_ms = None;
                    if leo > self.recovery_point {
                        let job = self.flush_job(leo, Vec::new(), None);
                        self.submit(job)?;
                    }
                } else {
                    self.flush()?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// fsyncs every segment with unflushed data and advances the recovery point to the log end
    /// offset (in memory; the checkpoint file is written on roll and close). A failed fsync
    /// takes the log offline, because the page cache may have dropped the data (as Kafka does).
    /// Background flushes in flight are waited for first.
    pub fn flush(&mut self) -> Result<()> {
        self.check_online()?;
        self.await_flushes()?;
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for seg in self.segments.range_mut(from..).map(|(_, s)| s) {
            if let Err(e) = seg.flush(&*self.storage) {
                self.offline = true;
                return Err(e);
            }
        }
        self.recovery_point = self.log_end_offset().0;
        self.unflushed_records = 0;
        self.first_unflushed_ms = None;
        Ok(())
    }

    /// Rolls to a new active segment at the log end offset (no-op when the active segment is
    /// empty). The old segment's indexes get their final time entry and are trimmed; it is
    /// flushed and the recovery point checkpointed, as Kafka's roll does: inline, or on the
    /// background flusher when the log has one.
    pub fn roll(&mut self, now_ms: i64) -> Result<()> {
        self.check_online()?;
        let leo = self.log_end_offset().0;
        self.roll_at_or_go_offline(leo, now_ms)
    }

    /// A roll that fails half-way (old segment closed, new one missing) leaves no segment to
    /// append to, so any failure takes the log offline until it is reopened and recovered.
    pub(super) fn roll_at_or_go_offline(&mut self, new_base: i64, now_ms: i64) -> Result<()> {
        let r = self.roll_at(new_base, now_ms);
        if r.is_err() {
            self.offline = true;
        }
        r
    }

    fn roll_at(&mut self, new_base: i64, now_ms: i64) -> Result<()> {
        let background = self.background.is_some();
        if background {
            self.absorb_flushes();
            self.check_online()?;
        }
        let new_base = new_base.max(self.log_end_offset().0);
        let active_base = last_segment(&self.segments)?.base;
        let active_empty = last_segment(&self.segments)?.is_empty();
        let mut written_indexes = Vec::new();
        if active_empty {
            if active_base == new_base {
                return Ok(());
            }
            // An empty active segment is replaced rather than kept (only a follower jumping
            // over an offset gap gets here).
            if let Some(seg) = self.segments.remove(&active_base) {
                seg.delete_files(&*self.storage)?;
            }
        } else {
            let result = (|| {
                let seg = self
                    .segments
                    .values_mut()
                    .next_back()
                    .ok_or_else(|| LogError::InvalidConfig("log has no segments".into()))?;
                // With a flusher the indexes only reach the page cache here (reads of the
                // closed segment map them from there); the job fsyncs them.
                seg.close_indexes(&*self.storage, !background)?;
                if background {
                    let [_, index, time_index, _] = seg.paths();
                    written_indexes = vec![index, time_index];
                    Ok(())
                } else {
                    seg.flush(&*self.storage)
                }
            })();
            if let Err(e) = result {
                self.offline = true;
                return Err(e);
            }
        }
        let seg = Segment::create(&*self.storage, &self.dir, new_base, &self.config, now_ms)?;
        self.segments.insert(new_base, seg);
        if background {
            // Kafka snapshots the producer state on every roll, so recovery replays at most
            // the active segment. The state at `new_base` is encoded now and written by the
            // job after the data below `new_base` is durable.
            let snapshot = (self.on_disk.producer_snapshot != Some(new_base)).then(|| {
                (
                    producer_state::snapshot_file(&self.dir, new_base),
                    self.producers.encode_snapshot(new_base),
                )
            });
            if snapshot.is_some() {
                // A failed write takes the log offline, so the value cannot mislead.
                self.on_disk.producer_snapshot = Some(new_base);
            }
            let job = self.flush_job(new_base, written_indexes, snapshot);
            return self.submit(job);
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))?;
        // Everything before the new segment is durable now.
        let from = self
            .segments
            .range(..=self.recovery_point)
            .next_back()
            .map_or(i64::MIN, |(&b, _)| b);
        for seg in self.segments.range_mut(from..new_base).map(|(_, s)| s) {
            seg.flush(&*self.storage)?;
        }
        if new_base > self.recovery_point {
            self.recovery_point = new_base;
            self.checkpoint_recovery_point(new_base)?;
        }
        // Kafka snapshots the producer state on every roll, so recovery replays at most the
        // active segment. Everything below `new_base` is durable now, so the snapshot never
        // describes data a crash could lose.
        self.snapshot_producers(new_base)
    }
}
