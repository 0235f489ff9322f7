//! The group coordinator on a broker of a cluster (issue 18, "state that moves with
//! leadership"), as Kafka 4.x runs it:
//!
//! - **The topic.** `__consumer_offsets` is created through the active controller like any
//!   topic (`crate::quorum::internal`), with `offsets.topic.num.partitions` partitions,
//!   `offsets.topic.replication.factor` replicas and the configs of Kafka's
//!   `GroupCoordinatorService.groupMetadataTopicConfigs` (`cleanup.policy=compact`), when the
//!   first FindCoordinator for a group needs it (Kafka's `KafkaApis.getCoordinator` asks
//!   `AutoTopicCreationManager`). Until it exists FindCoordinator answers
//!   COORDINATOR_NOT_AVAILABLE; as Kafka documents for `offsets.topic.replication.factor`, the
//!   creation fails while fewer brokers are registered than the replication factor, which the
//!   controller's placement enforces (INVALID_REPLICATION_FACTOR). Its
//!   partitions are replicated by the replica fetchers like any other.
//! - **The coordinator of a group** is the leader of partition `abs(hash(group)) % partitions`
//!   in the metadata image (`potok_group::records::partition_for`, Kafka's
//!   `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount`): every broker answers
//!   FindCoordinator the same from its image; a partition without a leader answers
//!   COORDINATOR_NOT_AVAILABLE.
//! - **Load and unload.** The broker follows the leaderships of the topic's partitions through
//!   `TopicManager::watch_leadership` (`topics/leadership.rs`, Kafka's `onElection` /
//!   `onResignation`): elected, it marks the partition loading (requests answer
//!   COORDINATOR_LOAD_IN_PROGRESS), reads the partition's log up to its end on a blocking
//!   thread and loads its groups; resigned, it drops them (NOT_COORDINATOR, parked JoinGroup
//!   and SyncGroup requests completed with it).
//! - **Writes complete like `acks=all`.** A record of the coordinator is answered only once
//!   the partition's high watermark covers it, within `offsets.commit.timeout.ms`, with the
//!   delayed produce's purgatory (`handlers/delayed_produce.rs`); failures take Kafka's
//!   codes for a coordinator's failed write (`GroupCoordinatorService`'s exception
//!   normalisation: NOT_LEADER_OR_FOLLOWER becomes NOT_COORDINATOR, REQUEST_TIMED_OUT and
//!   NOT_ENOUGH_REPLICAS(_AFTER_APPEND) become COORDINATOR_NOT_AVAILABLE). Kafka 4 removed
//!   `offsets.commit.required.acks` (deprecated by KIP-1041): the coordinator always writes
//!   with `acks=all`, so there is no such setting here. As in Kafka 4's coordinator runtime,
//!   the in-memory state takes a write when it is appended, before it is replicated.
//!   Kafka 4's OffsetFetch reads the state as of the last committed offset (its timeline
//!   snapshots); here an OffsetFetch answer is held until the high watermark of the group's
//!   partition reaches the log end it had when the answer was read
//!   ([`GroupService::call_replicated`]), so it never shows an offset whose commit could still
//!   be lost in a failover. Without writes in flight that costs nothing; with one it waits
//!   as long as that commit does.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use potok_group::{GroupCoordinator, Loader, Token};
use potok_log::AppendInfo;
use potok_protocol::ErrorCode;
use potok_records::Offset;

use super::storage::replay_to_log_end;
use super::{group_config, parse, GroupService, Inner, Parked, OFFSETS_TOPIC};
use crate::config::BrokerConfig;
use crate::error::Result;
use crate::handlers::delayed_produce::{self, Waiting};
use crate::internal_topics::offsets_topic_overrides;
use crate::topics::{now_ms, Partition, TopicManager};
use crate::Broker;

/// The cluster settings of the group service.
#[derive(Debug)]
pub(super) struct ClusterSettings {
    /// `offsets.topic.replication.factor`.
    replication_factor: i16,
    /// `offsets.commit.timeout.ms`.
    commit_timeout: Duration,
    /// A creation of `__consumer_offsets` through the controller is under way (one at a time).
    creating: AtomicBool,
}

