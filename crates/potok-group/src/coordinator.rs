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

#[derive(Debug)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocols: Vec<Protocol>,
    assignment: Bytes,
    /// A parked JoinGroup (Kafka's `awaitingJoinCallback`).
    join_waiter: Option<Token>,
    /// A parked SyncGroup (Kafka's `awaitingSyncCallback`).
    sync_waiter: Option<Token>,
    /// Joined but has not yet received a JoinGroup response; such members expire after
    /// `new_member_join_timeout_ms` rather than being kept alive by the join phase.
    is_new: bool,
    /// Whether the member's JoinGroup supported KIP-814 `skip_assignment`.
    supports_skip_assignment: bool,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }
}

/// Which kind of join phase is running (Kafka's `InitialDelayedJoin` vs `DelayedJoin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinPhase {
    /// The first rebalance of an empty group waits `group.initial.rebalance.delay.ms`, extended
    /// while new members keep arriving, up to the rebalance timeout (`remaining_ms`).
    Initial { remaining_ms: i64 },
    /// Ends when every member has rejoined or at the rebalance timeout.
    Normal,
}

#[derive(Debug)]
struct Group {
    group_id: String,
    partition: i32,
    state: GroupState,
    current_state_timestamp_ms: Option<i64>,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// Ordered so that leader re-election and descriptions are deterministic.
    members: BTreeMap<String, Member>,
    /// `group.instance.id` -> member id.
    static_members: HashMap<String, String>,
    /// Members that got `MEMBER_ID_REQUIRED` and have not rejoined yet (KIP-394).
    pending_members: HashSet<String>,
    /// Members of the new generation that have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    join_phase: Option<JoinPhase>,
    new_member_added: bool,
    subscribed_topics: Option<HashSet<String>>,
    offsets: BTreeMap<String, BTreeMap<i32, CommittedOffset>>,
}

impl Group {
    fn new(group_id: String, partition: i32, now_ms: i64) -> Group {
        Group {
            group_id,
            partition,
            state: GroupState::Empty,
            current_state_timestamp_ms: Some(now_ms),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashSet::new(),
            pending_sync: HashSet::new(),
            join_phase: None,
            new_member_added: false,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
        }
    }

    fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.current_state_timestamp_ms = Some(now_ms);
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.join_waiter.is_some())
            .count()
    }

    /// Kafka's `hasAllMembersJoined`: every member rejoined and no KIP-394 member is pending.
    fn all_members_joined(&self) -> bool {
        self.members.len() == self.num_awaiting_join() && self.pending_members.is_empty()
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty protocol list; a
    /// non-empty one needs the same protocol type and one protocol every member supports.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|p| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|mp| mp.name == p.name))
        })
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, each member votes
    /// for its most preferred one; the most votes win. Kafka breaks ties arbitrarily (hash
    /// order); here the candidate listed first by the first member wins, deterministically.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|mp| mp.name == *name))
            })
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name))
            {
                votes[i] += 1;
            }
        }
        let mut best: Option<usize> = None;
        for (i, v) in votes.iter().enumerate() {
            if best.is_none_or(|b| *v > votes[b]) {
                best = Some(i);
            }
        }
        best.map(|i| candidates[i].to_owned())
    }

    /// The union of the topics in the members' `ConsumerProtocolSubscription`s, used to keep
    /// offsets of subscribed topics from expiring and from OffsetDelete (KIP-496). `None`
    /// when the group is not a "consumer" group or a subscription does not parse, as Kafka.
    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let mut md = m.metadata(protocol);
            if md.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([md[0], md[1]]);
            if version < 0 {
                return None;
            }
            let _ = bytes::Buf::get_i16(&mut md);
            // Like Kafka's ConsumerProtocol, read a newer version as the newest we know.
            let sub = ConsumerProtocolSubscription::decode(&mut md, version.min(3)).ok()?;
            topics.extend(sub.topics);
        }
        Some(topics)
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.is_leader(member_id) {
            // Kafka picks any remaining member as the new leader.
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_sync.remove(member_id);
        Some(member)
    }

    fn has_offsets(&self) -> bool {
        !self.offsets.is_empty()
    }

    fn stored(&self) -> StoredGroup {
        let protocol = self.protocol_name.clone();
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.current_state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// Timer identities. A timer is rescheduled by replacing its entry, never duplicated.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerKey {
    /// Session expiry of a member (Kafka's `DelayedHeartbeat`).
    Heartbeat(String, String),
    /// Expiry of a KIP-394 pending member that never rejoined.
    PendingMember(String, String),
    /// End of the join phase (`DelayedJoin` / `InitialDelayedJoin`).
    Join(String),
    /// Members that do not send SyncGroup within the rebalance timeout are removed.
    PendingSync(String),
    /// The periodic offset-expiration task.
    OffsetExpiry,
}

/// A set of deadlines keyed by [`TimerKey`], ordered by time.
#[derive(Debug, Default)]
struct Timers {
    by_time: BTreeSet<(i64, TimerKey)>,
    by_key: HashMap<TimerKey, i64>,
}

impl Timers {
    fn schedule(&mut self, key: TimerKey, deadline_ms: i64) {
        if let Some(old) = self.by_key.insert(key.clone(), deadline_ms) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((deadline_ms, key));
    }

    fn cancel(&mut self, key: &TimerKey) {
        if let Some(old) = self.by_key.remove(key) {
            self.by_time.remove(&(old, key.clone()));
        }
    }

    fn next(&self) -> Option<i64> {
        self.by_time.first().map(|(t, _)| *t)
    }

    fn pop_due(&mut self, now_ms: i64) -> Option<(i64, TimerKey)> {
        let (t, _) = self.by_time.first()?;
        if *t > now_ms {
            return None;
        }
        let (t, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some((t, key))
    }
}

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

/// The group coordinator for all groups of this broker (every `__consumer_offsets` partition
/// is led by the single broker).
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

