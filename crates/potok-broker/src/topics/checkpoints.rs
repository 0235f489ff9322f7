//! The data directory's checkpoint files as read at start, and the scoped-thread helper that
//! opens and closes partitions in parallel.

use super::*;

/// The data directory's checkpoint files as read at start.
pub(super) struct DirCheckpoints {
    /// The clean-shutdown marker was present.
    pub(super) clean: bool,
    pub(super) recovery_points: HashMap<(String, i32), i64>,
    pub(super) log_starts: HashMap<(String, i32), i64>,
}

impl DirCheckpoints {
    /// What the files say about one partition. A partition missing from the recovery points is
    /// recovered from its start even after a clean shutdown: nothing vouches for it.
    pub(super) fn partition(&self, topic: &str, p: i32) -> DirCheckpoint {
        let key = (topic.to_string(), p);
        let recovery_point = self.recovery_points.get(&key).copied();
        DirCheckpoint {
            clean_shutdown: self.clean && recovery_point.is_some(),
            recovery_point,
            log_start_offset: self.log_starts.get(&key).copied(),
        }
    }
}

/// `f` applied to every item on up to `threads` scoped threads; results in item order. Items
/// are handed out one at a time, so a slow item (a partition with much to recover) does not
/// hold up a whole share of the others.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(out) => out,
                // A panicking worker is a bug; re-raise it on the calling thread.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

impl TopicManager {
    /// Reads the data directory's `recovery-point-offset-checkpoint`,
    /// `log-start-offset-checkpoint` and clean-shutdown marker (Kafka's `LogManager` files).
    /// `None` when the directory has none yet (new, or written by a version that kept them per
    /// partition): each log then reads its own files once.
    pub(super) fn read_dir_checkpoints(&self) -> Result<Option<DirCheckpoints>> {
        let st = &*self.storage;
        let dir = &self.data_dir;
        let recovery = match potok_log::read_offsets_file(st, dir, RECOVERY_POINT_FILE) {
            Ok(None) => return Ok(None),
            Ok(Some(entries)) => Some(entries),
            Err(e) => {
                // Losing recovery points only costs longer scans (Kafka recovers every log).
                tracing::warn!(error = %e, "unreadable recovery point checkpoint; recovering every partition");
                None
            }
        };
        let clean = recovery.is_some() && potok_log::has_clean_shutdown(st, dir)?;
        let starts = potok_log::read_offsets_file(st, dir, LOG_START_OFFSET_FILE)?;
        let map = |entries: Option<Vec<OffsetEntry>>| -> HashMap<(String, i32), i64> {
            entries
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p, o)| ((t, p), o))
                .collect()
        };
        Ok(Some(DirCheckpoints {
            clean,
            recovery_points: map(recovery),
            log_starts: map(starts),
        }))
    }

    /// Writes the data directory's two checkpoint files from every open partition log (two
    /// file replacements, whatever the number of partitions). Kafka writes them every
    /// `log.flush.offset.checkpoint.interval.ms` and at shutdown; Potok also writes them at
    /// start, after DeleteRecords and after a topic deletion, so that a moved log start offset
    /// survives a crash and no entry of a deleted topic outlives it. A no-op after
    /// [`TopicManager::close_all`].
    pub fn write_dir_checkpoints(&self) -> Result<()> {
        let closed = lock(&self.dir_checkpoints);
        if *closed {
            return Ok(());
        }
        let mut recovery = Vec::new();
        let mut starts = Vec::new();
        for p in self.all_partitions() {
            if let Ok((rp, start)) =
                p.with_log(|log| Ok((log.recovery_point(), log.log_start_offset())))
            {
                recovery.push((p.topic.clone(), p.index, rp.0));
                starts.push((p.topic.clone(), p.index, start.0));
            }
        }
        self.write_dir_files(&recovery, &starts)
    }

    pub(super) fn write_dir_files(
        &self,
        recovery: &[OffsetEntry],
        starts: &[OffsetEntry],
    ) -> Result<()> {
        let st = &*self.storage;
        potok_log::write_offsets_file(st, &self.data_dir, LOG_START_OFFSET_FILE, starts)?;
        potok_log::write_offsets_file(st, &self.data_dir, RECOVERY_POINT_FILE, recovery)?;
        Ok(())
    }
}

/// Kafka's `replication-offset-checkpoint`: every local replica's high watermark, in the
/// data directory (the same text format as the recovery points: version 0, a count, then
/// `topic partition offset` lines).
pub const HW_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

impl TopicManager {
    /// Reads `replication-offset-checkpoint` into the high watermarks partitions start from
    /// (Kafka's `ReplicaManager` reads it when a log is first made leader or follower). An
    /// unreadable file only costs a lower starting high watermark: a follower learns the
    /// leader's from its first fetch, a leader from its followers' fetches.
    pub(super) fn read_hw_checkpoint(&self) {
        match potok_log::read_offsets_file(&*self.storage, &self.data_dir, HW_CHECKPOINT_FILE) {
            Ok(entries) => {
                *lock(&self.replication.checkpointed) = entries
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, p, o)| ((t, p), o))
                    .collect();
            }
            Err(e) => {
                tracing::warn!(error = %e, "unreadable replication-offset-checkpoint; high watermarks start from the log start");
            }
        }
    }

    /// Writes every local replica's high watermark to `replication-offset-checkpoint` (Kafka's
    /// `ReplicaManager.checkpointHighWatermarks`, every
    /// `replica.high.watermark.checkpoint.interval.ms` and at shutdown). One file replacement
    /// whatever the number of partitions.
    pub fn write_hw_checkpoint(&self) -> Result<()> {
        let mut entries = Vec::new();
        for p in self.all_partitions() {
            if let Ok((_, hw)) = p.offsets() {
                entries.push((p.topic.clone(), p.index, hw.0));
            }
        }
        potok_log::write_offsets_file(
            &*self.storage,
            &self.data_dir,
            HW_CHECKPOINT_FILE,
            &entries,
        )?;
        Ok(())
    }
}
