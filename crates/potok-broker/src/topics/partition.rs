//! One partition: its log, its leader-side replication state and its fetch waiters.

use super::*;

/// One partition: its log, its replication state as this broker leads it (leader epoch,
/// replicas, ISR, high watermark: a [`LeaderState`] built from the metadata image), and the
/// fetch requests waiting for new data.
///
/// On a single node the ISR is this broker alone, so the high watermark reaches the log end
/// offset as soon as an append returns; with replication the same state waits for followers.
/// Lock order: the log, then the replication state.
#[derive(Debug)]
pub struct Partition {
    pub(super) topic: String,
    pub(super) index: i32,
    pub(super) log: Mutex<Option<Log>>,
    /// Long-polling fetches to wake on append. Entries whose fetch is gone (only this list
    /// holds the `Arc`) are pruned on every insert, so the list is bounded by the number of
    /// fetches currently waiting.
    pub(super) waiters: Mutex<Vec<Arc<Notify>>>,
    /// The leader's replication state. Its leader epoch is stamped into appended batches and
    /// checked against clients' `current_leader_epoch` (KIP-320).
    pub(super) replica: Mutex<LeaderState>,
    /// Another broker leads this partition (a member of a cluster keeps a placeholder without
    /// a log for it, `replicated.rs`): requests for its data get NOT_LEADER_OR_FOLLOWER and
    /// clients re-route to the leader Metadata names.
    pub(super) led_elsewhere: bool,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock cannot leave a Log half-updated in a way the Log itself does
    // not guard against (it marks itself offline), so poisoning is not propagated.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn offline() -> LogError {
    LogError::Offline
}

/// The state `metadata_log::partition_record` gives a new partition on this single node: this
/// broker is its only replica, in the ISR and leading, at the initial epochs.
pub(super) fn single_node_partition(node: BrokerId) -> PartitionState {
    PartitionState {
        replicas: vec![node],
        isr: vec![node],
        leader: Some(node),
        leader_epoch: LeaderEpoch(INITIAL_LEADER_EPOCH),
        partition_epoch: 0,
    }
}

/// Kafka's `makeLeader` on an open log: the leader-epoch cache records where the image's epoch
/// starts, and the replication state starts from the log end, which on this node is also the
/// high watermark (nothing was acknowledged beyond it).
pub(super) fn make_leader(
    log: &mut Log,
    local: BrokerId,
    state: &PartitionState,
    now_ms: i64,
) -> Result<LeaderState, LogError> {
    log.assign_leader_epoch(state.leader_epoch)?;
    let end = log.log_end_offset();
    LeaderState::become_leader(local, state, end, end, now_ms).map_err(|e| LogError::Corrupt {
        path: log.dir().to_path_buf(),
        reason: format!(
            "the metadata image does not make this broker ({local}) lead the partition: {e:?}"
        ),
    })
}

impl Partition {
    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition index.
    pub fn index(&self) -> i32 {
        self.index
    }

    /// Runs `f` with the log locked. Keep `f` short and synchronous.
    pub fn with_log<R>(
        &self,
        f: impl FnOnce(&mut Log) -> Result<R, LogError>,
    ) -> Result<R, LogError> {
        let mut g = lock(&self.log);
        match g.as_mut() {
            Some(log) => f(log),
            None => Err(offline()),
        }
    }

    /// The log's lock cell, for the log cleaner ([`potok_log::Cleaner::clean`] locks it only
    /// to prepare a cleaning and for each segment swap).
    pub fn log_cell(&self) -> &Mutex<Option<Log>> {
        &self.log
    }

    /// Whether another broker leads this partition (this one holds no log of it).
    pub fn is_led_elsewhere(&self) -> bool {
        self.led_elsewhere
    }

