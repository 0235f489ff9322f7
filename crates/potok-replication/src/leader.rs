//! The leader's replication state of one partition (Kafka's `Partition` / `Replica` /
//! `PartitionState` on the leader), as a value the broker keeps next to the partition's log.
//!
//! # How a broker drives it
//!
//! - On a metadata change that makes this broker the leader at a new leader epoch:
//!   [`LeaderState::become_leader`] (after assigning the epoch's start in the log's leader-epoch
//!   cache, Kafka's `makeLeader`). On one that makes it a follower, the broker drops this value
//!   and fails the produce requests waiting on it (NOT_LEADER_OR_FOLLOWER); a deposed leader
//!   that has not learnt it yet cannot complete an `acks=all` write, because the new leader, a
//!   member of its maximal ISR, no longer fetches from it.
//! - Produce: [`LeaderState::check_acks_all`] before appending, [`LeaderState::on_local_append`]
//!   after, and [`LeaderState::acks_all_outcome`] whenever the high watermark moves.
//! - A follower's Fetch: [`LeaderState::answer_follower_fetch`] decides the answer (fencing by
//!   `current_leader_epoch`, a diverging epoch, or records from the fetch offset) and updates
//!   the follower's fetch state; its ListOffsets after OFFSET_OUT_OF_RANGE is checked with
//!   [`LeaderState::check_leader_epoch`]. A client's ListOffsets goes through
//!   [`LeaderState::check_client_list_offsets`] (KIP-207).
//! - Periodically (Kafka checks every `replica.lag.time.max.ms / 2`) and after fetches:
//!   [`LeaderState::isr_to_shrink`] / [`LeaderState::isr_to_expand`]; a proposal is sent as
//!   AlterPartition with [`LeaderState::isr_with_broker_epochs`] (KIP-903) and recorded with
//!   [`LeaderState::propose_isr`]; the controller's answer or the metadata change lands in
//!   [`LeaderState::on_isr_committed`] or [`LeaderState::on_isr_change_refused`].

use std::collections::BTreeMap;

use potok_metadata::{BrokerId, PartitionState};
use potok_records::{LeaderEpoch, Offset};

mod fetch;

pub use fetch::{ClientOffsetQuery, LeaderFetchAnswer};

/// Why a partition refused an operation (the broker maps these to Kafka error codes).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// `acks=all` with fewer ISR members than `min.insync.replicas` (NOT_ENOUGH_REPLICAS).
    #[error("the ISR has {isr} members, min.insync.replicas is {min_isr}")]
    NotEnoughReplicas { isr: usize, min_isr: usize },
    /// This broker does not lead the partition (NOT_LEADER_OR_FOLLOWER).
    #[error("this broker does not lead the partition")]
    NotLeader,
    /// A follower fetch from a broker that is not a replica (NOT_LEADER_OR_FOLLOWER, as Kafka's
    /// `followerReplicaOrThrow`).
    #[error("broker {0} is not a replica of the partition")]
    UnknownReplica(BrokerId),
    /// A follower fetch from an earlier incarnation of a replica than one already seen
    /// (KIP-903; NOT_LEADER_OR_FOLLOWER, as Kafka's `Replica.updateFetchStateOrThrow`).
    #[error("fetch from broker {replica} at broker epoch {request}, which restarted at {known}")]
    StaleReplicaEpoch {
        replica: BrokerId,
        request: i64,
        known: i64,
    },
    /// The request's `current_leader_epoch` is older than this leader's (FENCED_LEADER_EPOCH).
    #[error("leader epoch {request} is older than the current {current}")]
    FencedLeaderEpoch {
        request: LeaderEpoch,
        current: LeaderEpoch,
    },
    /// The request's `current_leader_epoch` is newer than this leader knows
    /// (UNKNOWN_LEADER_EPOCH).
    #[error("leader epoch {request} is newer than the current {current}")]
    UnknownLeaderEpoch {
        request: LeaderEpoch,
        current: LeaderEpoch,
    },
    /// A fetch offset outside the leader's log (OFFSET_OUT_OF_RANGE).
    #[error("offset {offset} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    /// KIP-207: a new leader whose high watermark has not reached the start of its epoch cannot
    /// tell a client where the committed log ends yet (OFFSET_NOT_AVAILABLE).
    #[error("the high watermark {high_watermark} is below the epoch start {epoch_start}")]
    OffsetNotAvailable {
        high_watermark: Offset,
        epoch_start: Offset,
    },
    /// An ISR change based on an older partition epoch than the one committed (Kafka's
    /// INVALID_UPDATE_VERSION / FENCED_LEADER_EPOCH for AlterPartition).
    #[error("the ISR change is older than the committed partition epoch")]
    StaleIsrChange,
}

