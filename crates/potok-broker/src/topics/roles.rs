//! A partition's replication role and its changes (issue 18): Kafka's `ReplicaManager.applyDelta`
//! with `makeLeader` / `makeFollower` on each partition the metadata image changes.
//!
//! Every replica of a partition has a local log, followers too. After each committed metadata
//! entry (`replicated.rs`) every partition takes the role the image gives this broker:
//!
//! - **leader** ([`Role::Leader`]): the leader-epoch cache records where the image's epoch
//!   starts and a [`LeaderState`] starts over from the log end with the image's replicas, ISR,
//!   leader and partition epochs and the last known high watermark (Kafka's `makeLeader`). A
//!   change that keeps the leader epoch (an ISR change committed by the controller) only
//!   updates the ISR and partition epoch ([`LeaderState::on_isr_committed`]).
//! - **follower** ([`Role::Follower`]): a [`FollowerState`] of the image's leader at its epoch
//!   (Kafka's `makeFollower`). The log is not truncated here: truncation happens on the
//!   leader's `DivergingEpoch` answer, never to the high watermark alone (KIP-101/KIP-279).
//!   The replica fetcher (`crate::replica`) drives it.
//! - **not a replica** ([`Role::NotReplica`]): no log here; the epoch is kept for Metadata.
//!
//! Every change wakes the partition's waiters, so a delayed `acks=all` produce of a deposed
//! leader ends (its records may be truncated) and long-polling fetches re-check their epoch.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;

use crate::planted::PlantedBug;
use potok_replication::{
    EpochStart, FetchAnswer, FetchOutcome, FetchPosition, FollowerRequest, FollowerState, LogView,
};
use tokio::sync::watch;

use super::*;

/// A partition's replication role on this broker.
#[derive(Debug, Clone)]
pub enum Role {
    /// This broker leads the partition.
    Leader(LeaderState),
    /// This broker follows the partition's leader and copies its log.
    Follower(FollowerState),
    /// This broker is not a replica (in a cluster, a placeholder without a log).
    NotReplica {
        /// The image's leader epoch.
        leader_epoch: LeaderEpoch,
    },
}

impl Role {
    /// The partition leader epoch this broker knows.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        match self {
            Role::Leader(s) => s.leader_epoch(),
            Role::Follower(s) => s.leader_epoch(),
            Role::NotReplica { leader_epoch } => *leader_epoch,
        }
    }

    /// The high watermark: the leader's, or what the follower learnt from its fetches.
    pub fn high_watermark(&self) -> Offset {
        match self {
            Role::Leader(s) => s.high_watermark(),
            Role::Follower(s) => s.high_watermark(),
            Role::NotReplica { .. } => Offset(0),
        }
    }
}

/// What the role changes of every partition share: this broker's epoch, the follower back-off,
/// the high watermarks read from `replication-offset-checkpoint` at start, and the signal the
/// replica manager waits on.
#[derive(Debug)]
pub struct ReplicationContext {
    /// This broker's epoch (KIP-903): its registration in the metadata image (-1 until known).
    /// Followers send it in Fetch's `ReplicaState`.
    pub(super) broker_epoch: AtomicI64,
    /// `replica.fetch.backoff.ms`.
    pub(super) fetch_backoff_ms: i64,
    /// Bumped after every role change, so the replica manager re-reads who follows whom.
    pub(super) changed: watch::Sender<u64>,
    /// The high watermarks of `replication-offset-checkpoint`, read at start.
    pub(super) checkpointed: Mutex<HashMap<(String, i32), i64>>,
    /// The coordinators' listeners for their internal topic's leaderships (`leadership.rs`).
    pub(super) leadership: super::leadership::LeadershipWatches,
    /// A test-only bug (`crate::planted`); `None` outside tests.
    pub(super) planted_bug: PlantedBug,
    /// What this broker sent to throttled followers (`crate::replica::throttle`).
    pub(super) leader_quota: crate::replica::throttle::ReplicationQuota,
    /// What this broker's fetchers received for throttled partitions (the follower side).
    pub(super) follower_quota: crate::replica::throttle::ReplicationQuota,
}

