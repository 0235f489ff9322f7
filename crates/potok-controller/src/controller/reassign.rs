//! Partition reassignment (KIP-455), as Kafka's `ReplicationControlManager` and
//! `PartitionReassignmentReplicas` / `PartitionReassignmentRevert` do it in KRaft.
//!
//! A reassignment moves a partition from its current replicas to a target list in three steps,
//! each a `PartitionChangeRecord`:
//!
//! 1. **Start** ([`alter_reassignment`]): the replicas become the target followed by the
//!    current replicas the target drops (so the replica count never falls below the target's
//!    while data moves), with `adding_replicas` (target minus current) and `removing_replicas`
//!    (current minus target). The ISR is untouched: the added brokers create the partition
//!    and fetch from the leader like any follower.
//! 2. **Catch-up**: the leader adds each new replica to the ISR with AlterPartition once it
//!    caught up.
//! 3. **Completion** ([`maybe_complete`], run by every partition change the controller
//!    builds, `super::partitions`): once the ISR without the removed replicas still holds every
//!    target replica, the replicas become the target, the removed ones leave the ISR, a
//!    removed leader is replaced by an ISR member of the target, the leader epoch is bumped
//!    (so a removed replica's fetches are fenced) and `adding`/`removing` are cleared. A
//!    reassignment that only reorders or removes replicas of a suitable ISR completes in the
//!    same entry that starts it.
//!
//! **Cancellation** (a null target) reverts: the replicas lose the added brokers, the ISR too;
//! when the ISR held only added brokers, reverting needs an unclean election and is refused
//! unless the topic allows one (Kafka's rule).
//!
//! The start and cancellation records set only the assignment fields (and the ISR only for an
//! unclean revert): the active controller's write path runs its election and completion pass
//! over the partitions a write touches (`partitions::repair_leaders`), on its own speculative
//! image, so a record built on a broker's slightly older image never brings back a stale ISR.

use potok_metadata::{BrokerId, MetadataImage, MetadataRecord, PartitionState};
use potok_protocol::messages::internal::partition_change_record::PartitionChangeRecord;

use crate::placement::NO_LEADER_CHANGE;

/// Why a partition's reassignment was refused (an outcome reported per partition, like
/// [`super::partitions::Election`]); the broker maps each to Kafka's error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReassignError {
    /// No such topic or partition: UNKNOWN_TOPIC_OR_PARTITION.
    UnknownTopicOrPartition(String),
    /// The target is not a valid assignment: INVALID_REPLICA_ASSIGNMENT.
    InvalidReplicaAssignment(String),
    /// A cancellation of a partition that is not being reassigned:
    /// NO_REASSIGNMENT_IN_PROGRESS.
    NoReassignmentInProgress,
}

impl ReassignError {
    /// The message for the reply (Kafka's wording).
    pub fn message(&self) -> String {
        match self {
            ReassignError::UnknownTopicOrPartition(m)
            | ReassignError::InvalidReplicaAssignment(m) => m.clone(),
            ReassignError::NoReassignmentInProgress => {
                "No partition reassignment is in progress for this topic-partition.".into()
            }
        }
    }
}

/// A reassignment that can complete: the final replicas and ISR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    /// The target replicas, in the target's order.
    pub replicas: Vec<BrokerId>,
    /// The ISR without the removed replicas.
    pub isr: Vec<BrokerId>,
}

/// Kafka's `PartitionReassignmentReplicas.maybeCompleteReassignment`: with `replicas`,
/// `adding` and `removing` of an ongoing reassignment and the ISR a change is about to
/// write, the completed state when the ISR without the removed replicas holds every target
/// replica (and neither is empty); `None` when no reassignment is in progress or it cannot
/// complete yet.
pub fn maybe_complete(
    replicas: &[BrokerId],
    adding: &[BrokerId],
    removing: &[BrokerId],
    target_isr: &[BrokerId],
) -> Option<Completed> {
    if adding.is_empty() && removing.is_empty() {
        return None;
    }
    let isr: Vec<BrokerId> = target_isr
        .iter()
        .copied()
        .filter(|b| !removing.contains(b))
        .collect();
    let target: Vec<BrokerId> = replicas
        .iter()
        .copied()
        .filter(|b| !removing.contains(b))
        .collect();
    if isr.is_empty() || target.is_empty() || !target.iter().all(|b| isr.contains(b)) {
        return None;
    }
    Some(Completed {
        replicas: target,
        isr,
    })
}

/// Kafka's `validateManualPartitionAssignment` without a replication factor to match (a
/// reassignment may change it, KIP-455): not empty, every broker registered, none twice.
pub fn validate_assignment(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignError> {
    if target.is_empty() {
        return Err(ReassignError::InvalidReplicaAssignment(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    let mut previous = None;
    for b in sorted {
        if !image.brokers().contains_key(&BrokerId(b)) {
            return Err(ReassignError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes broker {b}, but no such broker is \
                 registered."
            )));
        }
        if previous == Some(b) {
            return Err(ReassignError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes the broker {b} more than once."
            )));
        }
        previous = Some(b);
    }
    Ok(())
}

