//! The simulation's controller: a simple model of KRaft's `ReplicationControlManager` for one
//! partition (the real one is `potok-controller`'s). It keeps the partition's committed state,
//! fences a crashed broker after its session times out (KIP-841: out of the ISR unless it is
//! the last member, a new leader from the ISR with a bumped leader epoch), registers a
//! restarted broker under a new broker epoch (KIP-903), commits or refuses AlterPartition, and
//! moves leadership on request (a preferred or controlled election).
//!
//! A broker that restarts after a crash lost its unflushed tail. If it was the last ISR member
//! it is not elected again: Kafka 4.x's KIP-966 treats the last ISR member's unclean shutdown
//! so, and the partition stays offline (unclean election is off), because its log may lack
//! acknowledged records.

use potok_metadata::{BrokerId, PartitionState};
use potok_records::LeaderEpoch;

use super::{Bugs, Rng};

/// Why the controller refused an AlterPartition (Kafka's error codes for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterError {
    /// FENCED_LEADER_EPOCH / NOT_LEADER_OR_FOLLOWER: not the current leader and epoch.
    FencedLeaderEpoch,
    /// INVALID_UPDATE_VERSION: based on an older partition epoch.
    InvalidUpdateVersion,
    /// INELIGIBLE_REPLICA: a proposed member is fenced or its broker epoch is not its current
    /// registration (KIP-841, KIP-903). Not applied.
    IneligibleReplica,
    /// INVALID_REQUEST: the ISR lacks the leader.
    InvalidRequest,
}

pub struct Controller {
    pub state: PartitionState,
    /// Bumped with every committed change; replicas apply the newest version they learn.
    pub version: u64,
    pub fenced: Vec<bool>,
    pub broker_epoch: Vec<i64>,
    next_broker_epoch: i64,
    pub elections: u32,
}

impl Controller {
    pub fn new(n: usize) -> Controller {
        let all: Vec<BrokerId> = (0..n).map(|i| BrokerId(i as i32)).collect();
        Controller {
            state: PartitionState {
                replicas: all.clone(),
                isr: all,
                leader: Some(BrokerId(0)),
                leader_epoch: LeaderEpoch(0),
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            },
            version: 1,
            fenced: vec![false; n],
            broker_epoch: (0..n as i64).map(|i| i + 1).collect(),
            next_broker_epoch: n as i64 + 1,
            elections: 0,
        }
    }

    fn commit(&mut self) {
        self.state.partition_epoch += 1;
        self.version += 1;
    }

    fn live(&self, b: BrokerId) -> bool {
        !self.fenced[b.0 as usize]
    }

    /// A new leader other than the current one: from the live ISR members (or, with the
    /// planted bug, from any live replica, making the ISR that replica alone as an unclean
    /// election would). `None` when there is none. Bumps the leader epoch either way.
    fn elect(&mut self, rng: &mut Rng, bugs: &Bugs, allow_none: bool) -> bool {
        let old = self.state.leader;
        let pool: Vec<BrokerId> = if bugs.elect_outside_isr {
            self.state.replicas.clone()
        } else {
            self.state.isr.clone()
        };
        let candidates: Vec<BrokerId> = pool
            .into_iter()
            .filter(|b| Some(*b) != old && self.live(*b))
            .collect();
        if candidates.is_empty() && !allow_none {
            return false;
        }
        let new = (!candidates.is_empty()).then(|| candidates[rng.below(candidates.len())]);
        if let Some(b) = new {
            if !self.state.isr.contains(&b) {
                self.state.isr = vec![b];
            }
        }
        self.state.leader = new;
        self.state.leader_epoch = LeaderEpoch(self.state.leader_epoch.0 + 1);
        self.elections += 1;
        true
    }

    /// The broker's session expired: fence it.
    pub fn fence(&mut self, r: usize, rng: &mut Rng, bugs: &Bugs) {
        let b = BrokerId(r as i32);
        self.fenced[r] = true;
        let mut changed = false;
        if self.state.isr.contains(&b) && self.state.isr.len() > 1 {
            self.state.isr.retain(|x| *x != b);
            changed = true;
        }
        if self.state.leader == Some(b) {
            self.elect(rng, bugs, true);
            changed = true;
        }
        if changed {
            self.commit();
        }
    }

    /// A restarted broker registers: a new broker epoch, unfenced. Returns its broker epoch.
    pub fn register(&mut self, r: usize, rng: &mut Rng, bugs: &Bugs) -> i64 {
        let b = BrokerId(r as i32);
        self.fenced[r] = false;
        self.broker_epoch[r] = self.next_broker_epoch;
        self.next_broker_epoch += 1;
        if self.state.isr.contains(&b) {
            // KIP-966: the last ISR member shut down uncleanly and may have lost acknowledged
            // records; it does not lead again (the partition stays offline).
            self.state.isr.retain(|x| *x != b);
            self.commit();
        }
        let electable = bugs.elect_outside_isr || self.state.isr.iter().any(|x| self.live(*x));
        if self.state.leader.is_none() && electable {
            self.elect(rng, bugs, false);
            self.commit();
        }
        self.broker_epoch[r]
    }

    /// A controlled or preferred-leader election: leadership moves to another live ISR member.
    pub fn move_leadership(&mut self, rng: &mut Rng, bugs: &Bugs) {
        if self.state.leader.is_some() && self.elect(rng, bugs, false) {
            self.commit();
        }
    }

    /// Kafka's `ReplicationControlManager.alterPartition` for this partition.
    pub fn alter_partition(
        &mut self,
        from: BrokerId,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        isr: &[(BrokerId, i64)],
    ) -> Result<PartitionState, AlterError> {
        if self.state.leader != Some(from) || leader_epoch != self.state.leader_epoch {
            return Err(AlterError::FencedLeaderEpoch);
        }
        if partition_epoch != self.state.partition_epoch {
            return Err(AlterError::InvalidUpdateVersion);
        }
        if !isr.iter().any(|(b, _)| *b == from) {
            return Err(AlterError::InvalidRequest);
        }
        for (b, epoch) in isr {
            if *b != from && (!self.live(*b) || self.broker_epoch[b.0 as usize] != *epoch) {
                return Err(AlterError::IneligibleReplica);
            }
        }
        self.state.isr = isr.iter().map(|(b, _)| *b).collect();
        self.commit();
        Ok(self.state.clone())
    }
}
