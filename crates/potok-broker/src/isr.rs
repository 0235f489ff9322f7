//! ISR maintenance on the partition leader in a cluster (issue 18): Kafka's
//! `ReplicaManager.maybeShrinkIsr` / `Partition.maybeExpandIsr` decisions, taken by each
//! partition's [`potok_replication::LeaderState`], and Kafka's `AlterPartitionManager`, which
//! carries them to the active controller as AlterPartition (API 56, KIP-497) and feeds the
//! answers back.
//!
//! - **Shrink**: every `replica.lag.time.max.ms / 2` (Kafka's `isr-expiration` task) each led
//!   partition is asked [`LeaderState::isr_to_shrink`]: followers that have not caught up with
//!   the leader's log end within `replica.lag.time.max.ms` leave.
//! - **Expand**: a follower whose fetch reached the high watermark and the start of the leader's
//!   epoch joins ([`LeaderState::isr_to_expand`]). The follower-fetch path reports such
//!   partitions as [`Candidate`]s (`Quorum::isr_candidate`, a bounded queue); the periodic
//!   check looks at every led partition too, so a dropped candidate is only late.
//! - **One change in flight per partition**: a proposal is recorded with
//!   [`LeaderState::propose_isr`] (so the high watermark and `acks=all` use the maximal ISR
//!   while it is pending, KIP-497) together with the members' broker epochs
//!   ([`LeaderState::isr_with_broker_epochs`], KIP-903), captured once and resent unchanged on
//!   every retry. All pending changes travel in one AlterPartition at a time, as Kafka's
//!   manager sends them.
//! - **Answers**: the committed state goes to [`LeaderState::on_isr_committed`] (it also arrives
//!   through the metadata log, `crate::topics` applies it there); INELIGIBLE_REPLICA and
//!   OPERATION_NOT_ATTEMPTED (nothing was applied) to [`LeaderState::on_isr_change_refused`];
//!   no answer, NOT_CONTROLLER or a stale broker epoch are retried after a backoff; the other
//!   refusals (FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION, NEW_LEADER_ELECTED, unknown
//!   partition) leave the change pending until the metadata brings the partition's new state,
//!   as Kafka's `Partition.handleAlterPartitionError` does, because the change may have been
//!   applied. A partition whose leader epoch changed meanwhile ignores answers to the old one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use potok_metadata::BrokerId;
use potok_protocol::messages::alter_partition_request::{
    AlterPartitionRequest, BrokerState, PartitionData, TopicData,
};
use potok_protocol::messages::alter_partition_response::AlterPartitionResponse;
use potok_protocol::{ErrorCode, Uuid};
use potok_records::LeaderEpoch;
use tokio::time::Instant;

use crate::quorum::Quorum;
use crate::topics::{now_ms, Partition};
use crate::Broker;

/// Candidates queued for the ISR task before new ones are dropped.
pub const CANDIDATES: usize = 1024;
/// How long one AlterPartition waits for the controller's answer before it is sent again.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before a request that got no usable answer is sent again (Kafka's
/// AlterPartitionManager backs off similarly between retries).
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
/// Partitions in one AlterPartition; the rest follow in the next request.
const MAX_PER_REQUEST: usize = 10_000;

/// A partition whose ISR may grow.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The partition's topic id.
    pub topic_id: Uuid,
    /// The partition.
    pub partition: Arc<Partition>,
}

/// One proposed ISR change awaiting the controller.
#[derive(Debug)]
struct InFlight {
    partition: Arc<Partition>,
    proposal: u64,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
    /// The new ISR with broker epochs (-1 for this broker: the driver puts its current one).
    members: Vec<(BrokerId, i64)>,
}

type Key = (Uuid, i32);

/// The brokers a leader may add to an ISR, with their registered broker epochs: those the
/// metadata image shows unfenced and not in controlled shutdown (Kafka's
/// `Partition.isReplicaIsrEligible`). Read before any partition's lock is taken, since the
/// image's lock is taken under partition locks elsewhere.
#[derive(Debug, Default)]
pub struct Eligible(BTreeMap<BrokerId, i64>);

impl Eligible {
    /// The eligible brokers of `broker`'s image.
    pub fn of(broker: &Broker) -> Eligible {
        Eligible(broker.topics.with_image(|image| {
            image
                .brokers()
                .iter()
                .filter(|(_, r)| !r.fenced && !r.in_controlled_shutdown)
                .map(|(&b, r)| (b, r.epoch))
                .collect()
        }))
    }

    /// Whether follower `b`, whose fetches carried `fetch_epoch` (-1: none), may join the ISR:
    /// eligible, and registered under that epoch (KIP-903), as the controller checks.
    fn allows(&self, b: BrokerId, fetch_epoch: i64) -> bool {
        self.0
            .get(&b)
            .is_some_and(|&epoch| fetch_epoch < 0 || epoch == fetch_epoch)
    }
}