/// The state of an `acks=all` produce waiting for its records to reach the ISR (Kafka's
/// `checkEnoughReplicasReachOffset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcksOutcome {
    /// Every ISR member has the records: answer without error.
    Done,
    /// The records are covered by the high watermark but the ISR shrank below
    /// `min.insync.replicas` meanwhile: NOT_ENOUGH_REPLICAS_AFTER_APPEND.
    NotEnoughReplicasAfterAppend,
    /// Not yet: wait (bounded by the request's timeout).
    Wait,
}

/// What the leader knows about one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Follower {
    /// The offset of its last fetch: it has everything below.
    log_end: Option<Offset>,
    /// The last time it was caught up with the leader (Kafka's `lastCaughtUpTimeMs`): not the
    /// last time it fetched, so a follower that fetches often but stays behind still leaves the
    /// ISR.
    last_caught_up_ms: i64,
    /// The leader's log end and the time at its previous fetch, for Kafka's rule that a fetch
    /// reaching the leader's log end *as of the previous fetch* proves it was caught up then.
    last_fetch_leader_end: Offset,
    last_fetch_ms: i64,
    /// The broker epoch (KIP-903) of the incarnation whose fetch state this is, `None` until it
    /// fetched or when it sent none (-1).
    broker_epoch: Option<i64>,
}

/// The leader's view of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderState {
    local: BrokerId,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    /// The ISR committed in the metadata log.
    isr: Vec<BrokerId>,
    /// An ISR change sent to the controller and not yet committed (KIP-497).
    pending_isr: Option<Vec<BrokerId>>,
    /// The id of the latest proposal (`propose_isr`), so that a refusal of an earlier one
    /// cannot clear a later one.
    proposal_id: u64,
    followers: BTreeMap<BrokerId, Follower>,
    local_log_end: Offset,
    high_watermark: Offset,
    /// The first offset of this leader's epoch: a follower rejoins the ISR only once it has
    /// reached it, so that a new ISR member has every record of the current epoch.
    epoch_start_offset: Offset,
}

impl LeaderState {
    /// This broker (`local`) becomes leader of a partition with the image's `state`, with its log
    /// ending at `log_end` and its last known high watermark `high_watermark` (checkpointed, or
    /// learnt as a follower). The current epoch starts at `log_end`.
    pub fn become_leader(
        local: BrokerId,
        state: &PartitionState,
        log_end: Offset,
        high_watermark: Offset,
        now_ms: i64,
    ) -> Result<LeaderState, ReplicationError> {
        if state.leader != Some(local) {
            return Err(ReplicationError::NotLeader);
        }
        let followers = state
            .replicas
            .iter()
            .filter(|r| **r != local)
            .map(|r| {
                (
                    *r,
                    Follower {
                        log_end: None,
                        // Kafka gives ISR members a grace period from the leader change.
                        last_caught_up_ms: if state.isr.contains(r) { now_ms } else { 0 },
                        last_fetch_leader_end: Offset(0),
                        last_fetch_ms: 0,
                        broker_epoch: None,
                    },
                )
            })
            .collect();
        let mut s = LeaderState {
            local,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            replicas: state.replicas.clone(),
            isr: state.isr.clone(),
            pending_isr: None,
            proposal_id: 0,
            followers,
            local_log_end: log_end,
            high_watermark: high_watermark.min(log_end),
            epoch_start_offset: log_end,
        };
        s.maybe_advance_high_watermark();
        Ok(s)
    }

    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    /// The committed ISR.
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    /// The ISR change sent to the controller and not yet committed or refused.
    pub fn pending_isr(&self) -> Option<&[BrokerId]> {
        self.pending_isr.as_deref()
    }

