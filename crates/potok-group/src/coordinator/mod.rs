//! The classic group coordinator state machine.
//!
//! This follows Apache Kafka's classic group coordinator (`GroupCoordinator.scala` up to 3.x,
//! `GroupMetadataManager`'s classic-group half in 4.x) rule by rule; each Kafka rule is cited
//! where it is implemented. Time is an argument (`now_ms`, milliseconds since the epoch), never
//! read; Kafka's purgatories (`DelayedJoin`, `InitialDelayedJoin`, `DelayedHeartbeat`, the
//! pending-member and pending-sync expirations, the offset-expiration task) are entries in one
//! timer set that the driver fires with [`GroupCoordinator::tick`] at
//! [`GroupCoordinator::next_deadline`].
//!
//! Thread-safety: a plain `&mut self` state machine; the broker owns it behind one mutex and
//! never holds that mutex across an `.await`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use potok_protocol::messages::ConsumerProtocolSubscription;
use potok_protocol::{Decode, ErrorCode};
use potok_records::{LeaderEpoch, Offset};

use crate::records::{
    self, decode_record, CommittedOffset, OffsetsRecord, StoredGroup, StoredMember, MAX_STRING_LEN,
};
use crate::types::*;
use crate::GroupError;

/// Coordinator settings, with Kafka's broker config names and defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms` (6000).
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms` (1800000).
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms` (3000).
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size` (`Integer.MAX_VALUE`).
    pub max_size: usize,
    /// `offsets.retention.minutes` (7 days), in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms` (600000).
    pub offsets_retention_check_interval_ms: i64,
    /// `offset.metadata.max.bytes` (4096).
    pub offset_metadata_max_bytes: usize,
    /// `offsets.topic.num.partitions` (50).
    pub offsets_partitions: i32,
    /// How long a new member's JoinGroup may wait before the member is dropped (Kafka's
    /// hard-coded `NewMemberJoinTimeoutMs`, 5 minutes).
    pub new_member_join_timeout_ms: i64,
    /// Seed for the random part of member ids (Kafka uses a random UUID). The broker passes
    /// a value that differs between runs so that ids do not repeat after a restart.
    pub member_id_seed: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            offsets_partitions: records::DEFAULT_OFFSETS_PARTITIONS,
            new_member_join_timeout_ms: 300_000,
            member_id_seed: 0,
        }
    }
}

/// What [`GroupCoordinator::load`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Groups loaded (with metadata or offsets).
    pub groups: usize,
    /// Live committed offsets loaded.
    pub offsets: usize,
    /// Records that could not be decoded and were skipped.
    pub corrupt_records: usize,
}

mod describe;
mod group;
mod join;
mod load;
mod members;
mod offsets;
mod ownership;
mod timers;
mod txn_offsets;

use group::*;
pub use load::Loader;
use ownership::Ownership;
use timers::*;

/// A change that depends on the outcome of an [`Output::Persist`] (see
/// [`GroupCoordinator::persisted`]).
#[derive(Debug)]
enum Pending {
    /// Committed offsets, applied only once their records are written. Kafka's
    /// `GroupMetadataManager.storeOffsets` likewise updates the offset cache only in the append
    /// callback, and on a failed append answers the mapped error with the cache untouched.
    Commit {
        group_id: String,
        offsets: Vec<(String, i32, CommittedOffset)>,
        /// The request created the group (a commit outside group management); a failed
        /// append removes it again if it is still empty, so that the group's in-memory state
        /// is as before the request.
        created: bool,
    },
    /// The leader's assignment that completed a rebalance. The group became Stable when the
    /// assignment was stored; a failed append undoes that as Kafka's SyncGroup `storeGroup`
    /// callback does (`resetAndPropagateAssignmentError`, then `maybePrepareRebalance`).
    Sync { group_id: String, generation: i32 },
    /// A static member that rejoined a Stable group under a new member id without a
    /// rebalance. A failed append gives the instance its old member id and settings back, as
    /// Kafka's `updateStaticMemberAndRebalance` callback does (`updateMember` with the old
    /// protocols and timeouts, then `replaceStaticMember` back to the old id).
    StaticRejoin(Box<StaticRejoin>),
    /// Transactional offsets (TxnOffsetCommit): once written they wait, per producer id, for
    /// the transaction's marker (`txn_offsets`), as Kafka's `pendingTransactionalOffsetCommits`.
    TxnCommit {
        producer_id: i64,
        partition: i32,
        offsets: Vec<(String, String, i32, CommittedOffset)>,
    },
}

/// What [`Pending::StaticRejoin`] restores.
#[derive(Debug)]
struct StaticRejoin {
    group_id: String,
    instance: String,
    old_member_id: String,
    new_member_id: String,
    protocols: Vec<Protocol>,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    supports_skip_assignment: bool,
}