/// Asks `partition` for an ISR change (`shrink`: also the lag check) and records it as pending.
fn propose(
    key: Key,
    partition: &Arc<Partition>,
    shrink_lag_ms: Option<i64>,
    eligible: &Eligible,
    inflight: &mut BTreeMap<Key, InFlight>,
) {
    if inflight.contains_key(&key) || partition.is_led_elsewhere() {
        return;
    }
    let now = now_ms();
    let proposal = partition.with_leader(|r| {
        let shrink = shrink_lag_ms.and_then(|lag| r.isr_to_shrink(now, lag));
        let shrinks = shrink.is_some();
        let isr = shrink.or_else(|| r.isr_to_expand_eligible(|b, e| eligible.allows(b, e)))?;
        let proposal = r.propose_isr(isr.clone());
        if shrinks && crate::planted::active() == crate::planted::PlantedBug::ActOnPendingShrink {
            // The planted bug (test-only): act as if the controller had committed the shrink.
            tracing::warn!(isr = ?isr, "planted bug: acting on a pending ISR shrink");
            let epoch = r.partition_epoch();
            let _ = r.on_isr_committed(isr.clone(), epoch);
        }
        Some(InFlight {
            partition: Arc::clone(partition),
            proposal,
            leader_epoch: r.leader_epoch(),
            partition_epoch: r.partition_epoch(),
            members: r.isr_with_broker_epochs(&isr, -1),
        })
    });
    let proposal = proposal.flatten();
    if let Some(p) = proposal {
        tracing::info!(
            topic = partition.topic(),
            partition = partition.index(),
            isr = ?p.members.iter().map(|(b, _)| b.0).collect::<Vec<_>>(),
            partition_epoch = p.partition_epoch,
            "proposing an ISR change"
        );
        inflight.insert(key, p);
    }
}

/// The AlterPartition carrying (up to [`MAX_PER_REQUEST`] of) `inflight`.
fn request(inflight: &BTreeMap<Key, InFlight>) -> AlterPartitionRequest {
    let mut topics: Vec<TopicData> = Vec::new();
    for ((topic_id, index), p) in inflight.iter().take(MAX_PER_REQUEST) {
        let data = PartitionData {
            partition_index: *index,
            leader_epoch: p.leader_epoch.0,
            new_isr_with_epochs: p
                .members
                .iter()
                .map(|&(b, e)| BrokerState {
                    broker_id: b.0,
                    broker_epoch: e,
                    ..Default::default()
                })
                .collect(),
            leader_recovery_state: 0,
            partition_epoch: p.partition_epoch,
            ..Default::default()
        };
        match topics.last_mut() {
            Some(t) if t.topic_id == *topic_id => t.partitions.push(data),
            _ => topics.push(TopicData {
                topic_id: *topic_id,
                partitions: vec![data],
                ..Default::default()
            }),
        }
    }
    AlterPartitionRequest {
        broker_id: -1,
        broker_epoch: -1,
        topics,
        ..Default::default()
    }
}

/// Applies the controller's answer; returns whether some partition should be sent again.
fn settle(response: &AlterPartitionResponse, inflight: &mut BTreeMap<Key, InFlight>) -> bool {
    if response.error_code != 0 {
        // NOT_CONTROLLER, STALE_BROKER_EPOCH, ...: nothing was looked at; send again.
        tracing::debug!(
            error_code = response.error_code,
            "AlterPartition refused; retrying"
        );
        return true;
    }
    for t in &response.topics {
        for r in &t.partitions {
            let key = (t.topic_id, r.partition_index);
            let code = ErrorCode::from_code(r.error_code);
            if code == Some(ErrorCode::NotController) {
                continue;
            }
            let Some(p) = inflight.remove(&key) else {
                continue;
            };
            if p.partition.leader_epoch() != p.leader_epoch {
                continue;
            }
            match code {
                Some(ErrorCode::None) if r.leader_epoch == p.leader_epoch.0 => {
                    let isr = r.isr.iter().map(|&b| BrokerId(b)).collect();
                    let epoch = r.partition_epoch;
                    p.partition.with_leader(|s| s.on_isr_committed(isr, epoch));
                }
                Some(ErrorCode::IneligibleReplica | ErrorCode::OperationNotAttempted) => {
                    tracing::info!(topic = p.partition.topic(), partition = p.partition.index(), code = ?code, "the controller refused the ISR change");
                    p.partition
                        .with_leader(|s| s.on_isr_change_refused(p.proposal));
                }
                other => {
                    tracing::info!(topic = p.partition.topic(), partition = p.partition.index(), code = ?other, "the ISR change waits for the partition's metadata");
                }
            }
        }
    }
    // Partitions the answer did not mention go again.
    !inflight.is_empty()
}

