//! `__consumer_offsets` as a real internal topic (issue #13, point 4 / acceptance 2), through the
//! wire against the `potok` binary: it appears on the first FindCoordinator, is listed by
//! Metadata and DescribeTopicPartitions with `is_internal` and `offsets.topic.num.partitions`
//! partitions, can be read (ListOffsets, DescribeConfigs) but not written, deleted or grown,
//! and the groups stored in it survive a SIGKILL.

mod common;

use bytes::Bytes;
use potok_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use potok_protocol::messages::create_topics_request::CreatableTopic;
use potok_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use potok_protocol::messages::delete_topics_request::DeleteTopicState;
use potok_protocol::messages::describe_configs_request::DescribeConfigsResource;
use potok_protocol::messages::describe_topic_partitions_request::TopicRequest;
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::metadata_request::MetadataRequestTopic;
use potok_protocol::messages::metadata_response::MetadataResponseTopic;
use potok_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use potok_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use potok_protocol::messages::*;
use potok_protocol::{ApiKey, ErrorCode, Uuid};
use potok_records::RecordBatchBuilder;

use common::wire::Client;

const OFFSETS: &str = "__consumer_offsets";
const PARTITIONS: i32 = 5;
/// The broker's `node.id` (the default).
const NODE: i32 = 1;

fn broker() -> common::Broker {
    common::Broker::builder()
        .set("offsets.topic.num.partitions", &PARTITIONS.to_string())
        .start()
}

fn metadata(c: &mut Client, names: Option<&[&str]>) -> MetadataResponse {
    c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest {
            topics: names.map(|ns| {
                ns.iter()
                    .map(|n| MetadataRequestTopic {
                        name: Some((*n).into()),
                        ..Default::default()
                    })
                    .collect()
            }),
            allow_auto_topic_creation: false,
            ..Default::default()
        },
    )
}

fn listed(r: &MetadataResponse, name: &str) -> Option<MetadataResponseTopic> {
    r.topics
        .iter()
        .find(|t| t.name.as_deref() == Some(name))
        .cloned()
}

/// The offsets topic as Kafka lists it: internal, every partition led by this node in its
/// epoch, replicas and ISR this node.
fn assert_listed_as_internal(t: &MetadataResponseTopic) {
    assert_eq!(t.error_code, 0);
    assert!(t.is_internal, "{t:?}");
    assert_ne!(t.topic_id, Uuid::ZERO);
    let mut indexes: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    indexes.sort_unstable();
    assert_eq!(indexes, (0..PARTITIONS).collect::<Vec<_>>());
    for p in &t.partitions {
        assert_eq!(p.error_code, 0);
        assert_eq!(p.leader_id, NODE);
        assert!(p.leader_epoch >= 0, "{p:?}");
        assert_eq!(p.replica_nodes, vec![NODE]);
        assert_eq!(p.isr_nodes, vec![NODE]);
    }
}

fn find_coordinator(c: &mut Client, group: &str) {
    let r: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest {
            key_type: 0,
            coordinator_keys: vec![group.into()],
            ..Default::default()
        },
    );
    assert_eq!(r.coordinators.len(), 1);
    assert_eq!(r.coordinators[0].error_code, 0, "{r:?}");
    assert_eq!(r.coordinators[0].node_id, NODE);
}

