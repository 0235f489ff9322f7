//! Leader epochs on disk and KIP-320 checks, against the real binary: produced batches carry
//! the partition leader epoch, the partition's `leader-epoch-checkpoint` survives SIGKILL, and
//! OffsetForLeaderEpoch, Fetch and ListOffsets check `current_leader_epoch`.

mod common;

use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use potok_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use potok_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use potok_protocol::{ApiKey, ErrorCode};
use potok_records::RecordBatchBuilder;

use common::wire::Client;
use common::Broker;

const UNKNOWN_LEADER_EPOCH: i16 = ErrorCode::UnknownLeaderEpoch as i16;

fn offset_for_epoch(c: &mut Client, topic: &str, current: i32, epoch: i32) -> EpochEndOffset {
    let r: OffsetForLeaderEpochResponse = c.call(
        ApiKey::OffsetForLeaderEpoch,
        4,
        &OffsetForLeaderEpochRequest {
            replica_id: -1,
            topics: vec![OffsetForLeaderTopic {
                topic: topic.into(),
                partitions: vec![OffsetForLeaderPartition {
                    partition: 0,
                    current_leader_epoch: current,
                    leader_epoch: epoch,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.topics[0].partitions[0].clone()
}

fn fetch_error(c: &mut Client, topic: &str, current: i32) -> i16 {
    let r: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &FetchRequest {
            max_wait_ms: 0,
            max_bytes: 1 << 20,
            topics: vec![FetchTopic {
                topic: topic.into(),
                partitions: vec![FetchPartition {
                    partition: 0,
                    current_leader_epoch: current,
                    fetch_offset: 0,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.responses[0].partitions[0].error_code
}

/// `(error, offset, leader_epoch)` of ListOffsets LATEST.
fn list_latest(c: &mut Client, topic: &str, current: i32) -> (i16, i64, i32) {
    let r: ListOffsetsResponse = c.call(
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest {
            replica_id: -1,
            topics: vec![ListOffsetsTopic {
                name: topic.into(),
                partitions: vec![ListOffsetsPartition {
                    partition_index: 0,
                    current_leader_epoch: current,
                    timestamp: -1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.leader_epoch)
}

#[test]
fn checkpoint_survives_sigkill_and_answers_offset_for_leader_epoch() {
    let mut b = Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("epochs", 1, &[]);
    for i in 0..3u8 {
        let batch = RecordBatchBuilder::new()
            .key_value(1, None, Some(&[i; 10]))
            .key_value(1, None, Some(&[i; 10]))
            .build()
            .unwrap()
            .into_bytes();
        let r = c.produce("epochs", 0, batch);
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let dir = b.data_dir().join("epochs-0");
    let checkpoint = dir.join("leader-epoch-checkpoint");
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 0\n");
    drop(c);

    b.sigkill();
    b.restart();
    let mut c = Client::new(&b);
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n0 0\n");
    // The latest epoch ends at the log end offset; a newer one is undefined (no error).
    let r = offset_for_epoch(&mut c, "epochs", -1, 0);
    assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, 0, 6));
    let r = offset_for_epoch(&mut c, "epochs", -1, 3);
    assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, -1, -1));
    let r = offset_for_epoch(&mut c, "nope", -1, 0);
    assert_eq!(r.error_code, ErrorCode::UnknownTopicOrPartition.code());
    // An empty partition's leader has its epoch starting at the log end (Kafka's makeLeader),
    // so clients validating position 0 in epoch 0 see no truncation.
    c.create_topic("empty", 1, &[]);
    let r = offset_for_epoch(&mut c, "empty", 0, 0);
    assert_eq!((r.error_code, r.leader_epoch, r.end_offset), (0, 0, 0));
    // ListOffsets reports the epoch of the offset it returns.
    assert_eq!(list_latest(&mut c, "epochs", -1), (0, 6, 0));

    // KIP-320: a current_leader_epoch newer than the partition's is unknown to this broker.
    let r = offset_for_epoch(&mut c, "epochs", 1, 0);
    assert_eq!(r.error_code, UNKNOWN_LEADER_EPOCH);
    assert_eq!(fetch_error(&mut c, "epochs", 1), UNKNOWN_LEADER_EPOCH);
    assert_eq!(list_latest(&mut c, "epochs", 1).0, UNKNOWN_LEADER_EPOCH);
    // The partition's own epoch (and -1) pass.
    assert_eq!(fetch_error(&mut c, "epochs", 0), 0);
    assert_eq!(list_latest(&mut c, "epochs", 0).0, 0);
}