/// Runs ISR maintenance for the partitions this broker leads until shutdown.
pub async fn run(broker: Arc<Broker>, quorum: Arc<Quorum>) {
    let Some(mut candidates) = quorum.take_isr_inbox() else {
        return;
    };
    let lag = broker.config.replica_lag_time_max_ms;
    let check_every = Duration::from_millis(lag / 2);
    let lag = i64::try_from(lag).unwrap_or(i64::MAX);
    let mut shutdown = broker.shutdown_signal();
    let mut next_check = Instant::now() + check_every;
    let mut retry_at: Option<Instant> = None;
    let mut inflight: BTreeMap<Key, InFlight> = BTreeMap::new();
    loop {
        let now = Instant::now();
        if now >= next_check {
            next_check = now + check_every;
            let eligible = Eligible::of(&broker);
            for t in broker.topics.all() {
                for p in t.state().partitions {
                    propose((t.id(), p.index()), &p, Some(lag), &eligible, &mut inflight);
                }
            }
        }
        let mut eligible = None;
        while let Ok(c) = candidates.try_recv() {
            let eligible = eligible.get_or_insert_with(|| Eligible::of(&broker));
            propose(
                (c.topic_id, c.partition.index()),
                &c.partition,
                None,
                eligible,
                &mut inflight,
            );
        }
        // Partitions that changed leader epoch are no longer this request's business.
        inflight.retain(|_, p| p.partition.leader_epoch() == p.leader_epoch);
        if !inflight.is_empty() && retry_at.is_none_or(|t| now >= t) {
            let again = match quorum
                .alter_partition(request(&inflight), ANSWER_TIMEOUT)
                .await
            {
                Some(r) => settle(&r, &mut inflight),
                None => true,
            };
            retry_at = again.then(|| Instant::now() + RETRY_BACKOFF);
            continue;
        }
        let wake = match retry_at {
            Some(t) if !inflight.is_empty() => t.min(next_check),
            _ => next_check,
        };
        tokio::select! {
            c = candidates.recv() => match c {
                Some(c) => propose(
                    (c.topic_id, c.partition.index()),
                    &c.partition,
                    None,
                    &Eligible::of(&broker),
                    &mut inflight,
                ),
                None => return,
            },
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One led partition's metrics row: topic, partition, ISR size, under-replicated, under
/// `min.insync.replicas`, records between the last stable offset and the high watermark.
type Row = (String, i32, usize, bool, bool, usize);

/// The replication metrics of the partitions this broker leads, in the Prometheus text format
/// (Kafka's per-partition `UnderReplicated`, `UnderMinIsr`, `InSyncReplicasCount`,
/// `LastStableOffsetLag` and the broker's `UnderReplicatedPartitions` /
/// `UnderMinIsrPartitionCount`, reported by leaders).
pub fn render_metrics(broker: &Broker) -> String {
    use std::fmt::Write as _;
    let mut rows: Vec<Row> = Vec::new();
    for t in broker.topics.all() {
        let state = t.state();
        let min_isr = usize::try_from(state.config.min_insync_replicas).unwrap_or(usize::MAX);
        for p in state.partitions {
            let Some((isr, replicas)) = p.with_leader(|r| (r.isr().len(), r.replicas().len()))
            else {
                continue;
            };
            // What read_committed consumers cannot read yet because a transaction is open
            // (0 without transactions); an offline log reports 0 rather than failing the scrape.
            let lso_lag = p
                .stable_offsets()
                .map_or(0, |(_, hw, lso)| usize::try_from(hw.0 - lso.0).unwrap_or(0));
            rows.push((
                t.name().to_string(),
                p.index(),
                isr,
                isr < replicas,
                isr < min_isr,
                lso_lag,
            ));
        }
    }
    let mut s = String::new();
    let under_replicated = rows.iter().filter(|r| r.3).count();
    let under_min_isr = rows.iter().filter(|r| r.4).count();
    let _ = writeln!(s, "# HELP potok_under_replicated_partitions Led partitions whose ISR is smaller than their replica set.");
    let _ = writeln!(s, "# TYPE potok_under_replicated_partitions gauge");
    let _ = writeln!(s, "potok_under_replicated_partitions {under_replicated}");
    let _ = writeln!(s, "# HELP potok_under_min_isr_partitions Led partitions whose ISR is smaller than min.insync.replicas.");
    let _ = writeln!(s, "# TYPE potok_under_min_isr_partitions gauge");
    let _ = writeln!(s, "potok_under_min_isr_partitions {under_min_isr}");
    for (metric, help, get) in [
        (
            "potok_partition_isr_size",
            "Members of the led partition's committed ISR.",
            (|r: &Row| r.2) as fn(&Row) -> usize,
        ),
        (
            "potok_partition_under_replicated",
            "1 when the led partition's ISR is smaller than its replica set.",
            |r| usize::from(r.3),
        ),
        (
            "potok_partition_under_min_isr",
            "1 when the led partition's ISR is smaller than min.insync.replicas.",
            |r| usize::from(r.4),
        ),
        (
            "potok_partition_lso_lag",
            "Records between the led partition's last stable offset and its high watermark (held back from read_committed consumers by open transactions).",
            |r| r.5,
        ),
    ] {
        let _ = writeln!(s, "# HELP {metric} {help}");
        let _ = writeln!(s, "# TYPE {metric} gauge");
        for r in &rows {
            let _ = writeln!(
                s,
                "{metric}{{topic=\"{}\",partition=\"{}\"}} {}",
                r.0,
                r.1,
                get(r)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests;
