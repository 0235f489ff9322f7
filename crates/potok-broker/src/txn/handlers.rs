//! The transaction APIs: InitProducerId with a transactional id, AddPartitionsToTxn (v0-3
//! from clients, v4+ batched and verify-only), AddOffsetsToTxn, TxnOffsetCommit, EndTxn,
//! WriteTxnMarkers, DescribeTransactions and ListTransactions. Each turns the wire request into
//! calls of [`super::TxnService`] on a blocking thread (they append to logs) and builds the
//! response for the request's version.
//!
//! Versions: EndTxn v5, TxnOffsetCommit v5 and Produce v12 are KIP-890 part 2
//! (`transaction.version` 2): EndTxn v5 bumps the epoch and answers the one to use next, and
//! the other two add their partition to the transaction (`verify.rs`). As in Kafka, each request
//! is served by its version; the finalized `transaction.version` in ApiVersions is what tells a
//! client which to send. InitProducerId v5+ belongs to KIP-939 (two-phase commit), not served.

use std::collections::BTreeMap;
use std::sync::Arc;

use potok_group::{CommitPartition, TxnOffsetCommitRequest as DomainTxnCommit};
use potok_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use potok_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedState,
};
use potok_protocol::messages::list_transactions_response::TransactionState as ListedState;
use potok_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use potok_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use potok_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, DescribeTransactionsResponse,
    EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse, ListTransactionsResponse,
    TxnOffsetCommitResponse, WriteTxnMarkersResponse,
};
use potok_protocol::{ApiKey, ErrorCode, Request, Response};
use potok_records::{LeaderEpoch, Offset, ProducerEpoch, ProducerId};
use potok_txn::{ListFilter, ProducerIdAndEpoch, TopicPartition, TxnError, TxnResult, TxnState};

use super::{error_code, Deps};
use crate::error::{BrokerError, Result};
use crate::handlers::delayed_produce::Waiting;
use crate::producer_ids::ProducerIds;
use crate::registry::{Registry, Reply, RequestContext};
use crate::Broker;

/// Registers the transaction APIs (InitProducerId stays with its idempotent handler, which
/// hands transactional requests to [`init_producer_id`]).
pub fn register(r: &mut Registry) {
    r.register(ApiKey::AddPartitionsToTxn, 0, 5, add_partitions);
    r.register(ApiKey::AddOffsetsToTxn, 0, 4, add_offsets);
    r.register(ApiKey::TxnOffsetCommit, 0, 5, txn_offset_commit);
    r.register(ApiKey::EndTxn, 0, 5, end_txn);
    r.register(ApiKey::WriteTxnMarkers, 0, 1, write_txn_markers);
    r.register(ApiKey::DescribeTransactions, 0, 0, describe_transactions);
    r.register(ApiKey::ListTransactions, 0, 1, list_transactions);
}

fn respond(r: Response) -> Result<Reply> {
    Ok(Reply::Response(r))
}

/// Runs `f` on a blocking thread (the coordinator appends to logs).
async fn blocking<R: Send + 'static>(
    broker: &Arc<Broker>,
    f: impl FnOnce(&Broker) -> R + Send + 'static,
) -> Result<R> {
    let b = Arc::clone(broker);
    tokio::task::spawn_blocking(move || f(&b))
        .await
        .map_err(|e| BrokerError::Config(format!("transaction task failed: {e}")))
}

/// PRODUCER_FENCED exists since KIP-588; requests older than the version that added it get
/// INVALID_PRODUCER_EPOCH instead, as Kafka's `KafkaApis` maps it.
fn fenced_for(code: ErrorCode, version: i16, first_fenced_version: i16) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && version < first_fenced_version {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}

fn call_error(r: &std::result::Result<std::result::Result<(), TxnError>, ErrorCode>) -> ErrorCode {
    match r {
        Ok(Ok(())) => ErrorCode::None,
        Ok(Err(e)) => error_code(e),
        Err(code) => *code,
    }
}

