//! The transaction coordinator on a broker of a cluster (issue 21, "moving with the partition
//! leader"), modelled on the group coordinator's (`crate::group::cluster`) and on Kafka's
//! `TransactionStateManager`:
//!
//! - **The topic.** `__transaction_state` is created through the active controller like any
//!   topic (`crate::quorum::internal`) when the first FindCoordinator with `key_type=1` needs
//!   it, with `transaction.state.log.num.partitions` partitions,
//!   `transaction.state.log.replication.factor` replicas (the controller refuses while fewer
//!   brokers are registered; FindCoordinator answers COORDINATOR_NOT_AVAILABLE until the topic
//!   exists, as Kafka's `KafkaApis.getCoordinator` does) and `min.insync.replicas` =
//!   `transaction.state.log.min.isr`.
//! - **The coordinator of a transactional id** is the leader of partition
//!   `abs(hash(id)) % partitions` in the metadata image; every broker answers FindCoordinator
//!   the same from its image.
//! - **Load and unload.** Through `TopicManager::watch_leadership`: elected, the broker marks
//!   the partition loading (requests for its ids answer COORDINATOR_LOAD_IN_PROGRESS), reads
//!   its log up to the log end on a blocking thread and adds its ids to the coordinator; the
//!   transactions found in PrepareCommit/PrepareAbort get their markers sent. Resigned, it drops
//!   the partition's ids (NOT_COORDINATOR afterwards), as Kafka's
//!   `removeTransactionsForTxnTopicPartition`.
//! - **Appends complete like `acks=all`.** A request whose coordinator records were appended
//!   is answered once the partition's high watermark covers them ([`Called::acked`]), within
//!   [`APPEND_TIMEOUT`] (Kafka's coordinator appends with `requiredAcks = -1` and
//!   `request.timeout.ms`); failures take Kafka's codes (`TransactionStateManager.appendTransactionToLog`:
//!   NOT_LEADER_OR_FOLLOWER becomes NOT_COORDINATOR, the replication failures
//!   COORDINATOR_NOT_AVAILABLE). Markers are only sent once the Prepare record they follow is
//!   committed (`markers.rs`), so a coordinator that loses an uncommitted PrepareCommit in a
//!   failover never wrote a COMMIT marker for it.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use potok_log::AppendInfo;
use potok_protocol::ErrorCode;
use potok_records::Offset;
use potok_txn::{records, Loader};

use super::{lock, Inner, TxnService};
use crate::group::GroupService;
use crate::handlers::delayed_produce::{self, Waiting};
use crate::internal_topics::{transaction_state_overrides, TRANSACTION_STATE_TOPIC};
use crate::topics::{Partition, TopicManager};
use crate::Broker;

/// How long an answer waits for its coordinator records to reach the ISR (Kafka's coordinator
/// appends with `request.timeout.ms`, 30 s by default).
pub const APPEND_TIMEOUT: Duration = Duration::from_secs(30);

/// A `__transaction_state` partition this broker leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Led {
    /// The leader epoch it leads at (the coordinator epoch of its ids).
    pub epoch: i32,
    /// Its ids are loaded (requests answer COORDINATOR_LOAD_IN_PROGRESS until then).
    pub loaded: bool,
}

/// The cluster part of the service.
pub(super) struct ClusterSettings {
    /// `transaction.state.log.replication.factor`.
    pub replication_factor: i16,
    /// A creation of `__transaction_state` through the controller is under way.
    pub creating: AtomicBool,
    /// Completions whose markers are being sent, as `(transactional id, completion sequence)`:
    /// the timer re-sends only the others.
    pub in_flight: Mutex<HashSet<(String, u64)>>,
    /// The broker and runtime the marker tasks run on (set by [`watch_leadership`]).
    pub broker: OnceLock<(Weak<Broker>, tokio::runtime::Handle)>,
}

impl ClusterSettings {
    pub fn new(replication_factor: i16) -> ClusterSettings {
        ClusterSettings {
            replication_factor,
            creating: AtomicBool::new(false),
            in_flight: Mutex::new(HashSet::new()),
            broker: OnceLock::new(),
        }
    }
}

/// The result of a coordinator call and the appends its answer waits for.
#[must_use]
pub struct Called<R> {
    /// What the call returned, or the code of a failed append.
    pub result: std::result::Result<R, ErrorCode>,
    waits: Vec<Waiting>,
}

impl<R> Called<R> {
    pub(super) fn new(result: std::result::Result<R, ErrorCode>, waits: Vec<Waiting>) -> Self {
        Called { result, waits }
    }

    /// The result once the call's records are committed (at once on a single node);
    /// Kafka's coordinator error when they are not.
    pub async fn acked(self) -> std::result::Result<R, ErrorCode> {
        let (result, waits) = self.split();
        let r = result?;
        wait_all(&waits).await?;
        Ok(r)
    }

