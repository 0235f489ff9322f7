//! Partition leadership and ISR changes, as Kafka's `PartitionChangeBuilder` and
//! `ReplicationControlManager` decide them (without KIP-966's eligible leader replicas, which
//! Potok does not build; reassignments are completed here, started in `super::reassign`):
//!
//! - **Elections** keep a current leader that is still in the target ISR and usable, else take
//!   the first replica in preferred order that is both; with no such replica the partition has
//!   no leader, unless `unclean.leader.election.enable` is set for the topic, when the first
//!   usable replica leads with the ISR reset to itself (lossy, and marked as recovering, KIP-704).
//!   A new leader bumps the leader epoch (the image's `PartitionRegistration.merge` rule).
//! - **KIP-841**: a broker that is fenced, shutting down or re-registering leaves every ISR,
//!   except that the last member stays: the ISR is never empty, and the replica that has every
//!   committed record stays known while the partition waits leaderless for it.
//! - **AlterPartition** (KIP-497; broker epochs of new members, KIP-903): the leader's ISR
//!   change, validated against the partition and leader epochs and the members' registrations.

use potok_metadata::{BrokerId, MetadataError, MetadataImage, MetadataRecord, PartitionState};
use potok_protocol::messages::alter_partition_request::AlterPartitionRequest;
use potok_protocol::messages::alter_partition_response::{
    AlterPartitionResponse, PartitionData as PartitionReply, TopicData as TopicReply,
};
use potok_protocol::messages::internal::partition_change_record::PartitionChangeRecord;
use potok_protocol::{ErrorCode, Uuid};

use super::{brokers, ControllerConfig, PlantedBug, Reply, Staged};
use crate::placement::{NO_LEADER, NO_LEADER_CHANGE};

/// The topic config that allows electing a leader outside the ISR.
pub const UNCLEAN_LEADER_ELECTION_ENABLE: &str = "unclean.leader.election.enable";

/// `LeaderRecoveryState.RECOVERED` / `RECOVERING` (KIP-704).
const RECOVERED: i8 = 0;
const RECOVERING: i8 = 1;

/// Whether unclean leader election is enabled for `topic`: its own config, else the
/// cluster-wide dynamic default, else the static setting (Kafka's
/// `ConfigurationControlManager.uncleanLeaderElectionEnabledForTopic`). Kafka parses the value
/// with Java's `Boolean.parseBoolean`: "true" in any case is true, anything else false.
pub fn unclean_enabled(image: &MetadataImage, config: &ControllerConfig, topic: &str) -> bool {
    let parse = |v: &String| v.eq_ignore_ascii_case("true");
    if let Some(v) = image
        .topic_configs(topic)
        .get(UNCLEAN_LEADER_ELECTION_ENABLE)
    {
        return parse(v);
    }
    if let Some(v) = image.broker_configs("").get(UNCLEAN_LEADER_ELECTION_ENABLE) {
        return parse(v);
    }
    config.unclean_leader_election_enable
}

/// Whether `b` may lead: registered, unfenced and not in controlled shutdown (Kafka's
/// `ClusterControlManager.isActive`), never `remove`, always `add` (the broker being unfenced
/// by the same batch).
fn acceptable(
    image: &MetadataImage,
    b: BrokerId,
    remove: Option<BrokerId>,
    add: Option<BrokerId>,
) -> bool {
    if Some(b) == remove {
        return false;
    }
    if Some(b) == add {
        return true;
    }
    image
        .brokers()
        .get(&b)
        .is_some_and(|r| !r.fenced && !r.in_controlled_shutdown)
}