/// The group service of a broker in a cluster: it serves no partition until the leadership
/// hook reports one (see [`watch_leadership`]).
pub(super) fn open(cfg: &BrokerConfig, topics: Arc<TopicManager>) -> Result<GroupService> {
    let mut config = group_config(cfg)?;
    if let Some(t) = topics.get(OFFSETS_TOPIC) {
        // The image's partition count decides where groups live (see the module docs of
        // `group`).
        config.offsets_partitions = i32::try_from(t.partition_count()).unwrap_or(i32::MAX);
    }
    let replication_factor: i16 = parse(cfg, "offsets.topic.replication.factor")?;
    let commit_timeout_ms: u64 = parse(cfg, "offsets.commit.timeout.ms")?;
    if replication_factor < 1 {
        return Err(crate::error::BrokerError::Config(
            "offsets.topic.replication.factor must be at least 1".into(),
        ));
    }
    let partitions = config.offsets_partitions;
    Ok(GroupService {
        inner: Mutex::new(Inner {
            coordinator: GroupCoordinator::new_partitioned(config, now_ms()),
            partitions: Vec::new(),
            waits: Vec::new(),
        }),
        parked: Mutex::new(Default::default()),
        next_token: Default::default(),
        timer: Default::default(),
        topics,
        partitions,
        cluster: Some(ClusterSettings {
            replication_factor,
            commit_timeout: Duration::from_millis(commit_timeout_ms),
            creating: AtomicBool::new(false),
        }),
    })
}

/// What an append of the coordinator waits for in a cluster: the partition's high watermark
/// past its last record, in the leader epoch it was appended in.
pub(super) fn waiting(topics: &TopicManager, part: &Arc<Partition>, info: &AppendInfo) -> Waiting {
    // The topic's min.insync.replicas applies as to any acks=all write.
    let min_isr = topics
        .get(OFFSETS_TOPIC)
        .map_or(1, |t| t.config().min_insync_replicas);
    Waiting {
        partition: Arc::clone(part),
        leader_epoch: part.leader_epoch(),
        required_end: Offset(info.last_offset.0 + 1),
        min_isr: usize::try_from(min_isr).unwrap_or(usize::MAX),
    }
}

/// Waits until every append of `waits` is replicated, at most `offsets.commit.timeout.ms`.
pub(super) async fn wait_replicated(
    svc: &GroupService,
    waits: &[Waiting],
) -> std::result::Result<(), ErrorCode> {
    let timeout = svc
        .cluster
        .as_ref()
        .map_or(Duration::from_secs(5), |c| c.commit_timeout);
    for r in delayed_produce::wait(waits, timeout).await {
        r.map_err(coordinator_error)?;
    }
    Ok(())
}

/// Kafka's mapping of a coordinator's failed write to the code its client gets
/// (`GroupCoordinatorService`'s exception normalisation).
fn coordinator_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::RequestTimedOut
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::UnknownTopicOrPartition => ErrorCode::CoordinatorNotAvailable,
        other => other,
    }
}

/// Sends parked answers once the appends they depend on are replicated (answers produced by a
/// timer or by another member's request, which nobody awaits). Without a runtime (unit tests
/// of the synchronous paths) they are sent at once.
pub(super) fn deliver_when_replicated(
    svc: &GroupService,
    waits: Vec<Waiting>,
    replies: Vec<(Token, Parked)>,
    failed: Option<ErrorCode>,
) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        svc.deliver(replies, failed);
        return;
    };
    if replies.is_empty() {
        return;
    }
    // The task needs the service after this call returns; the service lives in the broker,
    // which the listener below reaches through a weak handle. Parked answers are keyed by
    // token, so delivering them from a task that owns only their channels is enough.
    let senders: Vec<_> = {
        let mut parked = super::lock(&svc.parked);
        replies
            .into_iter()
            .filter_map(|(t, reply)| parked.remove(&t.0).map(|tx| (tx, reply)))
            .collect()
    };
    let timeout = svc
        .cluster
        .as_ref()
        .map_or(Duration::from_secs(5), |c| c.commit_timeout);
    handle.spawn(async move {
        let mut failed = failed;
        if failed.is_none() {
            for r in delayed_produce::wait(&waits, timeout).await {
                if let Err(code) = r {
                    failed = Some(coordinator_error(code));
                }
            }
        }
        for (tx, reply) in senders {
            let _ = tx.send(super::failed_reply(reply, failed));
        }
    });
}

impl GroupService {
    /// Runs the read `f` about `group` on the coordinator and answers once the group's
    /// `__consumer_offsets` partition has replicated everything appended to it when `f` ran,
    /// within `offsets.commit.timeout.ms` (see the module docs: the state `f` reads may
    /// include appended but unreplicated commits). On a single node, or before the topic
    /// exists, it answers at once.
    pub async fn call_replicated<R>(
        &self,
        group: &str,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> R,
    ) -> std::result::Result<R, ErrorCode> {
        let r = self.call(f)?;
        if self.cluster.is_none() {
            return Ok(r);
        }
        let part = {
            let inner = super::lock(&self.inner);
            let count = i32::try_from(inner.partitions.len()).unwrap_or(i32::MAX);
            if count == 0 {
                return Ok(r);
            }
            let p = potok_group::records::partition_for(group, count);
            usize::try_from(p)
                .ok()
                .and_then(|i| inner.partitions.get(i))
                .map(Arc::clone)
        };
        let Some(part) = part else {
            return Ok(r);
        };
        // The log end read after `f` is at or past every record `f`'s state reflects, so
        // the high watermark reaching it covers them all.
        let Ok((_, end)) = part.log_bounds() else {
            return Err(ErrorCode::NotCoordinator);
        };
        let wait = Waiting {
            leader_epoch: part.leader_epoch(),
            partition: part,
            required_end: end,
            // A read needs the records replicated, not `min.insync.replicas`.
            min_isr: 1,
        };
        wait_replicated(self, std::slice::from_ref(&wait)).await?;
        Ok(r)
    }