    /// The result and the appends to wait for, apart.
    pub fn split(self) -> (std::result::Result<R, ErrorCode>, Vec<Waiting>) {
        (self.result, self.waits)
    }
}

/// Waits until every append of `waits` is committed, at most [`APPEND_TIMEOUT`].
pub async fn wait_all(waits: &[Waiting]) -> std::result::Result<(), ErrorCode> {
    if waits.is_empty() {
        return Ok(());
    }
    for r in delayed_produce::wait(waits, APPEND_TIMEOUT).await {
        r.map_err(coordinator_error)?;
    }
    Ok(())
}

/// Kafka's mapping of a coordinator's failed write (`TransactionStateManager.appendTransactionToLog`).
pub fn coordinator_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NotLeaderOrFollower | ErrorCode::KafkaStorageError => ErrorCode::NotCoordinator,
        ErrorCode::RequestTimedOut
        | ErrorCode::NotEnoughReplicas
        | ErrorCode::NotEnoughReplicasAfterAppend
        | ErrorCode::UnknownTopicOrPartition => ErrorCode::CoordinatorNotAvailable,
        other => other,
    }
}

/// What an append to `part` (of topic `topic`) waits for: the high watermark past its last
/// record, in the leader epoch it was appended in, with the topic's `min.insync.replicas`.
pub fn waiting(topics: &TopicManager, topic: &str, part: &Arc<Partition>, end: Offset) -> Waiting {
    let min_isr = topics
        .get(topic)
        .map_or(1, |t| t.config().min_insync_replicas);
    Waiting {
        partition: Arc::clone(part),
        leader_epoch: part.leader_epoch(),
        required_end: end,
        min_isr: usize::try_from(min_isr).unwrap_or(usize::MAX),
    }
}

/// [`waiting`] for one append.
pub fn waiting_for(
    topics: &TopicManager,
    topic: &str,
    part: &Arc<Partition>,
    info: &AppendInfo,
) -> Waiting {
    waiting(topics, topic, part, Offset(info.last_offset.0 + 1))
}

impl TxnService {
    /// Whether this broker coordinates `id` now: `Err(NOT_COORDINATOR)` when it does not lead
    /// the id's partition, `Err(COORDINATOR_LOAD_IN_PROGRESS)` while it loads it. Always `Ok`
    /// on a single node.
    pub(super) fn owner(&self, inner: &Inner, id: &str) -> std::result::Result<(), ErrorCode> {
        if self.cluster.is_none() {
            return Ok(());
        }
        let p = records::partition_for(id, self.partition_count(inner));
        match inner.led.get(&p) {
            None => Err(ErrorCode::NotCoordinator),
            Some(l) if !l.loaded => Err(ErrorCode::CoordinatorLoadInProgress),
            Some(_) => Ok(()),
        }
    }

    /// [`Self::owner`] for the handlers that only read (DescribeTransactions).
    pub fn owner_error(&self, id: &str) -> Option<ErrorCode> {
        let inner = lock(&self.inner);
        self.owner(&inner, id).err()
    }

    /// The coordinator of `id` in a cluster, from this broker's metadata image: the leader of
    /// the id's `__transaction_state` partition, as `(node, host, port)`. Starts the topic's
    /// creation through the controller when it does not exist yet.
    pub async fn cluster_coordinator(
        &self,
        broker: &Arc<Broker>,
        id: &str,
    ) -> std::result::Result<(i32, String, i32), ErrorCode> {
        let Some(topic) = self.topics.get(TRANSACTION_STATE_TOPIC) else {
            self.create_topic_through_controller(broker);
            return Err(ErrorCode::CoordinatorNotAvailable);
        };
        let count = i32::try_from(topic.partition_count()).unwrap_or(i32::MAX);
        let p = records::partition_for(id, count);
        crate::internal_topics::coordinator_address(&self.topics, &topic, p)
    }

    /// Starts creating `__transaction_state` through the active controller unless a creation
    /// is under way; clients retry FindCoordinator meanwhile.
    fn create_topic_through_controller(&self, broker: &Arc<Broker>) {
        let (Some(settings), Some(quorum)) = (self.cluster.as_ref(), broker.quorum.clone()) else {
            return;
        };
        let min_isr = self
            .settings
            .min_isr
            .min(i32::from(settings.replication_factor));
        crate::quorum::internal::spawn_creation(
            broker,
            quorum,
            TRANSACTION_STATE_TOPIC,
            self.settings.partitions,
            settings.replication_factor,
            transaction_state_overrides(min_isr, self.settings.segment_bytes),
            |b| b.txn.cluster.as_ref().map(|s| &s.creating),
        );
    }