/// One partition's change towards `target_isr`, with a leader election, or `None` when
/// nothing changes. `ignore_isr` is the test-only planted bug that lets any usable replica
/// lead.
///
/// As Kafka's `PartitionChangeBuilder`, every change also completes the partition's
/// reassignment when it can (KIP-455, [`super::reassign::maybe_complete`]): once the target
/// ISR holds every target replica, the replicas become the target, the removed ones leave the
/// ISR, and a removed leader is replaced by the election that follows. The target ISR never
/// names a broker that is not a replica.
#[allow(clippy::too_many_arguments)]
fn build_change(
    image: &MetadataImage,
    topic_id: Uuid,
    partition_id: i32,
    state: &PartitionState,
    target_isr: Vec<BrokerId>,
    remove: Option<BrokerId>,
    add: Option<BrokerId>,
    unclean: bool,
    ignore_isr: bool,
) -> Option<PartitionChangeRecord> {
    let mut target_replicas = state.replicas.clone();
    let mut target_adding = state.adding_replicas.clone();
    let mut target_removing = state.removing_replicas.clone();
    let mut target_isr: Vec<BrokerId> = target_isr
        .into_iter()
        .filter(|b| target_replicas.contains(b))
        .collect();
    if let Some(done) = super::reassign::maybe_complete(
        &target_replicas,
        &target_adding,
        &target_removing,
        &target_isr,
    ) {
        target_replicas = done.replicas;
        target_isr = done.isr;
        target_adding.clear();
        target_removing.clear();
    }
    let usable = |b: BrokerId| acceptable(image, b, remove, add);
    let valid = |b: BrokerId| (ignore_isr || target_isr.contains(&b)) && usable(b);
    let mut record = PartitionChangeRecord {
        topic_id,
        partition_id,
        leader: NO_LEADER_CHANGE,
        ..Default::default()
    };
    let (leader, unclean_elected) = if state.leader.is_some_and(valid) {
        (state.leader, false)
    } else if let Some(&b) = target_replicas.iter().find(|&&b| valid(b)) {
        (Some(b), false)
    } else if unclean {
        match target_replicas.iter().find(|&&b| usable(b)) {
            Some(&b) => (Some(b), true),
            None => (None, false),
        }
    } else {
        (None, false)
    };
    if leader != state.leader {
        record.leader = leader.map_or(NO_LEADER, |b| b.0);
        if let (true, Some(b)) = (unclean_elected, leader) {
            // The new leader may miss committed records: the ISR restarts from it alone, and
            // it recovers before it lets others join (KIP-704).
            record.isr = Some(vec![b.0]);
            record.leader_recovery_state = RECOVERING;
        }
    } else if !state.replicas.iter().all(|b| target_replicas.contains(b)) {
        // Kafka's `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`: a change that drops
        // replicas bumps the leader epoch, so that a removed replica's fetches are fenced.
        record.leader = state.leader.map_or(NO_LEADER, |b| b.0);
    }
    // An empty target keeps the ISR as it is (KIP-841, without eligible leader replicas).
    if record.isr.is_none() && !target_isr.is_empty() && target_isr != state.isr {
        record.isr = Some(target_isr.iter().map(|b| b.0).collect());
    }
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    if target_replicas != state.replicas {
        record.replicas = Some(ids(&target_replicas));
    }
    if target_adding != state.adding_replicas {
        record.adding_replicas = Some(ids(&target_adding));
    }
    if target_removing != state.removing_replicas {
        record.removing_replicas = Some(ids(&target_removing));
    }
    let noop = record.leader == NO_LEADER_CHANGE
        && record.isr.is_none()
        && record.replicas.is_none()
        && record.adding_replicas.is_none()
        && record.removing_replicas.is_none();
    (!noop).then_some(record)
}

/// Which partitions a broker change concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affected {
    /// Those with the broker in the ISR or leading (fencing, shutdown, re-registration).
    WithBroker(BrokerId),
    /// Those without a leader (a broker was unfenced and may lead them).
    WithoutLeader,
}