impl ReplicationContext {
    pub(super) fn new(fetch_backoff_ms: i64, planted_bug: PlantedBug) -> ReplicationContext {
        ReplicationContext {
            broker_epoch: AtomicI64::new(-1),
            fetch_backoff_ms,
            planted_bug,
            changed: watch::Sender::new(0),
            checkpointed: Mutex::new(HashMap::new()),
            leadership: Default::default(),
            leader_quota: Default::default(),
            follower_quota: Default::default(),
        }
    }

    fn checkpointed_hw(&self, topic: &str, p: i32) -> Offset {
        Offset(
            lock(&self.checkpointed)
                .get(&(topic.to_string(), p))
                .copied()
                .unwrap_or(0),
        )
    }
}

/// The log's leader-epoch cache as the replication state machines take it.
pub(crate) fn epoch_starts(log: &Log) -> Vec<EpochStart> {
    log.leader_epoch_entries()
        .iter()
        .map(|e| EpochStart {
            epoch: LeaderEpoch(e.epoch),
            start_offset: Offset(e.start_offset),
        })
        .collect()
}

/// The prefix of `records` made of whole batches (a v2 batch is its 12-byte offset and length
/// header plus the length): a leader may end a response inside a batch, as Kafka's does.
pub(crate) fn whole_batches(records: &Bytes) -> Bytes {
    let mut pos = 0usize;
    while records.len() >= pos + 12 {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        let Ok(len) = usize::try_from(len) else { break };
        let end = pos + 12 + len;
        if len == 0 || end > records.len() {
            break;
        }
        pos = end;
    }
    records.slice(..pos)
}

/// The planted pre-KIP-101 bug (`crate::planted`): a follower cuts its log at its high
/// watermark when its leader changes. Records above it that the old leader acknowledged to
/// `acks=all` producers are gone from this replica until it fetches them again, and lost if it
/// leads before that.
fn plant_truncation_to_hw(part: &Partition, log: &mut Log, f: &mut FollowerState) {
    let hw = f.high_watermark();
    if hw >= log.log_end_offset() {
        return;
    }
    tracing::warn!(topic = %part.topic, partition = part.index, to = hw.0, log_end = log.log_end_offset().0, "planted bug: truncating to the high watermark on a leader change");
    match log.truncate_to(hw, now_ms()) {
        Ok(_) => f.on_truncated(log.log_end_offset()),
        Err(e) => {
            tracing::error!(topic = %part.topic, partition = part.index, error = %e, "planted truncation failed")
        }
    }
}

impl TopicManager {
    /// The role this broker has for a partition in the image's `state`, on its open `log`
    /// (`None`: not a replica, no log). `hw`: the last known high watermark.
    pub(super) fn make_role(
        &self,
        log: Option<&mut Log>,
        state: &PartitionState,
        hw: Offset,
    ) -> Result<Role> {
        let Some(log) = log else {
            return Ok(Role::NotReplica {
                leader_epoch: state.leader_epoch,
            });
        };
        if !self.replicated || state.leader == Some(self.node) {
            return Ok(Role::Leader(make_leader(
                log,
                self.node,
                state,
                hw,
                now_ms(),
            )?));
        }
        let epochs = epoch_starts(log);
        let view = LogView {
            log_start: log.log_start_offset(),
            log_end: log.log_end_offset(),
            epochs: &epochs,
        };
        Ok(Role::Follower(FollowerState::new(
            self.node,
            self.replication
                .broker_epoch
                .load(std::sync::atomic::Ordering::Relaxed),
            state.leader,
            state.leader_epoch,
            hw,
            view,
            self.replication.fetch_backoff_ms,
        )))
    }