    /// This broker leads `partition` at `epoch`: its ids answer COORDINATOR_LOAD_IN_PROGRESS
    /// until [`Self::load_partition`] read them.
    fn begin_load(&self, partition: i32, epoch: i32) {
        let mut inner = lock(&self.inner);
        if inner.partitions.is_empty() {
            if let Some(t) = self.topics.get(TRANSACTION_STATE_TOPIC) {
                inner.partitions = t.state().partitions;
            }
        }
        inner.led.insert(
            partition,
            Led {
                epoch,
                loaded: false,
            },
        );
    }

    /// Reads `partition`'s log up to its end and adds its ids (blocking file IO: runs on a
    /// blocking thread); prepared transactions found get their markers sent. A stale load
    /// (the partition resigned or was re-elected meanwhile) is dropped.
    fn load_partition(&self, groups: &GroupService, partition: i32, epoch: i32) {
        let part = self
            .topics
            .get(TRANSACTION_STATE_TOPIC)
            .and_then(|t| t.partition(partition));
        let mut loader = Loader::new();
        let read = match &part {
            Some(p) => super::load::read_partition(p, &mut loader, true),
            None => Err("the partition is not open here".into()),
        };
        let mut inner = lock(&self.inner);
        if inner.led.get(&partition)
            != Some(&Led {
                epoch,
                loaded: false,
            })
        {
            return;
        }
        if let Err(e) = read {
            tracing::error!(partition, epoch, error = %e, "cannot load {TRANSACTION_STATE_TOPIC} partition");
            inner.led.remove(&partition);
            return;
        }
        let count = self.partition_count(&inner);
        // Ids of an earlier leadership of the partition were dropped on resignation; this
        // clears any left by a failed reload as well.
        inner.coordinator.unload_partition(partition, count);
        inner.coordinator.load(loader);
        inner.led.insert(
            partition,
            Led {
                epoch,
                loaded: true,
            },
        );
        let ids = inner
            .coordinator
            .ids()
            .filter(|id| records::partition_for(id, count) == partition)
            .count();
        let outputs = inner.coordinator.drain_outputs();
        // Markers of the prepared transactions found (sent once the partition's log end is
        // committed); a failed Complete append is retried by the timer.
        let _ = self.apply_outputs(&mut inner, outputs, groups);
        inner.waits.clear();
        let jobs = std::mem::take(&mut inner.jobs);
        drop(inner);
        tracing::info!(
            partition,
            epoch,
            ids,
            "loaded {TRANSACTION_STATE_TOPIC} partition as its leader"
        );
        self.spawn_jobs(jobs);
        self.timer.notify_one();
    }

    /// This broker no longer leads `partition`: its ids are dropped.
    fn unload_partition(&self, partition: i32) {
        let mut inner = lock(&self.inner);
        inner.led.remove(&partition);
        let count = self.partition_count(&inner);
        let ids = inner.coordinator.unload_partition(partition, count);
        drop(inner);
        tracing::info!(
            partition,
            ids,
            "unloaded {TRANSACTION_STATE_TOPIC} partition (no longer its leader)"
        );
    }

    /// The partitions loaded now (a failed append reloads exactly these).
    pub(super) fn loaded_partitions(inner: &Inner) -> BTreeMap<i32, Led> {
        inner
            .led
            .iter()
            .filter(|(_, l)| l.loaded)
            .map(|(p, l)| (*p, *l))
            .collect()
    }
}

/// Makes the transaction coordinator of a broker in a cluster follow the leaderships of
/// `__transaction_state` (call once the broker exists, before the quorum applies entries).
pub fn watch_leadership(broker: &Arc<Broker>) {
    let Some(settings) = broker.txn.cluster.as_ref() else {
        return;
    };
    let handle = tokio::runtime::Handle::current();
    let _ = settings.broker.set((Arc::downgrade(broker), handle));
    crate::internal_topics::follow_leadership(
        broker,
        TRANSACTION_STATE_TOPIC,
        crate::internal_topics::CoordinatorHooks {
            begin_load: |b, partition, epoch| b.txn.begin_load(partition, epoch),
            load: |b, partition, epoch| b.txn.load_partition(&b.groups, partition, epoch),
            unload: |b, partition| b.txn.unload_partition(partition),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_coordinator_appends_take_kafkas_codes() {
        assert_eq!(
            coordinator_error(ErrorCode::NotLeaderOrFollower),
            ErrorCode::NotCoordinator
        );
        for unavailable in [
            ErrorCode::RequestTimedOut,
            ErrorCode::NotEnoughReplicas,
            ErrorCode::NotEnoughReplicasAfterAppend,
            ErrorCode::UnknownTopicOrPartition,
        ] {
            assert_eq!(
                coordinator_error(unavailable),
                ErrorCode::CoordinatorNotAvailable
            );
        }
        assert_eq!(
            coordinator_error(ErrorCode::InvalidTxnState),
            ErrorCode::InvalidTxnState
        );
    }
}