/// Kafka's `generateLeaderAndIsrUpdates`: for every affected partition, the ISR without
/// `remove` and a new election in which `remove` may not lead and `add` may. `unclean` says
/// per topic name whether unclean election is enabled; `ignore_isr` is the test-only planted
/// bug. Topics in name order, partitions in index order, so that every controller builds the
/// same records.
pub fn leader_and_isr_updates(
    image: &MetadataImage,
    remove: Option<BrokerId>,
    add: Option<BrokerId>,
    affected: Affected,
    unclean: &dyn Fn(&str) -> bool,
    ignore_isr: bool,
) -> Vec<MetadataRecord> {
    let mut topics: Vec<_> = image.topics().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for t in topics {
        let mut unclean_for_topic = None;
        for (&p, state) in &t.partitions {
            let concerned = match affected {
                Affected::WithBroker(b) => state.isr.contains(&b) || state.leader == Some(b),
                Affected::WithoutLeader => state.leader.is_none(),
            };
            if !concerned {
                continue;
            }
            let target: Vec<BrokerId> = state
                .isr
                .iter()
                .copied()
                .filter(|b| Some(*b) != remove)
                .collect();
            let unclean = *unclean_for_topic.get_or_insert_with(|| unclean(&t.name));
            if let Some(r) = build_change(
                image, t.id, p, state, target, remove, add, unclean, ignore_isr,
            ) {
                out.push(MetadataRecord::PartitionChange(r));
            }
        }
    }
    out
}

/// Preferred-leader elections per entry (Kafka's `maxElectionsPerImbalance`).
pub const MAX_ELECTIONS_PER_IMBALANCE: usize = 1_000;

/// Preferred-leader elections (Kafka's `Election.PREFERRED` for imbalanced partitions): each
/// partition whose first replica is in the ISR and usable but does not lead gets it as leader,
/// in topic name and partition order, at most [`MAX_ELECTIONS_PER_IMBALANCE`].
pub fn preferred_elections(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut topics: Vec<_> = image.topics().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for t in topics {
        for (&p, state) in &t.partitions {
            if let Election::Elected(r) = preferred_election(image, t.id, p, state) {
                out.push(*r);
            }
            if out.len() == MAX_ELECTIONS_PER_IMBALANCE {
                return out;
            }
        }
    }
    out
}

/// The outcome of one partition's election asked for by ElectLeaders (Kafka's
/// `ReplicationControlManager.electLeader`); the broker maps each to its error code.
#[derive(Clone, Debug, PartialEq)]
pub enum Election {
    /// The change that elects the leader (boxed: records are large).
    Elected(Box<MetadataRecord>),
    /// The preferred replica already leads (preferred), or a leader exists (unclean):
    /// ELECTION_NOT_NEEDED.
    NotNeeded,
    /// The preferred replica is not in the ISR or cannot lead now:
    /// PREFERRED_LEADER_NOT_AVAILABLE.
    PreferredNotAvailable,
    /// No replica can lead, even outside the ISR: ELIGIBLE_LEADERS_NOT_AVAILABLE.
    NoEligibleLeader,
    /// No such topic or partition: UNKNOWN_TOPIC_OR_PARTITION.
    UnknownPartition,
}

fn preferred_election(
    image: &MetadataImage,
    topic_id: Uuid,
    partition_id: i32,
    state: &PartitionState,
) -> Election {
    let Some(&preferred) = state.replicas.first() else {
        return Election::PreferredNotAvailable;
    };
    if state.leader == Some(preferred) {
        return Election::NotNeeded;
    }
    if !state.isr.contains(&preferred) || !acceptable(image, preferred, None, None) {
        return Election::PreferredNotAvailable;
    }
    Election::Elected(Box::new(MetadataRecord::PartitionChange(
        PartitionChangeRecord {
            topic_id,
            partition_id,
            leader: preferred.0,
            ..Default::default()
        },
    )))
}

/// ElectLeaders for one partition (KIP-460): `unclean == false` elects the preferred replica
/// when it is a usable ISR member; `unclean == true` elects a leader for a partition that has
/// none, from the ISR if a member can lead, else the first usable replica with the ISR reset
/// to it (lossy, KIP-704) — an operator's explicit request, whatever the topic's
/// `unclean.leader.election.enable` says, as in Kafka.
pub fn elect_leader(
    image: &MetadataImage,
    topic: &str,
    partition_id: i32,
    unclean: bool,
) -> Election {
    let Some(t) = image.topic_by_name(topic) else {
        return Election::UnknownPartition;
    };
    let Some(state) = t.partitions.get(&partition_id) else {
        return Election::UnknownPartition;
    };
    if !unclean {
        return preferred_election(image, t.id, partition_id, state);
    }
    if state.leader.is_some() {
        return Election::NotNeeded;
    }
    match build_change(
        image,
        t.id,
        partition_id,
        state,
        state.isr.clone(),
        None,
        None,
        true,
        false,
    ) {
        Some(r) if r.leader != NO_LEADER_CHANGE && r.leader != NO_LEADER => {
            Election::Elected(Box::new(MetadataRecord::PartitionChange(r)))
        }
        _ => Election::NoEligibleLeader,
    }
}

