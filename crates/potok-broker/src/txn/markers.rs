//! Markers of a cluster's transactions (Kafka's `TransactionMarkerChannelManager`): once the
//! PrepareCommit/PrepareAbort record of a completion is committed in `__transaction_state`,
//! its COMMIT/ABORT marker goes to the current leader of every partition of the transaction,
//! as named by this broker's metadata image: appended in process when this broker leads the
//! partition (under the coordinator's lock, like the WriteTxnMarkers API, and waited for until
//! the partition's ISR has it), else sent as WriteTxnMarkers to the leader, which answers once
//! its ISR has the marker. A partition whose topic is gone counts as written (Kafka drops such
//! markers); a partition without a leader, an error answer (NOT_LEADER_OR_FOLLOWER after a
//! leadership move, ...) or an unreachable broker leaves the marker pending: the timer task
//! re-sends pending markers every second to whichever broker leads then. When every partition
//! acknowledged, the coordinator appends the Complete record.
//!
//! One request per destination broker and completion, each on its own connection
//! (`crate::quorum::forward`); Kafka batches the markers of many transactions per broker on one
//! connection, which matters for throughput, not for correctness.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use potok_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use potok_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use potok_protocol::{ApiKey, ErrorCode};
use potok_records::{ProducerEpoch, ProducerId};
use potok_txn::{Output, TopicPartition, TxnResult};

use super::cluster::{wait_all, waiting};
use super::{lock, Inner, TxnService};
use crate::handlers::delayed_produce::Waiting;
use crate::internal_topics::TRANSACTION_STATE_TOPIC;
use crate::quorum::forward::Forward;
use crate::topics::now_ms;
use crate::Broker;

/// The WriteTxnMarkers version sent (flexible).
const VERSION: i16 = 1;
/// The largest answer read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;
/// The client id of the markers a coordinator sends.
const CLIENT_ID: &str = "potok-txn-markers";

/// The markers of one completion, to be sent once `after` is committed.
pub(super) struct MarkerJob {
    pub transactional_id: String,
    pub seq: u64,
    pub producer_id: ProducerId,
    pub producer_epoch: ProducerEpoch,
    pub result: TxnResult,
    pub partitions: BTreeSet<TopicPartition>,
    pub coordinator_epoch: i32,
    /// The id's `__transaction_state` partition up to its log end when the job was made
    /// (the Prepare record and anything before it).
    pub after: Option<Waiting>,
}

/// Where one partition's marker goes.
enum Destination {
    /// The topic or partition no longer exists: nothing to write.
    Gone,
    /// No leader now: retried later.
    Leaderless,
    Local,
    Remote(i32),
}

impl TxnService {
    /// In a cluster, the job for a completion's markers (an [`Output::WriteMarkers`]), waiting
    /// for the id's state partition's log end; any other output, or any output on a single
    /// node, is handed back.
    pub(super) fn marker_job(&self, inner: &Inner, output: Output) -> Result<MarkerJob, Output> {
        let Output::WriteMarkers {
            transactional_id,
            seq,
            producer_id,
            producer_epoch,
            result,
            partitions,
        } = output
        else {
            return Err(output);
        };
        if self.cluster.is_none() {
            return Err(Output::WriteMarkers {
                transactional_id,
                seq,
                producer_id,
                producer_epoch,
                result,
                partitions,
            });
        }
        let coordinator_epoch = self.coordinator_epoch(inner, &transactional_id);
        let after = self
            .state_partition(inner, &transactional_id)
            .and_then(|p| {
                let (_, end) = p.log_bounds().ok()?;
                Some(waiting(&self.topics, TRANSACTION_STATE_TOPIC, &p, end))
            });
        Ok(MarkerJob {
            transactional_id,
            seq,
            producer_id,
            producer_epoch,
            result,
            partitions,
            coordinator_epoch,
            after,
        })
    }

    /// Starts a task per job not already in flight.
    pub(super) fn spawn_jobs(&self, jobs: Vec<MarkerJob>) {
        let Some(settings) = self.cluster.as_ref() else {
            return;
        };
        let Some((broker, handle)) = settings.broker.get() else {
            return;
        };
        let Some(broker) = broker.upgrade() else {
            return;
        };
        for job in jobs {
            let key = (job.transactional_id.clone(), job.seq);
            if !lock(&settings.in_flight).insert(key.clone()) {
                continue;
            }
            let b = Arc::clone(&broker);
            handle.spawn(async move {
                run_job(&b, job).await;
                if let Some(s) = b.txn.cluster.as_ref() {
                    lock(&s.in_flight).remove(&key);
                }
            });
        }
    }

    /// Records the partitions whose markers were written for completion `seq` of `id` and
    /// appends the Complete record when none is left (blocking: file IO).
    fn acknowledge(
        &self,
        groups: &crate::group::GroupService,
        id: &str,
        seq: u64,
        result: TxnResult,
        written: &[TopicPartition],
    ) {
        let mut inner = lock(&self.inner);
        match inner
            .coordinator
            .markers_written(id, seq, written, now_ms())
        {
            Ok(true) => self.count_completion(result),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(id, error = %e, "completing a transaction failed");
            }
        }
        let outputs = inner.coordinator.drain_outputs();
        // The Complete record is not waited for: if it is lost, the next coordinator finds the
        // Prepare record and sends the markers again, which partitions accept (a marker with
        // no open transaction writes nothing the consumers see).
        let _ = self.apply_outputs(&mut inner, outputs, groups);
        inner.waits.clear();
        let jobs = std::mem::take(&mut inner.jobs);
        drop(inner);
        self.spawn_jobs(jobs);
    }
}

