//! Fetch from a follower replica (issue 18): the leader's side of replication, Kafka's
//! `ReplicaManager.fetchMessages` for a request whose `replica_id` (Fetch v4–v14) or
//! `ReplicaState.ReplicaId` (v15+, with the replica's broker epoch, KIP-903) names a broker.
//!
//! Each partition is answered once, when the request arrives, by
//! [`crate::topics::Partition::answer_follower_fetch`] (`LeaderState::answer_follower_fetch`:
//! FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH by `current_leader_epoch` (KIP-320),
//! NOT_LEADER_OR_FOLLOWER for a non-replica or an earlier incarnation (KIP-903), the
//! `DivergingEpoch` for `last_fetched_epoch` (Fetch v12+, KIP-320/KIP-595), OFFSET_OUT_OF_RANGE);
//! that records the follower's log end and last caught-up time and may move the high watermark,
//! which wakes the partition's waiters (delayed `acks=all` produces, consumers).
//!
//! Records are read up to the log end, not the high watermark (Kafka's `FetchIsolation.LOG_END`).
//! The request is a long poll like a consumer's (`replica.fetch.wait.max.ms` and
//! `replica.fetch.min.bytes` on the follower's side): it waits for `min_bytes` until
//! `max_wait_ms`, woken by the leader's appends; an error or a diverging epoch answers at once.
//! The high watermark in the answer is the leader's at the time of the answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use potok_log::ReadSlice;
use potok_metadata::BrokerId;
use potok_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use potok_protocol::messages::{FetchRequest, FetchResponse};
use potok_protocol::{ErrorCode, Uuid};
use potok_records::{LeaderEpoch, Offset};
use potok_replication::{FetchAnswer, FetchPosition, ReplicationError};
use tokio::sync::Notify;

use super::non_negative;
use crate::error::Result;
use crate::registry::{FetchReply, Reply};
use crate::sendfile::placeholder;
use crate::topics::{log_error_code, now_ms, Partition};
use crate::Broker;

/// The longest a follower's fetch may wait (as for consumers).
const MAX_WAIT: Duration = Duration::from_secs(300);

/// The Kafka error code of a refused follower fetch.
pub fn replication_error_code(e: &ReplicationError) -> ErrorCode {
    match e {
        ReplicationError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ReplicationError::UnknownLeaderEpoch { .. } => ErrorCode::UnknownLeaderEpoch,
        ReplicationError::NotLeader
        | ReplicationError::UnknownReplica(_)
        | ReplicationError::StaleReplicaEpoch { .. } => ErrorCode::NotLeaderOrFollower,
        ReplicationError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        ReplicationError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
        ReplicationError::OffsetNotAvailable { .. } => ErrorCode::OffsetNotAvailable,
        ReplicationError::StaleIsrChange => ErrorCode::InvalidUpdateVersion,
    }
}

/// One partition of the request after its answer was decided.
enum Planned {
    /// Answered without records: an error, or a diverging epoch.
    Fixed(Box<PartitionData>),
    /// Records from `offset`, within `partition_max_bytes`.
    Read {
        partition: Arc<Partition>,
        offset: Offset,
        partition_max_bytes: i32,
        index: i32,
    },
}

