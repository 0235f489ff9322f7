//! Issue 14, acceptance 1: CreateTopics and CreatePartitions are validated completely before
//! any IO. Requests for too many partitions (Kafka's 10,000 per request, KAFKA-17870, and the
//! broker's `potok.max.partitions`) are refused with POLICY_VIOLATION, create no directory,
//! leave nothing in the metadata log (nothing comes back after a restart) and do not hold up
//! the next request. Raw protocol, real broker process.

mod common;

use potok_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use potok_protocol::messages::create_topics_request::CreatableTopic;
use potok_protocol::messages::metadata_request::MetadataRequestTopic;
use potok_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, MetadataResponse,
};
use potok_protocol::{ApiKey, ErrorCode};

use common::wire::Client;

/// What these tests add to the shared raw-protocol client (`common::wire`).
trait LimitsClient {
    fn create(&mut self, topics: &[(&str, i32)], validate_only: bool) -> CreateTopicsResponse;
    fn metadata_codes(&mut self, names: &[&str]) -> Vec<i16>;
}

impl LimitsClient for Client {
    fn create(&mut self, topics: &[(&str, i32)], validate_only: bool) -> CreateTopicsResponse {
        let req = CreateTopicsRequest {
            topics: topics
                .iter()
                .map(|(name, n)| CreatableTopic {
                    name: (*name).into(),
                    num_partitions: *n,
                    replication_factor: -1,
                    ..Default::default()
                })
                .collect(),
            timeout_ms: 60_000,
            validate_only,
            ..Default::default()
        };
        self.call(ApiKey::CreateTopics, 7, &req)
    }

