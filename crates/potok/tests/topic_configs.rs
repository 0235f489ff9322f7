//! Issue 15, point 4: every topic config of Kafka 4.x is accepted by CreateTopics and
//! IncrementalAlterConfigs and described back with its source (also after a restart), and a
//! topic's `compression.type` is enforced on the produce path. Raw protocol, real broker.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use potok_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use potok_protocol::messages::describe_configs_request::DescribeConfigsResource;
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    FetchRequest, FetchResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ProduceRequest, ProduceResponse,
};
use potok_protocol::ApiKey;
use potok_records::{
    split_batches, Compression, Header, NewRecord, Record, RecordBatch, RecordBatchBuilder,
};

/// Every topic config of Kafka 4.x with a valid value that is not its default (as stored).
const ALL: &[(&str, &str)] = &[
    ("cleanup.policy", "compact,delete"),
    ("compression.gzip.level", "5"),
    ("compression.lz4.level", "10"),
    ("compression.type", "gzip"),
    ("compression.zstd.level", "7"),
    ("delete.retention.ms", "1000"),
    ("file.delete.delay.ms", "1000"),
    ("flush.messages", "1000"),
    ("flush.ms", "1000"),
    ("follower.replication.throttled.replicas", "0:1"),
    ("index.interval.bytes", "1024"),
    ("leader.replication.throttled.replicas", "*"),
    ("local.retention.bytes", "1000"),
    ("local.retention.ms", "1000"),
    ("max.compaction.lag.ms", "100000"),
    ("max.message.bytes", "2000000"),
    ("message.timestamp.after.max.ms", "1000"),
    ("message.timestamp.before.max.ms", "1000"),
    ("message.timestamp.type", "LogAppendTime"),
    ("min.cleanable.dirty.ratio", "0.7"),
    ("min.compaction.lag.ms", "1000"),
    ("min.insync.replicas", "2"),
    ("preallocate", "true"),
    ("remote.copy.lag.bytes", "100"),
    ("remote.copy.lag.ms", "100"),
    ("remote.log.copy.disable", "true"),
    ("remote.log.delete.on.disable", "true"),
    ("remote.storage.enable", "false"),
    ("retention.bytes", "1000000"),
    ("retention.ms", "100000"),
    ("segment.bytes", "1048576"),
    ("segment.index.bytes", "4096"),
    ("segment.jitter.ms", "100"),
    ("segment.ms", "100000"),
    ("unclean.leader.election.enable", "true"),
];

/// Removed in Kafka 4.0, accepted and ignored as Kafka 3.x did.
const LEGACY: (&str, &str) = ("message.format.version", "2.8-IV1");

const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const RESOURCE_TOPIC: i8 = 2;

use common::wire::Client;

/// What these tests add to the shared raw-protocol client (`common::wire`).
trait ConfigsClient {
    fn create(&mut self, name: &str, configs: &[(&str, &str)]) -> CreateTopicsResponse;
    fn describe(&mut self, topic: &str) -> BTreeMap<String, (Option<String>, i8)>;
    fn produce_one(&mut self, topic: &str, batch: Bytes) -> (i16, Option<String>);
    fn fetch_batches(&mut self, topic: &str) -> Vec<RecordBatch>;
}

