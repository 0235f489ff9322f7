//! Fetch response size limits through the wire (issue 15, point 1): the request's `max_bytes`
//! bounds the whole response and `partition_max_bytes` each partition; only the first
//! partition that returns data may exceed them, by one whole batch (Kafka's
//! `ReplicaManager.readFromLog`, KIP-74); the broker's `fetch.max.bytes` caps `max_bytes`.
//! A raw client makes every byte of the response observable; librdkafka with small fetch sizes
//! shows that a real consumer still reads everything.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use potok_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ProduceRequest,
    ProduceResponse, RequestHeader,
};
use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode};
use potok_records::RecordBatchBuilder;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// The value size of the test batches: 256 KiB, as in the issue.
const VALUE: usize = 256 * 1024;

struct Client {
    s: TcpStream,
    corr: i32,
}

impl Client {
    fn new(b: &common::Broker) -> Client {
        let s = TcpStream::connect(("127.0.0.1", b.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { s, corr: 0 }
    }

    fn call<M: Encode, R: Decode>(&mut self, key: ApiKey, v: i16, body: &M) -> R {
        self.corr += 1;
        let h = RequestHeader {
            request_api_key: key as i16,
            request_api_version: v,
            correlation_id: self.corr,
            client_id: Some("fetch-test".into()),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_request_frame(&mut buf, &h, body).unwrap();
        self.s.write_all(&buf).unwrap();
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).unwrap();
        let mut b = Bytes::from(body);
        assert_eq!(b.get_i32(), self.corr);
        if key.response_header_version(v) >= 1 {
            assert_eq!(b.get_u8(), 0, "no tagged fields expected in the header");
        }
        R::decode(&mut b, v).unwrap()
    }

    fn create(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let r: CreateTopicsResponse = self.call(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest {
                topics: vec![CreatableTopic {
                    name: name.into(),
                    num_partitions: partitions,
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
            },
        );
        assert_eq!(r.topics[0].error_code, 0, "create {name}: {r:?}");
    }

    /// Appends one batch holding one record with a `value_len`-byte value; returns the
    /// batch's size on the wire (and on disk).
    fn produce(&mut self, topic: &str, partition: i32, value_len: usize) -> usize {
        let value = vec![partition as u8; value_len];
        let records = RecordBatchBuilder::new()
            .key_value(1, Some(b"k"), Some(&value))
            .build()
            .unwrap()
            .into_bytes();
        let len = records.len();
        let req = ProduceRequest {
            acks: 1,
            timeout_ms: 10_000,
            topic_data: vec![TopicProduceData {
                name: topic.into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(records),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let r: ProduceResponse = self.call(ApiKey::Produce, 9, &req);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "produce to {topic}/{partition}: {r:?}");
        len
    }

    /// One Fetch v12 of partitions `(index, offset)` of `topic`, without waiting.
    fn fetch(
        &mut self,
        topic: &str,
        partitions: &[(i32, i64)],
        partition_max: i32,
        max: i32,
    ) -> FetchResponse {
        let req = FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: max,
            topics: vec![FetchTopic {
                topic: topic.into(),
                partitions: partitions
                    .iter()
                    .map(|&(partition, fetch_offset)| FetchPartition {
                        partition,
                        fetch_offset,
                        partition_max_bytes: partition_max,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let f: FetchResponse = self.call(ApiKey::Fetch, 12, &req);
        assert_eq!(f.error_code, 0);
        f
    }
}

/// Record bytes returned per partition, in response order, after checking that no partition
/// has an error and each reports `high_watermark`.
fn sizes(f: &FetchResponse, high_watermark: &[i64]) -> Vec<usize> {
    let parts = &f.responses[0].partitions;
    assert_eq!(parts.len(), high_watermark.len());
    parts
        .iter()
        .zip(high_watermark)
        .map(|(p, hw)| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            assert_eq!(p.high_watermark, *hw, "partition {}", p.partition_index);
            p.records.as_ref().map_or(0, |r| r.len())
        })
        .collect()
}

#[test]
fn max_bytes_bounds_the_response_but_the_first_batch() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create("sz", 8, &[]);
    let batch: Vec<usize> = (0..8).map(|p| c.produce("sz", p, VALUE)).collect();
    let all: Vec<(i32, i64)> = (0..8).map(|p| (p, 0)).collect();
    let hw1 = [1i64; 8];

    // 8 batches of ~256 KiB, max_bytes 1,000,000: the batches that fit whole (three), nothing
    // from the rest, which still report their high watermark. Before the fix every partition
    // returned its batch.
    let f = c.fetch("sz", &all, 1 << 20, 1_000_000);
    let got = sizes(&f, &hw1);
    assert_eq!(&got[..3], &batch[..3], "{got:?}");
    assert_eq!(&got[3..], &[0; 5], "{got:?}");
    assert!(got.iter().sum::<usize>() <= 1_000_000);

    // A limit below one batch: only the first partition returns one, oversized.
    let f = c.fetch("sz", &all, 1 << 20, 100_000);
    assert_eq!(sizes(&f, &hw1), [batch[0], 0, 0, 0, 0, 0, 0, 0]);

    // partition_max_bytes below every batch follows the same rule per partition.
    let f = c.fetch("sz", &all, 100_000, 50 << 20);
    assert_eq!(sizes(&f, &hw1), [batch[0], 0, 0, 0, 0, 0, 0, 0]);

    // The exception belongs to the first partition *with data*: partitions fetched at their
    // end come first here and do not use it up.
    let order = [(3, 1), (5, 1), (6, 0), (7, 0)];
    let f = c.fetch("sz", &order, 100_000, 100_000);
    assert_eq!(sizes(&f, &[1, 1, 1, 1]), [0, 0, batch[6], 0]);
}

#[test]
fn an_oversized_first_batch_comes_whole_and_alone() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create("big", 3, &[("max.message.bytes", "4000000")]);
    // Partition 0 is empty, partition 1 holds one batch larger than max_bytes on its own,
    // partition 2 a small batch that would fit in max_bytes.
    let big = c.produce("big", 1, 1_500_000);
    c.produce("big", 2, 1000);
    let f = c.fetch("big", &[(0, 0), (1, 0), (2, 0)], 1 << 20, 1_000_000);
    let got = sizes(&f, &[0, 1, 1]);
    assert!(big > 1_000_000);
    assert_eq!(got, [0, big, 0], "the limit is used up by the first batch");
}

#[test]
fn broker_fetch_max_bytes_caps_the_request() {
    // Kafka's broker config `fetch.max.bytes` caps a request's max_bytes.
    let b = common::Broker::builder()
        .set("fetch.max.bytes", "600000")
        .start();
    let mut c = Client::new(&b);
    c.create("cap", 4, &[]);
    let batch: Vec<usize> = (0..4).map(|p| c.produce("cap", p, VALUE)).collect();
    let all: Vec<(i32, i64)> = (0..4).map(|p| (p, 0)).collect();
    let f = c.fetch("cap", &all, 1 << 20, 50 << 20);
    assert_eq!(sizes(&f, &[1; 4]), [batch[0], batch[1], 0, 0]);
}

/// librdkafka with `fetch.max.bytes` and `max.partition.fetch.bytes` below the batch size
/// still consumes every record of every partition: each response carries one oversized batch
/// from the first partition with data, and the client rotates the partition order.
#[test]
fn rdkafka_with_small_fetch_sizes_consumes_everything() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create("small", 8, &[]);
    let per_partition = 3;
    for _ in 0..per_partition {
        for p in 0..8 {
            c.produce("small", p, VALUE);
        }
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "fetch-small")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        // librdkafka requires fetch.max.bytes >= its own message.max.bytes.
        .set("message.max.bytes", "150000")
        .set("fetch.max.bytes", "200000")
        .set("max.partition.fetch.bytes", "100000")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..8 {
        tpl.add_partition_offset("small", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let want = 8 * per_partition;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while n < want {
        assert!(
            Instant::now() < deadline,
            "timed out after {n} of {want} records: {got:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume error");
            assert_eq!(m.payload().map(<[u8]>::len), Some(VALUE));
            got.entry(m.partition()).or_default().push(m.offset());
            n += 1;
        }
    }
    for p in 0..8 {
        assert_eq!(got.get(&p), Some(&vec![0, 1, 2]), "partition {p}");
    }
}