    /// Metadata v12 for `names` without automatic creation: each topic's error code.
    fn metadata_codes(&mut self, names: &[&str]) -> Vec<i16> {
        let req = MetadataRequest {
            topics: Some(
                names
                    .iter()
                    .map(|n| MetadataRequestTopic {
                        name: Some((*n).into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            allow_auto_topic_creation: false,
            ..Default::default()
        };
        let r: MetadataResponse = self.call(ApiKey::Metadata, 12, &req);
        r.topics.iter().map(|t| t.error_code).collect()
    }
}

fn codes(r: &CreateTopicsResponse) -> Vec<i16> {
    r.topics.iter().map(|t| t.error_code).collect()
}

/// Directories under the data directory whose name starts with `prefix`.
fn dirs_with_prefix(b: &common::Broker, prefix: &str) -> usize {
    std::fs::read_dir(b.data_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .count()
}

#[test]
fn oversized_create_topics_requests_are_refused_before_any_io() {
    let mut b = common::Broker::start();
    let mut c = Client::with_timeout(&b, std::time::Duration::from_secs(300));
    let policy = ErrorCode::PolicyViolation.code();
    let r = c.create(&[("huge", 2_000_000)], false);
    assert_eq!(codes(&r), vec![policy]);
    assert_eq!(
        r.topics[0].error_message.as_deref(),
        Some("Excessively large number of partitions per request.")
    );
    assert_eq!(codes(&c.create(&[("over", 10_001)], false)), vec![policy]);
    // Two topics that are fine alone but not together: both are refused.
    assert_eq!(
        codes(&c.create(&[("half-a", 5_001), ("half-b", 5_000)], false)),
        vec![policy, policy]
    );
    // validate_only is held to the same limit.
    assert_eq!(codes(&c.create(&[("over-v", 10_001)], true)), vec![policy]);
    // The broker answers the next request at once (the read timeout bounds the wait), and
    // knows none of the refused topics.
    let refused = ["huge", "over", "half-a", "half-b", "over-v"];
    let unknown = ErrorCode::UnknownTopicOrPartition.code();
    assert_eq!(c.metadata_codes(&refused), vec![unknown; 5]);
    for name in refused {
        assert_eq!(dirs_with_prefix(&b, &format!("{name}-")), 0, "{name}");
    }

    // CreatePartitions is held to the same per-request limit.
    assert_eq!(codes(&c.create(&[("grow", 1)], false)), vec![0]);
    let grow = |c: &mut Client, count| -> i16 {
        let r: CreatePartitionsResponse = c.call(
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest {
                topics: vec![CreatePartitionsTopic {
                    name: "grow".into(),
                    count,
                    assignments: None,
                    ..Default::default()
                }],
                timeout_ms: 60_000,
                validate_only: false,
                ..Default::default()
            },
        );
        r.results[0].error_code
    };
    assert_eq!(grow(&mut c, 10_002), policy);
    assert_eq!(dirs_with_prefix(&b, "grow-"), 1);

    // A restart replays nothing of the refused requests.
    drop(c);
    b.sigterm();
    b.restart();
    let mut c = Client::with_timeout(&b, std::time::Duration::from_secs(300));
    assert_eq!(c.metadata_codes(&refused), vec![unknown; 5]);
    assert_eq!(c.metadata_codes(&["grow"]), vec![0]);
    for name in refused {
        assert_eq!(dirs_with_prefix(&b, &format!("{name}-")), 0, "{name}");
    }

    // Exactly 10,000 partitions in one request pass every check. They are validated only:
    // each partition holds three open files, and the test machine's hard RLIMIT_NOFILE
    // (20,000) cannot hold 30,000. A real creation of thousands of partitions in one request
    // shows the accepted path.
    for topics in [
        &[("ten-k", 10_000)][..],
        &[("ten-k-a", 6_000), ("ten-k-b", 4_000)],
    ] {
        let r = c.create(topics, true);
        assert_eq!(
            codes(&r),
            vec![0; topics.len()],
            "{:?}",
            r.topics[0].error_message
        );
        assert_eq!(r.topics[0].num_partitions, topics[0].1);
    }
    assert_eq!(dirs_with_prefix(&b, "ten-k"), 0);
    let r = c.create(&[("three-k", 3_000)], false);
    assert_eq!(codes(&r), vec![0], "{:?}", r.topics[0].error_message);
    assert_eq!(dirs_with_prefix(&b, "three-k-"), 3_000);
}

#[test]
fn the_broker_partition_limit_covers_every_way_to_add_partitions() {
    let b = common::Broker::builder()
        .set("potok.max.partitions", "10")
        .start();
    let mut c = Client::with_timeout(&b, std::time::Duration::from_secs(300));
    let policy = ErrorCode::PolicyViolation.code();
    assert_eq!(codes(&c.create(&[("a", 8)], false)), vec![0]);
    // 8 + 3 > 10: refused, nothing written.
    let r = c.create(&[("b", 3)], false);
    assert_eq!(codes(&r), vec![policy]);
    assert!(
        r.topics[0]
            .error_message
            .as_deref()
            .unwrap_or_default()
            .contains("potok.max.partitions"),
        "{:?}",
        r.topics[0].error_message
    );
    assert_eq!(dirs_with_prefix(&b, "b-"), 0);
    // CreatePartitions 8 -> 11 is refused; 8 -> 9 is fine.
    let grow = |c: &mut Client, count| -> i16 {
        let r: CreatePartitionsResponse = c.call(
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest {
                topics: vec![CreatePartitionsTopic {
                    name: "a".into(),
                    count,
                    assignments: None,
                    ..Default::default()
                }],
                timeout_ms: 10_000,
                validate_only: false,
                ..Default::default()
            },
        );
        r.results[0].error_code
    };
    assert_eq!(grow(&mut c, 11), policy);
    assert_eq!(grow(&mut c, 9), 0);
    // Automatic creation (num.partitions = 1) fills the last slot, then is refused.
    let auto = |c: &mut Client, name: &str| -> i16 {
        let r: MetadataResponse = c.call(
            ApiKey::Metadata,
            12,
            &MetadataRequest {
                topics: Some(vec![MetadataRequestTopic {
                    name: Some(name.into()),
                    ..Default::default()
                }]),
                allow_auto_topic_creation: true,
                ..Default::default()
            },
        );
        r.topics[0].error_code
    };
    assert_eq!(auto(&mut c, "auto-1"), 0);
    assert_eq!(auto(&mut c, "auto-2"), policy);
    assert_eq!(dirs_with_prefix(&b, "auto-2-"), 0);
}