impl ConfigsClient for Client {
    fn create(&mut self, name: &str, configs: &[(&str, &str)]) -> CreateTopicsResponse {
        let req = CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: name.into(),
                num_partitions: 1,
                replication_factor: -1,
                configs: configs
                    .iter()
                    .map(|(k, v)| CreatableTopicConfig {
                        name: (*k).into(),
                        value: Some((*v).into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            timeout_ms: 10_000,
            ..Default::default()
        };
        self.call(ApiKey::CreateTopics, 7, &req)
    }

    /// DescribeConfigs v4 of a topic: name -> (value, source).
    fn describe(&mut self, topic: &str) -> BTreeMap<String, (Option<String>, i8)> {
        let r: DescribeConfigsResponse = self.call(
            ApiKey::DescribeConfigs,
            4,
            &DescribeConfigsRequest {
                resources: vec![DescribeConfigsResource {
                    resource_type: RESOURCE_TOPIC,
                    resource_name: topic.into(),
                    configuration_keys: None,
                    ..Default::default()
                }],
                include_synonyms: true,
                include_documentation: true,
                ..Default::default()
            },
        );
        assert_eq!(
            r.results[0].error_code, 0,
            "{:?}",
            r.results[0].error_message
        );
        r.results[0]
            .configs
            .iter()
            .map(|c| (c.name.clone(), (c.value.clone(), c.config_source)))
            .collect()
    }

    fn produce_one(&mut self, topic: &str, batch: Bytes) -> (i16, Option<String>) {
        let r: ProduceResponse = self.call(
            ApiKey::Produce,
            9,
            &ProduceRequest {
                acks: 1,
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
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.error_message.clone())
    }

    /// The stored batches of partition 0, exactly as Fetch returns them (fetching from the
    /// next offset until the high watermark).
    fn fetch_batches(&mut self, topic: &str) -> Vec<RecordBatch> {
        let mut out: Vec<RecordBatch> = Vec::new();
        loop {
            let offset = out.last().map_or(0, |b| b.header().next_offset().0);
            let r: FetchResponse = self.call(
                ApiKey::Fetch,
                12,
                &FetchRequest {
                    max_wait_ms: 0,
                    min_bytes: 0,
                    max_bytes: 1 << 20,
                    topics: vec![FetchTopic {
                        topic: topic.into(),
                        partitions: vec![FetchPartition {
                            partition: 0,
                            fetch_offset: offset,
                            partition_max_bytes: 1 << 20,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            );
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0);
            let before = out.len();
            out.extend(split_batches(p.records.clone().unwrap_or_default()).map(|b| b.unwrap()));
            if out.len() == before || offset >= p.high_watermark {
                return out;
            }
        }
    }
}

fn assert_all_described(described: &BTreeMap<String, (Option<String>, i8)>) {
    let names: Vec<&str> = described.keys().map(String::as_str).collect();
    let expected: Vec<&str> = ALL.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names, expected,
        "the described configs are exactly Kafka 4.x's"
    );
    for (name, value) in ALL {
        assert_eq!(
            described[*name],
            (Some(value.to_string()), DYNAMIC_TOPIC_CONFIG),
            "{name}"
        );
    }
}

#[test]
fn every_kafka_4_topic_config_is_accepted_and_described_with_its_source() {
    let mut b = common::Broker::start();
    let mut c = Client::with_timeout(&b, std::time::Duration::from_secs(30));
    let mut with_legacy = ALL.to_vec();
    with_legacy.push(LEGACY);
    let r = c.create("all", &with_legacy);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_all_described(&c.describe("all"));

    // The same through IncrementalAlterConfigs (SET) on a topic created without overrides.
    assert_eq!(c.create("inc", &[]).topics[0].error_code, 0);
    let before = c.describe("inc");
    assert!(before
        .values()
        .all(|(_, source)| *source != DYNAMIC_TOPIC_CONFIG));
    let r: IncrementalAlterConfigsResponse = c.call(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: "inc".into(),
                configs: with_legacy
                    .iter()
                    .map(|(k, v)| AlterableConfig {
                        name: (*k).into(),
                        config_operation: 0,
                        value: Some((*v).into()),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            validate_only: false,
            ..Default::default()
        },
    );
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    assert_all_described(&c.describe("inc"));

    // Refusals Kafka 4.x makes: a config it removed, tiered storage on a broker without it.
    for (name, value) in [
        ("message.downconversion.enable", "true"),
        ("remote.storage.enable", "true"),
        ("compression.type", "brotli"),
    ] {
        let r = c.create("refused", &[(name, value)]);
        assert_eq!(
            r.topics[0].error_code,
            potok_protocol::ErrorCode::InvalidConfig.code(),
            "{name}={value}"
        );
    }

    // The overrides survive a restart (the metadata log replays them through the same table).
    drop(c);
    b.sigterm();
    b.restart();
    let mut c = Client::with_timeout(&b, std::time::Duration::from_secs(30));
    assert_all_described(&c.describe("all"));
    assert_all_described(&c.describe("inc"));
}

fn records() -> Vec<NewRecord> {
    (0..5)
        .map(|i| NewRecord {
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("value {i} ").repeat(50))),
            headers: vec![Header {
                key: Bytes::from_static(b"trace"),
                value: Some(Bytes::from(format!("h{i}"))),
            }],
        })
        .collect()
}

fn batch(codec: Compression) -> Bytes {
    let mut b = RecordBatchBuilder::new().compression(codec);
    for r in records() {
        b = b.record(r);
    }
    b.build().unwrap().into_bytes()
}

/// Checks that `stored` holds the records of [`records`] at offsets `first..first + 5`.
fn assert_same_records(stored: &RecordBatch, first: i64) {
    let h = stored.header();
    assert_eq!(h.base_offset, first);
    let got: Vec<Record> = stored.records().unwrap().map(|r| r.unwrap()).collect();
    let want = records();
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.offset(h).0, first + i as i64);
        assert_eq!(g.timestamp(h), w.timestamp);
        assert_eq!(g.key, w.key);
        assert_eq!(g.value, w.value);
        assert_eq!(g.headers, w.headers);
    }
}

#[test]
fn compression_type_is_enforced_on_produce() {
    let b = common::Broker::start();
    let mut c = Client::with_timeout(&b, std::time::Duration::from_secs(30));
    assert_eq!(
        c.create("zstd", &[("compression.type", "zstd")]).topics[0].error_code,
        0
    );
    assert_eq!(c.create("keep", &[]).topics[0].error_code, 0);
    // An uncompressed batch and a gzip batch both end up as zstd.
    for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
        assert_eq!(c.produce_one("zstd", batch(codec)), (0, None), "{codec:?}");
    }
    let stored = c.fetch_batches("zstd");
    assert_eq!(stored.len(), 3);
    for (i, s) in stored.iter().enumerate() {
        s.validate().unwrap();
        assert_eq!(s.header().compression().unwrap(), Compression::Zstd);
        assert_eq!(s.header().attributes & 0x07, 4, "zstd in the attributes");
        assert_same_records(s, 5 * i as i64);
    }
    // A real consumer (librdkafka) reads the recompressed records.
    let got = common::kafka::consume(&b.bootstrap(), "zstd", &[0], rdkafka::Offset::Beginning, 15);
    let want = records();
    for (i, (partition, offset, key, value, timestamp)) in got.iter().enumerate() {
        let w = &want[i % 5];
        assert_eq!((*partition, *offset), (0, i as i64));
        assert_eq!(key.as_deref(), w.key.as_deref());
        assert_eq!(value.as_deref(), w.value.as_deref());
        assert_eq!(*timestamp, Some(w.timestamp));
    }
    // The default (`producer`) keeps every batch's codec.
    for codec in [Compression::Gzip, Compression::None] {
        assert_eq!(c.produce_one("keep", batch(codec)), (0, None));
    }
    let kept: Vec<Compression> = c
        .fetch_batches("keep")
        .iter()
        .map(|s| s.header().compression().unwrap())
        .collect();
    assert_eq!(kept, vec![Compression::Gzip, Compression::None]);

    // A change of compression.type applies to later batches only.
    let r: IncrementalAlterConfigsResponse = c.call(
        ApiKey::IncrementalAlterConfigs,
        1,
        &IncrementalAlterConfigsRequest {
            resources: vec![AlterConfigsResource {
                resource_type: RESOURCE_TOPIC,
                resource_name: "zstd".into(),
                configs: vec![AlterableConfig {
                    name: "compression.type".into(),
                    config_operation: 0,
                    value: Some("uncompressed".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            validate_only: false,
            ..Default::default()
        },
    );
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(c.produce_one("zstd", batch(Compression::Lz4)), (0, None));
    let stored = c.fetch_batches("zstd");
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[3].header().compression().unwrap(), Compression::None);
    assert_same_records(&stored[3], 15);
}