/// InitProducerId with a transactional id (KIP-98; KIP-360's producer id and epoch from v3).
pub async fn init_producer_id(
    broker: Arc<Broker>,
    version: i16,
    req: InitProducerIdRequest,
) -> Result<Reply> {
    let id = req.transactional_id.clone().unwrap_or_default();
    let expected = (req.producer_id >= 0).then_some(ProducerIdAndEpoch {
        producer_id: ProducerId(req.producer_id),
        producer_epoch: ProducerEpoch(req.producer_epoch),
    });
    let timeout = req.transaction_timeout_ms;
    // In a cluster a fresh producer id comes from the controller's blocks, which may mean a
    // request to the controller: it is taken before the coordinator's lock (an id the
    // coordinator does not need is simply never used, as Kafka skips ids too).
    let prefetched = match &broker.producer_ids {
        ProducerIds::Cluster(ids) => match ids.next_id().await {
            Ok(id) => Some(ProducerId(id)),
            Err(code) => {
                tracing::warn!(
                    ?code,
                    "cannot take a producer id from the controller's blocks"
                );
                return respond(Response::InitProducerId(InitProducerIdResponse {
                    error_code: ErrorCode::CoordinatorNotAvailable.code(),
                    producer_id: -1,
                    producer_epoch: -1,
                    ..Default::default()
                }));
            }
        },
        ProducerIds::Local(_) => None,
    };
    let r = blocking(&broker, move |b| {
        let deps = Deps {
            prefetched,
            ..Deps::of(b)
        };
        b.txn.call(&deps, Some(&id), |c, now, alloc| {
            c.init_producer_id(&id, timeout, expected, now, alloc)
        })
    })
    .await?
    .acked()
    .await;
    let mut resp = InitProducerIdResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    };
    match r {
        Ok(Ok(p)) => {
            resp.producer_id = p.producer_id.0;
            resp.producer_epoch = p.producer_epoch.0;
        }
        Ok(Err(e)) => {
            if let TxnError::ProducerIdUnavailable(why) = &e {
                tracing::error!(error = %why, "cannot reserve producer ids");
            }
            resp.error_code = fenced_for(error_code(&e), version, 4).code();
        }
        Err(code) => resp.error_code = code.code(),
    }
    respond(Response::InitProducerId(resp))
}

/// Whether the broker hosts the partition.
fn known(broker: &Broker, topic: &str, partition: i32) -> bool {
    broker
        .topics
        .get(topic)
        .is_some_and(|t| t.partition(partition).is_some())
}

/// One transaction of an AddPartitionsToTxn: per-topic, per-partition results. Unknown
/// partitions get UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED, as
/// Kafka's `KafkaApis.handleAddPartitionsToTxnRequest` answers before the coordinator. The
/// appends the answer waits for (a cluster) are added to `waits`.
fn add_one(
    broker: &Broker,
    (id, producer_id, epoch): (&str, i64, i16),
    topics: &[(String, Vec<i32>)],
    verify_only: bool,
    version: i16,
    waits: &mut Vec<Waiting>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let all: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| TopicPartition::new(t, *p)))
        .collect();
    let unknown: Vec<&TopicPartition> = all
        .iter()
        .filter(|tp| !known(broker, &tp.topic, tp.partition))
        .collect();
    let mut codes: BTreeMap<TopicPartition, ErrorCode> = BTreeMap::new();
    if !unknown.is_empty() {
        for tp in &all {
            let code = if unknown.contains(&tp) {
                ErrorCode::UnknownTopicOrPartition
            } else {
                ErrorCode::OperationNotAttempted
            };
            codes.insert(tp.clone(), code);
        }
    } else if verify_only {
        // KIP-890 part 1: each partition is answered on its own (in the transaction or not).
        let deps = Deps::of(broker);
        for tp in &all {
            let (r, w) = broker
                .txn
                .call(&deps, Some(id), |c, now, _| {
                    c.add_partitions(
                        id,
                        ProducerId(producer_id),
                        ProducerEpoch(epoch),
                        std::slice::from_ref(tp),
                        true,
                        now,
                    )
                })
                .split();
            waits.extend(w);
            codes.insert(tp.clone(), call_error(&r));
        }
    } else {
        let (r, w) = broker
            .txn
            .call(&Deps::of(broker), Some(id), |c, now, _| {
                c.add_partitions(
                    id,
                    ProducerId(producer_id),
                    ProducerEpoch(epoch),
                    &all,
                    false,
                    now,
                )
            })
            .split();
        waits.extend(w);
        let code = fenced_for(call_error(&r), version, 2);
        for tp in &all {
            codes.insert(tp.clone(), code);
        }
    }
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, code) in codes {
        let result = AddPartitionsToTxnPartitionResult {
            partition_index: tp.partition,
            partition_error_code: code.code(),
            ..Default::default()
        };
        match out.iter_mut().find(|t| t.name == tp.topic) {
            Some(t) => t.results_by_partition.push(result),
            None => out.push(AddPartitionsToTxnTopicResult {
                name: tp.topic,
                results_by_partition: vec![result],
                ..Default::default()
            }),
        }
    }
    out
}