    /// The current partition leader epoch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        lock(&self.replica).leader_epoch()
    }

    /// A copy of the partition's replication state (replicas, ISR, epochs, high watermark).
    pub fn replication(&self) -> LeaderState {
        lock(&self.replica).clone()
    }

    /// This broker (again) leads the partition with the metadata image's `state` (a leadership
    /// change: a new leader epoch). The leader-epoch cache records that the epoch starts at the
    /// log end offset, and the replication state starts over from it, as Kafka's `makeLeader`
    /// does.
    pub fn become_leader(
        &self,
        local: BrokerId,
        state: &PartitionState,
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.with_log(|log| {
            let leader = make_leader(log, local, state, now_ms)?;
            *lock(&self.replica) = leader;
            Ok(())
        })?;
        // Produces waiting for the previous epoch's ISR must learn that it ended.
        self.wake_waiters();
        Ok(())
    }

    /// KIP-320's check of a client's `current_leader_epoch`: -1 skips it, an older epoch is
    /// `FENCED_LEADER_EPOCH`, a newer one `UNKNOWN_LEADER_EPOCH` (Kafka's
    /// `Partition.checkCurrentLeaderEpoch`).
    pub fn check_current_leader_epoch(&self, current: i32) -> Option<ErrorCode> {
        let mine = self.leader_epoch().0;
        match current {
            -1 => None,
            c if c < mine => Some(ErrorCode::FencedLeaderEpoch),
            c if c > mine => Some(ErrorCode::UnknownLeaderEpoch),
            _ => None,
        }
    }

    /// Runs `f` on the leader's replication state (a follower's fetch, an ISR change committed
    /// or refused), then wakes every waiter: fetches read up to the high watermark and
    /// `acks=all` produces complete at it, so both look again when it may have moved. `None`
    /// when this broker does not lead the partition.
    pub fn with_leader<R>(&self, f: impl FnOnce(&mut LeaderState) -> R) -> Option<R> {
        if self.led_elsewhere {
            return None;
        }
        let r = f(&mut lock(&self.replica));
        self.wake_waiters();
        Some(r)
    }

    /// Where an `acks=all` produce appended in leader epoch `epoch` stands (Kafka's
    /// `Partition.checkEnoughReplicasReachOffset`): done once the high watermark reached
    /// `required_end` (NOT_ENOUGH_REPLICAS_AFTER_APPEND if the committed ISR shrank below
    /// `min_isr` meanwhile). A partition this broker no longer leads in that epoch, or that was
    /// closed or deleted, answers NOT_LEADER_OR_FOLLOWER: its records may be truncated by the
    /// next leader, so they must not be acknowledged.
    pub fn acks_all_outcome(
        &self,
        epoch: LeaderEpoch,
        required_end: Offset,
        min_isr: usize,
    ) -> Result<AcksOutcome, ErrorCode> {
        if self.is_led_elsewhere() || lock(&self.log).is_none() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let replica = lock(&self.replica);
        if replica.leader_epoch() != epoch {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        Ok(replica.acks_all_outcome(required_end, min_isr))
    }

    /// Appends batches as the leader, stamping the current leader epoch into each, and wakes
    /// waiting fetches.
    pub fn append(&self, batches: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = self.with_log(|log| {
            let mut replica = lock(&self.replica);
            let info = log.append_with_leader_epoch(batches, replica.leader_epoch(), now_ms)?;
            replica.on_local_append(log.log_end_offset());
            Ok(info)
        })?;
        self.wake_waiters();
        Ok(info)
    }

    /// `(log start offset, high watermark)`.
    pub fn offsets(&self) -> Result<(Offset, Offset), LogError> {
        self.with_log(|log| Ok((log.log_start_offset(), self.high_watermark(log))))
    }

    /// The high watermark, never above the log end (a truncation below it, which only
    /// DeleteRecords-style operations at the log start could cause, cannot make it point past
    /// the data).
    pub(super) fn high_watermark(&self, log: &Log) -> Offset {
        lock(&self.replica)
            .high_watermark()
            .min(log.log_end_offset())
    }

    /// `(log start offset, high watermark, last stable offset)`; the last stable offset is
    /// the high watermark lowered to the earliest open transaction (KIP-98).
    pub fn stable_offsets(&self) -> Result<(Offset, Offset, Offset), LogError> {
        self.with_log(|log| {
            let hw = self.high_watermark(log);
            Ok((log.log_start_offset(), hw, log.last_stable_offset(hw)))
        })
    }

    /// Reads for a consumer: whole batches from `from`, at most `max_bytes` (but at least one
    /// batch), below the high watermark. Returns the slice and `(log start, high watermark)`.
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
    ) -> Result<(ReadSlice, Offset, Offset), LogError> {
        let r = self.read_isolated(from, max_bytes, false)?;
        Ok((r.slice, r.log_start_offset, r.high_watermark))
    }

    /// [`Partition::read`] for a fetch at an isolation level: `read_committed` reads stop at
    /// the last stable offset instead of the high watermark (Kafka's
    /// `FetchIsolation.TXN_COMMITTED`), so open transactions are never returned.
    pub fn read_isolated(
        &self,
        from: Offset,
        max_bytes: usize,
        read_committed: bool,
    ) -> Result<IsolatedRead, LogError> {
        self.with_log(|log| {
            let hw = self.high_watermark(log);
            let lso = log.last_stable_offset(hw);
            let bound = if read_committed { lso } else { hw };
            let slice = log.read(from, max_bytes, Some(bound))?;
            Ok(IsolatedRead {
                slice,
                log_start_offset: log.log_start_offset(),
                high_watermark: hw,
                last_stable_offset: lso,
            })
        })
    }

    /// Registers `n` to be notified on the next append.
    pub fn add_waiter(&self, n: &Arc<Notify>) {
        let mut w = lock(&self.waiters);
        w.retain(|x| Arc::strong_count(x) > 1);
        if !w.iter().any(|x| Arc::ptr_eq(x, n)) {
            w.push(Arc::clone(n));
        }
    }

    pub(super) fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            w.notify_one();
        }
    }

    /// Replaces the partition's log: `swap` gets the open log (`None` if the partition was
    /// closed), must close it and return the log that takes its place, which then leads in the
    /// partition's current epoch. The group coordinator uses it to swap in a rewritten
    /// `__consumer_offsets` partition at start. If `swap` fails the partition stays offline.
    pub(crate) fn replace_log(
        &self,
        swap: impl FnOnce(Option<Log>) -> Result<Log, LogError>,
    ) -> Result<(), LogError> {
        let mut g = lock(&self.log);
        let flusher = g.as_ref().and_then(|l| l.background_flusher());
        let mut log = swap(g.take())?;
        log.set_background_flusher(flusher);
        log.assign_leader_epoch(self.leader_epoch())?;
        *g = Some(log);
        drop(g);
        self.wake_waiters();
        Ok(())
    }

    /// The directory of the partition's log.
    pub fn dir(&self) -> Result<PathBuf, LogError> {
        self.with_log(|log| Ok(log.dir().to_path_buf()))
    }

    /// Closes the log cleanly (flush, checkpoints, clean-shutdown marker). Later calls fail
    /// with `Offline`.
    pub fn close(&self) -> Result<(), LogError> {
        let log = lock(&self.log).take();
        self.wake_waiters();
        match log {
            Some(l) => l.close(),
            None => Ok(()),
        }
    }

    pub(super) fn delete(&self) -> Result<(), LogError> {
        let log = lock(&self.log).take();
        self.wake_waiters();
        match log {
            Some(l) => l.delete(),
            None => Ok(()),
        }
    }
}

/// What [`Partition::read_isolated`] returns.
#[derive(Debug)]
pub struct IsolatedRead {
    /// The batches read (possibly empty).
    pub slice: ReadSlice,
    /// The log start offset at the time of the read.
    pub log_start_offset: Offset,
    /// The high watermark at the time of the read.
    pub high_watermark: Offset,
    /// The last stable offset at the time of the read.
    pub last_stable_offset: Offset,
}