/// The change that starts, redirects or (with `target == None`) cancels the reassignment of
/// `topic`'s partition `partition_id` (Kafka's `alterPartitionReassignment`), validated
/// completely first; `Ok(None)` when nothing changes (the partition is already on the target
/// with nothing in progress). `unclean` is whether the topic allows unclean leader election
/// (a cancellation that would need one is refused otherwise).
pub fn alter_reassignment(
    image: &MetadataImage,
    topic: &str,
    partition_id: i32,
    target: Option<&[i32]>,
    unclean: bool,
) -> Result<Option<MetadataRecord>, ReassignError> {
    let t = image.topic_by_name(topic).ok_or_else(|| {
        ReassignError::UnknownTopicOrPartition(format!("Unable to find a topic named {topic}."))
    })?;
    let state = t.partitions.get(&partition_id).ok_or_else(|| {
        ReassignError::UnknownTopicOrPartition(format!(
            "Unable to find partition {topic}:{partition_id}."
        ))
    })?;
    let mut record = PartitionChangeRecord {
        topic_id: t.id,
        partition_id,
        leader: NO_LEADER_CHANGE,
        ..Default::default()
    };
    match target {
        None => cancel(state, topic, partition_id, unclean, &mut record)?,
        Some(target) => {
            validate_assignment(image, target)?;
            change(state, target, &mut record);
        }
    }
    let noop = record.replicas.is_none()
        && record.adding_replicas.is_none()
        && record.removing_replicas.is_none()
        && record.isr.is_none();
    Ok((!noop).then_some(MetadataRecord::PartitionChange(record)))
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

/// Kafka's `changePartitionReassignment` with `PartitionReassignmentReplicas(current,
/// target)`: the replicas become the target followed by the current ones it drops.
fn change(state: &PartitionState, target: &[i32], record: &mut PartitionChangeRecord) {
    let target: Vec<BrokerId> = target.iter().copied().map(BrokerId).collect();
    let mut removing: Vec<BrokerId> = state
        .replicas
        .iter()
        .copied()
        .filter(|b| !target.contains(b))
        .collect();
    let mut adding: Vec<BrokerId> = target
        .iter()
        .copied()
        .filter(|b| !state.replicas.contains(b))
        .collect();
    // Kafka computes both as sorted sets.
    removing.sort_unstable();
    adding.sort_unstable();
    let mut replicas = target;
    replicas.extend(&removing);
    if replicas != state.replicas {
        record.replicas = Some(ids(&replicas));
    }
    if removing != state.removing_replicas {
        record.removing_replicas = Some(ids(&removing));
    }
    if adding != state.adding_replicas {
        record.adding_replicas = Some(ids(&adding));
    }
}

/// Kafka's `cancelPartitionReassignment` with `PartitionReassignmentRevert`: the replicas
/// without the added brokers, the ISR without them; an ISR of added brokers only needs an
/// unclean election (the first original replica alone in the ISR).
fn cancel(
    state: &PartitionState,
    topic: &str,
    partition_id: i32,
    unclean: bool,
    record: &mut PartitionChangeRecord,
) -> Result<(), ReassignError> {
    if !state.is_reassigning() {
        return Err(ReassignError::NoReassignmentInProgress);
    }
    let replicas: Vec<BrokerId> = state
        .replicas
        .iter()
        .copied()
        .filter(|b| !state.adding_replicas.contains(b))
        .collect();
    let Some(&first) = replicas.first() else {
        return Err(ReassignError::InvalidReplicaAssignment(
            "Invalid replica assignment: addingReplicas contains all replicas.".into(),
        ));
    };
    let isr: Vec<BrokerId> = state
        .isr
        .iter()
        .copied()
        .filter(|b| !state.adding_replicas.contains(b))
        .collect();
    if isr.is_empty() {
        if !unclean {
            return Err(ReassignError::InvalidReplicaAssignment(format!(
                "Unable to revert partition assignment for {topic}:{partition_id} because it \
                 would require an unclean leader election."
            )));
        }
        record.isr = Some(vec![first.0]);
    } else if isr != state.isr {
        record.isr = Some(ids(&isr));
    }
    if replicas != state.replicas {
        record.replicas = Some(ids(&replicas));
    }
    record.adding_replicas = Some(Vec::new());
    record.removing_replicas = Some(Vec::new());
    Ok(())
}

/// One partition's ongoing reassignment, for ListPartitionReassignments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ongoing {
    /// The partition index.
    pub partition: i32,
    /// The current replicas (target and removed ones).
    pub replicas: Vec<i32>,
    /// The replicas being added.
    pub adding: Vec<i32>,
    /// The replicas being removed.
    pub removing: Vec<i32>,
}

/// Kafka's `listPartitionReassignments`: the ongoing reassignments of the named topics'
/// partitions (`None`: every topic's), topics in name order, unknown names and partitions
/// left out, topics without any left out.
pub fn list_reassignments(
    image: &MetadataImage,
    topics: Option<&[(String, Vec<i32>)]>,
) -> Vec<(String, Vec<Ongoing>)> {
    let ongoing = |state: &PartitionState, partition: i32| {
        state.is_reassigning().then(|| Ongoing {
            partition,
            replicas: ids(&state.replicas),
            adding: ids(&state.adding_replicas),
            removing: ids(&state.removing_replicas),
        })
    };
    let mut out = Vec::new();
    match topics {
        None => {
            let mut all: Vec<_> = image.topics().collect();
            all.sort_by(|a, b| a.name.cmp(&b.name));
            for t in all {
                let parts: Vec<Ongoing> = t
                    .partitions
                    .iter()
                    .filter_map(|(&p, s)| ongoing(s, p))
                    .collect();
                if !parts.is_empty() {
                    out.push((t.name.clone(), parts));
                }
            }
        }
        Some(named) => {
            for (name, partitions) in named {
                let Some(t) = image.topic_by_name(name) else {
                    continue;
                };
                let parts: Vec<Ongoing> = partitions
                    .iter()
                    .filter_map(|p| t.partitions.get(p).and_then(|s| ongoing(s, *p)))
                    .collect();
                if !parts.is_empty() {
                    out.push((name.clone(), parts));
                }
            }
        }
    }
    out
}
