//! Role changes and the leader↔follower exchange of two `TopicManager`s without sockets: the
//! follower's requests are answered by the leader's partition directly, as the replica fetcher
//! and `handlers::replica_fetch` do over the wire.

use potok_protocol::messages::internal::partition_change_record::PartitionChangeRecord;
use potok_protocol::messages::internal::partition_record::PartitionRecord;
use potok_replication::{FetchAnswer, FetchPosition, FollowerRequest};

use super::*;

const TOPIC_ID: Uuid = Uuid([7; 16]);

fn config(dir: &Path, node: i32) -> BrokerConfig {
    BrokerConfig::from_properties(vec![
        ("log.dirs".into(), dir.display().to_string()),
        ("node.id".into(), node.to_string()),
    ])
    .unwrap()
}

/// The records of a topic `t` with one partition on brokers 1, 2, 3 led by `leader`, every
/// replica in the ISR (as the controller writes a creation).
fn creation(leader: i32) -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: TOPIC_ID,
            ..Default::default()
        }),
        MetadataRecord::Partition(PartitionRecord {
            partition_id: 0,
            topic_id: TOPIC_ID,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
            ..Default::default()
        }),
    ]
}

fn change(leader: i32, isr: &[i32]) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChangeRecord {
        partition_id: 0,
        topic_id: TOPIC_ID,
        isr: Some(isr.to_vec()),
        leader,
        ..Default::default()
    })
}

fn batch(n: u8) -> Bytes {
    let mut b = potok_records::RecordBatchBuilder::new();
    for i in 0..n {
        b = b.key_value(i64::from(i), None, Some(&[i; 16]));
    }
    b.build().unwrap().into_bytes()
}

/// One round of the follower `f` fetching from the leader `l` (both partition 0 of `t`).
fn fetch_round(f: &Partition, l: &Partition, now: i64) -> Option<usize> {
    let Some(FollowerRequest::Fetch(position)) = f.next_follower_request(now) else {
        return None;
    };
    let (answer, records) = match l.answer_follower_fetch(&position, now) {
        Ok(a) => match a.answer {
            FetchAnswer::Data {
                diverging_epoch: None,
                log_start_offset,
                ..
            } => {
                let (slice, _, hw) = l.read_for_follower(position.fetch_offset, 1 << 20).unwrap();
                let records = slice.read_bytes().unwrap();
                (
                    FetchAnswer::Data {
                        high_watermark: hw,
                        log_start_offset,
                        diverging_epoch: None,
                    },
                    records,
                )
            }
            other => (other, Bytes::new()),
        },
        Err(e) => (FetchAnswer::Error(e.as_fetch_error()), Bytes::new()),
    };
    Some(
        f.on_follower_response(&position, answer, records, now)
            .unwrap(),
    )
}

fn log_bytes(p: &Partition) -> Vec<u8> {
    let (start, end) = p.log_bounds().unwrap();
    let slice = p.read_for_follower(start, 1 << 24).unwrap().0;
    assert!(slice.len > 0 || start == end);
    slice.read_bytes().unwrap().to_vec()
}