    /// The coordinator of `group` in a cluster, from this broker's metadata image: the leader
    /// of the group's `__consumer_offsets` partition, as `(node, host, port)`. Starts the
    /// topic's creation through the controller when it does not exist yet.
    pub async fn cluster_coordinator(
        &self,
        broker: &Arc<Broker>,
        group: &str,
    ) -> std::result::Result<(i32, String, i32), ErrorCode> {
        let Some(topic) = self.topics.get(OFFSETS_TOPIC) else {
            self.create_topic(broker);
            return Err(ErrorCode::CoordinatorNotAvailable);
        };
        let count = i32::try_from(topic.partition_count()).unwrap_or(i32::MAX);
        let p = potok_group::records::partition_for(group, count);
        crate::internal_topics::coordinator_address(&self.topics, &topic, p)
    }

    /// Starts creating `__consumer_offsets` through the active controller unless a creation
    /// is under way; clients retry FindCoordinator meanwhile.
    fn create_topic(&self, broker: &Arc<Broker>) {
        let (Some(settings), Some(quorum)) = (self.cluster.as_ref(), broker.quorum.clone()) else {
            return;
        };
        crate::quorum::internal::spawn_creation(
            broker,
            quorum,
            OFFSETS_TOPIC,
            self.partitions,
            settings.replication_factor,
            offsets_topic_overrides(),
            |b| b.groups.cluster.as_ref().map(|s| &s.creating),
        );
    }

    /// This broker leads `partition` at `epoch`: its groups answer
    /// COORDINATOR_LOAD_IN_PROGRESS until [`Self::load_partition`] read them.
    fn begin_load(&self, partition: i32, epoch: i32) {
        let _ = self.call(|c, now| c.begin_load(partition, epoch, now));
    }

    /// Reads `partition`'s log up to its end and loads its groups (blocking file IO: runs on a
    /// blocking thread). A partition that cannot be read is unloaded again (NOT_COORDINATOR),
    /// as Kafka's runtime fails a load.
    fn load_partition(&self, partition: i32, epoch: i32) {
        let part = self
            .topics
            .get(OFFSETS_TOPIC)
            .and_then(|t| t.partition(partition));
        let mut loader = Loader::new();
        let read = match &part {
            Some(p) => replay_to_log_end(p, &mut loader),
            None => Err("the partition is not open here".into()),
        };
        match read {
            Ok(()) => {
                let records = loader.records_read();
                if let Ok(Some(report)) =
                    self.call(|c, now| c.complete_load(partition, epoch, loader, now))
                {
                    tracing::info!(
                        partition,
                        epoch,
                        records,
                        groups = report.groups,
                        offsets = report.offsets,
                        "loaded {OFFSETS_TOPIC} partition as its leader"
                    );
                }
            }
            Err(e) => {
                tracing::error!(partition, epoch, error = %e, "cannot load {OFFSETS_TOPIC} partition");
                let _ = self.call(|c, now| c.unload(partition, now));
            }
        }
    }

    /// This broker no longer leads `partition`: its groups are dropped.
    fn unload_partition(&self, partition: i32) {
        let _ = self.call(|c, now| c.unload(partition, now));
        tracing::info!(
            partition,
            "unloaded {OFFSETS_TOPIC} partition (no longer its leader)"
        );
    }
}

/// Makes the group service of a broker in a cluster follow the leaderships of
/// `__consumer_offsets` (call once the broker exists, before the quorum applies entries).
pub fn watch_leadership(broker: &Arc<Broker>) {
    if broker.groups.cluster.is_none() {
        return;
    }
    crate::internal_topics::follow_leadership(
        broker,
        OFFSETS_TOPIC,
        crate::internal_topics::CoordinatorHooks {
            begin_load: |b, partition, epoch| b.groups.begin_load(partition, epoch),
            load: |b, partition, epoch| b.groups.load_partition(partition, epoch),
            unload: |b, partition| b.groups.unload_partition(partition),
        },
    );
}