fn commit(c: &mut Client, group: &str, topic: &str, offsets: &[i64]) {
    let r: OffsetCommitResponse = c.call(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest {
            group_id: group.into(),
            generation_id_or_member_epoch: -1,
            member_id: String::new(),
            topics: vec![OffsetCommitRequestTopic {
                name: topic.into(),
                partitions: offsets
                    .iter()
                    .enumerate()
                    .map(|(p, o)| OffsetCommitRequestPartition {
                        partition_index: p as i32,
                        committed_offset: *o,
                        committed_leader_epoch: -1,
                        committed_metadata: Some("m".into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    for p in &r.topics[0].partitions {
        assert_eq!(p.error_code, 0, "{r:?}");
    }
}

fn committed(c: &mut Client, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest {
            groups: vec![OffsetFetchRequestGroup {
                group_id: group.into(),
                topics: Some(vec![OffsetFetchRequestTopics {
                    name: topic.into(),
                    partition_indexes: (0..partitions).collect(),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(r.groups[0].error_code, 0, "{r:?}");
    r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

/// The log end offset of every `__consumer_offsets` partition (ListOffsets, latest).
fn end_offsets(c: &mut Client) -> Vec<i64> {
    let r: ListOffsetsResponse = c.call(
        ApiKey::ListOffsets,
        8,
        &ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: OFFSETS.into(),
                partitions: (0..PARTITIONS)
                    .map(|p| ListOffsetsPartition {
                        partition_index: p,
                        current_leader_epoch: -1,
                        timestamp: -1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "{p:?}");
            p.offset
        })
        .collect()
}

fn record() -> Bytes {
    RecordBatchBuilder::new()
        .key_value(0, Some(&b"k"[..]), Some(&b"forged"[..]))
        .build()
        .unwrap()
        .into_bytes()
}

#[test]
fn consumer_offsets_is_an_internal_topic_clients_cannot_change() {
    let mut b = broker();
    let mut c = Client::new(&b);
    c.create_topic("orders", 3, &[]);

    // Until a group needs it, the topic does not exist (Kafka creates it on the first
    // FindCoordinator), and asking for it without auto-creation does not create it.
    assert!(listed(&metadata(&mut c, None), OFFSETS).is_none());
    let r = metadata(&mut c, Some(&[OFFSETS]));
    assert_eq!(
        r.topics[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    find_coordinator(&mut c, "billing");
    let all = metadata(&mut c, None);
    let t = listed(&all, OFFSETS).expect("listed once it exists");
    assert_listed_as_internal(&t);
    let id = t.topic_id;
    assert!(!listed(&all, "orders").unwrap().is_internal);
    let by_name = listed(&metadata(&mut c, Some(&[OFFSETS])), OFFSETS).unwrap();
    assert_listed_as_internal(&by_name);
    assert_eq!(by_name.topic_id, id);

    // DescribeTopicPartitions and DescribeConfigs agree with Metadata.
    let r: DescribeTopicPartitionsResponse = c.call(
        ApiKey::DescribeTopicPartitions,
        0,
        &DescribeTopicPartitionsRequest {
            topics: vec![TopicRequest {
                name: OFFSETS.into(),
                ..Default::default()
            }],
            response_partition_limit: 2000,
            ..Default::default()
        },
    );
    assert_eq!(r.topics[0].error_code, 0);
    assert!(r.topics[0].is_internal);
    assert_eq!(r.topics[0].topic_id, id);
    assert_eq!(r.topics[0].partitions.len(), PARTITIONS as usize);
    let r: DescribeConfigsResponse = c.call(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: 2,
                resource_name: OFFSETS.into(),
                configuration_keys: Some(vec!["cleanup.policy".into()]),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(r.results[0].error_code, 0, "{r:?}");
    assert_eq!(r.results[0].configs[0].value.as_deref(), Some("compact"));

    // Committed offsets are records of the topic: its end offsets grow.
    let before: i64 = end_offsets(&mut c).iter().sum();
    commit(&mut c, "billing", "orders", &[7, 9, 11]);
    let ends = end_offsets(&mut c);
    assert!(ends.iter().sum::<i64>() > before, "{ends:?}");

    // Produce: INVALID_TOPIC_EXCEPTION for every partition, nothing appended.
    for p in 0..PARTITIONS {
        let r = c.produce(OFFSETS, p, record());
        let pr = &r.responses[0].partition_responses[0];
        assert_eq!(
            pr.error_code,
            ErrorCode::InvalidTopicException.code(),
            "{pr:?}"
        );
    }
    assert_eq!(end_offsets(&mut c), ends);
    assert_eq!(committed(&mut c, "billing", "orders", 3), vec![7, 9, 11]);

    // DeleteTopics by name and by id, CreatePartitions (also validate-only), DeleteRecords.
    let r: DeleteTopicsResponse = c.call(
        ApiKey::DeleteTopics,
        6,
        &DeleteTopicsRequest {
            topics: vec![
                DeleteTopicState {
                    name: Some(OFFSETS.into()),
                    topic_id: Uuid::ZERO,
                    ..Default::default()
                },
                DeleteTopicState {
                    name: None,
                    topic_id: id,
                    ..Default::default()
                },
            ],
            timeout_ms: 10_000,
            ..Default::default()
        },
    );
    assert_eq!(r.responses.len(), 2);
    for t in &r.responses {
        assert_eq!(
            t.error_code,
            ErrorCode::InvalidTopicException.code(),
            "{t:?}"
        );
    }
    for validate_only in [true, false] {
        let r: CreatePartitionsResponse = c.call(
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest {
                topics: vec![CreatePartitionsTopic {
                    name: OFFSETS.into(),
                    count: PARTITIONS + 1,
                    assignments: None,
                    ..Default::default()
                }],
                timeout_ms: 10_000,
                validate_only,
                ..Default::default()
            },
        );
        assert_eq!(
            r.results[0].error_code,
            ErrorCode::InvalidTopicException.code(),
            "{r:?}"
        );
    }
    let r: DeleteRecordsResponse = c.call(
        ApiKey::DeleteRecords,
        2,
        &DeleteRecordsRequest {
            topics: vec![DeleteRecordsTopic {
                name: OFFSETS.into(),
                partitions: vec![DeleteRecordsPartition {
                    partition_index: 0,
                    offset: -1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            timeout_ms: 10_000,
            ..Default::default()
        },
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    // CreateTopics of the name: it exists.
    let r: CreateTopicsResponse = c.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: OFFSETS.into(),
                num_partitions: 1,
                replication_factor: -1,
                ..Default::default()
            }],
            timeout_ms: 10_000,
            ..Default::default()
        },
    );
    assert_eq!(r.topics[0].error_code, ErrorCode::TopicAlreadyExists.code());
    // Nothing of the above changed the topic or the groups in it.
    assert_listed_as_internal(&listed(&metadata(&mut c, None), OFFSETS).unwrap());
    assert_eq!(end_offsets(&mut c), ends);

    // SIGKILL: the topic (same id, same partitions) and the committed offsets come back.
    b.sigkill();
    b.restart();
    let mut c = Client::new(&b);
    let t = listed(&metadata(&mut c, None), OFFSETS).expect("listed after restart");
    assert_listed_as_internal(&t);
    assert_eq!(t.topic_id, id);
    assert_eq!(committed(&mut c, "billing", "orders", 3), vec![7, 9, 11]);
}

/// Other internal names: a client may not create them, and a `__` prefix alone does not make
/// a topic internal (Kafka's `Topic.isInternal` is a fixed set of names).
#[test]
fn internal_names_are_reserved_but_a_prefix_is_not() {
    let b = broker();
    let mut c = Client::new(&b);
    let r: CreateTopicsResponse = c.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest {
            topics: ["__transaction_state", OFFSETS]
                .iter()
                .map(|n| CreatableTopic {
                    name: (*n).into(),
                    num_partitions: 1,
                    replication_factor: -1,
                    ..Default::default()
                })
                .collect(),
            timeout_ms: 10_000,
            ..Default::default()
        },
    );
    for t in &r.topics {
        assert_eq!(t.error_code, ErrorCode::InvalidRequest.code(), "{t:?}");
    }
    c.create_topic("__mine", 1, &[]);
    let t = listed(&metadata(&mut c, None), "__mine").unwrap();
    assert!(!t.is_internal);
    assert!(listed(&metadata(&mut c, None), OFFSETS).is_none());
}