/// Where `tp`'s marker goes now, from the metadata image.
fn destination(broker: &Broker, tp: &TopicPartition) -> Destination {
    let leader = broker.topics.with_image(|i| {
        i.topic_by_name(&tp.topic)
            .map(|t| t.partitions.get(&tp.partition).map(|s| s.leader))
    });
    match leader {
        None | Some(None) => Destination::Gone,
        Some(Some(None)) => Destination::Leaderless,
        Some(Some(Some(l))) if l.0 == broker.config.node_id => Destination::Local,
        Some(Some(Some(l))) => Destination::Remote(l.0),
    }
}

/// Sends one completion's markers (see the module docs).
async fn run_job(broker: &Arc<Broker>, job: MarkerJob) {
    if let Some(after) = &job.after {
        if let Err(code) = wait_all(std::slice::from_ref(after)).await {
            tracing::debug!(id = %job.transactional_id, ?code, "the prepare record is not committed; markers wait");
            return;
        }
    }
    let mut written = Vec::new();
    let mut local = Vec::new();
    let mut remote: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    for tp in &job.partitions {
        match destination(broker, tp) {
            Destination::Gone => written.push(tp.clone()),
            Destination::Leaderless => {}
            Destination::Local => local.push(tp.clone()),
            Destination::Remote(node) => remote.entry(node).or_default().push(tp.clone()),
        }
    }
    if !local.is_empty() {
        written.extend(write_local(broker, &job, local).await);
    }
    for (node, tps) in remote {
        match send(broker, node, &job, &tps).await {
            Ok(ok) => written.extend(ok),
            Err(e) => {
                tracing::warn!(node, id = %job.transactional_id, error = %e, "sending transaction markers failed; retried later")
            }
        }
    }
    if written.is_empty() {
        return;
    }
    let b = Arc::clone(broker);
    let (id, seq, result) = (job.transactional_id.clone(), job.seq, job.result);
    let _ = tokio::task::spawn_blocking(move || {
        b.txn.acknowledge(&b.groups, &id, seq, result, &written)
    })
    .await;
}

/// Appends the markers of the partitions this broker leads and waits for their ISR.
async fn write_local(
    broker: &Arc<Broker>,
    job: &MarkerJob,
    tps: Vec<TopicPartition>,
) -> Vec<TopicPartition> {
    let b = Arc::clone(broker);
    let (pid, epoch, result, ce) = (
        job.producer_id,
        job.producer_epoch,
        job.result,
        job.coordinator_epoch,
    );
    let appended = tokio::task::spawn_blocking(move || {
        tps.into_iter()
            .filter_map(|tp| {
                match b
                    .txn
                    .write_marker_now(&b.groups, &tp, pid, epoch, result, ce)
                {
                    Ok(w) => Some((tp, w)),
                    Err(e) => {
                        tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "writing a transaction marker failed; retried later");
                        None
                    }
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut written = Vec::new();
    for (tp, w) in appended {
        let ok = match w {
            Some(w) => wait_all(std::slice::from_ref(&w)).await.is_ok(),
            None => true,
        };
        if ok {
            written.push(tp);
        }
    }
    written
}

/// Sends WriteTxnMarkers for `tps` to `node`; returns the partitions it wrote.
async fn send(
    broker: &Broker,
    node: i32,
    job: &MarkerJob,
    tps: &[TopicPartition],
) -> Result<Vec<TopicPartition>, String> {
    let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
    for tp in tps {
        match topics.iter_mut().find(|t| t.name == tp.topic) {
            Some(t) => t.partition_indexes.push(tp.partition),
            None => topics.push(WritableTxnMarkerTopic {
                name: tp.topic.clone(),
                partition_indexes: vec![tp.partition],
                ..Default::default()
            }),
        }
    }
    let req = WriteTxnMarkersRequest {
        markers: vec![WritableTxnMarker {
            producer_id: job.producer_id.0,
            producer_epoch: job.producer_epoch.0,
            transaction_result: job.result == TxnResult::Commit,
            topics,
            coordinator_epoch: job.coordinator_epoch,
            ..Default::default()
        }],
        ..Default::default()
    };
    let resp: WriteTxnMarkersResponse = Forward {
        key: ApiKey::WriteTxnMarkers,
        version: VERSION,
        client_id: CLIENT_ID,
        max_answer: MAX_ANSWER,
        // The leader answers once its ISR has the markers.
        timeout: super::cluster::APPEND_TIMEOUT + std::time::Duration::from_secs(5),
    }
    .call(broker, node, &req)
    .await?;
    let mut written = Vec::new();
    for m in resp.markers {
        for t in m.topics {
            for p in t.partitions {
                let tp = TopicPartition::new(&t.name, p.partition_index);
                if !tps.contains(&tp) {
                    continue;
                }
                match ErrorCode::from_code(p.error_code) {
                    Some(ErrorCode::None) => written.push(tp),
                    code => {
                        tracing::debug!(node, topic = %tp.topic, partition = tp.partition, ?code, "a transaction marker was refused; retried later")
                    }
                }
            }
        }
    }
    Ok(written)
}