    /// Whether this broker holds a log for a partition in `state`: on a single node always; in
    /// a cluster when it is one of the partition's replicas.
    pub(super) fn is_replica(&self, state: &PartitionState) -> bool {
        !self.replicated || state.replicas.contains(&self.node)
    }

    /// The high watermark `replication-offset-checkpoint` had for a partition at start.
    pub(super) fn checkpointed_hw(&self, topic: &str, p: i32) -> Offset {
        self.replication.checkpointed_hw(topic, p)
    }

    /// Moves partition `part` to the role the image's `state` gives this broker (Kafka's
    /// `applyDelta` for one changed partition). Returns whether the role changed.
    ///
    /// A reassignment (KIP-455) can add this broker to a partition's replicas: its log is
    /// created here (empty; any leftover directory of an earlier replica is removed first, the
    /// leader's log is fetched from its start) and it becomes a follower. It can also drop this
    /// broker from the replicas: as Kafka's `StopReplica` with deletion, it stops following,
    /// and its log is closed and deleted. `config` is the topic's effective config for a log
    /// created here.
    pub(super) fn apply_role(
        &self,
        part: &Partition,
        state: &PartitionState,
        config: &EffectiveTopicConfig,
    ) -> bool {
        let mut log_guard = lock(&part.log);
        let replica = self.is_replica(state);
        if log_guard.is_none() && replica {
            return self.become_replica(part, log_guard, state, config);
        }
        if log_guard.is_some() && !replica {
            let log = log_guard.take();
            *lock(&part.replica) = Role::NotReplica {
                leader_epoch: state.leader_epoch,
            };
            drop(log_guard);
            part.wake_waiters();
            if let Some(log) = log {
                tracing::info!(topic = %part.topic, partition = part.index, "no longer a replica (reassigned): deleting the local log");
                if let Err(e) = log.delete() {
                    tracing::warn!(topic = %part.topic, partition = part.index, error = %e, "could not delete a removed replica's log");
                }
            }
            return true;
        }
        let changed = {
            let mut role = lock(&part.replica);
            let leads = state.leader == Some(self.node);
            let current_epoch = role.leader_epoch();
            let same_leadership = leads
                && matches!(&*role, Role::Leader(s) if s.leader_epoch() == state.leader_epoch);
            let follows = !leads && matches!(&*role, Role::Follower(_));
            match log_guard.as_mut() {
                None => match &mut *role {
                    Role::NotReplica { leader_epoch } => {
                        let changed = *leader_epoch != state.leader_epoch;
                        *leader_epoch = state.leader_epoch;
                        changed
                    }
                    _ => false,
                },
                Some(_) if same_leadership => match &mut *role {
                    // Same leadership: an ISR change (or another change of the partition)
                    // committed by the controller.
                    Role::Leader(s) if s.partition_epoch() != state.partition_epoch => {
                        // The replicas may have changed too (a reassignment adding replicas
                        // keeps the leader epoch).
                        if let Err(e) = s.on_partition_changed(
                            state.replicas.clone(),
                            state.isr.clone(),
                            state.partition_epoch,
                        ) {
                            tracing::debug!(topic = %part.topic, partition = part.index, error = %e, "ignored an older partition state");
                        }
                        true
                    }
                    _ => false,
                },
                Some(log) if follows => match &mut *role {
                    Role::Follower(f) => {
                        let changed = f.become_follower(state.leader, state.leader_epoch);
                        if changed
                            && self.replication.planted_bug == PlantedBug::TruncateToHighWatermark
                        {
                            plant_truncation_to_hw(part, log, f);
                        }
                        changed
                    }
                    _ => false,
                },
                Some(log) if state.leader_epoch >= current_epoch => {
                    let hw = role.high_watermark().min(log.log_end_offset());
                    match self.make_role(Some(log), state, hw) {
                        Ok(r) => {
                            tracing::info!(topic = %part.topic, partition = part.index, leader = ?state.leader, leader_epoch = state.leader_epoch.0, leads, "partition role changed");
                            *role = r;
                            true
                        }
                        Err(e) => {
                            tracing::error!(topic = %part.topic, partition = part.index, error = %e, "could not change the partition's role");
                            false
                        }
                    }
                }
                Some(_) => false,
            }
        };
        drop(log_guard);
        part.wake_waiters();
        changed
    }

