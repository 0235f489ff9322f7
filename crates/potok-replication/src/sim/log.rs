//! An in-memory partition log for the tests and the simulation: records of `(epoch, value)`
//! at consecutive offsets, a leader-epoch cache kept as Kafka's `LeaderEpochFileCache` keeps it,
//! and a flushed prefix that survives a crash (Kafka's default flush settings leave the tail to
//! the page cache, so a machine crash loses it).

use potok_records::{LeaderEpoch, Offset};

use crate::epochs::EpochStart;
use crate::follower::LogView;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec {
    pub epoch: LeaderEpoch,
    pub value: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemLog {
    pub start: i64,
    /// The record at offset `start + i` is `records[i]`.
    pub records: Vec<Rec>,
    pub epochs: Vec<EpochStart>,
    /// Offsets below this are on disk.
    pub flushed: i64,
    /// The lowest log end since the simulation's checker last looked: records from here on
    /// may have changed.
    pub low_water: i64,
}

impl MemLog {
    pub fn end(&self) -> Offset {
        Offset(self.start + self.records.len() as i64)
    }

    pub fn view(&self) -> LogView<'_> {
        LogView {
            log_start: Offset(self.start),
            log_end: self.end(),
            epochs: &self.epochs,
        }
    }

    pub fn get(&self, offset: i64) -> Option<Rec> {
        let i = usize::try_from(offset - self.start).ok()?;
        self.records.get(i).copied()
    }

    /// Kafka's `LeaderEpochFileCache.assign`: a newer epoch starts at `start`; entries that
    /// would no longer be monotonic (same or newer epoch, same or later start) go first.
    pub fn assign_epoch(&mut self, epoch: LeaderEpoch, start: Offset) {
        if let Some(last) = self.epochs.last() {
            if last.epoch == epoch && last.start_offset <= start {
                return;
            }
        }
        self.epochs
            .retain(|e| e.epoch < epoch && e.start_offset < start);
        self.epochs.push(EpochStart {
            epoch,
            start_offset: start,
        });
    }

    /// Appends `rec` at the log end, recording its epoch in the cache when it is a new one.
    pub fn append(&mut self, rec: Rec) -> Offset {
        let offset = self.end();
        if self.epochs.last().is_none_or(|e| e.epoch < rec.epoch) {
            self.assign_epoch(rec.epoch, offset);
        }
        self.records.push(rec);
        offset
    }

    /// Cuts the log to end at `to`; the epoch cache loses entries starting at or after it
    /// (Kafka's `truncateFromEnd`).
    pub fn truncate(&mut self, to: Offset) {
        let keep = usize::try_from(to.0 - self.start).unwrap_or(0);
        self.records.truncate(keep);
        let end = self.end().0;
        self.epochs.retain(|e| e.start_offset.0 < end);
        self.flushed = self.flushed.min(end);
        self.low_water = self.low_water.min(end);
    }

    /// Deletes the records below `to` (DeleteRecords, retention, or a follower following its
    /// leader's log start); the epoch cache keeps the entry covering `to`, moved to start there
    /// (Kafka's `truncateFromStart`).
    pub fn advance_start(&mut self, to: Offset) {
        let to = to.0.min(self.end().0);
        if to <= self.start {
            return;
        }
        self.records.drain(..(to - self.start) as usize);
        self.start = to;
        let covering = self.epochs.partition_point(|e| e.start_offset.0 <= to);
        if covering > 0 {
            self.epochs.drain(..covering - 1);
            self.epochs[0].start_offset = self.epochs[0].start_offset.max(Offset(to));
        }
        self.flushed = self.flushed.max(to);
    }

    /// Kafka's `truncateFullyAndStartAt`.
    pub fn truncate_fully_and_start_at(&mut self, start: Offset) {
        self.records.clear();
        self.epochs.clear();
        self.start = start.0;
        self.flushed = start.0;
        self.low_water = self.low_water.min(start.0);
    }
}
