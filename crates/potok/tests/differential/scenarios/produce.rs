//! Produce: acks values, unknown topics and partitions, sizes, corrupt and malformed batches,
//! record validation errors, LogAppendTime, idempotent sequences.

use bytes::Bytes;
use potok_records::{ProducerEpoch, ProducerId, RecordBatchBuilder};

use super::{sc, Scenario};
use crate::ops::{batch, records, LATEST};

/// A batch of `n` records of producer `pid` (epoch 0) starting at sequence `seq`.
fn idempotent(pid: i64, seq: i32, n: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new().producer(ProducerId(pid), ProducerEpoch(0), seq);
    for i in 0..n {
        b = b.key_value(1000 + i as i64, Some(b"k"), Some(b"v"));
    }
    b.build().unwrap().into_bytes()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn all() -> Vec<Scenario> {
    vec![
        sc("produce-basic", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.produce("first", &t, 0, &[(1000, b"a")]);
            s.produce("second", &t, 0, &[(1001, b"b"), (1002, b"c"), (1003, b"d")]);
            s.list_offsets("latest", &t, &[(0, LATEST)]);
        }),
        sc("produce-acks-values", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.produce_raw("acks-all", -1, &t, 0, Some(records(2)));
            s.produce_raw("acks-one", 1, &t, 0, Some(records(2)));
            s.produce_raw("acks-two", 2, &t, 0, Some(records(2)));
            s.produce_raw("acks-minus-two", -2, &t, 0, Some(records(2)));
            s.list_offsets("latest", &t, &[(0, LATEST)]);
        }),
        sc("produce-acks-zero", |s| {
            // acks=0 has no answer; the next request on the connection shows it was appended.
            let t = s.setup_topic("t", 1, &[]);
            let req = potok_protocol::messages::ProduceRequest {
                acks: 0,
                timeout_ms: 30_000,
                topic_data: vec![
                    potok_protocol::messages::produce_request::TopicProduceData {
                        name: t.clone(),
                        partition_data: vec![
                            potok_protocol::messages::produce_request::PartitionProduceData {
                                index: 0,
                                records: Some(records(3)),
                                ..Default::default()
                            },
                        ],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            };
            s.send(0, potok_protocol::ApiKey::Produce, 9, &req);
            s.list_offsets("latest", &t, &[(0, LATEST)]);
        }),
        sc("produce-unknown-topic", |s| {
            s.produce("produce", &s.n("missing"), 0, &[(1000, b"a")]);
        }),
        sc("produce-unknown-partition", |s| {
            let t = s.setup_topic("t", 2, &[]);
            s.produce("partition-2", &t, 2, &[(1000, b"a")]);
            s.produce("partition-minus-one", &t, -1, &[(1000, b"a")]);
        }),
        sc("produce-mixed-partitions", |s| {
            let t = s.setup_topic("t", 3, &[]);
            let parts = [
                (t.as_str(), 0, Some(records(1))),
                (t.as_str(), 2, Some(records(2))),
                (t.as_str(), 7, Some(records(1))),
            ];
            s.produce_many("produce", 1, &parts);
        }),
        sc("produce-message-too-large", |s| {
            let t = s.setup_topic("t", 1, &[("max.message.bytes", "200")]);
            let big = [b'x'; 1000];
            s.produce("too-large", &t, 0, &[(1000, &big)]);
            s.produce("fits", &t, 0, &[(1000, b"small")]);
        }),
        sc("produce-corrupt-crc", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let mut b = records(2).to_vec();
            let last = b.len() - 1;
            b[last] ^= 0xff;
            s.produce_raw("corrupt", 1, &t, 0, Some(Bytes::from(b)));
            s.list_offsets("latest", &t, &[(0, LATEST)]);
        }),
        sc("produce-truncated-batch", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let b = records(2);
            s.produce_raw("truncated", 1, &t, 0, Some(b.slice(..b.len() - 5)));
        }),
        sc("produce-null-and-empty-records", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.produce_raw("empty", 1, &t, 0, Some(Bytes::new()));
            s.produce_raw("null", 1, &t, 0, None);
        }),
        sc("produce-nonzero-base-offset", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let mut b = records(2).to_vec();
            // The base offset is outside the CRC (which covers attributes onwards).
            b[..8].copy_from_slice(&7i64.to_be_bytes());
            s.produce_raw("produce", 1, &t, 0, Some(Bytes::from(b)));
            s.fetch("fetch", &t, 0, 0);
        }),
        sc("produce-future-timestamp", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let future = now_ms() + 2 * 3_600_000;
            let b = batch(&[(1000, b"ok"), (future, b"late"), (1001, b"ok")]);
            s.produce_raw("produce", 1, &t, 0, Some(b));
            s.list_offsets("latest", &t, &[(0, LATEST)]);
        }),
        sc("produce-keyless-to-compacted", |s| {
            let t = s.setup_topic("t", 1, &[("cleanup.policy", "compact")]);
            let b = RecordBatchBuilder::new()
                .key_value(1000, Some(b"k"), Some(b"v"))
                .key_value(1001, None, Some(b"v"))
                .build()
                .unwrap()
                .into_bytes();
            s.produce_raw("produce", 1, &t, 0, Some(b));
        }),
        sc("produce-log-append-time", |s| {
            let t = s.setup_topic("t", 1, &[("message.timestamp.type", "LogAppendTime")]);
            s.produce("produce", &t, 0, &[(1000, b"a"), (1001, b"b")]);
            s.fetch("fetch", &t, 0, 0);
        }),
        sc("produce-min-insync-replicas", |s| {
            let t = s.setup_topic("t", 1, &[("min.insync.replicas", "2")]);
            s.produce_raw("acks-all", -1, &t, 0, Some(records(1)));
            s.produce_raw("acks-one", 1, &t, 0, Some(records(1)));
        }),
        sc("produce-idempotent-sequences", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let pid = s.init_producer_id("init").unwrap().producer_id;
            s.produce_raw("seq-0", -1, &t, 0, Some(idempotent(pid, 0, 2)));
            s.produce_raw("duplicate", -1, &t, 0, Some(idempotent(pid, 0, 2)));
            s.produce_raw("gap", -1, &t, 0, Some(idempotent(pid, 5, 1)));
            s.produce_raw("seq-2", -1, &t, 0, Some(idempotent(pid, 2, 1)));
            s.list_offsets("latest", &t, &[(0, LATEST)]);
        }),
        sc("produce-unknown-producer-id", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.produce_raw("seq-3", -1, &t, 0, Some(idempotent(987_654, 3, 1)));
            s.produce_raw("seq-0", -1, &t, 0, Some(idempotent(987_655, 0, 1)));
        }),
    ]
}
