//! The transaction protocol on the wire (issue 21): InitProducerId with a transactional id,
//! AddPartitionsToTxn, EndTxn, DescribeTransactions and ListTransactions against the real
//! broker, and KIP-890 part 1 verification of transactional produce: a batch is appended only
//! for a partition added to the producer's ongoing transaction, so a late write after the
//! commit (Jepsen's "delayed write joins a later transaction") is refused instead of opening a
//! transaction nothing ends.
//!
//! `transaction.version` 2 (KIP-890 part 2): ApiVersions finalizes it, Produce v12 and
//! TxnOffsetCommit v5 add their partitions to the transaction, and EndTxn v5 bumps the epoch
//! per transaction, so a delayed EndTxn of an earlier transaction (Jepsen's "delayed commit
//! or abort lands on a later transaction", which TV1 allows, shown here too) is fenced.

mod common;

use bytes::Bytes;
use common::wire::Client;
use potok_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use potok_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, ListTransactionsRequest, ListTransactionsResponse,
    MetadataRequest, MetadataResponse, OffsetFetchRequest, OffsetFetchResponse, ProduceRequest,
    ProduceResponse, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use potok_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
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

fn produce(c: &mut Client, id: &str, p: (i64, i16), seq: i32, topic: &str) -> i16 {
    produce_at(c, 9, id, p, seq, topic)
}

