//! Fetch response size limits through the wire (issue 15, point 1): the request's `max_bytes`
//! bounds the whole response and `partition_max_bytes` each partition; only the first
//! partition that returns data may exceed them, by one whole batch (Kafka's
//! `ReplicaManager.readFromLog`, KIP-74); the broker's `fetch.max.bytes` caps `max_bytes`.
//! A raw client makes every byte of the response observable; librdkafka with small fetch sizes
//! shows that a real consumer still reads everything.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::{FetchRequest, FetchResponse};
use potok_protocol::ApiKey;
use potok_records::RecordBatchBuilder;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// The value size of the test batches: 256 KiB, as in the issue.
const VALUE: usize = 256 * 1024;

use common::wire::Client;

/// Appends one batch holding one record with a `value_len`-byte value; returns the
/// batch's size on the wire (and on disk).
fn produce(c: &mut Client, topic: &str, partition: i32, value_len: usize) -> usize {
    let value = vec![partition as u8; value_len];
    let records = RecordBatchBuilder::new()
        .key_value(1, Some(b"k"), Some(&value))
        .build()
        .unwrap()
        .into_bytes();
    let len = records.len();
    let r = c.produce(topic, partition, records);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce to {topic}/{partition}: {r:?}");
    len
}

/// One Fetch v12 of partitions `(index, offset)` of `topic`, without waiting.
fn fetch(
    c: &mut Client,
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
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    assert_eq!(f.error_code, 0);
    f
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
    c.create_topic("sz", 8, &[]);
    let batch: Vec<usize> = (0..8).map(|p| produce(&mut c, "sz", p, VALUE)).collect();
    let all: Vec<(i32, i64)> = (0..8).map(|p| (p, 0)).collect();
    let hw1 = [1i64; 8];

    // 8 batches of ~256 KiB, max_bytes 1,000,000: the batches that fit whole (three), nothing
    // from the rest, which still report their high watermark. Before the fix every partition
    // returned its batch.
    let f = fetch(&mut c, "sz", &all, 1 << 20, 1_000_000);
    let got = sizes(&f, &hw1);
    assert_eq!(&got[..3], &batch[..3], "{got:?}");
    assert_eq!(&got[3..], &[0; 5], "{got:?}");
    assert!(got.iter().sum::<usize>() <= 1_000_000);

    // A limit below one batch: only the first partition returns one, oversized.
    let f = fetch(&mut c, "sz", &all, 1 << 20, 100_000);
    assert_eq!(sizes(&f, &hw1), [batch[0], 0, 0, 0, 0, 0, 0, 0]);

    // partition_max_bytes below every batch follows the same rule per partition.
    let f = fetch(&mut c, "sz", &all, 100_000, 50 << 20);
    assert_eq!(sizes(&f, &hw1), [batch[0], 0, 0, 0, 0, 0, 0, 0]);

    // The exception belongs to the first partition *with data*: partitions fetched at their
    // end come first here and do not use it up.
    let order = [(3, 1), (5, 1), (6, 0), (7, 0)];
    let f = fetch(&mut c, "sz", &order, 100_000, 100_000);
    assert_eq!(sizes(&f, &[1, 1, 1, 1]), [0, 0, batch[6], 0]);
}

#[test]
fn an_oversized_first_batch_comes_whole_and_alone() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("big", 3, &[("max.message.bytes", "4000000")]);
    // Partition 0 is empty, partition 1 holds one batch larger than max_bytes on its own,
    // partition 2 a small batch that would fit in max_bytes.
    let big = produce(&mut c, "big", 1, 1_500_000);
    produce(&mut c, "big", 2, 1000);
    let f = fetch(&mut c, "big", &[(0, 0), (1, 0), (2, 0)], 1 << 20, 1_000_000);
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
    c.create_topic("cap", 4, &[]);
    let batch: Vec<usize> = (0..4).map(|p| produce(&mut c, "cap", p, VALUE)).collect();
    let all: Vec<(i32, i64)> = (0..4).map(|p| (p, 0)).collect();
    let f = fetch(&mut c, "cap", &all, 1 << 20, 50 << 20);
    assert_eq!(sizes(&f, &[1; 4]), [batch[0], batch[1], 0, 0]);
}

/// librdkafka with `fetch.max.bytes` and `max.partition.fetch.bytes` below the batch size
/// still consumes every record of every partition: each response carries one oversized batch
/// from the first partition with data, and the client rotates the partition order.
#[test]
fn rdkafka_with_small_fetch_sizes_consumes_everything() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("small", 8, &[]);
    let per_partition = 3;
    for _ in 0..per_partition {
        for p in 0..8 {
            produce(&mut c, "small", p, VALUE);
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