/// Kafka's `applyDelta`: a replica that is not the leader follows it with a real log; a leader
/// change makes it leader at the bumped epoch with the image's ISR; an ISR change at the same
/// epoch only updates the ISR; losing the leadership makes it a follower again, and a
/// non-replica holds no log.
#[test]
fn roles_follow_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let m = TopicManager::open_replicated(&config(dir.path(), 1), &creation(2)).unwrap();
    let p = m.get("t").unwrap().partition(0).unwrap();
    let f = p.follower_state().expect("broker 1 follows broker 2");
    assert_eq!(
        (f.leader(), f.leader_epoch()),
        (Some(BrokerId(2)), LeaderEpoch(0))
    );
    assert!(p.is_led_elsewhere() && p.is_local_replica());
    assert!(p.dir().unwrap().exists(), "a follower has a local log");
    assert_eq!(
        m.followed_by_leader().keys().copied().collect::<Vec<_>>(),
        vec![BrokerId(2)]
    );
    let version = *m.role_changes().borrow();

    m.apply_replicated(&[change(1, &[1, 3])]).unwrap();
    let s = p.replication().expect("broker 1 leads");
    assert_eq!(s.leader_epoch(), LeaderEpoch(1));
    assert_eq!(s.isr(), &[BrokerId(1), BrokerId(3)][..]);
    assert!(m.followed_by_leader().is_empty());
    assert!(
        *m.role_changes().borrow() > version,
        "the replica manager is told"
    );
    p.append(batch(3), 0).unwrap();

    // An ISR change at the same leader epoch keeps the leader state and its log end.
    m.apply_replicated(&[change(-2, &[1, 2, 3])]).unwrap();
    let s = p.replication().unwrap();
    assert_eq!((s.leader_epoch(), s.partition_epoch()), (LeaderEpoch(1), 2));
    assert_eq!(s.isr().len(), 3);
    assert_eq!(s.log_end(), Offset(3));

    // Deposed: follows broker 3 at epoch 2; appending as leader is refused.
    m.apply_replicated(&[change(3, &[2, 3])]).unwrap();
    let f = p.follower_state().unwrap();
    assert_eq!(
        (f.leader(), f.leader_epoch()),
        (Some(BrokerId(3)), LeaderEpoch(2))
    );
    assert!(p.append(batch(1), 0).is_err());
    m.close_all(1);

    // Broker 4 is no replica: a placeholder without a log.
    let dir4 = tempfile::tempdir().unwrap();
    let m4 = TopicManager::open_replicated(&config(dir4.path(), 4), &creation(2)).unwrap();
    let p4 = m4.get("t").unwrap().partition(0).unwrap();
    assert!(!p4.is_local_replica() && p4.dir().is_err());
    m4.apply_replicated(&[change(3, &[2, 3])]).unwrap();
    assert_eq!(p4.leader_epoch(), LeaderEpoch(1));
}

/// A reassignment (KIP-455) as the brokers apply it: broker 4, added, creates the log, follows
/// and copies the leader, whose state learnt the new replica at the same leader epoch; the
/// completion drops broker 3, which deletes its log; a log left behind by a removed broker is
/// deleted when it starts again.
#[test]
fn a_reassignment_adds_a_replica_and_the_removed_one_deletes_its_log() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let m1 = TopicManager::open_replicated(&config(dirs[0].path(), 1), &creation(1)).unwrap();
    let m3 = TopicManager::open_replicated(&config(dirs[1].path(), 3), &creation(1)).unwrap();
    let m4 = TopicManager::open_replicated(&config(dirs[2].path(), 4), &creation(1)).unwrap();
    let p1 = m1.get("t").unwrap().partition(0).unwrap();
    let p3 = m3.get("t").unwrap().partition(0).unwrap();
    let p4 = m4.get("t").unwrap().partition(0).unwrap();
    p1.append(batch(5), 0).unwrap();
    assert!(!p4.is_local_replica());
    let start = MetadataRecord::PartitionChange(PartitionChangeRecord {
        partition_id: 0,
        topic_id: TOPIC_ID,
        leader: -2,
        replicas: Some(vec![1, 2, 4, 3]),
        adding_replicas: Some(vec![4]),
        removing_replicas: Some(vec![3]),
        ..Default::default()
    });
    for m in [&m1, &m3, &m4] {
        m.apply_replicated(std::slice::from_ref(&start)).unwrap();
    }
    assert!(p4.is_local_replica() && p4.dir().unwrap().exists());
    let s = p1.replication().unwrap();
    assert_eq!(
        s.leader_epoch(),
        LeaderEpoch(0),
        "adding keeps the leader epoch"
    );
    assert_eq!(
        s.replicas(),
        &[BrokerId(1), BrokerId(2), BrokerId(4), BrokerId(3)][..]
    );
    while fetch_round(&p4, &p1, 1).is_some_and(|n| n > 0) {}
    assert_eq!(log_bytes(&p4), log_bytes(&p1));
    assert_eq!(
        p1.replication().unwrap().replica_log_end(BrokerId(4)),
        Some(Offset(5))
    );

    // Completion: replicas [1, 2, 4], broker 3 removed, the leader epoch bumped.
    let done = MetadataRecord::PartitionChange(PartitionChangeRecord {
        partition_id: 0,
        topic_id: TOPIC_ID,
        leader: 1,
        isr: Some(vec![1, 2, 4]),
        replicas: Some(vec![1, 2, 4]),
        adding_replicas: Some(vec![]),
        removing_replicas: Some(vec![]),
        ..Default::default()
    });
    let dir3 = p3.dir().unwrap();
    for m in [&m1, &m3, &m4] {
        m.apply_replicated(std::slice::from_ref(&done)).unwrap();
    }
    assert!(
        !p3.is_local_replica() && !dir3.exists(),
        "the removed replica deleted its log"
    );
    assert!(p4.follower_state().is_some());
    assert_eq!(p1.replication().unwrap().leader_epoch(), LeaderEpoch(1));
    m3.close_all(1);

    // A removed broker that stopped before deleting: its stray log goes at the next start.
    std::fs::create_dir_all(&dir3).unwrap();
    std::fs::write(dir3.join("00000000000000000000.log"), b"stale").unwrap();
    let mut log = creation(1);
    log.push(start);
    log.push(done);
    let again = TopicManager::open_replicated(&config(dirs[1].path(), 3), &log).unwrap();
    assert!(!again
        .get("t")
        .unwrap()
        .partition(0)
        .unwrap()
        .is_local_replica());
    assert!(!dir3.exists(), "the stray log was deleted at start");
    m1.close_all(1);
    m4.close_all(1);
}