async fn add_partitions(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::AddPartitionsToTxn(req) = req else {
        return Err(BrokerError::NoHandler("AddPartitionsToTxn"));
    };
    let version = ctx.api_version;
    let (mut resp, waits) = blocking(&broker, move |b| {
        let mut waits = Vec::new();
        let mut resp = AddPartitionsToTxnResponse::default();
        if version <= 3 {
            let topics: Vec<(String, Vec<i32>)> = req
                .v3_and_below_topics
                .into_iter()
                .map(|t| (t.name, t.partitions))
                .collect();
            resp.results_by_topic_v3_and_below = add_one(
                b,
                (
                    &req.v3_and_below_transactional_id,
                    req.v3_and_below_producer_id,
                    req.v3_and_below_producer_epoch,
                ),
                &topics,
                false,
                version,
                &mut waits,
            );
        } else {
            for t in req.transactions {
                let topics: Vec<(String, Vec<i32>)> = t
                    .topics
                    .into_iter()
                    .map(|t| (t.name, t.partitions))
                    .collect();
                let results = add_one(
                    b,
                    (&t.transactional_id, t.producer_id, t.producer_epoch),
                    &topics,
                    t.verify_only,
                    version,
                    &mut waits,
                );
                resp.results_by_transaction.push(AddPartitionsToTxnResult {
                    transactional_id: t.transactional_id,
                    topic_results: results,
                    ..Default::default()
                });
            }
        }
        (resp, waits)
    })
    .await?;
    // In a cluster the partitions count as added once the record is committed; else every
    // partition that succeeded gets the coordinator's error.
    if let Err(code) = super::cluster::wait_all(&waits).await {
        let results = resp
            .results_by_topic_v3_and_below
            .iter_mut()
            .chain(
                resp.results_by_transaction
                    .iter_mut()
                    .flat_map(|t| t.topic_results.iter_mut()),
            )
            .flat_map(|t| t.results_by_partition.iter_mut());
        for p in results {
            if p.partition_error_code == ErrorCode::None.code() {
                p.partition_error_code = code.code();
            }
        }
    }
    respond(Response::AddPartitionsToTxn(resp))
}

async fn add_offsets(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::AddOffsetsToTxn(req) = req else {
        return Err(BrokerError::NoHandler("AddOffsetsToTxn"));
    };
    let version = ctx.api_version;
    let r = blocking(&broker, move |b| {
        b.txn
            .call(&Deps::of(b), Some(&req.transactional_id), |c, now, _| {
                c.add_offsets(
                    &req.transactional_id,
                    ProducerId(req.producer_id),
                    ProducerEpoch(req.producer_epoch),
                    &req.group_id,
                    now,
                )
                .map(|_| ())
            })
    })
    .await?
    .acked()
    .await;
    respond(Response::AddOffsetsToTxn(AddOffsetsToTxnResponse {
        error_code: fenced_for(call_error(&r), version, 2).code(),
        ..Default::default()
    }))
}

