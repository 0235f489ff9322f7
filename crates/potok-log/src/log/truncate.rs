//! Truncating a [`Log`] from the end (a follower diverging from its leader) or replacing it
//! with an empty log at a new offset.

use std::sync::Arc;

use potok_records::Offset;

use super::Log;
use crate::producer_state::{self};
use crate::segment::Segment;
use crate::{LogError, Result};

impl Log {
    /// Removes all batches whose last offset is `>= offset` (so the log end offset becomes
    /// `offset`, or the start of the batch containing it). Used by followers. A target below
    /// the first segment empties the log and restarts it at `offset`. Returns whether anything
    /// was removed.
    pub fn truncate_to(&mut self, offset: Offset, now_ms: i64) -> Result<bool> {
        // A cleaning prepared before this must not swap segments that were cut and rewritten.
        self.cleaning.truncations += 1;
        self.check_online()?;
        // A background flush still running could write a producer snapshot for data about to
        // be removed; let it finish first (truncation is rare: a follower diverging).
        self.await_flushes()?;
        if offset.0 < 0 {
            return Err(self.out_of_range(offset.0));
        }
        if offset.0 >= self.log_end_offset().0 {
            // Nothing to remove from the log, but the epoch cache may end with an epoch that
            // starts at the log end: this replica was made leader in it and appended nothing
            // before another leader took over. Kept, it is the follower's `LastFetchedEpoch`
            // for ever, the new leader answers DivergingEpoch with this same end offset on
            // every fetch, and the follower never catches up (the chaos runs' stall,
            // docs/reliability.md). Kafka's `UnifiedLog.truncateTo` truncates the cache from
            // the end in this case too.
            let leo = self.log_end_offset().0;
            if self.epochs.truncate_from_end(leo) {
                self.epochs.write(&*self.storage)?;
            }
            return Ok(false);
        }
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        if offset.0 < first_base {
            self.truncate_fully_and_start_at(offset, now_ms)?;
            return Ok(true);
        }
        let result = self.truncate_segments(offset.0);
        if result.is_err() {
            self.offline = true;
        }
        result?;
        let leo = self.log_end_offset().0;
        // Kafka lowers the log start offset to the truncation target; the target may sit
        // inside a removed batch, so the new log end offset bounds it too (log start <= LEO).
        let new_start = self.log_start_offset.min(offset.0).min(leo);
        if new_start != self.log_start_offset {
            self.log_start_offset = new_start;
            self.checkpoint_log_start(new_start)?;
        }
        if self.recovery_point > leo {
            self.recovery_point = leo;
            self.checkpoint_recovery_point(leo)?;
        }
        if self.epochs.truncate_from_end(leo) {
            self.epochs.write(&*self.storage)?;
        }
        // The removed batches may have been any producer's latest: rebuild the state from the
        // newest snapshot that is still valid, as Kafka's `truncateAndReload` does.
        self.load_producer_state(now_ms, None)?;
        Ok(true)
    }

    fn truncate_segments(&mut self, offset: i64) -> Result<()> {
        // Newest first, so a crash part-way leaves a prefix of the old log (a truncation not yet
        // finished, which the follower repeats) rather than a log with a hole in it.
        let later: Vec<i64> = self
            .segments
            .range(offset + 1..)
            .map(|(&b, _)| b)
            .rev()
            .collect();
        for b in later {
            if let Some(seg) = self.segments.remove(&b) {
                seg.delete_files(&*self.storage)?;
            }
            self.mapped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&x| x != b);
        }
        let storage = Arc::clone(&self.storage);
        let config = self.config.clone();
        let seg = self
            .segments
            .values_mut()
            .next_back()
            .ok_or_else(|| LogError::InvalidConfig("log has no segments".into()))?;
        let base = seg.base;
        seg.make_active(&*storage, &config)?;
        seg.truncate_to(&*storage, offset)?;
        self.mapped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|&x| x != base);
        Ok(())
    }

    /// Deletes every segment and starts an empty log at `offset` (a follower whose fetch
    /// offset fell outside the leader's log).
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset, now_ms: i64) -> Result<()> {
        self.cleaning.truncations += 1;
        if offset.0 < 0 {
            return Err(self.out_of_range(offset.0));
        }
        self.await_flushes()?;
        let all: Vec<i64> = self.segments.keys().rev().copied().collect();
        for b in all {
            if let Some(seg) = self.segments.remove(&b) {
                if let Err(e) = seg.delete_files(&*self.storage) {
                    self.offline = true;
                    return Err(e);
                }
            }
        }
        self.mapped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let seg = Segment::create(&*self.storage, &self.dir, offset.0, &self.config, now_ms)?;
        self.segments.insert(offset.0, seg);
        self.log_start_offset = offset.0;
        self.recovery_point = offset.0;
        self.unflushed_records = 0;
        self.first_unflushed_ms = None;
        self.checkpoint_log_start(offset.0)?;
        self.checkpoint_recovery_point(offset.0)?;
        self.producers.clear();
        self.on_disk.producer_snapshot = None;
        for (_, path) in producer_state::list_snapshots(&*self.storage, &self.dir)? {
            producer_state::remove_snapshot(&*self.storage, &path)?;
        }
        if self.epochs.clear() {
            self.epochs.write(&*self.storage)?;
        }
        Ok(())
    }
}