/// The data path between a leader and a follower: the follower appends the leader's batches
/// with their offsets, the leader's high watermark advances with the follower's fetch offsets
/// and the follower learns it; after a leader change the old leader's divergent tail is cut by
/// leader epoch and the logs end byte-identical.
#[test]
fn a_follower_copies_the_leader_and_truncates_a_divergent_tail_by_epoch() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let m1 = TopicManager::open_replicated(&config(d1.path(), 1), &creation(1)).unwrap();
    let m2 = TopicManager::open_replicated(&config(d2.path(), 2), &creation(1)).unwrap();
    let p1 = m1.get("t").unwrap().partition(0).unwrap();
    let p2 = m2.get("t").unwrap().partition(0).unwrap();
    p1.append(batch(5), 0).unwrap();
    p1.append(batch(2), 0).unwrap();
    // Broker 3 is in the ISR and never fetches: the high watermark waits for it.
    assert!(fetch_round(&p2, &p1, 1).unwrap() > 0);
    assert_eq!(p2.log_bounds().unwrap().1, Offset(7));
    assert!(fetch_round(&p2, &p1, 2).is_some());
    assert_eq!(p1.leader_high_watermark(), Some(Offset(0)));
    // Consumers read below the high watermark only: nothing yet, and ListOffsets' latest
    // (the high watermark) is 0.
    let (slice, _, hw) = p1.read(Offset(0), 1 << 20).unwrap();
    assert_eq!((slice.len, hw), (0, Offset(0)));
    // A follower fetch with a newer leader epoch than the leader's is UNKNOWN_LEADER_EPOCH
    // (KIP-320), and a follower answers no follower fetches.
    let Some(FollowerRequest::Fetch(position)) = p2.next_follower_request(3) else {
        panic!("the follower fetches");
    };
    let newer = FetchPosition {
        current_leader_epoch: LeaderEpoch(9),
        ..position
    };
    assert!(matches!(
        p1.answer_follower_fetch(&newer, 3),
        Err(potok_replication::ReplicationError::UnknownLeaderEpoch { .. })
    ));
    assert!(matches!(
        p2.answer_follower_fetch(&position, 3),
        Err(potok_replication::ReplicationError::NotLeader)
    ));
    // Without broker 3 in the ISR it is the smallest ISR log end, 7, and the follower learns it.
    m1.apply_replicated(&[change(-2, &[1, 2])]).unwrap();
    m2.apply_replicated(&[change(-2, &[1, 2])]).unwrap();
    assert!(fetch_round(&p2, &p1, 3).is_some());
    assert_eq!(p1.leader_high_watermark(), Some(Offset(7)));
    assert!(fetch_round(&p2, &p1, 4).is_some());
    assert_eq!(p2.offsets().unwrap().1, Offset(7));
    assert_eq!(log_bytes(&p1), log_bytes(&p2));

    // Broker 1 appends a batch that never reaches broker 2 (acks=1), then broker 2 takes over
    // at epoch 1 and writes its own; broker 1 comes back as a follower.
    p1.append(batch(4), 0).unwrap();
    m1.apply_replicated(&[change(2, &[2])]).unwrap();
    m2.apply_replicated(&[change(2, &[2])]).unwrap();
    p2.append(batch(1), 0).unwrap();
    assert_eq!(p1.log_bounds().unwrap().1, Offset(11));
    // A fetch naming the previous leader epoch is FENCED_LEADER_EPOCH at the new leader.
    let stale = FetchPosition {
        leader: BrokerId(2),
        current_leader_epoch: LeaderEpoch(0),
        ..position
    };
    assert!(matches!(
        p2.answer_follower_fetch(&stale, 4),
        Err(potok_replication::ReplicationError::FencedLeaderEpoch { .. })
    ));
    // First round: the leader answers with the diverging epoch, the follower cuts at 7 (where
    // epoch 0 ends on the leader), never at its high watermark alone.
    assert_eq!(fetch_round(&p1, &p2, 5), Some(0));
    assert_eq!(p1.log_bounds().unwrap().1, Offset(7));
    assert!(fetch_round(&p1, &p2, 6).unwrap() > 0);
    assert_eq!(p1.log_bounds().unwrap().1, Offset(8));
    assert_eq!(log_bytes(&p1), log_bytes(&p2));
    m1.close_all(1);
    m2.close_all(1);

    // The high watermark survives a clean restart through replication-offset-checkpoint.
    let text = std::fs::read_to_string(d2.path().join(HW_CHECKPOINT_FILE)).unwrap();
    assert!(text.starts_with("0\n1\nt 0 "), "{text}");
    let m1 = TopicManager::open_replicated(
        &config(d1.path(), 1),
        &[creation(1), vec![change(-2, &[1, 2]), change(2, &[2])]].concat(),
    )
    .unwrap();
    let p1 = m1.get("t").unwrap().partition(0).unwrap();
    assert_eq!(p1.follower_state().unwrap().high_watermark(), Offset(8));
}