/// The group coordinator for the groups of this broker: all of them on a single node, those of
/// the `__consumer_offsets` partitions it leads in a cluster (`ownership.rs`).
#[derive(Debug)]
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: HashMap<String, Group>,
    timers: Timers,
    outputs: Vec<Output>,
    member_seq: u64,
    /// Changes waiting for the outcome of their append, by [`PendingId`]. The driver reports
    /// every pending append before it releases the coordinator, so this holds at most the
    /// changes of one call.
    pending: HashMap<u64, Pending>,
    next_pending: u64,
    /// Written transactional offsets waiting for their transaction's marker, by producer id:
    /// `(offsets partition, group, topic, partition, offset)` in commit order.
    txn_offsets: HashMap<i64, Vec<TxnOffset>>,
    /// The `__consumer_offsets` partitions served here (`ownership.rs`).
    ownership: Ownership,
}

/// One transactional offset waiting for its marker.
#[derive(Debug, Clone)]
struct TxnOffset {
    offsets_partition: i32,
    group_id: String,
    topic: String,
    partition: i32,
    value: CommittedOffset,
}

fn too_long(s: &str) -> bool {
    s.len() > MAX_STRING_LEN
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl GroupCoordinator {
    /// A coordinator with no groups. `now_ms` starts the offset-expiration schedule.
    pub fn new(config: GroupConfig, now_ms: i64) -> GroupCoordinator {
        let mut timers = Timers::default();
        timers.schedule(
            TimerKey::OffsetExpiry,
            now_ms.saturating_add(config.offsets_retention_check_interval_ms),
        );
        GroupCoordinator {
            config,
            groups: HashMap::new(),
            timers,
            outputs: Vec::new(),
            member_seq: 0,
            pending: HashMap::new(),
            next_pending: 0,
            txn_offsets: HashMap::new(),
            ownership: Ownership::All,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition of a group.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        records::partition_for(group_id, self.config.offsets_partitions)
    }

    /// Takes the outputs produced so far, in order. The broker drains after every call; the
    /// queue holds only what one call produced (at most one reply per member of a group plus
    /// its records), so it stays bounded.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// The earliest pending deadline; the driver calls [`Self::tick`] then.
    pub fn next_deadline(&self) -> Option<i64> {
        self.timers.next()
    }

    /// Fires every timer due at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) {
        // Timers scheduled while firing (e.g. a zero initial delay) are due at once; they are
        // fired in the same call, but a bounded number of rounds guarantees termination even
        // if a client asks for zero timeouts.
        for _ in 0..10_000 {
            let Some((deadline, key)) = self.timers.pop_due(now_ms) else {
                return;
            };
            // A timer takes effect at its deadline even when the driver is late, so that
            // follow-up deadlines (e.g. an extended initial delay) do not drift.
            self.fire(key, deadline);
        }
    }

    fn fire(&mut self, key: TimerKey, now_ms: i64) {
        match key {
            TimerKey::Heartbeat(group_id, member_id) => {
                self.on_heartbeat_expired(&group_id, &member_id, now_ms)
            }
            TimerKey::PendingMember(group_id, member_id) => {
                if let Some(g) = self.groups.get_mut(&group_id) {
                    if g.pending_members.remove(&member_id) {
                        self.check_join_complete(&group_id, now_ms);
                    }
                }
            }
            TimerKey::Join(group_id) => self.on_join_timer(&group_id, now_ms),
            TimerKey::PendingSync(group_id) => self.on_pending_sync_expired(&group_id, now_ms),
            TimerKey::OffsetExpiry => {
                self.expire_offsets(now_ms);
                self.timers.schedule(
                    TimerKey::OffsetExpiry,
                    now_ms.saturating_add(self.config.offsets_retention_check_interval_ms.max(1)),
                );
            }
        }
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        self.member_seq += 1;
        let a = splitmix64(self.config.member_id_seed ^ self.member_seq);
        let b = splitmix64(a ^ self.member_seq.rotate_left(32));
        // Kafka: `clientId + "-" + UUID.randomUUID()` (or the instance id for static members).
        format!(
            "{prefix}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    fn persist(&mut self, partition: i32, records: Vec<PersistRecord>) {
        if records.is_empty() {
            return;
        }
        self.outputs.push(Output::Persist {
            partition,
            records,
            pending: None,
            producer: None,
        });
    }

    /// Like [`Self::persist`], with a change that waits for the append's outcome.
    fn persist_pending(&mut self, partition: i32, records: Vec<PersistRecord>, pending: Pending) {
        if records.is_empty() {
            return;
        }
        self.next_pending += 1;
        let id = self.next_pending;
        self.pending.insert(id, pending);
        self.outputs.push(Output::Persist {
            partition,
            records,
            pending: Some(PendingId(id)),
            producer: None,
        });
    }

    /// Reports the outcome of an [`Output::Persist`] that carried a [`PendingId`]: `Ok` applies
    /// the change that waited for it, `Err(code)` discards it (the broker answers the requests
    /// that depended on it with `code`). The driver must call this for every such output before
    /// it feeds the coordinator anything else, and then drain the outputs again.
    pub fn persisted(&mut self, id: PendingId, result: Result<(), ErrorCode>, now_ms: i64) {
        let Some(pending) = self.pending.remove(&id.0) else {
            return;
        };
        match (pending, result) {
            (
                Pending::Commit {
                    group_id, offsets, ..
                },
                Ok(()),
            ) => {
                // Kafka applies the offsets unless the group died in between; here nothing can
                // run in between, but a group deleted meanwhile must not be resurrected.
                if let Some(g) = self.groups.get_mut(&group_id) {
                    for (topic, partition, value) in offsets {
                        g.offsets.entry(topic).or_default().insert(partition, value);
                    }
                }
            }
            (
                Pending::Commit {
                    group_id, created, ..
                },
                Err(_),
            ) => {
                let untouched = self.groups.get(&group_id).is_some_and(|g| {
                    g.members.is_empty() && g.offsets.is_empty() && g.pending_members.is_empty()
                });
                if created && untouched {
                    self.groups.remove(&group_id);
                }
            }
            (
                Pending::TxnCommit {
                    producer_id,
                    partition,
                    offsets,
                },
                Ok(()),
            ) => self.stage_txn_offsets(producer_id, partition, offsets),
            (Pending::TxnCommit { .. }, Err(_)) => {}
            (Pending::Sync { .. } | Pending::StaticRejoin(_), Ok(())) => {}
            (Pending::StaticRejoin(undo), Err(_)) => self.undo_static_rejoin(*undo, now_ms),
            (
                Pending::Sync {
                    group_id,
                    generation,
                },
                Err(_),
            ) => {
                let Some(g) = self.groups.get_mut(&group_id) else {
                    return;
                };
                // Kafka acts only if the group is still in the generation whose assignment was
                // being stored; the SyncGroup answers already queued are turned into errors by
                // the driver, which answers every reply after a failed append with its code.
                if g.generation != generation || g.state != GroupState::Stable {
                    return;
                }
                for m in g.members.values_mut() {
                    m.assignment = Bytes::new();
                }
                // Kafka's group is still CompletingRebalance here (it becomes Stable only in the
                // callback); go back there so that the rebalance starts from the same state.
                g.transition(GroupState::CompletingRebalance, now_ms);
                self.maybe_prepare_rebalance(&group_id, now_ms);
            }
        }
    }

    /// Reverts [`Self::replace_static_member`] after its append failed (see
    /// [`Pending::StaticRejoin`]). Nothing can have run in between, but the checks keep this a
    /// no-op if the instance moved on.
    fn undo_static_rejoin(&mut self, undo: StaticRejoin, now_ms: i64) {
        let Some(g) = self.groups.get_mut(&undo.group_id) else {
            return;
        };
        if g.static_members.get(&undo.instance) != Some(&undo.new_member_id) {
            return;
        }
        let Some(mut member) = g.members.remove(&undo.new_member_id) else {
            return;
        };
        member.member_id = undo.old_member_id.clone();
        member.protocols = undo.protocols;
        member.rebalance_timeout_ms = undo.rebalance_timeout_ms;
        member.session_timeout_ms = undo.session_timeout_ms;
        member.supports_skip_assignment = undo.supports_skip_assignment;
        member.join_waiter = None;
        member.sync_waiter = None;
        g.members.insert(undo.old_member_id.clone(), member);
        g.static_members
            .insert(undo.instance, undo.old_member_id.clone());
        if g.is_leader(&undo.new_member_id) {
            g.leader = Some(undo.old_member_id.clone());
        }
        if g.pending_sync.remove(&undo.new_member_id) {
            g.pending_sync.insert(undo.old_member_id.clone());
        }
        self.timers.cancel(&TimerKey::Heartbeat(
            undo.group_id.clone(),
            undo.new_member_id,
        ));
        // Kafka's `completeAndScheduleNextHeartbeatExpiration` for the old member.
        self.schedule_heartbeat(
            &undo.group_id,
            &undo.old_member_id,
            i64::from(undo.session_timeout_ms),
            now_ms,
        );
    }

    /// Persists a group's current generation (Kafka's `storeGroup`). `pending` is what a
    /// failed append undoes.
    fn store_group(&mut self, group_id: &str, pending: Option<Pending>) -> Result<(), GroupError> {
        let Some(g) = self.groups.get(group_id) else {
            return Ok(());
        };
        let key = records::group_metadata_key(group_id)?;
        let value = records::group_metadata_value(&g.stored())?;
        let partition = g.partition;
        let records = vec![PersistRecord {
            key,
            value: Some(value),
        }];
        match pending {
            Some(p) => self.persist_pending(partition, records, p),
            None => self.persist(partition, records),
        }
        Ok(())
    }

    fn schedule_heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        timeout_ms: i64,
        now_ms: i64,
    ) {
        self.timers.schedule(
            TimerKey::Heartbeat(group_id.to_owned(), member_id.to_owned()),
            now_ms.saturating_add(timeout_ms),
        );
    }

    fn reply_join(&mut self, token: Token, response: JoinGroupResponse) {
        self.outputs.push(Output::Join(token, response));
    }

    fn reply_sync(&mut self, token: Token, response: SyncGroupResponse) {
        self.outputs.push(Output::Sync(token, response));
    }

    // ----------------------------------------------------------------------------------------
    // JoinGroup
    // ----------------------------------------------------------------------------------------
}
