//! The leader-epoch cache of one partition log and its `leader-epoch-checkpoint` file, after
//! Kafka's `LeaderEpochFileCache` and `LeaderEpochCheckpointFile` (KIP-101, KIP-279).
//!
//! The cache maps each partition leader epoch found in the log to the offset of the first batch
//! written in that epoch, in increasing order of both. Appends add an entry when a batch carries
//! a higher epoch than the latest one; truncating the log removes entries from the end, and
//! advancing the log start offset removes them from the start (the last removed entry is kept,
//! moved up to the new start offset, so the epoch of the first remaining batch stays known).
//!
//! The file is ASCII text like Kafka's: a version line `0`, a line with the number of entries,
//! then one `epoch startOffset` line per entry, each line ending in `\n`. It is replaced
//! atomically (`leader-epoch-checkpoint.tmp`, fsync, rename, directory fsync) every time the
//! cache changes, so a crash leaves either the old or the new cache. The first file of a log
//! (a new partition, or one whose file was missing or invalid at open) is written the same way
//! without the fsyncs: a crash can only leave it missing or invalid, and the cache is then
//! rebuilt from the log (see `Log::create_managed`).

use std::path::{Path, PathBuf};

use crate::storage::{read_exact_at, Storage};
use crate::{LogError, Result};

/// The leader-epoch checkpoint's file name (Kafka's).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Kafka's `UNDEFINED_EPOCH`: no epoch is known.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset is known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// A larger checkpoint is refused as corrupt: each entry takes at most 32 bytes, and a log
/// would need over a hundred thousand leader changes to get there.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// One entry: `epoch` began at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The partition leader epoch.
    pub epoch: i32,
    /// Offset of the first batch written with that epoch.
    pub start_offset: i64,
}