/// Records every report of the leadership hook.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, LeadershipChange)>>);

impl LeadershipListener for Recorder {
    fn leadership_changed(&self, topic: &str, changes: &[LeadershipChange]) {
        let mut seen = lock(&self.0);
        seen.extend(changes.iter().map(|c| (topic.to_string(), *c)));
    }
}

/// The leadership hook (`leadership.rs`): registering reports what this broker leads already;
/// each applied leadership change of a watched topic's partition is reported once, a move away
/// as `Resigned`, a return at a bumped epoch as `Elected` again; ISR changes at the same epoch
/// and other topics are not reported; deleting the topic resigns its partitions.
#[test]
fn the_leadership_hook_reports_elections_and_resignations() {
    let dir = tempfile::tempdir().unwrap();
    let m = TopicManager::open_replicated(&config(dir.path(), 1), &creation(1)).unwrap();
    let rec = Arc::new(Recorder::default());
    m.watch_leadership("t", Arc::clone(&rec) as Arc<dyn LeadershipListener>);
    let other = Arc::new(Recorder::default());
    m.watch_leadership("absent", Arc::clone(&other) as Arc<dyn LeadershipListener>);
    let take = || std::mem::take(&mut *lock(&rec.0));
    let elected = |e| LeadershipChange::Elected {
        partition: 0,
        leader_epoch: LeaderEpoch(e),
    };
    let resigned = |e| LeadershipChange::Resigned {
        partition: 0,
        leader_epoch: LeaderEpoch(e),
    };
    assert_eq!(take(), vec![("t".to_string(), elected(0))]);
    // An ISR change at the same leader epoch is no leadership change.
    m.apply_replicated(&[change(-2, &[1, 2])]).unwrap();
    assert_eq!(take(), vec![]);
    // Broker 2 takes over: broker 1 resigns.
    m.apply_replicated(&[change(2, &[2])]).unwrap();
    assert_eq!(take(), vec![("t".to_string(), resigned(0))]);
    // Broker 1 leads again, at the next epoch.
    m.apply_replicated(&[change(1, &[1, 2])]).unwrap();
    assert_eq!(take(), vec![("t".to_string(), elected(2))]);
    m.apply_replicated(&[MetadataRecord::RemoveTopic(RemoveTopicRecord {
        topic_id: TOPIC_ID,
        ..Default::default()
    })])
    .unwrap();
    assert_eq!(take(), vec![("t".to_string(), resigned(2))]);
    assert!(lock(&other.0).is_empty());
}
