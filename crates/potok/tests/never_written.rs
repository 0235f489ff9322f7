//! Issue 14's batched creation makes a partition's segment files on first use, so a partition
//! nothing was ever written to is a directory holding only its leader-epoch file. Against the
//! real binary: such partitions answer ListOffsets, Fetch and OffsetForLeaderEpoch, go through
//! retention and the log cleaner without gaining files, survive SIGKILL and a clean restart
//! (recovering no segment), take their first records afterwards, and are deleted with their
//! topic.

mod common;

use std::path::Path;
use std::time::Duration;

use potok_protocol::messages::delete_topics_request::DeleteTopicState;
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use potok_protocol::messages::{
    DeleteTopicsRequest, DeleteTopicsResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use potok_protocol::ApiKey;
use potok_records::RecordBatchBuilder;

use common::wire::Client;
use common::Broker;

const PARTITIONS: i32 = 4;

/// The entries of a partition directory, sorted.
fn files(b: &Broker, topic: &str, p: i32) -> Vec<String> {
    let dir = b.data_dir().join(format!("{topic}-{p}"));
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn only_epoch_file(b: &Broker, topic: &str, p: i32) {
    assert_eq!(
        files(b, topic, p),
        ["leader-epoch-checkpoint"],
        "{topic}-{p} gained files"
    );
}

/// ListOffsets v7 of `timestamp` for every partition: `(error, offset)` by partition.
fn list_offsets(c: &mut Client, topic: &str, timestamp: i64) -> Vec<(i16, i64)> {
    let r: ListOffsetsResponse = c.call(
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: topic.into(),
                partitions: (0..PARTITIONS)
                    .map(|p| ListOffsetsPartition {
                        partition_index: p,
                        current_leader_epoch: -1,
                        timestamp,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let mut parts = r.topics[0].partitions.clone();
    parts.sort_by_key(|p| p.partition_index);
    parts.iter().map(|p| (p.error_code, p.offset)).collect()
}

/// Fetch v12 of one partition from offset 0: `(error, high watermark, record bytes)`.
fn fetch(c: &mut Client, topic: &str, p: i32) -> (i16, i64, usize) {
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &FetchRequest {
            max_wait_ms: 0,
            max_bytes: 1 << 20,
            topics: vec![FetchTopic {
                topic: topic.into(),
                partitions: vec![FetchPartition {
                    partition: p,
                    current_leader_epoch: -1,
                    fetch_offset: 0,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let part = &r.responses[0].partitions[0];
    let len = part.records.as_ref().map_or(0, |r| r.len());
    (part.error_code, part.high_watermark, len)
}

/// OffsetForLeaderEpoch v4 for epoch 0 of one partition: `(error, leader epoch, end offset)`.
fn epoch_end(c: &mut Client, topic: &str, p: i32) -> (i16, i32, i64) {
    let r: OffsetForLeaderEpochResponse = c.call(
        ApiKey::OffsetForLeaderEpoch,
        4,
        &OffsetForLeaderEpochRequest {
            replica_id: -1,
            topics: vec![OffsetForLeaderTopic {
                topic: topic.into(),
                partitions: vec![OffsetForLeaderPartition {
                    partition: p,
                    current_leader_epoch: -1,
                    leader_epoch: 0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let e = &r.topics[0].partitions[0];
    (e.error_code, e.leader_epoch, e.end_offset)
}

/// Every lookup a client makes of a never-written partition: earliest, latest and by
/// timestamp are 0 (Kafka answers -1 for a timestamp no record reaches), the max-timestamp
/// lookup -1, and epoch 0 ends at 0.
fn check_empty(c: &mut Client, topic: &str) {
    let zeros = vec![(0, 0); PARTITIONS as usize];
    assert_eq!(list_offsets(c, topic, -2), zeros, "earliest");
    assert_eq!(list_offsets(c, topic, -1), zeros, "latest");
    let none = vec![(0, -1); PARTITIONS as usize];
    assert_eq!(list_offsets(c, topic, 0), none, "by timestamp");
    assert_eq!(list_offsets(c, topic, -3), none, "max timestamp");
    assert_eq!(epoch_end(c, topic, 3), (0, 0, 0));
}

fn record(value: &str) -> bytes::Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    RecordBatchBuilder::new()
        .key_value(now, Some(b"k"), Some(value.as_bytes()))
        .build()
        .unwrap()
        .into_bytes()
}

fn opened_line(log: &str, nth: usize) -> String {
    log.lines()
        .filter(|l| l.contains("opened partition logs"))
        .nth(nth)
        .unwrap_or_else(|| panic!("no start-up line {nth} in\n{log}"))
        .to_string()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn never_written_partitions_survive_restarts_retention_and_compaction() {
    let mut b = Broker::builder()
        .set("log.retention.check.interval.ms", "200")
        .set("log.cleaner.backoff.ms", "50")
        .admin()
        .start();
    let mut c = Client::with_timeout(&b, Duration::from_secs(60));
    c.create_topic("plain", PARTITIONS, &[("retention.ms", "100")]);
    c.create_topic(
        "compacted",
        PARTITIONS,
        &[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    for topic in ["plain", "compacted"] {
        for p in 0..PARTITIONS {
            only_epoch_file(&b, topic, p);
        }
        check_empty(&mut c, topic);
    }
    // A fetch at the end of partition 0 is empty; it may open (so create) its empty segment.
    assert_eq!(fetch(&mut c, "plain", 0), (0, 0, 0));
    // Retention passes over the expired-looking, never-written partitions several times, and
    // the cleaner's backoff lets it look at the compacted ones: nothing is deleted or made.
    std::thread::sleep(Duration::from_millis(1_000));
    for p in 1..PARTITIONS {
        only_epoch_file(&b, "plain", p);
        only_epoch_file(&b, "compacted", p);
    }
    check_empty(&mut c, "plain");
    drop(c);

    // SIGKILL: the never-written partitions come back as they were, with nothing to scan
    // but the one (empty) segment file the fetch of plain-0 opened.
    b.sigkill();
    b.restart();
    let line = opened_line(&b.log(), 1);
    assert!(
        line.contains(&format!("partitions={}", 2 * PARTITIONS))
            && line.contains("segments_recovered=1"),
        "{line}"
    );
    let mut c = Client::with_timeout(&b, Duration::from_secs(60));
    for topic in ["plain", "compacted"] {
        check_empty(&mut c, topic);
        for p in 1..PARTITIONS {
            only_epoch_file(&b, topic, p);
        }
    }
    // The first record of partition 1 lands at offset 0 and is fetched back.
    let r = c.produce("compacted", 1, record("first"));
    let pr = &r.responses[0].partition_responses[0];
    assert_eq!((pr.error_code, pr.base_offset), (0, 0));
    let (err, hw, len) = fetch(&mut c, "compacted", 1);
    assert_eq!((err, hw), (0, 1));
    assert!(len > 0);
    drop(c);

    // A clean restart: nothing scanned; the written partition keeps its record, the others
    // still have no segment file.
    assert!(b.sigterm().success(), "{}", b.log());
    b.restart();
    let line = opened_line(&b.log(), 2);
    assert!(line.contains("segments_recovered=0"), "{line}");
    let mut c = Client::with_timeout(&b, Duration::from_secs(60));
    check_empty(&mut c, "plain");
    assert_eq!(fetch(&mut c, "compacted", 1).1, 1);
    for p in [0, 2, 3] {
        only_epoch_file(&b, "compacted", p);
    }
    for p in 1..PARTITIONS {
        only_epoch_file(&b, "plain", p);
    }

    // Deletion removes the never-written directories like any other.
    let r: DeleteTopicsResponse = c.call(
        ApiKey::DeleteTopics,
        6,
        &DeleteTopicsRequest {
            topics: vec![DeleteTopicState {
                name: Some("plain".into()),
                ..Default::default()
            }],
            timeout_ms: 10_000,
            ..Default::default()
        },
    );
    assert_eq!(r.responses[0].error_code, 0);
    let data = b.data_dir();
    wait_for("the deleted topic's directories to go", || {
        (0..PARTITIONS).all(|p| !Path::new(&data.join(format!("plain-{p}"))).exists())
    });
}
