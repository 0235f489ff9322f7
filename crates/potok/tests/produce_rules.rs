//! The leader's record rules through the wire (issue 15, points 2 and 3): a batch whose header
//! carries a bogus max timestamp is corrected (so retention keeps fresh data and ListOffsets by
//! time is right), and a compacted topic refuses records without a key, naming each in
//! `record_errors`, with nothing appended.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::Client;
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
};
use potok_protocol::{ApiKey, ErrorCode};
use potok_records::{recompute_crc, split_batches, ProducerEpoch, ProducerId, RecordBatchBuilder};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A keyed batch of `(timestamp, value)` records whose header says `max_timestamp` (CRC fixed
/// up, as a client that leaves the field unset produces it).
fn batch_with_header_max(records: &[(i64, &[u8])], max_timestamp: Option<i64>) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    for (ts, v) in records {
        b = b.key_value(*ts, Some(b"k"), Some(v));
    }
    let mut v = b.build().unwrap().into_bytes().to_vec();
    if let Some(max) = max_timestamp {
        v[35..43].copy_from_slice(&max.to_be_bytes());
        recompute_crc(&mut v).unwrap();
    }
    Bytes::from(v)
}

/// ListOffsets v8 for one partition: (error, offset, timestamp).
fn list_offsets(c: &mut Client, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let r: ListOffsetsResponse = c.call(
        ApiKey::ListOffsets,
        8,
        &ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: topic.into(),
                partitions: vec![ListOffsetsPartition {
                    partition_index: 0,
                    timestamp,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// The stored batches of partition 0 from offset 0 (Fetch v12).
fn fetch_all(c: &mut Client, topic: &str) -> Bytes {
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &FetchRequest {
            replica_id: -1,
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 1 << 20,
            topics: vec![FetchTopic {
                topic: topic.into(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    fetch_offset: 0,
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
    p.records.clone().unwrap_or_default()
}

#[test]
fn bogus_header_max_timestamp_is_recomputed_and_survives_retention() {
    let b = common::Broker::builder()
        .set("log.retention.check.interval.ms", "200")
        .start();
    let mut c = Client::new(&b);
    // Default retention (7 days) for the topics under test; a control topic with a one-minute
    // retention shows that retention passes really ran meanwhile.
    for t in ["zero", "minus-one"] {
        c.create_topic(t, 1, &[]);
    }
    c.create_topic("control", 1, &[("retention.ms", "60000")]);

    let now = now_ms();
    let times = [now - 10_000, now - 5_000, now - 1_000];
    let records: Vec<(i64, &[u8])> = times.iter().map(|t| (*t, &b"v"[..])).collect();
    for (topic, bogus) in [("zero", 0i64), ("minus-one", -1)] {
        let r = c.produce(topic, 0, batch_with_header_max(&records, Some(bogus)));
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, 0),
            "{topic}: {:?}",
            p.error_message
        );
    }
    let old = now - 2 * 24 * 3_600_000;
    let r = c.produce("control", 0, batch_with_header_max(&[(old, b"old")], None));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);

    let deadline = Instant::now() + Duration::from_secs(20);
    while list_offsets(&mut c, "control", -2).1 != 1 {
        assert!(
            Instant::now() < deadline,
            "retention never ran on the control topic"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A few more passes for good measure.
    std::thread::sleep(Duration::from_millis(1000));

    for topic in ["zero", "minus-one"] {
        assert_eq!(
            list_offsets(&mut c, topic, -2),
            (0, 0, -1),
            "{topic}: nothing deleted"
        );
        assert_eq!(list_offsets(&mut c, topic, -1).1, 3, "{topic}");
        // By time: the first record at or after the asked time, with its own timestamp.
        assert_eq!(
            list_offsets(&mut c, topic, now - 20_000),
            (0, 0, times[0]),
            "{topic}"
        );
        assert_eq!(
            list_offsets(&mut c, topic, now - 7_000),
            (0, 1, times[1]),
            "{topic}"
        );
        assert_eq!(
            list_offsets(&mut c, topic, now - 1_000),
            (0, 2, times[2]),
            "{topic}"
        );
        assert_eq!(list_offsets(&mut c, topic, now), (0, -1, -1), "{topic}");
        // MAX_TIMESTAMP (KIP-734).
        assert_eq!(list_offsets(&mut c, topic, -3), (0, 2, times[2]), "{topic}");
        // The stored header was rewritten with a valid CRC.
        let stored = fetch_all(&mut c, topic);
        let batch = split_batches(stored).next().unwrap().unwrap();
        batch.validate().unwrap();
        assert_eq!(batch.header().max_timestamp, times[2], "{topic}");
    }
    assert!(
        b.log().contains("retention deleted segments"),
        "the control topic's deletion is logged"
    );
}

#[test]
fn a_correct_header_is_stored_unchanged() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("same", 1, &[]);
    let now = now_ms();
    let sent = batch_with_header_max(&[(now - 3, b"a"), (now - 1, b"b")], None);
    let r = c.produce("same", 0, sent.clone());
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    let mut stored = fetch_all(&mut c, "same").to_vec();
    // Only the base offset and leader epoch (outside the CRC) may differ.
    stored[12..16].copy_from_slice(&sent[12..16]);
    assert_eq!(&stored[..], &sent[..]);
}

#[test]
fn timestamps_outside_the_window_are_invalid_timestamp() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("win", 1, &[("message.timestamp.before.max.ms", "60000")]);
    let now = now_ms();
    // Kafka 4.0's message.timestamp.after.max.ms default is one hour (KIP-1030).
    let batch = batch_with_header_max(
        &[
            (now, b"ok"),
            (now - 600_000, b"old"),
            (now + 7_200_000, b"future"),
        ],
        None,
    );
    let r = c.produce("win", 0, batch);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ErrorCode::InvalidTimestamp.code());
    let idx: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(idx, vec![1, 2]);
    assert!(p.record_errors[0]
        .batch_index_error_message
        .as_deref()
        .unwrap()
        .contains("is out of range"));
    assert_eq!(list_offsets(&mut c, "win", -1).1, 0, "nothing appended");
}

#[test]
fn compacted_topic_refuses_records_without_key() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("cmp", 1, &[("cleanup.policy", "compact")]);
    let now = now_ms();
    let mut builder = RecordBatchBuilder::new();
    for i in 0..10 {
        let key: Option<&[u8]> = if i % 4 == 0 { None } else { Some(b"key") };
        builder = builder.key_value(now, key, Some(b"v"));
    }
    let r = c.produce("cmp", 0, builder.build().unwrap().into_bytes());
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ErrorCode::InvalidRecord.code());
    assert_eq!(p.base_offset, -1);
    let idx: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(
        idx,
        vec![0, 4, 8],
        "every keyless record, by its index in the batch"
    );
    assert_eq!(
        p.record_errors[1].batch_index_error_message.as_deref(),
        Some("Compacted topic cannot accept message without key in topic partition cmp-0")
    );
    let msg = p.error_message.as_deref().unwrap();
    assert!(msg.contains("3 record errors"), "{msg}");
    assert_eq!(list_offsets(&mut c, "cmp", -1).1, 0, "nothing appended");
    // Keyed records are accepted; a non-compacted topic takes keyless ones.
    let keyed = batch_with_header_max(&[(now, b"v")], None);
    assert_eq!(
        c.produce("cmp", 0, keyed).responses[0].partition_responses[0].error_code,
        0
    );
    c.create_topic("plain", 1, &[]);
    let keyless = RecordBatchBuilder::new()
        .key_value(now, None, Some(b"v"))
        .build()
        .unwrap()
        .into_bytes();
    assert_eq!(
        c.produce("plain", 0, keyless).responses[0].partition_responses[0].error_code,
        0
    );
}

/// librdkafka sees the refusal as INVALID_RECORD on the keyless message (its test 0011), and
/// delivers keyed ones; `cleanup.policy=compact` can be switched on with
/// IncrementalAlterConfigs APPEND as that test does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_null_key_on_compacted_topic_fails_with_invalid_record() {
    let b = common::Broker::start();
    let bootstrap = b.bootstrap();
    common::kafka::create_topic(&bootstrap, "cmp", 1, &[("cleanup.policy", "compact")]).await;
    // One message per request, so the keyed one is not failed with its batch.
    let producer = common::kafka::producer(&bootstrap, "1", &[("batch.num.messages", "1")]);
    let keyless = producer
        .send(
            FutureRecord::<[u8], [u8]>::to("cmp")
                .partition(0)
                .payload(b"no key"),
            Duration::from_secs(30),
        )
        .await;
    match keyless {
        Err((KafkaError::MessageProduction(code), _)) => {
            assert_eq!(code, RDKafkaErrorCode::InvalidRecord)
        }
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
    let keyed = producer
        .send(
            FutureRecord::to("cmp")
                .partition(0)
                .key(b"k")
                .payload(b"keyed"),
            Duration::from_secs(30),
        )
        .await
        .expect("keyed record delivered");
    assert_eq!(keyed.offset, 0, "the refused record took no offset");
    let mut c = Client::new(&b);
    let stored = fetch_all(&mut c, "cmp");
    let batches: Vec<_> = split_batches(stored).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1);
    let mut rec = batches[0].records().unwrap();
    let r = rec.next().unwrap().unwrap();
    assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
}

/// librdkafka's test 0011, variation 0: keyless records in one batch to a compacted topic. The
/// broker names each in `record_errors`, so librdkafka fails exactly those with INVALID_RECORD
/// and the rest of the batch with `_INVALID_DIFFERENT_RECORD`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_fails_only_the_named_records_of_a_batch() {
    let b = common::Broker::start();
    let bootstrap = b.bootstrap();
    common::kafka::create_topic(&bootstrap, "cmp", 1, &[("cleanup.policy", "compact")]).await;
    // A long linger puts the ten records in one batch.
    let producer = common::kafka::producer(&bootstrap, "1", &[("linger.ms", "200")]);
    let futures: Vec<_> = (0..10)
        .map(|i| {
            let key = format!("k{i}");
            let mut r = FutureRecord::<String, [u8]>::to("cmp")
                .partition(0)
                .payload(b"v");
            if i % 5 != 0 {
                r = r.key(&key);
            }
            producer
                .send_result(r)
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    let mut outcome = Vec::new();
    for f in futures {
        let r = tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("delivery timed out")
            .expect("delivery canceled");
        outcome.push(match r {
            Ok(_) => None,
            Err((KafkaError::MessageProduction(code), _)) => Some(code),
            Err((e, _)) => panic!("unexpected error {e}"),
        });
    }
    let want: Vec<Option<RDKafkaErrorCode>> = (0..10)
        .map(|i| {
            Some(if i % 5 == 0 {
                RDKafkaErrorCode::InvalidRecord
            } else {
                RDKafkaErrorCode::InvalidDifferentRecord
            })
        })
        .collect();
    assert_eq!(outcome, want);
    let mut c = Client::new(&b);
    assert_eq!(list_offsets(&mut c, "cmp", -1).1, 0, "nothing appended");
}

/// A transactional batch without a transactional id is refused with INVALID_TXN_STATE, as
/// Kafka 4.x refuses one that belongs to no ongoing transaction (KIP-890 verification): an
/// appended one would open a transaction nothing can end and hold every read_committed consumer
/// of the partition at its offset. Nothing is appended; a plain batch from the same producer
/// afterwards is. (`tests/transactions.rs` covers batches of real transactions.)
#[test]
fn a_transactional_batch_outside_a_transaction_is_refused() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("txn", 1, &[]);
    let txn = RecordBatchBuilder::new()
        .producer(ProducerId(7), ProducerEpoch(0), 0)
        .transactional(true)
        .key_value(now_ms(), Some(b"k"), Some(b"v"))
        .build()
        .unwrap()
        .into_bytes();
    let r = c.produce("txn", 0, txn);
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, ErrorCode::InvalidTxnState as i16, "{p:?}");
    assert!(fetch_all(&mut c, "txn").is_empty(), "nothing is appended");
    let plain = RecordBatchBuilder::new()
        .key_value(now_ms(), Some(b"k"), Some(b"v"))
        .build()
        .unwrap()
        .into_bytes();
    let r = c.produce("txn", 0, plain);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(split_batches(fetch_all(&mut c, "txn")).count(), 1);
}