/// The in-memory cache and the directory holding its checkpoint file.
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    dir: PathBuf,
    /// Increasing in both epoch and start offset.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`. Returns the cache and whether a valid file was found; a
    /// missing or unreadable file gives an empty cache (the caller rebuilds it from the log).
    pub(crate) fn load(storage: &dyn Storage, dir: &Path) -> Result<(LeaderEpochCache, bool)> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let empty = LeaderEpochCache {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        };
        if !storage.exists(&path).map_err(|e| LogError::io(&path, e))? {
            return Ok((empty, false));
        }
        let file = storage
            .open(&path, false)
            .map_err(|e| LogError::io(&path, e))?;
        let len = file.len().map_err(|e| LogError::io(&path, e))?;
        if len > MAX_FILE_BYTES {
            tracing::warn!(path = %path.display(), len, "leader-epoch checkpoint too large; rebuilding it from the log");
            return Ok((empty, false));
        }
        let mut buf = vec![0u8; len as usize];
        read_exact_at(&*file, &mut buf, 0).map_err(|e| LogError::io(&path, e))?;
        match parse(&buf) {
            Ok(entries) => Ok((
                LeaderEpochCache {
                    dir: dir.to_path_buf(),
                    entries,
                },
                true,
            )),
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "invalid leader-epoch checkpoint; rebuilding it from the log");
                Ok((empty, false))
            }
        }
    }

    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset` unless the latest entry already says so
    /// (Kafka's `assign`). Entries with an epoch or start offset at or above the new one are
    /// dropped first, so the cache stays monotonic. Negative epochs (batches written without
    /// one, `NO_PARTITION_LEADER_EPOCH`) are not recorded. Updates the file in memory only;
    /// returns whether the cache changed (the caller then calls [`Self::write`]).
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        while self
            .entries
            .last()
            .is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Removes the entries starting at or after `end_offset` (the log was truncated to it);
    /// returns whether anything changed.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() != before
    }

    /// Removes the entries starting at or before `start_offset` (the log start advanced) but
    /// keeps the last of them, moved to `start_offset`, as Kafka's `truncateFromStart` does;
    /// returns whether anything changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let removed = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        let Some(last) = removed
            .checked_sub(1)
            .and_then(|i| self.entries.get(i))
            .copied()
        else {
            return false;
        };
        if removed == 1 && last.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..removed);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last.epoch,
                start_offset,
            },
        );
        true
    }

    /// Forgets every entry (the log was emptied and restarted).
    pub(crate) fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Kafka's `endOffsetFor`: the largest epoch `<= requested` and the start offset of the
    /// first epoch after it (the end offset of the requested epoch), or `log_end_offset` when
    /// `requested` is the latest epoch. A requested epoch below every known one gives itself
    /// and the first start offset; an undefined or unknown-newer epoch gives
    /// (`UNDEFINED_EPOCH`, `UNDEFINED_EPOCH_OFFSET`).
    pub(crate) fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            None => (requested, higher.start_offset),
            Some(floor) => (floor.epoch, higher.start_offset),
        }
    }

    /// Kafka's `epochForOffset`: the epoch of the batch containing `offset` as far as the
    /// cache knows it.
    pub(crate) fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let mut previous = None;
        for e in &self.entries {
            if e.start_offset == offset {
                return Some(e.epoch);
            }
            if e.start_offset > offset {
                return previous;
            }
            previous = Some(e.epoch);
        }
        previous
    }

    /// An empty cache for `dir`, whose file does not exist yet.
    pub(crate) fn empty(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// Atomically replaces the checkpoint file with the cache's entries.
    pub(crate) fn write(&self, storage: &dyn Storage) -> Result<()> {
        let path = self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        crate::checkpoint::replace_file(storage, &self.dir, &path, self.text().as_bytes())
    }

    /// [`LeaderEpochCache::write`] without fsyncs, for changes whose loss recovery repairs
    /// (see `Log::truncate_epochs_from_start`).
    pub(crate) fn write_unsynced(&self, storage: &dyn Storage) -> Result<()> {
        let path = self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        crate::checkpoint::replace_file_unsynced(storage, &path, self.text().as_bytes())
    }

    fn text(&self) -> String {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        text
    }
}

/// Parses the file text; the entries must be strictly increasing in epoch and start offset and
/// non-negative, as the cache writes them.
fn parse(buf: &[u8]) -> std::result::Result<Vec<EpochEntry>, &'static str> {
    let text = std::str::from_utf8(buf).map_err(|_| "not UTF-8")?;
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err("unknown version");
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing or malformed entry count")?;
    if count > MAX_FILE_BYTES as usize / 4 {
        return Err("entry count too large");
    }
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        let line = lines.next().ok_or("fewer entries than the count")?;
        let mut parts = line.split_whitespace();
        let epoch: i32 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("malformed epoch")?;
        let start_offset: i64 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or("malformed start offset")?;
        if parts.next().is_some() || epoch < 0 || start_offset < 0 {
            return Err("malformed entry");
        }
        if entries
            .last()
            .is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset)
        {
            return Err("entries not increasing");
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    if lines.next().is_some() {
        return Err("trailing data");
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RealStorage;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            dir: PathBuf::new(),
            entries: entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        }
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_keeps_the_cache_monotonic() {
        let mut c = cache(&[]);
        assert!(c.assign(2, 0));
        assert!(!c.assign(2, 5), "same epoch later is not a new entry");
        assert!(c.assign(4, 10));
        assert!(
            !c.assign(-1, 20),
            "batches without an epoch are not recorded"
        );
        assert_eq!(pairs(&c), vec![(2, 0), (4, 10)]);
        // A lower epoch at a later offset replaces the higher entries (Kafka's
        // maybeTruncateNonMonotonicEntries).
        assert!(c.assign(3, 12));
        assert_eq!(pairs(&c), vec![(2, 0), (3, 12)]);
        // The same epoch at an earlier offset moves its start back.
        assert!(c.assign(3, 11));
        assert_eq!(pairs(&c), vec![(2, 0), (3, 11)]);
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(-1, 30), (-1, -1));
        assert_eq!(
            c.end_offset_for(5, 30),
            (5, 30),
            "latest epoch ends at the LEO"
        );
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(
            c.end_offset_for(4, 30),
            (3, 20),
            "unknown epoch: the floor epoch"
        );
        assert_eq!(c.end_offset_for(0, 30), (0, 0), "below every epoch");
        assert_eq!(c.end_offset_for(6, 30), (-1, -1), "newer than any epoch");
        assert_eq!(cache(&[]).end_offset_for(0, 30), (-1, -1));
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
        assert!(!c.truncate_from_end(15));
        assert!(c.truncate_from_start(12));
        assert_eq!(pairs(&c), vec![(3, 12)]);
        assert!(!c.truncate_from_start(12));
        assert!(
            !c.truncate_from_start(5),
            "below the first entry: nothing to do"
        );
        assert_eq!(c.epoch_for_offset(12), Some(3));
        assert_eq!(c.epoch_for_offset(11), None);
        assert_eq!(c.epoch_for_offset(100), Some(3));
    }

    #[test]
    fn file_round_trip_and_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let st = RealStorage;
        let (mut c, found) = LeaderEpochCache::load(&st, dir.path()).unwrap();
        assert!(!found);
        c.assign(0, 0);
        c.assign(7, 42);
        c.write(&st).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n7 42\n");
        let (back, found) = LeaderEpochCache::load(&st, dir.path()).unwrap();
        assert!(found);
        assert_eq!(pairs(&back), vec![(0, 0), (7, 42)]);
        for bad in [
            "1\n0\n",
            "0\n2\n0 0\n",
            "0\n1\n0 x\n",
            "0\n2\n3 0\n2 5\n",
            "0\n1\n0 0\nextra\n",
            "0\n1\n-1 0\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