/// Handles a Fetch from follower `replica` at broker epoch `replica_epoch` (-1: not sent).
pub async fn handle(
    broker: Arc<Broker>,
    v: i16,
    req: FetchRequest,
    replica: BrokerId,
    replica_epoch: i64,
) -> Result<Reply> {
    let wait = Duration::from_millis(non_negative(req.max_wait_ms) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let max_bytes = non_negative(req.max_bytes).min(broker.config.fetch_max_bytes);
    let min_bytes = non_negative(req.min_bytes).min(max_bytes);
    let now = now_ms();
    let mut any_fixed = false;
    let mut plan: Vec<(String, Uuid, Vec<Planned>)> = Vec::with_capacity(req.topics.len());
    for ft in &req.topics {
        let topic = if v >= 13 {
            broker.topics.get_by_id(ft.topic_id)
        } else {
            broker.topics.get(&ft.topic)
        };
        let unknown = if v >= 13 {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let mut parts = Vec::with_capacity(ft.partitions.len());
        for fp in &ft.partitions {
            let mut pd = PartitionData {
                partition_index: fp.partition,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                records: Some(Bytes::new()),
                ..Default::default()
            };
            let Some(p) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                pd.error_code = unknown.code();
                any_fixed = true;
                parts.push(Planned::Fixed(Box::new(pd)));
                continue;
            };
            let position = FetchPosition {
                leader: broker.topics.node(),
                replica_id: replica,
                replica_epoch,
                fetch_offset: Offset(fp.fetch_offset),
                last_fetched_epoch: (v >= 12 && fp.last_fetched_epoch >= 0)
                    .then_some(LeaderEpoch(fp.last_fetched_epoch)),
                current_leader_epoch: LeaderEpoch(fp.current_leader_epoch),
                log_start_offset: Offset(fp.log_start_offset),
            };
            match p.answer_follower_fetch(&position, now) {
                Err(e) => {
                    pd.error_code = replication_error_code(&e).code();
                    any_fixed = true;
                    parts.push(Planned::Fixed(Box::new(pd)));
                }
                Ok(a) => match a.answer {
                    FetchAnswer::Data {
                        high_watermark,
                        log_start_offset,
                        diverging_epoch: Some((epoch, end)),
                    } => {
                        pd.high_watermark = high_watermark.0;
                        pd.last_stable_offset = high_watermark.0;
                        pd.log_start_offset = log_start_offset.0;
                        pd.diverging_epoch = EpochEndOffset {
                            epoch: epoch.0,
                            end_offset: end.0,
                            ..Default::default()
                        };
                        any_fixed = true;
                        parts.push(Planned::Fixed(Box::new(pd)));
                    }
                    _ => {
                        // A follower that reached the high watermark and the epoch's start may
                        // rejoin the ISR: the ISR task (`crate::isr`) proposes it.
                        if let (Some(q), Some(t)) = (&broker.quorum, &topic) {
                            if p.replication().is_some_and(|s| s.isr_to_expand().is_some()) {
                                q.isr_candidate(crate::isr::Candidate {
                                    topic_id: t.id(),
                                    partition: Arc::clone(&p),
                                });
                            }
                        }
                        parts.push(Planned::Read {
                            partition: p,
                            offset: Offset(fp.fetch_offset),
                            partition_max_bytes: fp.partition_max_bytes,
                            index: fp.partition,
                        })
                    }
                },
            }
        }
        plan.push((ft.topic.clone(), ft.topic_id, parts));
    }
    let notify = Arc::new(Notify::new());
    let mut shutdown = broker.shutdown_signal();
    loop {
        let (body, slices, bytes, read_error) = read_round(&plan, v, max_bytes, &notify);
        if any_fixed
            || read_error
            || bytes >= min_bytes
            || Instant::now() >= deadline
            || broker.is_shutting_down()
        {
            return Ok(Reply::Fetch(FetchReply { body, slices }));
        }
        drop(slices);
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Reads every planned partition once (within `max_bytes` for the whole response, and one
/// oversized first batch, as for consumers). Returns the body, its file slices, the bytes
/// read and whether a read failed.
fn read_round(
    plan: &[(String, Uuid, Vec<Planned>)],
    v: i16,
    max_bytes: usize,
    notify: &Arc<Notify>,
) -> (FetchResponse, Vec<ReadSlice>, usize, bool) {
    let mut left = max_bytes;
    let mut first = true;
    let mut bytes = 0usize;
    let mut slices = Vec::new();
    let mut failed = false;
    let mut responses = Vec::with_capacity(plan.len());
    for (name, id, parts) in plan {
        let mut out = Vec::with_capacity(parts.len());
        for planned in parts {
            let (partition, offset, partition_max_bytes, index) = match planned {
                Planned::Fixed(pd) => {
                    out.push(PartitionData::clone(pd));
                    continue;
                }
                Planned::Read {
                    partition,
                    offset,
                    partition_max_bytes,
                    index,
                } => (partition, *offset, *partition_max_bytes, *index),
            };
            partition.add_waiter(notify);
            let mut pd = PartitionData {
                partition_index: index,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                records: Some(Bytes::new()),
                ..Default::default()
            };
            let limit = non_negative(partition_max_bytes).min(left);
            match partition.read_for_follower(offset, limit.max(1)) {
                Ok((slice, log_start, hw)) => {
                    pd.high_watermark = hw.0;
                    pd.last_stable_offset = hw.0;
                    pd.log_start_offset = log_start.0;
                    let len = slice.len;
                    if len > 0 && (len <= limit || first) {
                        first = false;
                        left = left.saturating_sub(len);
                        bytes += len;
                        match placeholder(len) {
                            Some(ph) => {
                                pd.records = Some(ph);
                                slices.push(slice);
                            }
                            None => match slice.read_bytes() {
                                Ok(b) => pd.records = Some(b),
                                Err(e) => {
                                    tracing::warn!(topic = partition.topic(), partition = index, error = %e, "replica fetch read failed");
                                    pd.error_code = ErrorCode::KafkaStorageError.code();
                                    failed = true;
                                }
                            },
                        }
                    }
                }
                Err(e) => {
                    pd.error_code = log_error_code(&e).code();
                    failed = true;
                }
            }
            out.push(pd);
        }
        responses.push(FetchableTopicResponse {
            topic: if v >= 13 { String::new() } else { name.clone() },
            topic_id: if v >= 13 { *id } else { Uuid::ZERO },
            partitions: out,
            ..Default::default()
        });
    }
    let body = FetchResponse {
        error_code: 0,
        session_id: 0,
        responses,
        ..Default::default()
    };
    (body, slices, bytes, failed)
}