async fn txn_offset_commit(
    broker: Arc<Broker>,
    ctx: RequestContext,
    req: Request,
) -> Result<Reply> {
    let Request::TxnOffsetCommit(req) = req else {
        return Err(BrokerError::NoHandler("TxnOffsetCommit"));
    };
    let version = ctx.api_version;
    // v5+ (KIP-890 part 2) adds the group's partition to the transaction first; in a cluster,
    // when another broker coordinates the id, that broker adds or verifies it (`super::verify`).
    let verified = super::verify::verify_offsets(
        &broker,
        &req.transactional_id,
        (
            ProducerId(req.producer_id),
            ProducerEpoch(req.producer_epoch),
        ),
        &req.group_id,
        version >= 5,
    )
    .await;
    let (mut resp, waits) = blocking(&broker, move |b| {
        let mut waits = Vec::new();
        let mut unknown: Vec<(String, Vec<i32>)> = Vec::new();
        let mut topics = Vec::new();
        for t in req.topics {
            let mut ok = Vec::new();
            let mut missing = Vec::new();
            for p in t.partitions {
                if known(b, &t.name, p.partition_index) {
                    ok.push(CommitPartition {
                        partition: p.partition_index,
                        offset: Offset(p.committed_offset),
                        leader_epoch: LeaderEpoch(p.committed_leader_epoch),
                        metadata: p.committed_metadata,
                    });
                } else {
                    missing.push(p.partition_index);
                }
            }
            if !missing.is_empty() {
                unknown.push((t.name.clone(), missing));
            }
            if !ok.is_empty() {
                topics.push((t.name, ok));
            }
        }
        let domain = DomainTxnCommit {
            group_id: req.group_id.clone(),
            producer_id: req.producer_id,
            producer_epoch: req.producer_epoch,
            generation_id: req.generation_id,
            member_id: req.member_id,
            group_instance_id: req.group_instance_id,
            topics,
        };
        let all = |code: ErrorCode| -> Vec<(String, Vec<(i32, ErrorCode)>)> {
            domain
                .topics
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (p.partition, code)).collect()))
                .collect()
        };
        let results = match verified {
            Err(code) => all(fenced_for(code, version, 3)),
            Ok(guard) => match b.txn.with_verified_offsets(
                &req.transactional_id,
                (
                    ProducerId(req.producer_id),
                    ProducerEpoch(req.producer_epoch),
                ),
                &req.group_id,
                b.groups.partitions(),
                guard,
                || b.groups.commit_txn_offsets_waiting(&domain),
            ) {
                Ok((Ok(r), w)) => {
                    waits = w;
                    r
                }
                Ok((Err(code), _)) => all(code),
                Err(e) => all(fenced_for(error_code(&e), version, 3)),
            },
        };
        let mut out: Vec<TxnOffsetCommitResponseTopic> = results
            .into_iter()
            .map(|(name, ps)| TxnOffsetCommitResponseTopic {
                name,
                partitions: ps
                    .into_iter()
                    .map(|(p, code)| TxnOffsetCommitResponsePartition {
                        partition_index: p,
                        error_code: code.code(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        for (name, ps) in unknown {
            out.push(TxnOffsetCommitResponseTopic {
                name,
                partitions: ps
                    .into_iter()
                    .map(|p| TxnOffsetCommitResponsePartition {
                        partition_index: p,
                        error_code: ErrorCode::UnknownTopicOrPartition.code(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            });
        }
        let resp = TxnOffsetCommitResponse {
            topics: out,
            ..Default::default()
        };
        (resp, waits)
    })
    .await?;
    // In a cluster the offsets count once the group's partition's ISR has them.
    if let Err(code) = super::cluster::wait_all(&waits).await {
        for p in resp.topics.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
            if p.error_code == ErrorCode::None.code() {
                p.error_code = code.code();
            }
        }
    }
    respond(Response::TxnOffsetCommit(resp))
}

async fn end_txn(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::EndTxn(req) = req else {
        return Err(BrokerError::NoHandler("EndTxn"));
    };
    let version = ctx.api_version;
    let producer = ProducerIdAndEpoch {
        producer_id: ProducerId(req.producer_id),
        producer_epoch: ProducerEpoch(req.producer_epoch),
    };
    // Under TV2 the completion whose bump exhausts the epoch moves the id to a fresh producer
    // id (KIP-890 part 2). In a cluster that id comes from the controller's blocks, which must
    // not be asked under the coordinator's lock: it is taken first, as InitProducerId does,
    // when the quoted epoch is that close to the end (an id not used is skipped, as in Kafka).
    let prefetched = match &broker.producer_ids {
        ProducerIds::Cluster(ids) if version >= 5 && req.producer_epoch >= i16::MAX - 2 => {
            ids.next_id().await.ok().map(ProducerId)
        }
        _ => None,
    };
    let r = blocking(&broker, move |b| {
        let deps = Deps {
            prefetched,
            ..Deps::of(b)
        };
        b.txn
            .call(&deps, Some(&req.transactional_id), |c, now, alloc| {
                // v5+ is transaction.version 2 (KIP-890 part 2): the completion bumps the epoch.
                c.end_txn(
                    &req.transactional_id,
                    producer,
                    req.committed,
                    version >= 5,
                    now,
                    alloc,
                )
            })
    })
    .await?
    .acked()
    .await;
    let mut resp = EndTxnResponse {
        producer_id: -1,
        producer_epoch: -1,
        ..Default::default()
    };
    match r {
        // Only v5+ carries the id and epoch (the producer's next ones under TV2).
        Ok(Ok(next)) => {
            resp.producer_id = next.producer_id.0;
            resp.producer_epoch = next.producer_epoch.0;
        }
        Ok(Err(e)) => resp.error_code = fenced_for(error_code(&e), version, 2).code(),
        Err(code) => resp.error_code = code.code(),
    }
    respond(Response::EndTxn(resp))
}

/// WriteTxnMarkers: the request a transaction coordinator sends to partition leaders. Every
/// marker is appended under the coordinator's lock (as the coordinator's own markers are), so
/// it cannot interleave with a verified transactional produce.
async fn write_txn_markers(
    broker: Arc<Broker>,
    _ctx: RequestContext,
    req: Request,
) -> Result<Reply> {
    let Request::WriteTxnMarkers(req) = req else {
        return Err(BrokerError::NoHandler("WriteTxnMarkers"));
    };
    let (mut resp, waits) = blocking(&broker, move |b| {
        let mut waits: Vec<(usize, usize, usize, Waiting)> = Vec::new();
        let mut resp = WriteTxnMarkersResponse::default();
        for m in req.markers {
            let result = if m.transaction_result {
                TxnResult::Commit
            } else {
                TxnResult::Abort
            };
            let mut topics = Vec::new();
            for t in m.topics {
                let mut partitions = Vec::new();
                for p in t.partition_indexes {
                    let tp = TopicPartition::new(&t.name, p);
                    let code = match b.topics.get(&t.name).and_then(|t| t.partition(p)) {
                        None => ErrorCode::UnknownTopicOrPartition,
                        // A cluster's coordinator re-sends to the partition's new leader.
                        Some(part) if part.is_led_elsewhere() => ErrorCode::NotLeaderOrFollower,
                        Some(_) => match b.txn.write_marker_now(
                            &b.groups,
                            &tp,
                            ProducerId(m.producer_id),
                            ProducerEpoch(m.producer_epoch),
                            result,
                            m.coordinator_epoch,
                        ) {
                            Ok(w) => {
                                if let Some(w) = w {
                                    waits.push((
                                        resp.markers.len(),
                                        topics.len(),
                                        partitions.len(),
                                        w,
                                    ));
                                }
                                ErrorCode::None
                            }
                            Err(e) => crate::topics::log_error_code(&e),
                        },
                    };
                    partitions.push(WritableTxnMarkerPartitionResult {
                        partition_index: p,
                        error_code: code.code(),
                        ..Default::default()
                    });
                }
                topics.push(WritableTxnMarkerTopicResult {
                    name: t.name,
                    partitions,
                    ..Default::default()
                });
            }
            resp.markers.push(WritableTxnMarkerResult {
                producer_id: m.producer_id,
                topics,
                ..Default::default()
            });
        }
        (resp, waits)
    })
    .await?;
    // In a cluster a marker is acknowledged once the partition's ISR has it (Kafka appends
    // markers with `requiredAcks = -1`), so a leader change cannot lose an acknowledged one.
    for (m, t, p, w) in waits {
        if let Err(code) = super::cluster::wait_all(std::slice::from_ref(&w)).await {
            if let Some(r) = resp
                .markers
                .get_mut(m)
                .and_then(|x| x.topics.get_mut(t))
                .and_then(|x| x.partitions.get_mut(p))
            {
                r.error_code = code.code();
            }
        }
    }
    respond(Response::WriteTxnMarkers(resp))
}

async fn describe_transactions(
    broker: Arc<Broker>,
    _ctx: RequestContext,
    req: Request,
) -> Result<Reply> {
    let Request::DescribeTransactions(req) = req else {
        return Err(BrokerError::NoHandler("DescribeTransactions"));
    };
    let owners: Vec<Option<ErrorCode>> = req
        .transactional_ids
        .iter()
        .map(|id| broker.txn.owner_error(id))
        .collect();
    let states = broker.txn.read(|c, _| {
        req.transactional_ids
            .iter()
            .zip(owners)
            .map(|(id, owner)| {
                match owner.map_or_else(|| c.describe(id).map_err(|e| error_code(&e)), Err) {
                    Ok(d) => {
                        let mut topics: Vec<TopicData> = Vec::new();
                        for tp in &d.partitions {
                            match topics.iter_mut().find(|t| t.topic == tp.topic) {
                                Some(t) => t.partitions.push(tp.partition),
                                None => topics.push(TopicData {
                                    topic: tp.topic.clone(),
                                    partitions: vec![tp.partition],
                                    ..Default::default()
                                }),
                            }
                        }
                        DescribedState {
                            transactional_id: id.clone(),
                            transaction_state: d.state.name().to_string(),
                            transaction_timeout_ms: d.timeout_ms,
                            transaction_start_time_ms: d.start_ms,
                            producer_id: d.producer_id.0,
                            producer_epoch: d.producer_epoch.0,
                            topics,
                            ..Default::default()
                        }
                    }
                    Err(code) => DescribedState {
                        error_code: code.code(),
                        transactional_id: id.clone(),
                        producer_id: -1,
                        producer_epoch: -1,
                        transaction_start_time_ms: -1,
                        ..Default::default()
                    },
                }
            })
            .collect()
    });
    respond(Response::DescribeTransactions(
        DescribeTransactionsResponse {
            transaction_states: states,
            ..Default::default()
        },
    ))
}

/// Kafka's state names (`TransactionState.fromName`).
fn state_by_name(name: &str) -> Option<TxnState> {
    [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::PrepareEpochFence,
        TxnState::Dead,
    ]
    .into_iter()
    .find(|s| s.name() == name)
}

async fn list_transactions(
    broker: Arc<Broker>,
    ctx: RequestContext,
    req: Request,
) -> Result<Reply> {
    let Request::ListTransactions(req) = req else {
        return Err(BrokerError::NoHandler("ListTransactions"));
    };
    let mut filter = ListFilter {
        min_duration_ms: if ctx.api_version >= 1 {
            req.duration_filter
        } else {
            -1
        },
        producer_ids: req
            .producer_id_filters
            .iter()
            .map(|p| ProducerId(*p))
            .collect(),
        ..Default::default()
    };
    let mut unknown = Vec::new();
    for s in &req.state_filters {
        match state_by_name(s) {
            Some(state) => filter.states.push(state),
            None => unknown.push(s.clone()),
        }
    }
    let listed = if !unknown.is_empty() && filter.states.is_empty() {
        // Every state filter is unknown: nothing can match (Kafka answers an empty list).
        Vec::new()
    } else {
        broker.txn.read(|c, now| c.list(&filter, now))
    };
    respond(Response::ListTransactions(ListTransactionsResponse {
        unknown_state_filters: unknown,
        transaction_states: listed
            .into_iter()
            .map(|t| ListedState {
                transactional_id: t.transactional_id,
                producer_id: t.producer_id.0,
                transaction_state: t.state.name().to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_kafkas() {
        assert_eq!(state_by_name("Ongoing"), Some(TxnState::Ongoing));
        assert_eq!(
            state_by_name("CompleteAbort"),
            Some(TxnState::CompleteAbort)
        );
        assert_eq!(state_by_name("ongoing"), None);
    }

    #[test]
    fn producer_fenced_is_invalid_epoch_for_old_versions() {
        assert_eq!(
            fenced_for(ErrorCode::ProducerFenced, 1, 2),
            ErrorCode::InvalidProducerEpoch
        );
        assert_eq!(
            fenced_for(ErrorCode::ProducerFenced, 2, 2),
            ErrorCode::ProducerFenced
        );
        assert_eq!(
            fenced_for(ErrorCode::InvalidTxnState, 0, 2),
            ErrorCode::InvalidTxnState
        );
    }
}