/// The partitions that `records` create or change, in order, without repeats.
pub(crate) fn touched(records: &[MetadataRecord]) -> Vec<(Uuid, i32)> {
    let mut out: Vec<(Uuid, i32)> = Vec::new();
    for r in records {
        let key = match r {
            MetadataRecord::Partition(p) => (p.topic_id, p.partition_id),
            MetadataRecord::PartitionChange(c) => (c.topic_id, c.partition_id),
            _ => continue,
        };
        if !out.contains(&key) {
            out.push(key);
        }
    }
    out
}

/// Elections for those of `partitions` whose leader is not a usable ISR member (or that have
/// none while one could lead), as Kafka's controller elects when it creates a partition.
pub(crate) fn repair_leaders(
    image: &MetadataImage,
    config: &ControllerConfig,
    partitions: &[(Uuid, i32)],
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for &(topic_id, p) in partitions {
        let Some(t) = image.topic(topic_id) else {
            continue;
        };
        let Some(state) = t.partitions.get(&p) else {
            continue;
        };
        let unclean = unclean_enabled(image, config, &t.name);
        if let Some(r) = build_change(
            image,
            topic_id,
            p,
            state,
            state.isr.clone(),
            None,
            None,
            unclean,
            false,
        ) {
            out.push(MetadataRecord::PartitionChange(r));
        }
    }
    out
}

/// Kafka's `Replicas.validateIsr`: every member a replica, none twice, none negative.
fn valid_isr(replicas: &[BrokerId], isr: &[i32]) -> bool {
    let mut seen = Vec::with_capacity(isr.len());
    for &b in isr {
        if b < 0 || seen.contains(&b) || !replicas.contains(&BrokerId(b)) {
            return false;
        }
        seen.push(b);
    }
    true
}

/// Kafka's `validateAlterPartitionData`, in its order.
#[allow(clippy::too_many_arguments)]
fn validate(
    image: &MetadataImage,
    version: i16,
    broker: i32,
    state: Option<&PartitionState>,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[(i32, i64)],
    recovery: i8,
) -> Result<(), ErrorCode> {
    let Some(state) = state else {
        return Err(ErrorCode::UnknownTopicOrPartition);
    };
    // A leader ahead of this controller has seen a newer controller: let it find it.
    if leader_epoch > state.leader_epoch.0 || partition_epoch > state.partition_epoch {
        return Err(ErrorCode::NotController);
    }
    if leader_epoch < state.leader_epoch.0 {
        return Err(ErrorCode::FencedLeaderEpoch);
    }
    if state.leader != Some(BrokerId(broker)) {
        return Err(ErrorCode::InvalidRequest);
    }
    if partition_epoch < state.partition_epoch {
        return Err(ErrorCode::InvalidUpdateVersion);
    }
    let ids: Vec<i32> = new_isr.iter().map(|(b, _)| *b).collect();
    if !valid_isr(&state.replicas, &ids) || !ids.contains(&broker) {
        return Err(ErrorCode::InvalidRequest);
    }
    if !(recovery == RECOVERED || recovery == RECOVERING)
        || (recovery == RECOVERING && ids.len() > 1)
    {
        return Err(ErrorCode::InvalidRequest);
    }
    // KIP-903: a new member must be registered, unfenced, not shutting down, and still the
    // incarnation the leader saw catch up (its broker epoch; -1 skips the check, as for
    // requests before version 3).
    let ineligible = new_isr
        .iter()
        .any(|&(b, epoch)| match image.brokers().get(&BrokerId(b)) {
            None => true,
            Some(r) => r.in_controlled_shutdown || r.fenced || (epoch != -1 && r.epoch != epoch),
        });
    if ineligible {
        return Err(if version > 1 {
            ErrorCode::IneligibleReplica
        } else {
            ErrorCode::OperationNotAttempted
        });
    }
    Ok(())
}

