//! The transaction protocol on the wire (issue 21): InitProducerId with a transactional id,
//! AddPartitionsToTxn, EndTxn, DescribeTransactions and ListTransactions against the real
//! broker, and KIP-890 part 1 verification of transactional produce: a batch is appended only
//! for a partition added to the producer's ongoing transaction, so a late write after the
//! commit (Jepsen's "delayed write joins a later transaction") is refused instead of opening a
//! transaction nothing ends.

mod common;

use bytes::Bytes;
use common::wire::Client;
use potok_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse, ListTransactionsRequest,
    ListTransactionsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
};
use potok_protocol::{ApiKey, ErrorCode};
use potok_records::{ProducerEpoch, ProducerId, RecordBatchBuilder};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn init(c: &mut Client, id: &str) -> (i64, i16) {
    let r: InitProducerIdResponse = c.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest {
            transactional_id: Some(id.into()),
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
    );
    assert_eq!(r.error_code, 0, "{r:?}");
    (r.producer_id, r.producer_epoch)
}

fn add(c: &mut Client, id: &str, (pid, epoch): (i64, i16), topic: &str) -> i16 {
    let r: AddPartitionsToTxnResponse = c.call(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest {
            v3_and_below_transactional_id: id.into(),
            v3_and_below_producer_id: pid,
            v3_and_below_producer_epoch: epoch,
            v3_and_below_topics: vec![AddPartitionsToTxnTopic {
                name: topic.into(),
                partitions: vec![0],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

fn produce(c: &mut Client, id: &str, (pid, epoch): (i64, i16), seq: i32, topic: &str) -> i16 {
    let batch: Bytes = RecordBatchBuilder::new()
        .producer(ProducerId(pid), ProducerEpoch(epoch), seq)
        .transactional(true)
        .key_value(now_ms(), Some(b"k"), Some(b"v"))
        .build()
        .unwrap()
        .into_bytes();
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        &ProduceRequest {
            transactional_id: Some(id.into()),
            acks: -1,
            timeout_ms: 10_000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(batch),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.responses[0].partition_responses[0].error_code
}

fn end(c: &mut Client, id: &str, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    let r: EndTxnResponse = c.call(
        ApiKey::EndTxn,
        3,
        &EndTxnRequest {
            transactional_id: id.into(),
            producer_id: pid,
            producer_epoch: epoch,
            committed: commit,
            ..Default::default()
        },
    );
    r.error_code
}

/// `(high watermark, last stable offset)` of partition 0 from ListOffsets latest.
fn offsets(c: &mut Client, topic: &str) -> (i64, i64) {
    let mut at = |isolation: i8| {
        let r: ListOffsetsResponse = c.call(
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest {
                replica_id: -1,
                isolation_level: isolation,
                topics: vec![ListOffsetsTopic {
                    name: topic.into(),
                    partitions: vec![ListOffsetsPartition {
                        partition_index: 0,
                        timestamp: -1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        r.topics[0].partitions[0].offset
    };
    (at(0), at(1))
}

fn described_state(c: &mut Client, id: &str) -> (i16, String, Vec<String>) {
    let r: DescribeTransactionsResponse = c.call(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest {
            transactional_ids: vec![id.into()],
            ..Default::default()
        },
    );
    let s = &r.transaction_states[0];
    (
        s.error_code,
        s.transaction_state.clone(),
        s.topics.iter().map(|t| t.topic.clone()).collect(),
    )
}

#[test]
fn transactional_produce_is_verified_against_the_ongoing_transaction() {
    let b = common::Broker::builder().admin().start();
    let mut c = Client::new(&b);
    c.create_topic("t", 1, &[]);
    let id = "wire-tx";
    let p = init(&mut c, id);
    assert_eq!(p.1, 0);
    // Not added yet: refused, nothing appended, the last stable offset not held back.
    assert_eq!(
        produce(&mut c, id, p, 0, "t"),
        ErrorCode::InvalidTxnState as i16
    );
    assert_eq!(offsets(&mut c, "t"), (0, 0));
    assert_eq!(add(&mut c, id, p, "t"), 0);
    assert_eq!(
        described_state(&mut c, id),
        (0, "Ongoing".into(), vec!["t".into()])
    );
    assert_eq!(produce(&mut c, id, p, 0, "t"), 0);
    assert_eq!(
        offsets(&mut c, "t"),
        (1, 0),
        "the open transaction holds the LSO"
    );
    // Another producer id under the same transactional id is not the transaction's.
    assert_eq!(
        produce(&mut c, id, (p.0 + 1000, 0), 0, "t"),
        ErrorCode::InvalidTxnState as i16
    );
    assert_eq!(end(&mut c, id, p, true), 0);
    assert_eq!(
        offsets(&mut c, "t"),
        (2, 2),
        "record + COMMIT marker, all stable"
    );
    assert_eq!(described_state(&mut c, id).1, "CompleteCommit");
    // A delayed write of the finished transaction (same id and epoch) cannot join anything.
    assert_eq!(
        produce(&mut c, id, p, 1, "t"),
        ErrorCode::InvalidTxnState as i16
    );
    assert_eq!(offsets(&mut c, "t"), (2, 2));
    // A delayed EndTxn of the committed transaction is its retry (TV1): same answer, no effect.
    assert_eq!(end(&mut c, id, p, true), 0);
    assert_eq!(end(&mut c, id, p, false), ErrorCode::InvalidTxnState as i16);
    // A new producer incarnation bumps the epoch; the old epoch is fenced everywhere.
    let p2 = init(&mut c, id);
    assert_eq!((p2.0, p2.1), (p.0, p.1 + 1));
    assert_eq!(add(&mut c, id, p, "t"), ErrorCode::ProducerFenced as i16);
    assert_eq!(add(&mut c, id, p2, "t"), 0);
    assert_eq!(
        produce(&mut c, id, p, 1, "t"),
        ErrorCode::InvalidProducerEpoch as i16
    );
    assert_eq!(produce(&mut c, id, p2, 0, "t"), 0);
    assert_eq!(end(&mut c, id, p2, false), 0);
    assert_eq!(
        offsets(&mut c, "t"),
        (4, 4),
        "record + ABORT marker, all stable"
    );
    let listed: ListTransactionsResponse = c.call(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest {
            state_filters: vec!["CompleteAbort".into(), "NoSuchState".into()],
            duration_filter: -1,
            ..Default::default()
        },
    );
    assert_eq!(
        listed.unknown_state_filters,
        vec!["NoSuchState".to_string()]
    );
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(listed.transaction_states[0].transactional_id, id);
    let (code, _, _) = described_state(&mut c, "never-seen");
    assert_eq!(code, ErrorCode::TransactionalIdNotFound as i16);
    // __transaction_state exists with Kafka's default partition count and is internal.
    // One commit and one abort completed; nothing open.
    let metrics = b.admin_get("/metrics");
    for line in [
        "potok_txn_open 0",
        "potok_txn_committed_total 1",
        "potok_txn_aborted_total 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    let md: MetadataResponse = c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest {
            topics: None,
            ..Default::default()
        },
    );
    assert!(md
        .topics
        .iter()
        .any(|t| t.name.as_deref() == Some("__transaction_state")
            && t.partitions.len() == 50
            && t.is_internal));
}

#[test]
fn a_transaction_timeout_above_the_maximum_is_refused() {
    let b = common::Broker::builder()
        .set("transaction.max.timeout.ms", "10000")
        .start();
    let mut c = Client::new(&b);
    let r: InitProducerIdResponse = c.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest {
            transactional_id: Some("too-long".into()),
            transaction_timeout_ms: 10_001,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
    );
    assert_eq!(r.error_code, ErrorCode::InvalidTransactionTimeout as i16);
}
