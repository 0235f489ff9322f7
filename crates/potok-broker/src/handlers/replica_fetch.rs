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
use potok_protocol::messages::fetch_request::FetchPartition;
use potok_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use potok_protocol::messages::{FetchRequest, FetchResponse};
use potok_protocol::{ErrorCode, Uuid};
use potok_records::{LeaderEpoch, Offset};
use potok_replication::{FetchAnswer, FetchPosition, ReplicationError};
use tokio::sync::Notify;

use super::fetch_sessions::SessionRequest;
use super::non_negative;
use crate::error::Result;
use crate::registry::{FetchReply, Reply};
use crate::replica::throttle;
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
        /// In an incremental session: the high watermark and log start last answered, so an
        /// unchanged partition is left out of the answer.
        sent: Option<(i64, i64)>,
        /// The leader's replication throttle (bytes per second) for this follower, if any.
        throttle: Option<u64>,
    },
}

/// A top-level error answer (a session error).
fn session_error(code: ErrorCode) -> Reply {
    Reply::Fetch(FetchReply {
        body: FetchResponse {
            error_code: code.code(),
            session_id: 0,
            ..Default::default()
        },
        slices: Vec::new(),
    })
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
    // KIP-227: the session decides which partitions this request covers.
    let session = if v >= 13 {
        let partitions: Vec<(Uuid, FetchPartition)> = req
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.clone())))
            .collect();
        let forgotten: Vec<(Uuid, i32)> = req
            .forgotten_topics_data
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
            .collect();
        match broker.fetch_sessions.begin(
            replica.0,
            req.session_id,
            req.session_epoch,
            &partitions,
            &forgotten,
            Instant::now(),
        ) {
            Ok(s) => s,
            Err(code) => return Ok(session_error(code)),
        }
    } else if req.session_id != 0 {
        return Ok(session_error(ErrorCode::FetchSessionIdNotFound));
    } else {
        SessionRequest::Sessionless
    };
    let (session_id, wanted): (i32, Vec<Wanted>) = match session {
        SessionRequest::Incremental { id } => {
            let mut by_topic: Vec<Wanted> = Vec::new();
            for (t, sp) in broker.fetch_sessions.partitions(id) {
                let entry = (sp.fetch, Some((sp.sent_high_watermark, sp.sent_log_start)));
                match by_topic.iter_mut().find(|w| w.1 == t) {
                    Some(w) => w.2.push(entry),
                    None => by_topic.push((String::new(), t, vec![entry])),
                }
            }
            (id, by_topic)
        }
        SessionRequest::Open { id } => (id, full(&req)),
        SessionRequest::Sessionless => (0, full(&req)),
    };
    let mut any_fixed = false;
    let mut plan: Vec<(String, Uuid, Vec<Planned>)> = Vec::with_capacity(wanted.len());
    for (name, topic_id, fps) in &wanted {
        let topic = if v >= 13 {
            broker.topics.get_by_id(*topic_id)
        } else {
            broker.topics.get(name)
        };
        let unknown = if v >= 13 {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let mut parts = Vec::with_capacity(fps.len());
        for (fp, sent) in fps {
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
                        let leader = p.replication();
                        // A follower outside the ISR of a throttled partition is held to
                        // `leader.replication.throttled.rate` (`crate::replica::throttle`).
                        // Fetch v13+ names topics by id: the name comes from the topic.
                        let throttle = match (&leader, &topic) {
                            (Some(s), Some(t)) if !s.isr().contains(&replica) => {
                                let rate = throttle::leader_rate(
                                    &broker.dynamic.lock().unwrap_or_else(|e| e.into_inner()),
                                );
                                broker.topics.with_image(|image| {
                                    throttle::leader_limit(
                                        image,
                                        rate,
                                        broker.topics.node(),
                                        t.name(),
                                        fp.partition,
                                    )
                                })
                            }
                            _ => None,
                        };
                        // A follower that reached the high watermark and the epoch's start may
                        // rejoin the ISR: the ISR task (`crate::isr`) proposes it.
                        if let (Some(q), Some(t)) = (&broker.quorum, &topic) {
                            if leader.is_some_and(|s| s.isr_to_expand().is_some()) {
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
                            sent: *sent,
                            throttle,
                        })
                    }
                },
            }
        }
        plan.push((name.clone(), *topic_id, parts));
    }
    let notify = Arc::new(Notify::new());
    let mut shutdown = broker.shutdown_signal();
    loop {
        let (mut body, slices, bytes, read_error) =
            read_round(&plan, v, max_bytes, &notify, broker.topics.leader_quota());
        if any_fixed
            || read_error
            || bytes >= min_bytes
            || Instant::now() >= deadline
            || broker.is_shutting_down()
        {
            body.session_id = session_id;
            if session_id != 0 {
                for t in &body.responses {
                    for pd in &t.partitions {
                        broker.fetch_sessions.answered(
                            session_id,
                            t.topic_id,
                            pd.partition_index,
                            pd.high_watermark,
                            pd.log_start_offset,
                        );
                    }
                }
            }
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

/// Partitions to answer by topic: (topic name, topic id, each partition's request fields with
/// the high watermark and log start last answered in an incremental session).
type Wanted = (String, Uuid, Vec<(FetchPartition, Option<(i64, i64)>)>);

/// The request's own partitions (a full fetch), by topic.
fn full(req: &FetchRequest) -> Vec<Wanted> {
    req.topics
        .iter()
        .map(|t| {
            (
                t.topic.clone(),
                t.topic_id,
                t.partitions.iter().map(|p| (p.clone(), None)).collect(),
            )
        })
        .collect()
}

/// Reads every planned partition once (within `max_bytes` for the whole response, and one
/// oversized first batch, as for consumers). Returns the body, its file slices, the bytes
/// read and whether a read failed.
fn read_round(
    plan: &[(String, Uuid, Vec<Planned>)],
    v: i16,
    max_bytes: usize,
    notify: &Arc<Notify>,
    quota: &throttle::ReplicationQuota,
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
            let (partition, offset, partition_max_bytes, index, sent, limit_rate) = match planned {
                Planned::Fixed(pd) => {
                    out.push(PartitionData::clone(pd));
                    continue;
                }
                Planned::Read {
                    partition,
                    offset,
                    partition_max_bytes,
                    index,
                    sent,
                    throttle,
                } => (
                    partition,
                    *offset,
                    *partition_max_bytes,
                    *index,
                    *sent,
                    *throttle,
                ),
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
            let now = throttle::monotonic_ms();
            if limit_rate.is_some_and(|rate| quota.is_exceeded(rate, now)) {
                // Over the throttle: the bounds without records (Kafka's leader-side throttle
                // leaves the partition's data out of the response).
                match (partition.log_bounds(), partition.leader_high_watermark()) {
                    (Ok((log_start, _)), Some(hw)) => {
                        pd.high_watermark = hw.0;
                        pd.last_stable_offset = hw.0;
                        pd.log_start_offset = log_start.0;
                    }
                    (Err(e), _) => {
                        pd.error_code = log_error_code(&e).code();
                        failed = true;
                    }
                    (Ok(_), None) => {
                        pd.error_code = ErrorCode::NotLeaderOrFollower.code();
                        failed = true;
                    }
                }
                if sent.is_none_or(|(hw, start)| {
                    pd.error_code != 0 || pd.high_watermark != hw || pd.log_start_offset != start
                }) {
                    out.push(pd);
                }
                continue;
            }
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
                        if limit_rate.is_some() {
                            quota.record(len as u64, now);
                        }
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
            // An incremental session answers only what changed (KIP-227).
            let unchanged = sent.is_some_and(|(hw, start)| {
                pd.error_code == 0
                    && pd.records.as_ref().is_none_or(|r| r.is_empty())
                    && pd.high_watermark == hw
                    && pd.log_start_offset == start
            });
            if !unchanged {
                out.push(pd);
            }
        }
        if out.is_empty()
            && parts
                .iter()
                .all(|p| matches!(p, Planned::Read { sent: Some(_), .. }))
        {
            continue;
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
