//! Authorized-operations bitfields through the wire (issue 15, point 5; librdkafka test 0081):
//! Metadata (`include_topic_authorized_operations`, and `include_cluster_authorized_operations`
//! in v8-10), DescribeCluster and DescribeTopicPartitions. Without an authorizer Kafka answers
//! every operation that applies to the resource (`AclEntry.supportedOperations`, as bits of
//! `AclOperation` codes); a field not requested keeps `-2147483648`.

mod common;

use common::wire::Client;
use potok_protocol::messages::describe_topic_partitions_request::TopicRequest;
use potok_protocol::messages::metadata_request::MetadataRequestTopic;
use potok_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, MetadataRequest, MetadataResponse,
};
use potok_protocol::{ApiKey, ErrorCode, Uuid};

/// READ(3), WRITE(4), CREATE(5), DELETE(6), ALTER(7), DESCRIBE(8), DESCRIBE_CONFIGS(10),
/// ALTER_CONFIGS(11).
const TOPIC_OPS: i32 = 3576;
/// CREATE(5), ALTER(7), DESCRIBE(8), CLUSTER_ACTION(9), DESCRIBE_CONFIGS(10),
/// ALTER_CONFIGS(11), IDEMPOTENT_WRITE(12).
const CLUSTER_OPS: i32 = 8096;
const OMITTED: i32 = i32::MIN;

fn metadata(
    c: &mut Client,
    v: i16,
    topics: Vec<MetadataRequestTopic>,
    cluster: bool,
    topic: bool,
) -> MetadataResponse {
    c.call(
        ApiKey::Metadata,
        v,
        &MetadataRequest {
            topics: Some(topics),
            allow_auto_topic_creation: false,
            include_cluster_authorized_operations: cluster,
            include_topic_authorized_operations: topic,
            ..Default::default()
        },
    )
}

fn by_name(name: &str) -> MetadataRequestTopic {
    MetadataRequestTopic {
        name: Some(name.into()),
        ..Default::default()
    }
}

#[test]
fn metadata_authorized_operations() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("ops", 2, &[]);

    // v8-v10 carry the cluster's operations too.
    for v in [8, 10] {
        let r = metadata(
            &mut c,
            v,
            vec![by_name("ops"), by_name("missing")],
            true,
            true,
        );
        assert_eq!(r.cluster_authorized_operations, CLUSTER_OPS, "v{v}");
        assert_eq!(r.topics[0].topic_authorized_operations, TOPIC_OPS, "v{v}");
        // Kafka fills in an unknown topic's entry as well (no authorizer: all supported ops).
        assert_eq!(
            r.topics[1].error_code,
            ErrorCode::UnknownTopicOrPartition.code()
        );
        assert_eq!(r.topics[1].topic_authorized_operations, TOPIC_OPS, "v{v}");
        let r = metadata(&mut c, v, vec![by_name("ops")], false, false);
        assert_eq!(
            r.cluster_authorized_operations, OMITTED,
            "v{v} not requested"
        );
        assert_eq!(
            r.topics[0].topic_authorized_operations, OMITTED,
            "v{v} not requested"
        );
    }
    // From v11 the cluster's are DescribeCluster's; the topic's stay.
    let r = metadata(&mut c, 12, vec![by_name("ops")], false, true);
    assert_eq!(r.topics[0].topic_authorized_operations, TOPIC_OPS);
    assert_eq!(r.cluster_authorized_operations, OMITTED);
    // An unknown topic id keeps the omitted value, as in Kafka.
    let r = metadata(
        &mut c,
        12,
        vec![MetadataRequestTopic {
            topic_id: Uuid([7; 16]),
            name: None,
            ..Default::default()
        }],
        false,
        true,
    );
    assert_eq!(r.topics[0].error_code, ErrorCode::UnknownTopicId.code());
    assert_eq!(r.topics[0].topic_authorized_operations, OMITTED);
}

#[test]
fn describe_cluster_and_topic_partitions_authorized_operations() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("ops", 1, &[]);
    for (include, want) in [(true, CLUSTER_OPS), (false, OMITTED)] {
        let r: DescribeClusterResponse = c.call(
            ApiKey::DescribeCluster,
            1,
            &DescribeClusterRequest {
                include_cluster_authorized_operations: include,
                endpoint_type: 1,
                ..Default::default()
            },
        );
        assert_eq!(r.error_code, 0);
        assert_eq!(
            r.cluster_authorized_operations, want,
            "requested: {include}"
        );
    }
    // DescribeTopicPartitions has no "include" flag: Kafka always answers them.
    let r: DescribeTopicPartitionsResponse = c.call(
        ApiKey::DescribeTopicPartitions,
        0,
        &DescribeTopicPartitionsRequest {
            topics: ["ops", "missing"]
                .iter()
                .map(|n| TopicRequest {
                    name: (*n).into(),
                    ..Default::default()
                })
                .collect(),
            response_partition_limit: 100,
            ..Default::default()
        },
    );
    let ops: Vec<(Option<String>, i16, i32)> = r
        .topics
        .iter()
        .map(|t| (t.name.clone(), t.error_code, t.topic_authorized_operations))
        .collect();
    assert!(ops.contains(&(Some("ops".into()), 0, TOPIC_OPS)), "{ops:?}");
    assert!(
        ops.contains(&(
            Some("missing".into()),
            ErrorCode::UnknownTopicOrPartition.code(),
            TOPIC_OPS
        )),
        "{ops:?}"
    );
}