/// AlterPartition from a partition leader.
pub(crate) fn alter_partition(
    staged: &mut Staged<'_>,
    config: &ControllerConfig,
    version: i16,
    req: &AlterPartitionRequest,
    bug: PlantedBug,
) -> Result<Reply, MetadataError> {
    let mut response = AlterPartitionResponse::default();
    if !brokers::epoch_matches(staged.image(), req.broker_id, req.broker_epoch) {
        response.error_code = ErrorCode::StaleBrokerEpoch as i16;
        return Ok(Reply::AlterPartition(response));
    }
    for topic in &req.topics {
        let mut topic_reply = TopicReply {
            topic_name: topic.topic_name.clone(),
            topic_id: topic.topic_id,
            ..Default::default()
        };
        // Topics by name before version 2, by id since.
        let found = if version > 1 {
            staged.image().topic(topic.topic_id)
        } else {
            staged.image().topic_by_name(&topic.topic_name)
        }
        .map(|t| (t.id, t.name.clone()));
        let Some((topic_id, topic_name)) = found else {
            let code = if version > 1 {
                ErrorCode::UnknownTopicId
            } else {
                ErrorCode::UnknownTopicOrPartition
            };
            for p in &topic.partitions {
                topic_reply.partitions.push(PartitionReply {
                    partition_index: p.partition_index,
                    error_code: code as i16,
                    ..Default::default()
                });
            }
            response.topics.push(topic_reply);
            continue;
        };
        let unclean = unclean_enabled(staged.image(), config, &topic_name);
        for p in &topic.partitions {
            let new_isr: Vec<(i32, i64)> = if version < 3 {
                p.new_isr.iter().map(|&b| (b, -1)).collect()
            } else {
                p.new_isr_with_epochs
                    .iter()
                    .map(|s| (s.broker_id, s.broker_epoch))
                    .collect()
            };
            let state = staged
                .image()
                .topic(topic_id)
                .and_then(|t| t.partitions.get(&p.partition_index))
                .cloned();
            let refused = |code: ErrorCode| PartitionReply {
                partition_index: p.partition_index,
                error_code: code as i16,
                ..Default::default()
            };
            if let Err(code) = validate(
                staged.image(),
                version,
                req.broker_id,
                state.as_ref(),
                p.leader_epoch,
                p.partition_epoch,
                &new_isr,
                p.leader_recovery_state,
            ) {
                topic_reply.partitions.push(refused(code));
                continue;
            }
            let Some(state) = state else { continue };
            let target: Vec<BrokerId> = new_isr.iter().map(|(b, _)| BrokerId(*b)).collect();
            let change = build_change(
                staged.image(),
                topic_id,
                p.partition_index,
                &state,
                target,
                None,
                None,
                unclean,
                bug == PlantedBug::ElectOutsideIsr,
            );
            if let Some(change) = change {
                let leader = change.leader;
                staged.push(MetadataRecord::PartitionChange(change))?;
                if leader != NO_LEADER_CHANGE && leader != req.broker_id {
                    // The change also moved the leadership away (the leader is shutting down,
                    // for one): it must learn the new state from the metadata before trying
                    // again.
                    topic_reply.partitions.push(refused(if version > 1 {
                        ErrorCode::NewLeaderElected
                    } else {
                        ErrorCode::FencedLeaderEpoch
                    }));
                    continue;
                }
            }
            let Some(now) = staged
                .image()
                .topic(topic_id)
                .and_then(|t| t.partitions.get(&p.partition_index))
            else {
                continue;
            };
            topic_reply.partitions.push(PartitionReply {
                partition_index: p.partition_index,
                error_code: 0,
                leader_id: now.leader.map_or(NO_LEADER, |b| b.0),
                leader_epoch: now.leader_epoch.0,
                isr: now.isr.iter().map(|b| b.0).collect(),
                // Always the request's own state (Kafka answers the same): the image does not
                // track recovery states yet.
                leader_recovery_state: p.leader_recovery_state,
                partition_epoch: now.partition_epoch,
                ..Default::default()
            });
        }
        response.topics.push(topic_reply);
    }
    Ok(Reply::AlterPartition(response))
}