    /// This broker was added to the partition's replicas: creates its log and takes the role
    /// the image gives it (a follower, or the leader when it is the only replica left to lead).
    fn become_replica(
        &self,
        part: &Partition,
        mut log_guard: MutexGuard<'_, Option<Log>>,
        state: &PartitionState,
        config: &EffectiveTopicConfig,
    ) -> bool {
        let dir = self.partition_dir(&part.topic, part.index);
        if dir.exists() {
            // Data of an earlier replica here (a deletion that failed): it may be divergent,
            // and the leader has everything, so start empty.
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::error!(topic = %part.topic, partition = part.index, error = %e, "could not remove a leftover partition directory");
                return false;
            }
        }
        let created = Log::create_managed(
            &dir,
            config.log.clone(),
            Arc::clone(&self.storage),
            now_ms(),
            state.leader_epoch,
        )
        .map_err(BrokerError::from)
        .and_then(|mut log| {
            log.set_background_flusher(Some(Arc::clone(&self.flusher)));
            let role = self.make_role(Some(&mut log), state, Offset(0))?;
            Ok((log, role))
        });
        match created {
            Ok((log, role)) => {
                *log_guard = Some(log);
                *lock(&part.replica) = role;
                drop(log_guard);
                if let Err(e) = self.storage.sync_dir(&self.data_dir) {
                    tracing::warn!(error = %e, "could not fsync the data directory after adding a replica");
                }
                tracing::info!(topic = %part.topic, partition = part.index, leader = ?state.leader, "added as a replica (reassigned): created the local log");
                part.wake_waiters();
                true
            }
            Err(e) => {
                tracing::error!(topic = %part.topic, partition = part.index, error = %e, "could not create the log of an added replica");
                false
            }
        }
    }

    /// The partitions this broker follows, by the leader they fetch from (for the replica
    /// manager's fetchers).
    pub fn followed_by_leader(&self) -> BTreeMap<BrokerId, Vec<Arc<Partition>>> {
        let mut out: BTreeMap<BrokerId, Vec<Arc<Partition>>> = BTreeMap::new();
        for t in self.all() {
            for p in t.state().partitions {
                let leader = match &*lock(&p.replica) {
                    Role::Follower(f) => f.leader(),
                    _ => None,
                };
                if let Some(l) = leader {
                    out.entry(l).or_default().push(p);
                }
            }
        }
        out
    }

    /// A receiver that changes after every role change (the replica manager waits on it).
    pub fn role_changes(&self) -> watch::Receiver<u64> {
        self.replication.changed.subscribe()
    }

    pub(super) fn signal_role_change(&self) {
        self.replication.changed.send_modify(|v| *v += 1);
    }

    /// This broker's epoch (its registration in the image; -1 until registered).
    pub fn broker_epoch(&self) -> i64 {
        self.replication
            .broker_epoch
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The bytes this broker sent to throttled followers (the leader-side replication
    /// throttle, `crate::replica::throttle`).
    pub fn leader_quota(&self) -> &crate::replica::throttle::ReplicationQuota {
        &self.replication.leader_quota
    }

    /// The bytes this broker's replica fetchers received for throttled partitions (the
    /// follower-side replication throttle, `crate::replica::throttle`).
    pub fn follower_quota(&self) -> &crate::replica::throttle::ReplicationQuota {
        &self.replication.follower_quota
    }

    /// This broker's id.
    pub fn node(&self) -> BrokerId {
        self.node
    }

    /// `(host, port)` of broker `id`'s client listener as it registered it (the replica
    /// fetcher connects there).
    pub fn broker_address(&self, id: BrokerId) -> Option<(String, u16)> {
        self.with_image(|image| {
            let b = image.brokers().get(&id)?;
            b.listeners
                .iter()
                .find(|(name, _, _)| name == "PLAINTEXT")
                .or_else(|| b.listeners.first())
                .map(|(_, host, port)| (host.clone(), *port))
        })
    }
}

/// What the replica fetcher needs of a followed partition.
impl Partition {
    /// What to ask the leader next, with this partition's topic id, or `None` (not following,
    /// backing off, fenced).
    pub fn next_follower_request(&self, now_ms: i64) -> Option<FollowerRequest> {
        let log = lock(&self.log);
        let log = log.as_ref()?;
        let mut role = lock(&self.replica);
        let Role::Follower(f) = &mut *role else {
            return None;
        };
        let epochs = epoch_starts(log);
        f.next_request(
            LogView {
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
                epochs: &epochs,
            },
            now_ms,
        )
    }

    /// The leader answered `position` with `answer` and `records` (whole batches, possibly
    /// none): appends them with the leader's offsets and epochs, or truncates by epoch, as
    /// [`FollowerState::on_fetch_response`] decides. Blocking file IO: call it off the async
    /// workers. Returns the bytes appended.
    pub fn on_follower_response(
        &self,
        position: &FetchPosition,
        answer: FetchAnswer,
        records: Bytes,
        now_ms: i64,
    ) -> Result<usize, LogError> {
        let appended = self.with_log(|log| {
            let mut role = lock(&self.replica);
            let Role::Follower(f) = &mut *role else {
                return Ok(0);
            };
            let epochs = epoch_starts(log);
            let view = LogView {
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
                epochs: &epochs,
            };
            match f.on_fetch_response(position, answer, view, now_ms) {
                FetchOutcome::Nothing => Ok(0),
                FetchOutcome::Append { log_start } => {
                    let records = whole_batches(&records);
                    let n = records.len();
                    if n > 0 {
                        log.append_as_follower(records, now_ms)?;
                    }
                    // The leader deleted below its log start (retention, DeleteRecords):
                    // follow it, within what this log holds (Kafka's follower
                    // `maybeIncrementLogStartOffset`).
                    let start = log_start.min(log.log_end_offset());
                    if start > log.log_start_offset() {
                        log.delete_records_before(start)?;
                    }
                    f.on_appended(log.log_start_offset(), log.log_end_offset());
                    Ok(n)
                }
                FetchOutcome::Truncate { to } => {
                    tracing::info!(topic = %self.topic, partition = self.index, to = to.0, log_end = log.log_end_offset().0, "truncating a divergent log by leader epoch");
                    log.truncate_to(to, now_ms)?;
                    f.on_truncated(log.log_end_offset());
                    Ok(0)
                }
                FetchOutcome::TruncateFullyAndStartAt { start } => {
                    tracing::info!(topic = %self.topic, partition = self.index, start = start.0, "restarting the log at the leader's log start");
                    log.truncate_fully_and_start_at(start, now_ms)?;
                    f.on_truncated(log.log_end_offset());
                    Ok(0)
                }
            }
        })?;
        if appended > 0 {
            self.wake_waiters();
        }
        Ok(appended)
    }

    /// A request to the leader failed (connection, timeout): back off.
    pub fn on_follower_request_failed(&self, now_ms: i64) {
        if let Role::Follower(f) = &mut *lock(&self.replica) {
            f.on_request_failed(now_ms);
        }
    }

    /// The leader's log bounds after OFFSET_OUT_OF_RANGE (its ListOffsets answer).
    pub fn on_leader_offsets(
        &self,
        leader_log_start: Offset,
        leader_log_end: Offset,
        now_ms: i64,
    ) -> Result<(), LogError> {
        self.with_log(|log| {
            let mut role = lock(&self.replica);
            let Role::Follower(f) = &mut *role else {
                return Ok(());
            };
            let epochs = epoch_starts(log);
            let view = LogView {
                log_start: log.log_start_offset(),
                log_end: log.log_end_offset(),
                epochs: &epochs,
            };
            match f.on_leader_offsets(leader_log_start, leader_log_end, view) {
                FetchOutcome::Truncate { to } => {
                    log.truncate_to(to, now_ms)?;
                    f.on_truncated(log.log_end_offset());
                }
                FetchOutcome::TruncateFullyAndStartAt { start } => {
                    log.truncate_fully_and_start_at(start, now_ms)?;
                    f.on_truncated(log.log_end_offset());
                }
                FetchOutcome::Nothing | FetchOutcome::Append { .. } => {}
            }
            Ok(())
        })
    }

    /// The follower's state (tests, metrics), `None` unless this broker follows the partition.
    pub fn follower_state(&self) -> Option<FollowerState> {
        match &*lock(&self.replica) {
            Role::Follower(f) => Some(f.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_batches_drops_a_partial_tail() {
        let mut b = Vec::new();
        for len in [49u32, 60] {
            b.extend_from_slice(&0i64.to_be_bytes());
            b.extend_from_slice(&(len as i32).to_be_bytes());
            b.extend(std::iter::repeat_n(7u8, len as usize));
        }
        let full = Bytes::from(b.clone());
        assert_eq!(whole_batches(&full).len(), full.len());
        let cut = Bytes::from(b[..b.len() - 1].to_vec());
        assert_eq!(whole_batches(&cut).len(), 12 + 49);
        assert_eq!(whole_batches(&Bytes::from_static(&[0; 11])).len(), 0);
    }
}

/// The leader's side of a follower's Fetch (`crate::handlers::replica_fetch`).
impl Partition {
    /// Answers one partition of a follower's Fetch with [`LeaderState::answer_follower_fetch`]
    /// (KIP-320 fencing, KIP-903 broker epochs, the diverging epoch, the offset range), which
    /// records the follower's log end and may move the high watermark; the waiters (delayed
    /// `acks=all` produces, consumers' long polls) are woken when it moved.
    pub fn answer_follower_fetch(
        &self,
        position: &FetchPosition,
        now_ms: i64,
    ) -> Result<potok_replication::LeaderFetchAnswer, potok_replication::ReplicationError> {
        let answer = {
            let log = lock(&self.log);
            let Some(log) = log.as_ref() else {
                return Err(potok_replication::ReplicationError::NotLeader);
            };
            let mut role = lock(&self.replica);
            let Role::Leader(s) = &mut *role else {
                return Err(potok_replication::ReplicationError::NotLeader);
            };
            let epochs = epoch_starts(log);
            s.answer_follower_fetch(
                position,
                LogView {
                    log_start: log.log_start_offset(),
                    log_end: log.log_end_offset(),
                    epochs: &epochs,
                },
                now_ms,
            )?
        };
        if answer.new_high_watermark.is_some() {
            self.wake_waiters();
        }
        Ok(answer)
    }

    /// Reads for a follower: whole batches from `from` up to the log end (Kafka's
    /// `FetchIsolation.LOG_END`), at most `max_bytes` but at least one batch. Returns the slice
    /// and `(log start, high watermark)` at the time of the read.
    pub fn read_for_follower(
        &self,
        from: Offset,
        max_bytes: usize,
    ) -> Result<(ReadSlice, Offset, Offset), LogError> {
        self.with_log(|log| {
            let slice = log.read(from, max_bytes, None)?;
            Ok((slice, log.log_start_offset(), self.high_watermark(log)))
        })
    }
}

#[cfg(test)]
#[path = "role_tests.rs"]
mod role_tests;