/// A transactional batch of one record to partition 0 with Produce `version` (v12+ adds the
/// partition to the transaction, KIP-890 part 2); its error code.
fn produce_at(
    c: &mut Client,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    seq: i32,
    topic: &str,
) -> i16 {
    let batch: Bytes = RecordBatchBuilder::new()
        .producer(ProducerId(pid), ProducerEpoch(epoch), seq)
        .transactional(true)
        .key_value(now_ms(), Some(b"k"), Some(b"v"))
        .build()
        .unwrap()
        .into_bytes();
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        version,
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

fn end(c: &mut Client, id: &str, p: (i64, i16), commit: bool) -> i16 {
    end_at(c, 3, id, p, commit).error_code
}

fn end_at(
    c: &mut Client,
    version: i16,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> EndTxnResponse {
    c.call(
        ApiKey::EndTxn,
        version,
        &common::txn_cluster::end_txn_request(id, producer, commit),
    )
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

/// ApiVersions v3: the finalized `transaction.version` level (None when not listed), its
/// supported range, and the highest Produce, EndTxn and TxnOffsetCommit versions.
fn features(c: &mut Client) -> (Option<i16>, Option<(i16, i16)>, [i16; 3]) {
    let r: ApiVersionsResponse = c.call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest {
            client_software_name: "txn-protocol-test".into(),
            client_software_version: "1".into(),
            ..Default::default()
        },
    );
    assert_eq!(r.error_code, 0);
    assert!(r.finalized_features_epoch >= 0, "{r:?}");
    let finalized = r
        .finalized_features
        .iter()
        .find(|f| f.name == "transaction.version")
        .map(|f| {
            assert_eq!(f.min_version_level, f.max_version_level);
            f.max_version_level
        });
    let supported = r
        .supported_features
        .iter()
        .find(|f| f.name == "transaction.version")
        .map(|f| (f.min_version, f.max_version));
    let max = |k: ApiKey| {
        r.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map_or(-1, |a| a.max_version)
    };
    (
        finalized,
        supported,
        [
            max(ApiKey::Produce),
            max(ApiKey::EndTxn),
            max(ApiKey::TxnOffsetCommit),
        ],
    )
}

#[test]
fn transaction_version_2_bumps_the_epoch_per_transaction_and_fences_a_delayed_end_txn() {
    let b = common::Broker::builder().start();
    let mut c = Client::new(&b);
    assert_eq!(features(&mut c), (Some(2), Some((0, 2)), [12, 5, 5]));
    c.create_topic("t", 1, &[]);
    let id = "tv2";
    let (pid, e0) = init(&mut c, id);
    // Produce v12 adds the partition itself: no AddPartitionsToTxn.
    assert_eq!(produce_at(&mut c, 12, id, (pid, e0), 0, "t"), 0);
    assert_eq!(
        described_state(&mut c, id),
        (0, "Ongoing".into(), vec!["t".into()])
    );
    assert_eq!(offsets(&mut c, "t"), (1, 0));
    let r = end_at(&mut c, 5, id, (pid, e0), true);
    assert_eq!(
        (r.error_code, r.producer_id, r.producer_epoch),
        (0, pid, e0 + 1),
        "EndTxn v5 answers the bumped epoch"
    );
    assert_eq!(offsets(&mut c, "t"), (2, 2));
    // The client's retry of that EndTxn (it quotes the old epoch) gets the same answer.
    let r = end_at(&mut c, 5, id, (pid, e0), true);
    assert_eq!((r.error_code, r.producer_epoch), (0, e0 + 1));

    // The next transaction, at the bumped epoch, starts its sequence anew.
    let e1 = e0 + 1;
    assert_eq!(produce_at(&mut c, 12, id, (pid, e1), 0, "t"), 0);
    assert_eq!(offsets(&mut c, "t"), (3, 2));
    // Jepsen's case: the first transaction's commit or abort, delayed in the network, arrives
    // now. Its epoch is the old one, so it is fenced and the open transaction is untouched.
    for commit in [false, true] {
        assert_eq!(
            end_at(&mut c, 5, id, (pid, e0), commit).error_code,
            ErrorCode::ProducerFenced as i16
        );
    }
    assert_eq!(described_state(&mut c, id).1, "Ongoing");
    assert_eq!(offsets(&mut c, "t"), (3, 2), "still open: the LSO holds");
    let r = end_at(&mut c, 5, id, (pid, e1), false);
    assert_eq!((r.error_code, r.producer_epoch), (0, e1 + 1));
    assert_eq!(offsets(&mut c, "t"), (4, 4));
    // A late write of the aborted transaction: its epoch is fenced on the partition.
    assert_eq!(
        produce_at(&mut c, 12, id, (pid, e1), 1, "t"),
        ErrorCode::InvalidProducerEpoch as i16
    );
    assert_eq!(offsets(&mut c, "t"), (4, 4));
    // TV2 lets a producer abort with nothing open; the epoch still moves on.
    let r = end_at(&mut c, 5, id, (pid, e1 + 1), false);
    assert_eq!((r.error_code, r.producer_epoch), (0, e1 + 2));

    // The same schedule under TV1 (EndTxn v3, AddPartitionsToTxn): every transaction of the
    // session has one epoch, so the delayed commit of the first lands on the second and
    // commits it. This is the hazard KIP-890 part 2 closes.
    let old = "tv1";
    let p = init(&mut c, old);
    assert_eq!(add(&mut c, old, p, "t"), 0);
    assert_eq!(produce(&mut c, old, p, 0, "t"), 0);
    assert_eq!(end(&mut c, old, p, true), 0);
    assert_eq!(add(&mut c, old, p, "t"), 0);
    assert_eq!(produce(&mut c, old, p, 1, "t"), 0);
    assert_eq!(described_state(&mut c, old).1, "Ongoing");
    assert_eq!(end(&mut c, old, p, true), 0, "the delayed commit is taken");
    assert_eq!(
        described_state(&mut c, old).1,
        "CompleteCommit",
        "and it committed the second transaction"
    );
}

#[test]
fn txn_offset_commit_v5_adds_the_offsets_partition_to_the_transaction() {
    let b = common::Broker::builder().start();
    let mut c = Client::new(&b);
    c.create_topic("in", 1, &[]);
    let id = "tv2-offsets";
    let p = init(&mut c, id);
    let commit = |c: &mut Client, version: i16, offset: i64| -> i16 {
        let r: TxnOffsetCommitResponse = c.call(
            ApiKey::TxnOffsetCommit,
            version,
            &TxnOffsetCommitRequest {
                transactional_id: id.into(),
                group_id: "g".into(),
                producer_id: p.0,
                producer_epoch: p.1,
                generation_id: -1,
                topics: vec![TxnOffsetCommitRequestTopic {
                    name: "in".into(),
                    partitions: vec![TxnOffsetCommitRequestPartition {
                        partition_index: 0,
                        committed_offset: offset,
                        committed_leader_epoch: -1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        r.topics[0].partitions[0].error_code
    };
    // v4 needs AddOffsetsToTxn first (KIP-890 part 1 refuses it); v5 adds the partition.
    assert_ne!(commit(&mut c, 4, 5), 0);
    assert_eq!(commit(&mut c, 5, 5), 0);
    assert_eq!(
        described_state(&mut c, id),
        (0, "Ongoing".into(), vec!["__consumer_offsets".into()])
    );
    let fetch = |c: &mut Client| -> i64 {
        let r: OffsetFetchResponse = c.call(
            ApiKey::OffsetFetch,
            7,
            &OffsetFetchRequest {
                group_id: "g".into(),
                topics: Some(vec![OffsetFetchRequestTopic {
                    name: "in".into(),
                    partition_indexes: vec![0],
                    ..Default::default()
                }]),
                require_stable: true,
                ..Default::default()
            },
        );
        let part = &r.topics[0].partitions[0];
        assert_eq!((r.error_code, part.error_code), (0, 0), "{r:?}");
        part.committed_offset
    };
    let r = end_at(&mut c, 5, id, p, true);
    assert_eq!((r.error_code, r.producer_epoch), (0, p.1 + 1));
    assert_eq!(
        fetch(&mut c),
        5,
        "the offsets committed with the transaction"
    );
}

#[test]
fn a_broker_finalizes_the_transaction_version_it_is_configured_with() {
    for (tv, finalized) in [("1", Some(1)), ("0", None)] {
        let b = common::Broker::builder()
            .set("transaction.version", tv)
            .start();
        let mut c = Client::new(&b);
        // Requests are still served by their version (as in Kafka); the finalized level is
        // what tells a client which protocol to run.
        assert_eq!(
            features(&mut c),
            (finalized, Some((0, 2)), [12, 5, 5]),
            "transaction.version={tv}"
        );
    }
}