    /// The leader's log end as last reported with [`LeaderState::on_local_append`].
    pub fn log_end(&self) -> Offset {
        self.local_log_end
    }

    /// The log end offset the leader last learnt for `replica` (its own for itself).
    pub fn replica_log_end(&self, replica: BrokerId) -> Option<Offset> {
        self.log_end_of(replica)
    }

    /// The high watermark: consumers read below it, `acks=all` completes at it.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The first offset of this leader's epoch (KIP-207: ListOffsets answers
    /// OFFSET_NOT_AVAILABLE while the high watermark is below it).
    pub fn epoch_start_offset(&self) -> Offset {
        self.epoch_start_offset
    }

    /// The ISR the high watermark and `acks=all` wait for: the committed ISR together with an
    /// in-flight change (KIP-497), so that neither a pending shrink nor a pending expansion lets
    /// the high watermark pass a record some possible ISR member lacks.
    pub fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut out = self.isr.clone();
        if let Some(p) = &self.pending_isr {
            for b in p {
                if !out.contains(b) {
                    out.push(*b);
                }
            }
        }
        out
    }

    fn log_end_of(&self, b: BrokerId) -> Option<Offset> {
        if b == self.local {
            Some(self.local_log_end)
        } else {
            self.followers.get(&b).and_then(|f| f.log_end)
        }
    }

    /// Moves the high watermark to the smallest log end offset in the maximal ISR, never back
    /// (a replica that has not fetched yet holds it where it is). Returns the new one if it moved.
    fn maybe_advance_high_watermark(&mut self) -> Option<Offset> {
        let mut min: Option<Offset> = None;
        for b in self.maximal_isr() {
            let end = self.log_end_of(b)?;
            min = Some(min.map_or(end, |m: Offset| m.min(end)));
        }
        let candidate = min?;
        (candidate > self.high_watermark).then(|| {
            self.high_watermark = candidate;
            candidate
        })
    }

    /// The leader appended: its log now ends at `log_end`. Returns the new high watermark if it
    /// moved (with the leader alone in the ISR it moves at once).
    pub fn on_local_append(&mut self, log_end: Offset) -> Option<Offset> {
        self.local_log_end = log_end;
        self.maybe_advance_high_watermark()
    }

    /// A follower fetched from `fetch_offset` at `now_ms`: it has every record below it.
    /// Returns the new high watermark if it moved.
    pub fn on_follower_fetch(
        &mut self,
        follower: BrokerId,
        fetch_offset: Offset,
        now_ms: i64,
    ) -> Result<Option<Offset>, ReplicationError> {
        let leader_end = self.local_log_end;
        let f = self
            .followers
            .get_mut(&follower)
            .ok_or(ReplicationError::UnknownReplica(follower))?;
        // Kafka's `Replica.updateFetchState`: caught up now if it reached the leader's current
        // end; caught up as of the previous fetch if it reached the end the leader had then.
        if fetch_offset >= leader_end {
            f.last_caught_up_ms = now_ms;
        } else if fetch_offset >= f.last_fetch_leader_end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = Some(fetch_offset.min(leader_end));
        f.last_fetch_leader_end = leader_end;
        f.last_fetch_ms = now_ms;
        Ok(self.maybe_advance_high_watermark())
    }

    /// The ISR to propose when followers fell behind for longer than `lag_max_ms`
    /// (`replica.lag.time.max.ms`), or `None`. Nothing is proposed while a change is in flight.
    pub fn isr_to_shrink(&self, now_ms: i64, lag_max_ms: i64) -> Option<Vec<BrokerId>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let keep: Vec<BrokerId> =
            self.isr
                .iter()
                .copied()
                .filter(|b| {
                    *b == self.local
                        || self.followers.get(b).is_some_and(|f| {
                            now_ms.saturating_sub(f.last_caught_up_ms) <= lag_max_ms
                        })
                })
                .collect();
        (keep.len() < self.isr.len()).then_some(keep)
    }

    /// The ISR to propose when followers outside it have caught up: their log end reached the
    /// high watermark and the start of this leader's epoch. `None` when there is nobody to add
    /// or a change is in flight.
    pub fn isr_to_expand(&self) -> Option<Vec<BrokerId>> {
        self.isr_to_expand_eligible(|_, _| true)
    }

    /// [`LeaderState::isr_to_expand`] restricted to followers that `eligible(broker, broker
    /// epoch of its fetches)` accepts: Kafka's leader adds only a replica its metadata shows
    /// unfenced, not shutting down and registered under the broker epoch its fetches carried
    /// (`Partition.isReplicaIsrEligible`, KIP-841 and KIP-903), since the controller refuses
    /// any other with INELIGIBLE_REPLICA and a leader that kept proposing it would send an
    /// AlterPartition after every fetch of that follower until its metadata changed.
    pub fn isr_to_expand_eligible(
        &self,
        eligible: impl Fn(BrokerId, i64) -> bool,
    ) -> Option<Vec<BrokerId>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let mut isr = self.isr.clone();
        for b in &self.replicas {
            if isr.contains(b) {
                continue;
            }
            let Some(end) = self.log_end_of(*b) else {
                continue;
            };
            let epoch = self
                .followers
                .get(b)
                .and_then(|f| f.broker_epoch)
                .unwrap_or(-1);
            if end >= self.high_watermark && end >= self.epoch_start_offset && eligible(*b, epoch) {
                isr.push(*b);
            }
        }
        (isr.len() > self.isr.len()).then_some(isr)
    }

    /// Records `isr` as sent to the controller (AlterPartition with this partition epoch), and
    /// returns the proposal's id for [`LeaderState::on_isr_change_refused`]. Retries of the
    /// same request keep the id.
    pub fn propose_isr(&mut self, isr: Vec<BrokerId>) -> u64 {
        self.pending_isr = Some(isr);
        self.proposal_id += 1;
        self.proposal_id
    }

    /// The members of `isr` with the broker epochs of the incarnations whose fetches put them
    /// there (AlterPartition's `NewIsrWithEpochs`, KIP-903), `local_broker_epoch` for this
    /// broker and -1 for a member not heard from. The controller refuses a member whose epoch is
    /// not its current registration, so a replica that restarted with a shorter log cannot join
    /// the ISR on the strength of its previous incarnation's fetches. Compute it once, when
    /// proposing, and resend that same request on retries (as Kafka's AlterPartitionManager
    /// does): epochs learnt after the proposal would vouch for log ends they did not report.
    pub fn isr_with_broker_epochs(
        &self,
        isr: &[BrokerId],
        local_broker_epoch: i64,
    ) -> Vec<(BrokerId, i64)> {
        isr.iter()
            .map(|b| {
                let epoch = if *b == self.local {
                    local_broker_epoch
                } else {
                    self.followers
                        .get(b)
                        .and_then(|f| f.broker_epoch)
                        .unwrap_or(-1)
                };
                (*b, epoch)
            })
            .collect()
    }

    /// The controller refused proposal `proposal` in a way that says it was not applied
    /// (Kafka's INELIGIBLE_REPLICA / OPERATION_NOT_ATTEMPTED): back to the committed ISR, so
    /// the next proposal can be made. Other refusals (INVALID_UPDATE_VERSION,
    /// FENCED_LEADER_EPOCH) keep the change pending until the metadata brings the committed
    /// state, because the change may have been applied (Kafka's `handleAlterPartitionError`).
    ///
    /// A refusal of an earlier proposal than the pending one is ignored (Kafka's `Partition`
    /// ignores answers to a proposal it "has already moved on" from): clearing the pending one
    /// would let the high watermark pass a member that the controller may still add.
    pub fn on_isr_change_refused(&mut self, proposal: u64) -> Option<Offset> {
        if self.pending_isr.is_none() || proposal != self.proposal_id {
            return None;
        }
        self.pending_isr = None;
        self.maybe_advance_high_watermark()
    }

    /// The controller committed an ISR change (or another change of the partition) at
    /// `partition_epoch`. An older epoch than the one known is refused.
    pub fn on_isr_committed(
        &mut self,
        isr: Vec<BrokerId>,
        partition_epoch: i32,
    ) -> Result<Option<Offset>, ReplicationError> {
        if partition_epoch < self.partition_epoch {
            return Err(ReplicationError::StaleIsrChange);
        }
        self.isr = isr;
        self.partition_epoch = partition_epoch;
        self.pending_isr = None;
        Ok(self.maybe_advance_high_watermark())
    }

    /// The controller changed the partition's replicas at the same leader epoch (a
    /// reassignment adding replicas, KIP-455; Kafka's `Partition.makeLeader` updates the
    /// assignment so): an added replica is tracked as a follower that has not caught up yet
    /// (it joins the ISR like any follower, through `isr_to_expand`), a dropped one is
    /// forgotten. Then the ISR and partition epoch are taken as in
    /// [`LeaderState::on_isr_committed`].
    pub fn on_partition_changed(
        &mut self,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
        partition_epoch: i32,
    ) -> Result<Option<Offset>, ReplicationError> {
        if partition_epoch < self.partition_epoch {
            return Err(ReplicationError::StaleIsrChange);
        }
        self.followers.retain(|b, _| replicas.contains(b));
        for r in &replicas {
            if *r != self.local {
                self.followers.entry(*r).or_insert(Follower {
                    log_end: None,
                    last_caught_up_ms: 0,
                    last_fetch_leader_end: Offset(0),
                    last_fetch_ms: 0,
                    broker_epoch: None,
                });
            }
        }
        self.replicas = replicas;
        self.on_isr_committed(isr, partition_epoch)
    }

    /// The check before appending an `acks=all` batch: the committed ISR must have at least
    /// `min_isr` members (`min.insync.replicas`), or nothing is appended.
    pub fn check_acks_all(&self, min_isr: usize) -> Result<(), ReplicationError> {
        if self.isr.len() < min_isr {
            return Err(ReplicationError::NotEnoughReplicas {
                isr: self.isr.len(),
                min_isr,
            });
        }
        Ok(())
    }

    /// Whether an `acks=all` batch whose last record is below `required_end` is done.
    pub fn acks_all_outcome(&self, required_end: Offset, min_isr: usize) -> AcksOutcome {
        if self.high_watermark < required_end {
            AcksOutcome::Wait
        } else if self.isr.len() < min_isr {
            AcksOutcome::NotEnoughReplicasAfterAppend
        } else {
            AcksOutcome::Done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionState {
        PartitionState {
            replicas: replicas.iter().map(|&b| BrokerId(b)).collect(),
            isr: isr.iter().map(|&b| BrokerId(b)).collect(),
            leader: Some(BrokerId(leader)),
            leader_epoch: LeaderEpoch(3),
            partition_epoch: 7,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    fn ids(v: &[i32]) -> Vec<BrokerId> {
        v.iter().map(|&b| BrokerId(b)).collect()
    }

    #[test]
    fn a_single_replica_partition_has_its_log_end_as_high_watermark() {
        let mut s =
            LeaderState::become_leader(BrokerId(1), &state(&[1], &[1], 1), Offset(5), Offset(3), 0)
                .unwrap();
        assert_eq!(s.high_watermark(), Offset(5));
        assert_eq!(s.on_local_append(Offset(9)), Some(Offset(9)));
        assert_eq!(s.acks_all_outcome(Offset(9), 1), AcksOutcome::Done);
        assert_eq!(s.leader_epoch(), LeaderEpoch(3));
        assert_eq!(s.isr(), &ids(&[1])[..]);
    }

    #[test]
    fn an_added_replica_fetches_and_joins_the_isr_without_holding_back_the_high_watermark() {
        let mut s = LeaderState::become_leader(
            BrokerId(1),
            &state(&[1, 2], &[1, 2], 1),
            Offset(10),
            Offset(10),
            0,
        )
        .unwrap();
        assert_eq!(
            s.on_follower_fetch(BrokerId(4), Offset(0), 1),
            Err(ReplicationError::UnknownReplica(BrokerId(4)))
        );
        // A reassignment adds broker 4 at the same leader epoch.
        s.on_partition_changed(ids(&[1, 2, 4]), ids(&[1, 2]), 8)
            .unwrap();
        assert_eq!(s.replicas(), &ids(&[1, 2, 4])[..]);
        assert_eq!(
            s.on_follower_fetch(BrokerId(2), Offset(10), 2).unwrap(),
            None
        );
        assert_eq!(s.high_watermark(), Offset(10), "broker 4 is not in the ISR");
        assert_eq!(s.isr_to_expand(), None, "broker 4 has not caught up");
        s.on_follower_fetch(BrokerId(4), Offset(10), 3).unwrap();
        assert_eq!(s.isr_to_expand(), Some(ids(&[1, 2, 4])));
        // An older partition epoch is refused; dropping a replica forgets it.
        assert_eq!(
            s.on_partition_changed(ids(&[1, 2]), ids(&[1, 2]), 7),
            Err(ReplicationError::StaleIsrChange)
        );
        s.on_partition_changed(ids(&[1, 4]), ids(&[1, 4]), 9)
            .unwrap();
        assert_eq!(
            s.on_follower_fetch(BrokerId(2), Offset(10), 4),
            Err(ReplicationError::UnknownReplica(BrokerId(2)))
        );
    }

    #[test]
    fn only_the_leader_of_the_image_can_lead() {
        assert_eq!(
            LeaderState::become_leader(
                BrokerId(2),
                &state(&[1, 2], &[1, 2], 1),
                Offset(0),
                Offset(0),
                0
            ),
            Err(ReplicationError::NotLeader)
        );
    }

    #[test]
    fn the_high_watermark_is_the_smallest_isr_log_end_and_never_moves_back() {
        let mut s = LeaderState::become_leader(
            BrokerId(1),
            &state(&[1, 2, 3], &[1, 2, 3], 1),
            Offset(10),
            Offset(10),
            0,
        )
        .unwrap();
        assert_eq!(
            s.on_local_append(Offset(20)),
            None,
            "followers have not fetched"
        );
        assert_eq!(
            s.on_follower_fetch(BrokerId(2), Offset(15), 1).unwrap(),
            None
        );
        assert_eq!(
            s.on_follower_fetch(BrokerId(3), Offset(12), 1).unwrap(),
            Some(Offset(12))
        );
        assert_eq!(s.acks_all_outcome(Offset(15), 2), AcksOutcome::Wait);
        assert_eq!(
            s.on_follower_fetch(BrokerId(3), Offset(20), 2).unwrap(),
            Some(Offset(15))
        );
        assert_eq!(s.acks_all_outcome(Offset(15), 2), AcksOutcome::Done);
        // A follower that restarts and fetches from further back does not move it back.
        assert_eq!(
            s.on_follower_fetch(BrokerId(2), Offset(11), 3).unwrap(),
            None
        );
        assert_eq!(s.high_watermark(), Offset(15));
        // An unknown broker is refused.
        assert_eq!(
            s.on_follower_fetch(BrokerId(9), Offset(1), 3),
            Err(ReplicationError::UnknownReplica(BrokerId(9)))
        );
    }

    #[test]
    fn a_follower_that_fetches_often_but_stays_behind_leaves_the_isr() {
        let mut s = LeaderState::become_leader(
            BrokerId(1),
            &state(&[1, 2, 3], &[1, 2, 3], 1),
            Offset(0),
            Offset(0),
            0,
        )
        .unwrap();
        for t in 1..=40 {
            s.on_local_append(Offset(t * 10));
            // Broker 2 keeps up; broker 3 fetches every tick but always 50 records behind.
            s.on_follower_fetch(BrokerId(2), Offset(t * 10), t * 1000)
                .unwrap();
            s.on_follower_fetch(BrokerId(3), Offset((t * 10 - 50).max(0)), t * 1000)
                .unwrap();
        }
        assert_eq!(s.isr_to_shrink(40_000, 30_000), Some(ids(&[1, 2])));
        assert_eq!(s.isr_to_shrink(5_000, 30_000), None);
    }

    #[test]
    fn pending_changes_use_the_maximal_isr_and_min_isr_the_committed_one() {
        let mut s = LeaderState::become_leader(
            BrokerId(1),
            &state(&[1, 2, 3], &[1, 2, 3], 1),
            Offset(10),
            Offset(10),
            0,
        )
        .unwrap();
        s.on_local_append(Offset(20));
        s.on_follower_fetch(BrokerId(2), Offset(20), 100).unwrap();
        // Shrink proposed for broker 3, not committed yet: the high watermark still waits for 3.
        s.propose_isr(ids(&[1, 2]));
        assert!(
            s.isr_to_shrink(100_000, 10).is_none(),
            "one change at a time"
        );
        assert_eq!(s.high_watermark(), Offset(10));
        assert_eq!(s.acks_all_outcome(Offset(20), 2), AcksOutcome::Wait);
        // Committed: the high watermark moves; with min.insync.replicas=3 an acks=all batch
        // now reports NOT_ENOUGH_REPLICAS_AFTER_APPEND, and a new one is refused before appending.
        assert_eq!(
            s.on_isr_committed(ids(&[1, 2]), 8).unwrap(),
            Some(Offset(20))
        );
        assert_eq!(
            s.acks_all_outcome(Offset(20), 3),
            AcksOutcome::NotEnoughReplicasAfterAppend
        );
        assert_eq!(
            s.check_acks_all(3),
            Err(ReplicationError::NotEnoughReplicas { isr: 2, min_isr: 3 })
        );
        assert!(s.check_acks_all(2).is_ok());
        assert_eq!(
            s.on_isr_committed(ids(&[1]), 7),
            Err(ReplicationError::StaleIsrChange)
        );
    }

    #[test]
    fn a_follower_rejoins_only_with_the_current_epoch_and_high_watermark() {
        // Broker 3 is out of the ISR; this leader's epoch starts at offset 50.
        let mut s = LeaderState::become_leader(
            BrokerId(1),
            &state(&[1, 2, 3], &[1, 2], 1),
            Offset(50),
            Offset(50),
            0,
        )
        .unwrap();
        s.on_local_append(Offset(60));
        s.on_follower_fetch(BrokerId(2), Offset(60), 1).unwrap();
        assert_eq!(s.high_watermark(), Offset(60));
        s.on_follower_fetch(BrokerId(3), Offset(45), 1).unwrap();
        assert_eq!(
            s.isr_to_expand(),
            None,
            "below the high watermark and the epoch start"
        );
        s.on_follower_fetch(BrokerId(3), Offset(60), 2).unwrap();
        assert_eq!(s.isr_to_expand(), Some(ids(&[1, 2, 3])));
        // While the expansion is pending the new member already counts for the high watermark.
        s.propose_isr(ids(&[1, 2, 3]));
        s.on_local_append(Offset(70));
        s.on_follower_fetch(BrokerId(2), Offset(70), 3).unwrap();
        assert_eq!(
            s.high_watermark(),
            Offset(60),
            "waits for the pending member 3"
        );
        s.on_follower_fetch(BrokerId(3), Offset(70), 3).unwrap();
        assert_eq!(s.high_watermark(), Offset(70));
    }
}
