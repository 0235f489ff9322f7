//! One partition: its log, its replication role (leader or follower state, see `roles.rs`) and
//! its fetch waiters.

use super::*;
use potok_log::AbortedTxn;

/// One partition: its log, its replication role as the metadata image gives it (see [`Role`]:
/// a [`LeaderState`] when this broker leads it, a [`potok_replication::FollowerState`] when it
/// follows, nothing when it is not a replica here), and the fetch requests waiting for new
/// data.
///
/// **Where the leader's state lives (for `acks=all`, ISR changes):** `replica` holds
/// `Role::Leader(LeaderState)` on the leader; [`Partition::with_leader`] runs a closure on it
/// and wakes the waiters afterwards. To wait until the high watermark passes an offset, register
/// a `Notify` with [`Partition::add_waiter`] and then check [`Partition::leader_high_watermark`]
/// (register first, so no wake-up is lost): appends, follower fetches that move the high
/// watermark (`handlers::replica_fetch`) and role changes all wake the waiters.
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
    /// The replication role. On the leader its leader epoch is stamped into appended batches
    /// and checked against clients' `current_leader_epoch` (KIP-320). On a follower or a
    /// non-replica client requests get NOT_LEADER_OR_FOLLOWER and clients re-route to the leader
    /// Metadata names.
    pub(super) replica: Mutex<Role>,
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
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

/// Kafka's `makeLeader` on an open log: the leader-epoch cache records where the image's epoch
/// starts, and the replication state starts from the log end with the last known high
/// watermark `high_watermark` (checkpointed, or learnt as a follower); with this broker alone in
/// the ISR it moves to the log end at once.
pub(super) fn make_leader(
    log: &mut Log,
    local: BrokerId,
    state: &PartitionState,
    high_watermark: Offset,
    now_ms: i64,
) -> Result<LeaderState, LogError> {
    log.assign_leader_epoch(state.leader_epoch)?;
    let end = log.log_end_offset();
    LeaderState::become_leader(local, state, end, high_watermark, now_ms).map_err(|e| {
        LogError::Corrupt {
            path: log.dir().to_path_buf(),
            reason: format!(
                "the metadata image does not make this broker ({local}) lead the partition: {e:?}"
            ),
        }
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

    /// Whether this broker does not lead the partition (it follows, or is not a replica and
    /// holds no log of it).
    pub fn is_led_elsewhere(&self) -> bool {
        !matches!(*lock(&self.replica), Role::Leader(_))
    }

    /// The log's size in bytes and the lag of its end behind the high watermark (Kafka's
    /// DescribeLogDirs `OffsetLag`: `max(high watermark - log end, 0)`), `None` without a log.
    pub fn log_dir_summary(&self) -> Option<(u64, i64)> {
        let g = lock(&self.log);
        let log = g.as_ref()?;
        let hw = self.high_watermark(log);
        Some((log.size_bytes(), (hw.0 - log.log_end_offset().0).max(0)))
    }

    /// Whether this broker holds a log of the partition (leader or follower).
    pub fn is_local_replica(&self) -> bool {
        !matches!(*lock(&self.replica), Role::NotReplica { .. })
    }

    /// The current partition leader epoch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        lock(&self.replica).leader_epoch()
    }

    /// A copy of the leader's replication state (replicas, ISR, epochs, high watermark), `None`
    /// when this broker does not lead the partition.
    pub fn replication(&self) -> Option<LeaderState> {
        match &*lock(&self.replica) {
            Role::Leader(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Runs `f` on the leader's replication state, then wakes every waiter (fetches read up to
    /// the high watermark and `acks=all` produces complete at it, so both look again when it
    /// may have moved). `None` when this broker does not lead the partition.
    pub fn with_leader<R>(&self, f: impl FnOnce(&mut LeaderState) -> R) -> Option<R> {
        let r = match &mut *lock(&self.replica) {
            Role::Leader(s) => Some(f(s)),
            _ => None,
        };
        self.wake_waiters();
        r
    }

    /// The leader's high watermark, `None` when this broker does not lead the partition.
    pub fn leader_high_watermark(&self) -> Option<Offset> {
        match &*lock(&self.replica) {
            Role::Leader(s) => Some(s.high_watermark()),
            _ => None,
        }
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
            let hw = self.high_watermark(log);
            let leader = make_leader(log, local, state, hw, now_ms)?;
            *lock(&self.replica) = Role::Leader(leader);
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
        if lock(&self.log).is_none() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        match &*lock(&self.replica) {
            Role::Leader(s) if s.leader_epoch() == epoch => {
                Ok(s.acks_all_outcome(required_end, min_isr))
            }
            _ => Err(ErrorCode::NotLeaderOrFollower),
        }
    }

    /// Appends batches as the leader, stamping the current leader epoch into each, and wakes
    /// waiting fetches. A partition this broker does not lead (any more: leadership may move
    /// between a handler's check and the append) refuses with [`LogError::Offline`]; callers
    /// report NOT_LEADER_OR_FOLLOWER when [`Partition::is_led_elsewhere`] then holds.
    pub fn append(&self, batches: Bytes, now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = self.with_log(|log| {
            let mut replica = lock(&self.replica);
            let Role::Leader(leader) = &mut *replica else {
                return Err(offline());
            };
            let info = log.append_with_leader_epoch(batches, leader.leader_epoch(), now_ms)?;
            leader.on_local_append(log.log_end_offset());
            Ok(info)
        })?;
        self.wake_waiters();
        Ok(info)
    }

    /// Appends a COMMIT or ABORT marker as the leader (WriteTxnMarkers for this partition),
    /// in the current leader epoch, and wakes waiting fetches: read_committed fetches may move
    /// on to the new last stable offset. `marker.leader_epoch` is replaced by the partition's.
    /// The log refuses a stale producer or coordinator epoch ([`Log::append_marker`]).
    pub fn append_marker(
        &self,
        marker: &potok_log::MarkerRequest,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let info = self.with_log(|log| {
            let mut replica = lock(&self.replica);
            let Role::Leader(leader) = &mut *replica else {
                return Err(offline());
            };
            let m = potok_log::MarkerRequest {
                leader_epoch: leader.leader_epoch(),
                ..*marker
            };
            let info = log.append_marker(&m, now_ms)?;
            leader.on_local_append(log.log_end_offset());
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

    /// `(log start offset, log end offset)` (a follower's fetch reads up to the log end).
    pub fn log_bounds(&self) -> Result<(Offset, Offset), LogError> {
        self.with_log(|log| Ok((log.log_start_offset(), log.log_end_offset())))
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
            // KIP-98: a read_committed consumer gets the aborted transactions overlapping the
            // batches returned, to drop their records (Kafka's `addAbortedTransactions`).
            let aborted_transactions = if read_committed {
                log.collect_aborted_transactions(from, slice.end_offset)
            } else {
                Vec::new()
            };
            Ok(IsolatedRead {
                slice,
                aborted_transactions,
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
    /// At read_committed, the aborted transactions overlapping the batches read.
    pub aborted_transactions: Vec<AbortedTxn>,
    /// The log start offset at the time of the read.
    pub log_start_offset: Offset,
    /// The high watermark at the time of the read.
    pub high_watermark: Offset,
    /// The last stable offset at the time of the read.
    pub last_stable_offset: Offset,
}
