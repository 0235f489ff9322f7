//! ListOffsets: earliest (-2), latest (-1, the high watermark; the last stable offset under
//! read_committed, KIP-98; the log end offset for a follower, `replica_id` ≥ 0, which asks
//! after OFFSET_OUT_OF_RANGE), max timestamp (-3, KIP-734) and the first offset whose
//! timestamp is at or after a given time. A client's lookup never answers an offset at or past
//! the high watermark, and a new leader whose high watermark has not reached its epoch's start
//! answers OFFSET_NOT_AVAILABLE for latest (KIP-207), as Kafka's
//! `Partition.fetchOffsetForTimestamp`.

use std::sync::Arc;

use potok_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use potok_protocol::messages::ListOffsetsResponse;
use potok_protocol::{ErrorCode, Request, Response};

use crate::error::{BrokerError, Result};
use crate::registry::{Reply, RequestContext};
use crate::topics::{log_error_code, Partition};
use crate::Broker;
use potok_records::Offset;
use potok_replication::ClientOffsetQuery;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
/// KIP-1005's EARLIEST_LOCAL_TIMESTAMP: the first offset in local storage. Without tiered
/// storage every segment is local, so it is the log start offset, as Kafka answers then.
const EARLIEST_LOCAL: i64 = -4;
const MAX_TIMESTAMP: i64 = -3;

/// Handles ListOffsets.
pub async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::ListOffsets(req) = req else {
        return Err(BrokerError::NoHandler("ListOffsets"));
    };
    let read_committed = req.isolation_level == 1;
    let from_replica = req.replica_id >= 0;
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topics.get(&t.name);
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let mut r = ListOffsetsPartitionResponse {
                    partition_index: p.partition_index,
                    ..Default::default()
                };
                match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                    None => r.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                    Some(part) => match part.check_current_leader_epoch(p.current_leader_epoch) {
                        Some(code) => r.error_code = code.code(),
                        None => match lookup(&part, p.timestamp, read_committed, from_replica) {
                            Ok((offset, ts, epoch)) => {
                                r.offset = offset;
                                r.timestamp = ts;
                                // The field exists from v4 on; earlier versions must keep the
                                // default.
                                if ctx.api_version >= 4 && offset >= 0 {
                                    r.leader_epoch = epoch;
                                }
                            }
                            Err(code) => r.error_code = code.code(),
                        },
                    },
                }
                r
            })
            .collect();
        topics.push(ListOffsetsTopicResponse {
            name: t.name,
            partitions,
            ..Default::default()
        });
    }
    Ok(Reply::Response(Response::ListOffsets(
        ListOffsetsResponse {
            topics,
            ..Default::default()
        },
    )))
}

/// `(offset, timestamp, leader epoch)`; `(-1, -1, -1)` when no record matches, as Kafka
/// answers. The epoch is the cache's epoch for the offset (Kafka's `epochForOffset`), the
/// latest epoch for LATEST, and -1 when unknown.
fn lookup(
    p: &Partition,
    ts: i64,
    read_committed: bool,
    from_replica: bool,
) -> std::result::Result<(i64, i64, i32), ErrorCode> {
    let Some(leader) = p.replication() else {
        return Err(ErrorCode::NotLeaderOrFollower);
    };
    // Kafka's `fetchOffsetForTimestamp`: a follower's latest is the log end; a consumer's the
    // high watermark, under read_committed the last stable offset, so a consumer starting at
    // the end never starts inside an open transaction or past what is committed.
    let (_, hw, stable) = p.stable_offsets().map_err(|e| log_error_code(&e))?;
    let bound = if read_committed { stable } else { hw };
    let kip207 = |query| {
        if from_replica {
            return Ok(());
        }
        leader
            .check_client_list_offsets(query)
            .map_err(|_| ErrorCode::OffsetNotAvailable)
    };
    if ts == LATEST {
        kip207(ClientOffsetQuery::Latest)?;
    }
    let r = p
        .with_log(|log| {
            let bounded = |o: Offset| from_replica || o < bound;
            let epoch_of = |o: Offset| log.epoch_for_offset(o).map_or(-1, |e| e.0);
            Ok(match ts {
                LATEST if from_replica => (
                    log.log_end_offset().0,
                    -1,
                    log.latest_epoch().map_or(-1, |e| e.0),
                ),
                LATEST => (bound.0, -1, log.latest_epoch().map_or(-1, |e| e.0)),
                EARLIEST | EARLIEST_LOCAL => (
                    log.log_start_offset().0,
                    -1,
                    epoch_of(log.log_start_offset()),
                ),
                MAX_TIMESTAMP => match log.max_timestamp_and_offset()? {
                    Some((t, o)) if bounded(o) => (o.0, t, epoch_of(o)),
                    _ => (-1, -1, -1),
                },
                t if t >= 0 => match log.offset_for_timestamp(t)? {
                    Some((o, t)) if bounded(o) => (o.0, t, epoch_of(o)),
                    _ => (-1, -1, -1),
                },
                _ => return Err(potok_log::LogError::InvalidConfig("bad timestamp".into())),
            })
        })
        .map_err(|e| match e {
            potok_log::LogError::InvalidConfig(_) => ErrorCode::InvalidRequest,
            e => log_error_code(&e),
        })?;
    if ts >= 0 {
        kip207(ClientOffsetQuery::Timestamp {
            found: (r.0 >= 0).then_some(Offset(r.0)),
        })?;
    }
    Ok(r)
}