    /// Handles a JoinGroup. The answer is an [`Output::Join`] for `token`, now or when the
    /// join phase completes.
    pub fn join_group(&mut self, now_ms: i64, token: Token, req: JoinGroupRequest) {
        let err = |this: &mut Self, code| {
            let member_id = req.member_id.clone();
            this.reply_join(token, JoinGroupResponse::error(code, member_id));
        };
        if req.group_id.is_empty() || too_long(&req.group_id) {
            return err(self, ErrorCode::InvalidGroupId);
        }
        let strings_ok = !too_long(&req.member_id)
            && !too_long(&req.client_id)
            && !too_long(&req.client_host)
            && !too_long(&req.protocol_type)
            && req
                .group_instance_id
                .as_deref()
                .is_none_or(|i| !i.is_empty() && i.len() <= 249)
            && req.protocols.iter().all(|p| !too_long(&p.name));
        if !strings_ok {
            return err(self, ErrorCode::InvalidRequest);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return err(self, ErrorCode::InvalidSessionTimeout);
        }
        let exists = self.groups.contains_key(&req.group_id);
        if !exists {
            // Kafka: a known member id for a group that does not exist is stale.
            if !req.member_id.is_empty() {
                return err(self, ErrorCode::UnknownMemberId);
            }
            let partition = self.partition_for(&req.group_id);
            self.groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), partition, now_ms),
            );
        }
        let group_id = req.group_id.clone();
        if req.member_id.is_empty() {
            self.join_unknown_member(now_ms, token, req);
        } else {
            self.join_known_member(now_ms, token, req);
        }
        // A freshly created group that the request did not join leaves no trace.
        if !exists {
            if let Some(g) = self.groups.get(&group_id) {
                if g.members.is_empty()
                    && g.pending_members.is_empty()
                    && g.state == GroupState::Empty
                    && !g.has_offsets()
                {
                    self.groups.remove(&group_id);
                }
            }
        }
        // Kafka re-checks the join purgatory after every JoinGroup.
        self.check_join_complete(&group_id, now_ms);
    }

    /// Kafka's `acceptJoiningMember` (`group.max.size`).
    fn accept_joining_member(&self, g: &Group, member_id: &str) -> bool {
        let max = self.config.max_size;
        match g.state {
            GroupState::Empty | GroupState::Dead => true,
            // Counting awaiting members rather than all members lets a shrunk max size kick
            // out the last members to rejoin.
            GroupState::PreparingRebalance => {
                g.members
                    .get(member_id)
                    .is_some_and(|m| m.join_waiter.is_some())
                    || g.num_awaiting_join() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                g.members.contains_key(member_id) || g.members.len() < max
            }
        }
    }

    fn join_unknown_member(&mut self, now_ms: i64, token: Token, req: JoinGroupRequest) {
        let g = &self.groups[&req.group_id];
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            return self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::InconsistentGroupProtocol, ""),
            );
        }
        if !self.accept_joining_member(g, "") {
            return self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::GroupMaxSizeReached, ""),
            );
        }
        let prefix = req
            .group_instance_id
            .as_deref()
            .unwrap_or(&req.client_id)
            .to_owned();
        let new_member_id = self.new_member_id(&prefix);
        if let Some(instance) = req.group_instance_id.clone() {
            let existing = self.groups[&req.group_id]
                .static_members
                .get(&instance)
                .cloned();
            match existing {
                Some(old_member_id) => {
                    self.replace_static_member(now_ms, token, req, &old_member_id, new_member_id)
                }
                None => self.add_member_and_rebalance(now_ms, token, req, new_member_id),
            }
        } else if req.require_known_member_id {
            // KIP-394: the member must come back with this id; until then it holds up the
            // join phase for at most its session timeout.
            let group_id = req.group_id.clone();
            let g = self.groups.get_mut(&group_id).expect("checked above");
            g.pending_members.insert(new_member_id.clone());
            self.timers.schedule(
                TimerKey::PendingMember(group_id, new_member_id.clone()),
                now_ms.saturating_add(i64::from(req.session_timeout_ms)),
            );
            self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::MemberIdRequired, new_member_id),
            );
        } else {
            self.add_member_and_rebalance(now_ms, token, req, new_member_id);
        }
    }

    fn join_known_member(&mut self, now_ms: i64, token: Token, req: JoinGroupRequest) {
        let group_id = req.group_id.clone();
        let g = &self.groups[&group_id];
        if !g.supports_protocols(&req.protocol_type, &req.protocols) {
            return self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::InconsistentGroupProtocol, req.member_id),
            );
        }
        if g.pending_members.contains(&req.member_id) {
            if !self.accept_joining_member(g, &req.member_id) {
                return self.reply_join(
                    token,
                    JoinGroupResponse::error(ErrorCode::GroupMaxSizeReached, req.member_id),
                );
            }
            let member_id = req.member_id.clone();
            let g = self.groups.get_mut(&group_id).expect("exists");
            g.pending_members.remove(&member_id);
            self.timers
                .cancel(&TimerKey::PendingMember(group_id, member_id.clone()));
            return self.add_member_and_rebalance(now_ms, token, req, member_id);
        }
        if let Err(code) = validate_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return self.reply_join(token, JoinGroupResponse::error(code, req.member_id));
        }
        if !self.accept_joining_member(g, &req.member_id) {
            return self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::GroupMaxSizeReached, req.member_id),
            );
        }
        let member = &g.members[&req.member_id];
        let same_metadata = member.protocols == req.protocols;
        match g.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(now_ms, token, req),
            GroupState::CompletingRebalance => {
                if same_metadata {
                    // The member lost its JoinGroup response: answer again for the current
                    // generation.
                    let response =
                        self.current_generation_response(&group_id, &req.member_id, false);
                    self.reply_join(token, response);
                } else {
                    self.update_member_and_rebalance(now_ms, token, req);
                }
            }
            GroupState::Stable => {
                if g.is_leader(&req.member_id) || !same_metadata {
                    // A rejoining leader forces a rebalance (its way to react to metadata
                    // changes, e.g. new partitions), as does a change of subscription.
                    self.update_member_and_rebalance(now_ms, token, req);
                } else {
                    let response =
                        self.current_generation_response(&group_id, &req.member_id, false);
                    self.reply_join(token, response);
                }
            }
            GroupState::Empty | GroupState::Dead => self.reply_join(
                token,
                JoinGroupResponse::error(ErrorCode::UnknownMemberId, req.member_id),
            ),
        }
    }

    fn current_generation_response(
        &self,
        group_id: &str,
        member_id: &str,
        skip_assignment: bool,
    ) -> JoinGroupResponse {
        let g = &self.groups[group_id];
        let members = if g.is_leader(member_id) {
            member_list(g)
        } else {
            Vec::new()
        };
        JoinGroupResponse {
            error: ErrorCode::None,
            generation_id: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            leader: g.leader.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_owned(),
            members,
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        token: Token,
        req: JoinGroupRequest,
        member_id: String,
    ) {
        let group_id = req.group_id.clone();
        let g = self.groups.get_mut(&group_id).expect("exists");
        // Kafka extends the initial delay when members keep arriving during the first
        // rebalance (`newMemberAdded`).
        if g.state == GroupState::PreparingRebalance && g.generation == 0 {
            g.new_member_added = true;
        }
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(instance) = &req.group_instance_id {
            g.static_members.insert(instance.clone(), member_id.clone());
        }
        if g.leader.is_none() {
            g.leader = Some(member_id.clone());
        }
        g.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                session_timeout_ms: req.session_timeout_ms,
                protocols: req.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(token),
                sync_waiter: None,
                is_new: true,
                supports_skip_assignment: req.supports_skip_assignment,
            },
        );
        // New members cannot heartbeat (they do not know their id yet) and their sockets are
        // muted while they wait, so a member that went away would hold the rebalance forever;
        // Kafka drops it after NewMemberJoinTimeoutMs instead.
        let timeout = self.config.new_member_join_timeout_ms;
        self.schedule_heartbeat(&group_id, &member_id, timeout, now_ms);
        self.maybe_prepare_rebalance(&group_id, now_ms);
    }

    fn update_member_and_rebalance(&mut self, now_ms: i64, token: Token, req: JoinGroupRequest) {
        let group_id = req.group_id.clone();
        let old_waiter = {
            let g = self.groups.get_mut(&group_id).expect("exists");
            let m = g.members.get_mut(&req.member_id).expect("validated");
            m.protocols = req.protocols;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.session_timeout_ms = req.session_timeout_ms;
            m.supports_skip_assignment = req.supports_skip_assignment;
            m.join_waiter.replace(token)
        };
        if let Some(old) = old_waiter {
            // A second JoinGroup replaces the first, which the client has given up on; answer
            // it so that nothing stays parked.
            self.reply_join(
                old,
                JoinGroupResponse::error(ErrorCode::RebalanceInProgress, req.member_id),
            );
        }
        self.maybe_prepare_rebalance(&group_id, now_ms);
    }

    fn replace_static_member(
        &mut self,
        now_ms: i64,
        token: Token,
        req: JoinGroupRequest,
        old_member_id: &str,
        new_member_id: String,
    ) {
        let group_id = req.group_id.clone();
        let instance = req.group_instance_id.clone().unwrap_or_default();
        let g = self.groups.get_mut(&group_id).expect("exists");
        let previous_leader = g.leader.clone().unwrap_or_default();
        let Some(mut member) = g.members.remove(old_member_id) else {
            return;
        };
        let fenced_join = member.join_waiter.take();
        let fenced_sync = member.sync_waiter.take();
        member.member_id = new_member_id.clone();
        let undo = StaticRejoin {
            group_id: group_id.clone(),
            instance: instance.clone(),
            old_member_id: old_member_id.to_owned(),
            new_member_id: new_member_id.clone(),
            protocols: member.protocols.clone(),
            rebalance_timeout_ms: member.rebalance_timeout_ms,
            session_timeout_ms: member.session_timeout_ms,
            supports_skip_assignment: member.supports_skip_assignment,
        };
        let old_protocols = std::mem::replace(&mut member.protocols, req.protocols.clone());
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.supports_skip_assignment = req.supports_skip_assignment;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        g.members.insert(new_member_id.clone(), member);
        g.static_members.insert(instance, new_member_id.clone());
        if g.is_leader(old_member_id) {
            g.leader = Some(new_member_id.clone());
        }
        if g.pending_sync.remove(old_member_id) {
            g.pending_sync.insert(new_member_id.clone());
        }
        let state = g.state;
        self.timers.cancel(&TimerKey::Heartbeat(
            group_id.clone(),
            old_member_id.to_owned(),
        ));
        // KIP-345: the old incarnation's parked requests are fenced.
        if let Some(t) = fenced_join {
            self.reply_join(
                t,
                JoinGroupResponse::error(ErrorCode::FencedInstanceId, old_member_id),
            );
        }
        if let Some(t) = fenced_sync {
            self.reply_sync(t, SyncGroupResponse::error(ErrorCode::FencedInstanceId));
        }
        let session = i64::from(req.session_timeout_ms);
        self.schedule_heartbeat(&group_id, &new_member_id, session, now_ms);
        match state {
            GroupState::Stable => {
                let g = self.groups.get_mut(&group_id).expect("exists");
                // Rebalance only if the group would pick a different protocol now; otherwise
                // persist the new member id and hand back the current generation.
                if g.select_protocol() == g.protocol_name {
                    // A failed append reverts the new identity (`persisted`); the broker turns
                    // the answer below into the append's error.
                    let pending = Pending::StaticRejoin(Box::new(undo));
                    if self.store_group(&group_id, Some(pending)).is_err() {
                        // Entry validation makes this unreachable; undo rather than lose the
                        // member's identity silently.
                        let g = self.groups.get_mut(&group_id).expect("exists");
                        if let Some(m) = g.members.get_mut(&new_member_id) {
                            m.protocols = old_protocols;
                        }
                        return self.reply_join(
                            token,
                            JoinGroupResponse::error(ErrorCode::UnknownServerError, ""),
                        );
                    }
                    let g = &self.groups[&group_id];
                    let is_leader = g.is_leader(&new_member_id);
                    let skip = is_leader && req.supports_skip_assignment;
                    let response = JoinGroupResponse {
                        error: ErrorCode::None,
                        generation_id: g.generation,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol_name.clone(),
                        // Kafka answers with the leader as it was before the replacement, so a
                        // client without KIP-814 support does not act as leader.
                        leader: previous_leader,
                        skip_assignment: skip,
                        member_id: new_member_id,
                        members: if skip { member_list(g) } else { Vec::new() },
                    };
                    self.reply_join(token, response);
                } else {
                    self.set_join_waiter(&group_id, &new_member_id, token);
                    self.maybe_prepare_rebalance(&group_id, now_ms);
                }
            }
            GroupState::CompletingRebalance => {
                // The old incarnation may not have got its JoinGroup response: rebalance.
                self.set_join_waiter(&group_id, &new_member_id, token);
                self.maybe_prepare_rebalance(&group_id, now_ms);
            }
            GroupState::PreparingRebalance => {
                self.set_join_waiter(&group_id, &new_member_id, token);
            }
            GroupState::Empty | GroupState::Dead => {
                self.reply_join(
                    token,
                    JoinGroupResponse::error(ErrorCode::UnknownMemberId, ""),
                );
            }
        }
    }

    fn set_join_waiter(&mut self, group_id: &str, member_id: &str, token: Token) {
        if let Some(m) = self
            .groups
            .get_mut(group_id)
            .and_then(|g| g.members.get_mut(member_id))
        {
            m.join_waiter = Some(token);
        }
    }

    fn maybe_prepare_rebalance(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(group_id, now_ms);
        }
    }

    fn prepare_rebalance(&mut self, group_id: &str, now_ms: i64) {
        let initial_delay = i64::from(self.config.initial_rebalance_delay_ms.max(0));
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state == GroupState::CompletingRebalance {
            // Members waiting for their assignment must rejoin instead.
            let mut fenced = Vec::new();
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_waiter.take() {
                    fenced.push(t);
                }
            }
            for t in fenced {
                self.reply_sync(t, SyncGroupResponse::error(ErrorCode::RebalanceInProgress));
            }
        }
        let g = self.groups.get_mut(group_id).expect("exists");
        self.timers
            .cancel(&TimerKey::PendingSync(group_id.to_owned()));
        let rebalance_timeout = g.rebalance_timeout_ms();
        let (phase, delay) = if g.state == GroupState::Empty {
            (
                JoinPhase::Initial {
                    remaining_ms: (rebalance_timeout - initial_delay).max(0),
                },
                initial_delay,
            )
        } else {
            (JoinPhase::Normal, rebalance_timeout)
        };
        g.join_phase = Some(phase);
        g.transition(GroupState::PreparingRebalance, now_ms);
        self.timers.schedule(
            TimerKey::Join(group_id.to_owned()),
            now_ms.saturating_add(delay),
        );
        self.check_join_complete(group_id, now_ms);
    }

    /// Completes a normal join phase early once every member has rejoined (Kafka's
    /// `DelayedJoin.tryComplete`); the initial delayed join never completes early.
    fn check_join_complete(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        if g.state == GroupState::PreparingRebalance
            && g.join_phase == Some(JoinPhase::Normal)
            && g.all_members_joined()
        {
            self.timers.cancel(&TimerKey::Join(group_id.to_owned()));
            self.complete_join(group_id, now_ms);
        }
    }

    fn on_join_timer(&mut self, group_id: &str, now_ms: i64) {
        let initial_delay = i64::from(self.config.initial_rebalance_delay_ms.max(0));
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        if let Some(JoinPhase::Initial { remaining_ms }) = g.join_phase {
            if g.new_member_added && remaining_ms > 0 {
                g.new_member_added = false;
                let delay = initial_delay.min(remaining_ms);
                g.join_phase = Some(JoinPhase::Initial {
                    remaining_ms: remaining_ms - delay,
                });
                self.timers.schedule(
                    TimerKey::Join(group_id.to_owned()),
                    now_ms.saturating_add(delay),
                );
                return;
            }
        }
        self.complete_join(group_id, now_ms);
    }

    /// Kafka's `onCompleteJoin`.
    fn complete_join(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        g.join_phase = None;
        // Dynamic members that did not rejoin are dropped; static members stay (their session
        // timeout decides).
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in &gone {
            g.remove_member(id);
            self.timers
                .cancel(&TimerKey::Heartbeat(group_id.to_owned(), id.clone()));
        }
        let g = self.groups.get_mut(group_id).expect("exists");
        if !elect_joined_leader(g) && !g.members.is_empty() {
            // Only static members that have not rejoined are left: wait another rebalance
            // timeout for them or for their session timeouts.
            g.join_phase = Some(JoinPhase::Normal);
            let timeout = g.rebalance_timeout_ms().max(1);
            self.timers.schedule(
                TimerKey::Join(group_id.to_owned()),
                now_ms.saturating_add(timeout),
            );
            return;
        }
        // initNextGeneration
        g.generation = g.generation.saturating_add(1);
        g.pending_sync.clear();
        if g.members.is_empty() {
            g.protocol_name = None;
            g.subscribed_topics = None;
            g.transition(GroupState::Empty, now_ms);
            // Kafka only logs a failure to store the empty generation (the group stays Empty
            // with its new generation), so nothing waits for this append.
            let _ = self.store_group(group_id, None);
            return;
        }
        g.protocol_name = g.select_protocol();
        g.subscribed_topics = g.compute_subscribed_topics();
        g.transition(GroupState::CompletingRebalance, now_ms);
        let leader_members = member_list(g);
        let generation = g.generation;
        let protocol_type = g.protocol_type.clone();
        let protocol_name = g.protocol_name.clone();
        let leader = g.leader.clone().unwrap_or_default();
        let mut replies = Vec::new();
        let mut heartbeats = Vec::new();
        for m in g.members.values_mut() {
            if let Some(t) = m.join_waiter.take() {
                let is_leader = m.member_id == leader;
                replies.push((
                    t,
                    JoinGroupResponse {
                        error: ErrorCode::None,
                        generation_id: generation,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        leader: leader.clone(),
                        skip_assignment: false,
                        member_id: m.member_id.clone(),
                        members: if is_leader {
                            leader_members.clone()
                        } else {
                            Vec::new()
                        },
                    },
                ));
            }
            m.is_new = false;
            heartbeats.push((m.member_id.clone(), i64::from(m.session_timeout_ms)));
        }
        g.pending_sync = g.members.keys().cloned().collect();
        let sync_deadline = now_ms.saturating_add(g.rebalance_timeout_ms());
        for (t, r) in replies {
            self.reply_join(t, r);
        }
        for (id, timeout) in heartbeats {
            self.schedule_heartbeat(group_id, &id, timeout, now_ms);
        }
        self.timers
            .schedule(TimerKey::PendingSync(group_id.to_owned()), sync_deadline);
    }

    fn on_pending_sync_expired(&mut self, group_id: &str, now_ms: i64) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        if !matches!(
            g.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) || g.pending_sync.is_empty()
        {
            return;
        }
        let pending: Vec<String> = g.pending_sync.iter().cloned().collect();
        for id in pending {
            self.remove_member_quietly(group_id, &id);
        }
        self.prepare_rebalance(group_id, now_ms);
    }

    /// Removes a member, answering its parked requests with `UNKNOWN_MEMBER_ID`, without
    /// touching the group state.
    fn remove_member_quietly(&mut self, group_id: &str, member_id: &str) {
        let Some(g) = self.groups.get_mut(group_id) else {
            return;
        };
        let Some(m) = g.remove_member(member_id) else {
            return;
        };
        self.timers.cancel(&TimerKey::Heartbeat(
            group_id.to_owned(),
            member_id.to_owned(),
        ));
        if let Some(t) = m.join_waiter {
            self.reply_join(t, JoinGroupResponse::error(ErrorCode::UnknownMemberId, ""));
        }
        if let Some(t) = m.sync_waiter {
            self.reply_sync(t, SyncGroupResponse::error(ErrorCode::UnknownMemberId));
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup`.
    fn remove_member_and_update_group(&mut self, group_id: &str, member_id: &str, now_ms: i64) {
        self.remove_member_quietly(group_id, member_id);
        let Some(g) = self.groups.get(group_id) else {
            return;
        };
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(group_id, now_ms)
            }
            GroupState::PreparingRebalance => self.check_join_complete(group_id, now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn on_heartbeat_expired(&mut self, group_id: &str, member_id: &str, now_ms: i64) {
        let Some(m) = self
            .groups
            .get(group_id)
            .and_then(|g| g.members.get(member_id))
        else {
            return;
        };
        // Kafka's `hasSatisfiedHeartbeat`: members waiting in a join or sync phase are kept
        // alive by that phase (its own timeout removes them), except new members.
        if !m.is_new && (m.join_waiter.is_some() || m.sync_waiter.is_some()) {
            return;
        }
        self.remove_member_and_update_group(group_id, member_id, now_ms);
    }

    // ----------------------------------------------------------------------------------------
    // SyncGroup
    // ----------------------------------------------------------------------------------------

    /// Handles a SyncGroup. The answer is an [`Output::Sync`] for `token`, now or when the
    /// leader's assignment arrives.
    pub fn sync_group(&mut self, now_ms: i64, token: Token, req: SyncGroupRequest) {
        let Some(g) = self.groups.get_mut(&req.group_id) else {
            return self.reply_sync(token, SyncGroupResponse::error(ErrorCode::UnknownMemberId));
        };
        if let Err(code) = validate_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return self.reply_sync(token, SyncGroupResponse::error(code));
        }
        if req.generation_id != g.generation {
            return self.reply_sync(
                token,
                SyncGroupResponse::error(ErrorCode::IllegalGeneration),
            );
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|p| g.protocol_type.as_ref() != Some(p))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|p| g.protocol_name.as_ref() != Some(p))
        {
            return self.reply_sync(
                token,
                SyncGroupResponse::error(ErrorCode::InconsistentGroupProtocol),
            );
        }
        let group_id = req.group_id.clone();
        match g.state {
            GroupState::Empty | GroupState::Dead => {
                self.reply_sync(token, SyncGroupResponse::error(ErrorCode::UnknownMemberId))
            }
            GroupState::PreparingRebalance => self.reply_sync(
                token,
                SyncGroupResponse::error(ErrorCode::RebalanceInProgress),
            ),
            GroupState::CompletingRebalance => {
                let old = g
                    .members
                    .get_mut(&req.member_id)
                    .and_then(|m| m.sync_waiter.replace(token));
                g.pending_sync.remove(&req.member_id);
                let all_synced = g.pending_sync.is_empty();
                let is_leader = g.is_leader(&req.member_id);
                if let Some(old) = old {
                    self.reply_sync(
                        old,
                        SyncGroupResponse::error(ErrorCode::RebalanceInProgress),
                    );
                }
                if all_synced {
                    self.timers.cancel(&TimerKey::PendingSync(group_id.clone()));
                }
                if is_leader {
                    self.complete_sync(&group_id, req.assignments, now_ms);
                }
            }
            GroupState::Stable => {
                g.pending_sync.remove(&req.member_id);
                let all_synced = g.pending_sync.is_empty();
                let m = &g.members[&req.member_id];
                let response = SyncGroupResponse {
                    error: ErrorCode::None,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                };
                let session = i64::from(m.session_timeout_ms);
                if all_synced {
                    self.timers.cancel(&TimerKey::PendingSync(group_id.clone()));
                }
                self.schedule_heartbeat(&group_id, &req.member_id, session, now_ms);
                self.reply_sync(token, response);
            }
        }
    }

    /// Stores the leader's assignment, answers every parked SyncGroup and makes the group
    /// Stable (Kafka's `storeGroup` callback with `setAndPropagateAssignment`).
    fn complete_sync(&mut self, group_id: &str, assignments: Vec<(String, Bytes)>, now_ms: i64) {
        let g = self.groups.get_mut(group_id).expect("exists");
        let mut assignment: HashMap<String, Bytes> = assignments.into_iter().collect();
        // Members the leader did not assign get an empty assignment.
        for m in g.members.values_mut() {
            m.assignment = assignment.remove(&m.member_id).unwrap_or_default();
        }
        let generation = g.generation;
        let pending = Pending::Sync {
            group_id: group_id.to_owned(),
            generation,
        };
        if let Err(_e) = self.store_group(group_id, Some(pending)) {
            // Unreachable with validated strings; Kafka resets the assignment and rebalances
            // when the write fails, and so do we.
            let g = self.groups.get_mut(group_id).expect("exists");
            let mut fenced = Vec::new();
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(t) = m.sync_waiter.take() {
                    fenced.push(t);
                }
            }
            for t in fenced {
                self.reply_sync(t, SyncGroupResponse::error(ErrorCode::UnknownServerError));
            }
            self.maybe_prepare_rebalance(group_id, now_ms);
            return;
        }
        let g = self.groups.get_mut(group_id).expect("exists");
        let protocol_type = g.protocol_type.clone();
        let protocol_name = g.protocol_name.clone();
        let mut replies = Vec::new();
        for m in g.members.values_mut() {
            if let Some(t) = m.sync_waiter.take() {
                replies.push((
                    t,
                    SyncGroupResponse {
                        error: ErrorCode::None,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                    m.member_id.clone(),
                    i64::from(m.session_timeout_ms),
                ));
            }
        }
        g.transition(GroupState::Stable, now_ms);
        for (t, r, id, session) in replies {
            self.reply_sync(t, r);
            self.schedule_heartbeat(group_id, &id, session, now_ms);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Heartbeat, LeaveGroup
    // ----------------------------------------------------------------------------------------

    /// Handles a Heartbeat.
    pub fn heartbeat(&mut self, now_ms: i64, req: &HeartbeatRequest) -> ErrorCode {
        let Some(g) = self.groups.get(&req.group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        if let Err(code) = validate_member(g, &req.member_id, req.group_instance_id.as_deref()) {
            return code;
        }
        if req.generation_id != g.generation {
            return ErrorCode::IllegalGeneration;
        }
        let session = i64::from(g.members[&req.member_id].session_timeout_ms);
        let code = match g.state {
            GroupState::Empty | GroupState::Dead => return ErrorCode::UnknownMemberId,
            // Members may heartbeat between their JoinGroup and SyncGroup responses.
            GroupState::CompletingRebalance | GroupState::Stable => ErrorCode::None,
            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
        };
        self.schedule_heartbeat(&req.group_id, &req.member_id, session, now_ms);
        code
    }

    /// Handles a LeaveGroup (v0-v2 carry one member, v3+ a batch).
    pub fn leave_group(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> LeaveGroupResponse {
        if !self.groups.contains_key(group_id) {
            return LeaveGroupResponse {
                error: ErrorCode::UnknownMemberId,
                members: members
                    .into_iter()
                    .map(|m| (m, ErrorCode::UnknownMemberId))
                    .collect(),
            };
        }
        let mut results = Vec::with_capacity(members.len());
        for leaving in members {
            let g = self.groups.get_mut(group_id).expect("checked");
            let code = if leaving.member_id.is_empty() {
                // Removal by instance id (KIP-345 admin API).
                match leaving
                    .group_instance_id
                    .as_ref()
                    .and_then(|i| g.static_members.get(i))
                    .cloned()
                {
                    Some(member_id) => {
                        self.remove_member_and_update_group(group_id, &member_id, now_ms);
                        ErrorCode::None
                    }
                    None => ErrorCode::UnknownMemberId,
                }
            } else if g.pending_members.remove(&leaving.member_id) {
                self.timers.cancel(&TimerKey::PendingMember(
                    group_id.to_owned(),
                    leaving.member_id.clone(),
                ));
                self.check_join_complete(group_id, now_ms);
                ErrorCode::None
            } else {
                match validate_member(g, &leaving.member_id, leaving.group_instance_id.as_deref()) {
                    Err(code) => code,
                    Ok(()) => {
                        self.remove_member_and_update_group(group_id, &leaving.member_id, now_ms);
                        ErrorCode::None
                    }
                }
            };
            results.push((leaving, code));
        }
        LeaveGroupResponse {
            error: ErrorCode::None,
            members: results,
        }
    }

    // ----------------------------------------------------------------------------------------
    // Offsets
    // ----------------------------------------------------------------------------------------

    /// Handles an OffsetCommit; returns a code per partition, in request order. The records go
    /// to the output queue before the broker answers.
    pub fn commit_offsets(&mut self, now_ms: i64, req: &OffsetCommitRequest) -> PartitionResults {
        let all = |code: ErrorCode| -> PartitionResults {
            req.topics
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
                .collect()
        };
        if req.group_id.is_empty() || too_long(&req.group_id) {
            return all(ErrorCode::InvalidGroupId);
        }
        let mut created = false;
        match self.groups.get(&req.group_id) {
            None => {
                if req.generation_id >= 0 {
                    // The group is gone (e.g. all members expired and it was deleted): the
                    // member's generation is no longer valid.
                    return all(ErrorCode::IllegalGeneration);
                }
                // A group that does not use group management (assign() + commit).
                let partition = self.partition_for(&req.group_id);
                self.groups.insert(
                    req.group_id.clone(),
                    Group::new(req.group_id.clone(), partition, now_ms),
                );
                created = true;
            }
            Some(g) => {
                if let Err(code) = validate_offset_commit(g, req) {
                    return all(code);
                }
            }
        }
        let g = self.groups.get_mut(&req.group_id).expect("exists");
        let partition = g.partition;
        let refresh = g
            .members
            .get(&req.member_id)
            .map(|m| i64::from(m.session_timeout_ms));
        let expire =
            (req.retention_time_ms >= 0).then(|| now_ms.saturating_add(req.retention_time_ms));
        let mut records = Vec::new();
        let mut staged = Vec::new();
        let mut results = Vec::with_capacity(req.topics.len());
        for (topic, parts) in &req.topics {
            let mut codes = Vec::with_capacity(parts.len());
            for p in parts {
                let metadata = p.metadata.clone().unwrap_or_default();
                if metadata.len() > self.config.offset_metadata_max_bytes {
                    codes.push((p.partition, ErrorCode::OffsetMetadataTooLarge));
                    continue;
                }
                if too_long(topic) {
                    codes.push((p.partition, ErrorCode::InvalidTopicException));
                    continue;
                }
                let value = CommittedOffset {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: expire,
                };
                let encoded = records::offset_commit_key(&req.group_id, topic, p.partition)
                    .and_then(|k| Ok((k, records::offset_commit_value(&value)?)));
                match encoded {
                    Ok((key, v)) => {
                        records.push(PersistRecord {
                            key,
                            value: Some(v),
                        });
                        // Applied by `persisted` once the records are written.
                        staged.push((topic.clone(), p.partition, value));
                        codes.push((p.partition, ErrorCode::None));
                    }
                    Err(_) => codes.push((p.partition, ErrorCode::UnknownServerError)),
                }
            }
            results.push((topic.clone(), codes));
        }
        self.persist_pending(
            partition,
            records,
            Pending::Commit {
                group_id: req.group_id.clone(),
                offsets: staged,
                created,
            },
        );
        // A commit from a current member counts as a heartbeat, as in Kafka.
        if let Some(session) = refresh {
            self.schedule_heartbeat(&req.group_id, &req.member_id, session, now_ms);
        }
        results
    }

    /// Handles OffsetFetch for one group. `topics: None` asks for every committed offset.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> OffsetFetchResponse {
        let g = self.groups.get(group_id);
        let lookup = |topic: &str, partition: i32| -> FetchedOffset {
            match g
                .and_then(|g| g.offsets.get(topic))
                .and_then(|ps| ps.get(&partition))
            {
                Some(o) => FetchedOffset {
                    partition,
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata.clone(),
                    error: ErrorCode::None,
                },
                None => FetchedOffset {
                    partition,
                    offset: Offset(-1),
                    leader_epoch: LeaderEpoch(-1),
                    metadata: String::new(),
                    error: ErrorCode::None,
                },
            }
        };
        let topics = match topics {
            Some(requested) => requested
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| lookup(t, *p)).collect()))
                .collect(),
            None => g
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(t, ps)| (t.clone(), ps.keys().map(|p| lookup(t, *p)).collect()))
                        .collect()
                })
                .unwrap_or_default(),
        };
        OffsetFetchResponse {
            error: ErrorCode::None,
            topics,
        }
    }

    /// Handles OffsetDelete (KIP-496).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<PartitionResults, ErrorCode> {
        let Some(g) = self.groups.get_mut(group_id) else {
            return Err(ErrorCode::GroupIdNotFound);
        };
        let subscribed: Option<HashSet<String>> = match g.state {
            GroupState::Dead => return Err(ErrorCode::GroupIdNotFound),
            GroupState::Empty => None,
            _ if g.protocol_type.as_deref() == Some("consumer")
                && g.subscribed_topics.is_some() =>
            {
                g.subscribed_topics.clone()
            }
            _ => return Err(ErrorCode::NonEmptyGroup),
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (topic, parts) in topics {
            let mut codes = Vec::new();
            for &p in parts {
                if subscribed.as_ref().is_some_and(|s| s.contains(topic)) {
                    codes.push((p, ErrorCode::GroupSubscribedToTopic));
                    continue;
                }
                let removed = g
                    .offsets
                    .get_mut(topic)
                    .and_then(|ps| ps.remove(&p))
                    .is_some();
                if g.offsets.get(topic).is_some_and(|ps| ps.is_empty()) {
                    g.offsets.remove(topic);
                }
                if removed {
                    if let Ok(key) = records::offset_commit_key(group_id, topic, p) {
                        records.push(PersistRecord { key, value: None });
                    }
                }
                codes.push((p, ErrorCode::None));
            }
            results.push((topic.clone(), codes));
        }
        let partition = g.partition;
        self.persist(partition, records);
        Ok(results)
    }

    /// Expires offsets as Kafka's `cleanupGroupMetadata` does, then removes empty groups
    /// without offsets (writing their tombstones). Runs every
    /// `offsets.retention.check.interval.ms` from [`Self::tick`]; public for tests and tools.
    pub fn expire_offsets(&mut self, now_ms: i64) {
        let retention = self.config.offsets_retention_ms;
        let mut per_partition: BTreeMap<i32, Vec<PersistRecord>> = BTreeMap::new();
        let mut dead = Vec::new();
        for g in self.groups.values_mut() {
            // Which base timestamp an offset's age counts from, if it may expire at all.
            let empty_since = g.current_state_timestamp_ms;
            let mode = match (&g.protocol_type, g.state) {
                (Some(_), GroupState::Empty) => Some(None),
                (Some(pt), GroupState::Stable)
                    if pt == "consumer" && g.subscribed_topics.is_some() =>
                {
                    Some(Some(()))
                }
                (None, _) => Some(Some(())),
                _ => None,
            };
            let Some(by_commit_time) = mode else {
                continue;
            };
            let mut expired = Vec::new();
            for (topic, parts) in &g.offsets {
                if by_commit_time.is_some()
                    && g.subscribed_topics
                        .as_ref()
                        .is_some_and(|s| s.contains(topic))
                {
                    continue;
                }
                for (p, o) in parts {
                    let is_expired = match o.expire_timestamp_ms {
                        Some(t) => now_ms >= t,
                        None => {
                            let base = match (by_commit_time, empty_since) {
                                (None, Some(ts)) => ts,
                                _ => o.commit_timestamp_ms,
                            };
                            now_ms.saturating_sub(base) >= retention
                        }
                    };
                    if is_expired {
                        expired.push((topic.clone(), *p));
                    }
                }
            }
            for (topic, p) in expired {
                if let Some(ps) = g.offsets.get_mut(&topic) {
                    ps.remove(&p);
                    if ps.is_empty() {
                        g.offsets.remove(&topic);
                    }
                }
                if let Ok(key) = records::offset_commit_key(&g.group_id, &topic, p) {
                    per_partition
                        .entry(g.partition)
                        .or_default()
                        .push(PersistRecord { key, value: None });
                }
            }
            if g.state == GroupState::Empty && !g.has_offsets() && g.pending_members.is_empty() {
                dead.push(g.group_id.clone());
            }
        }
        for group_id in dead {
            if let Some(g) = self.groups.remove(&group_id) {
                if let Ok(key) = records::group_metadata_key(&group_id) {
                    per_partition
                        .entry(g.partition)
                        .or_default()
                        .push(PersistRecord { key, value: None });
                }
            }
        }
        for (partition, records) in per_partition {
            self.persist(partition, records);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Admin: ListGroups, DescribeGroups, DeleteGroups
    // ----------------------------------------------------------------------------------------

    /// Handles ListGroups. `states` (v4+) and `types` (v5+) filter case-insensitively; empty
    /// filters match everything. Every group here is a "classic" group.
    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<GroupListing> {
        if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("classic")) {
            return Vec::new();
        }
        let mut out: Vec<GroupListing> = self
            .groups
            .values()
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.as_str()))
            })
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Handles DescribeGroups for one group; `None` when the group does not exist (Kafka
    /// describes it as `Dead` before v6 and answers `GROUP_ID_NOT_FOUND` from v6).
    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        let g = self.groups.get(group_id)?;
        let stable = g.state == GroupState::Stable;
        let protocol = if stable {
            g.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        Some(GroupDescription {
            group_id: g.group_id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        })
    }

    /// Handles DeleteGroups: only empty groups can be deleted; their offsets and metadata get
    /// tombstones.
    pub fn delete_groups(&mut self, group_ids: &[String]) -> Vec<(String, ErrorCode)> {
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let code = if group_id.is_empty() || too_long(group_id) {
                ErrorCode::InvalidGroupId
            } else {
                match self.groups.get(group_id) {
                    None => ErrorCode::GroupIdNotFound,
                    Some(g) if g.state != GroupState::Empty || !g.pending_members.is_empty() => {
                        ErrorCode::NonEmptyGroup
                    }
                    Some(_) => {
                        let g = self.groups.remove(group_id).expect("checked");
                        let mut recs = Vec::new();
                        for (topic, parts) in &g.offsets {
                            for p in parts.keys() {
                                if let Ok(key) = records::offset_commit_key(group_id, topic, *p) {
                                    recs.push(PersistRecord { key, value: None });
                                }
                            }
                        }
                        if let Ok(key) = records::group_metadata_key(group_id) {
                            recs.push(PersistRecord { key, value: None });
                        }
                        self.persist(g.partition, recs);
                        ErrorCode::None
                    }
                }
            };
            results.push((group_id.clone(), code));
        }
        results
    }

    /// The number of groups in memory.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// A group's state and generation, for tests and metrics.
    pub fn group_state(&self, group_id: &str) -> Option<(GroupState, i32)> {
        self.groups.get(group_id).map(|g| (g.state, g.generation))
    }

    /// Every committed offset of every group, for the lag metric: `(group, topic, partition,
    /// offset)`.
    pub fn all_committed(&self) -> impl Iterator<Item = (&str, &str, i32, Offset)> {
        self.groups.values().flat_map(|g| {
            g.offsets.iter().flat_map(move |(t, ps)| {
                ps.iter()
                    .map(move |(p, o)| (g.group_id.as_str(), t.as_str(), *p, o.offset))
            })
        })
    }

    // ----------------------------------------------------------------------------------------
    // Loading and snapshots
    // ----------------------------------------------------------------------------------------

    /// Loads the live state of `__consumer_offsets` gathered by a [`Loader`]. Groups with
    /// members come back Stable with their last generation and assignments, and every member
    /// gets a fresh session timeout from `now_ms` (as Kafka does when a coordinator loads a
    /// partition); a member that does not heartbeat within it is removed as usual.
    pub fn load(&mut self, loader: Loader, now_ms: i64) -> LoadReport {
        let mut report = LoadReport {
            corrupt_records: loader.corrupt,
            ..Default::default()
        };
        for (key, value) in loader.live {
            let Some(value) = value else { continue };
            match decode_record(key, Some(value)) {
                Ok(OffsetsRecord::OffsetCommit {
                    group,
                    topic,
                    partition,
                    value: Some(v),
                }) => {
                    let gp = self.partition_for(&group);
                    self.groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(group, gp, now_ms))
                        .offsets
                        .entry(topic)
                        .or_default()
                        .insert(partition, v);
                    report.offsets += 1;
                }
                Ok(OffsetsRecord::GroupMetadata {
                    group,
                    value: Some(stored),
                }) => {
                    let gp = self.partition_for(&group);
                    let g = self
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| Group::new(group.clone(), gp, now_ms));
                    g.generation = stored.generation;
                    g.protocol_type =
                        (!stored.protocol_type.is_empty()).then(|| stored.protocol_type.clone());
                    g.protocol_name = stored.protocol.clone();
                    g.leader = stored.leader.clone();
                    g.current_state_timestamp_ms = stored.current_state_timestamp_ms;
                    for m in stored.members {
                        if let Some(i) = &m.group_instance_id {
                            g.static_members.insert(i.clone(), m.member_id.clone());
                        }
                        g.members.insert(
                            m.member_id.clone(),
                            Member {
                                member_id: m.member_id,
                                group_instance_id: m.group_instance_id,
                                client_id: m.client_id,
                                client_host: m.client_host,
                                rebalance_timeout_ms: m.rebalance_timeout_ms,
                                session_timeout_ms: m.session_timeout_ms,
                                protocols: vec![Protocol {
                                    name: stored.protocol.clone().unwrap_or_default(),
                                    metadata: m.subscription,
                                }],
                                assignment: m.assignment,
                                join_waiter: None,
                                sync_waiter: None,
                                is_new: false,
                                supports_skip_assignment: false,
                            },
                        );
                    }
                    g.state = if g.members.is_empty() {
                        GroupState::Empty
                    } else {
                        GroupState::Stable
                    };
                    if g.leader
                        .as_ref()
                        .is_some_and(|l| !g.members.contains_key(l))
                    {
                        g.leader = g.members.keys().next().cloned();
                    }
                    g.subscribed_topics = g.compute_subscribed_topics();
                    let sessions: Vec<(String, i64)> = g
                        .members
                        .values()
                        .map(|m| (m.member_id.clone(), i64::from(m.session_timeout_ms)))
                        .collect();
                    let group_id = g.group_id.clone();
                    for (id, session) in sessions {
                        self.schedule_heartbeat(&group_id, &id, session, now_ms);
                    }
                }
                Ok(_) => {}
                Err(_) => report.corrupt_records += 1,
            }
        }
        report.groups = self.groups.len();
        report
    }

    /// The records that reproduce the live state of one `__consumer_offsets` partition: the
    /// latest group metadata and offsets, without history or tombstones. A broker can rewrite
    /// the partition with these after loading when the log is much larger than its live state,
    /// which keeps the next start-up's replay proportional to live state until real log
    /// compaction exists.
    pub fn snapshot_records(&self, partition: i32) -> Result<Vec<PersistRecord>, GroupError> {
        let mut out = Vec::new();
        let mut ids: Vec<&String> = self
            .groups
            .iter()
            .filter(|(_, g)| g.partition == partition)
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        for id in ids {
            let g = &self.groups[id];
            if g.protocol_type.is_some() || g.generation > 0 {
                out.push(PersistRecord {
                    key: records::group_metadata_key(id)?,
                    value: Some(records::group_metadata_value(&g.stored())?),
                });
            }
            for (topic, parts) in &g.offsets {
                for (p, o) in parts {
                    out.push(PersistRecord {
                        key: records::offset_commit_key(id, topic, *p)?,
                        value: Some(records::offset_commit_value(o)?),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Kafka's `validateCurrentMember`: a static member whose instance id maps to another member
/// id is fenced (a newer incarnation exists); an unknown member id is rejected.
fn validate_member(g: &Group, member_id: &str, instance: Option<&str>) -> Result<(), ErrorCode> {
    if let Some(instance) = instance {
        match g.static_members.get(instance) {
            Some(current) if current != member_id => return Err(ErrorCode::FencedInstanceId),
            None => return Err(ErrorCode::UnknownMemberId),
            Some(_) => {}
        }
    }
    if !g.members.contains_key(member_id) {
        return Err(ErrorCode::UnknownMemberId);
    }
    Ok(())
}

/// Kafka's `ClassicGroup.validateOffsetCommit`.
fn validate_offset_commit(g: &Group, req: &OffsetCommitRequest) -> Result<(), ErrorCode> {
    if g.state == GroupState::Dead {
        return Err(ErrorCode::CoordinatorNotAvailable);
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        validate_member(g, &req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != g.generation {
            return Err(ErrorCode::IllegalGeneration);
        }
    } else if g.state != GroupState::Empty {
        // Without member id and generation, commits are only accepted for empty groups, so a
        // standalone consumer cannot clobber an active group's offsets.
        return Err(ErrorCode::UnknownMemberId);
    }
    if g.state == GroupState::CompletingRebalance {
        // The member already knows the new generation from its JoinGroup response but has no
        // assignment yet; REBALANCE_IN_PROGRESS makes it finish the rebalance first.
        return Err(ErrorCode::RebalanceInProgress);
    }
    Ok(())
}

/// Kafka's `maybeElectNewJoinedLeader`.
fn elect_joined_leader(g: &mut Group) -> bool {
    let Some(leader) = g.leader.clone() else {
        return false;
    };
    if g.members
        .get(&leader)
        .is_some_and(|m| m.join_waiter.is_some())
    {
        return true;
    }
    match g.members.values().find(|m| m.join_waiter.is_some()) {
        Some(m) => {
            g.leader = Some(m.member_id.clone());
            true
        }
        None => false,
    }
}

fn member_list(g: &Group) -> Vec<JoinedMember> {
    let protocol = g.protocol_name.clone().unwrap_or_default();
    g.members
        .values()
        .map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata(&protocol),
        })
        .collect()
}

/// Gathers `__consumer_offsets` records read at start-up, keeping only the latest value of
/// each key. Keys and values are copied out of the read buffers, so memory is proportional to
/// live state, and only live records are decoded (in [`GroupCoordinator::load`]); reading the
/// log itself stays proportional to its size until compaction exists (see
/// [`GroupCoordinator::snapshot_records`]).
#[derive(Debug, Default)]
pub struct Loader {
    live: HashMap<Bytes, Option<Bytes>>,
    records: u64,
    corrupt: usize,
}

impl Loader {
    /// An empty loader.
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Applies one record in log order. Records without a key cannot belong to the offsets
    /// topic and are counted as corrupt.
    pub fn apply(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.records += 1;
        let Some(key) = key else {
            self.corrupt += 1;
            return;
        };
        self.live.insert(
            Bytes::copy_from_slice(key),
            value.map(Bytes::copy_from_slice),
        );
    }

    /// Adds the records gathered by another loader (another partition: keys never overlap,
    /// because a group lives in exactly one partition).
    pub fn merge(&mut self, other: Loader) {
        self.live.extend(other.live);
        self.records += other.records;
        self.corrupt += other.corrupt;
    }

    /// Records applied so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Distinct keys (live values and tombstones).
    pub fn live_keys(&self) -> usize {
        self.live.len()
    }
}
