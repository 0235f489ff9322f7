//! Unit tests of the topic manager: creation, deletion, reopen, leader epochs.

use super::*;

#[test]
fn parallel_map_keeps_item_order_with_any_thread_count() {
    let items: Vec<u32> = (0..1000).collect();
    for threads in [0, 1, 2, 7, 5000] {
        let out = parallel_map(&items, threads, |x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
    }
    assert!(parallel_map(&[] as &[u32], 4, |x| *x).is_empty());
}

#[test]
fn topic_names_follow_kafka_rules() {
    assert!(validate_topic_name("a.b_c-D9").is_ok());
    assert!(validate_topic_name("").is_err());
    assert!(validate_topic_name(".").is_err());
    assert!(validate_topic_name("..").is_err());
    assert!(validate_topic_name("a b").is_err());
    assert!(validate_topic_name("ä").is_err());
    assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    assert!(validate_topic_name(&"x".repeat(250)).is_err());
}

/// KIP-320 on a partition whose epoch was raised: older current_leader_epoch is fenced,
/// newer is unknown, and appends carry the new epoch into the leader-epoch cache.
#[test]
fn leader_epoch_is_stamped_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        BrokerConfig::from_properties(vec![("log.dirs".into(), dir.path().display().to_string())])
            .unwrap();
    let m = TopicManager::open(&cfg).unwrap();
    let t = m
        .create_topic(NewTopic {
            name: "e".into(),
            partitions: 1,
            configs: BTreeMap::new(),
        })
        .unwrap();
    let p = t.partition(0).unwrap();
    let batch = || {
        potok_records::RecordBatchBuilder::new()
            .key_value(1, None, Some(b"v"))
            .build()
            .unwrap()
            .into_bytes()
    };
    p.append(batch(), 0).unwrap();
    let mut moved = single_node_partition(BrokerId(1));
    moved.leader_epoch = LeaderEpoch(3);
    moved.partition_epoch = 1;
    p.become_leader(BrokerId(1), &moved, 0).unwrap();
    // What Metadata and the admin APIs report follows the partition.
    assert_eq!(t.leader_epochs(), vec![3]);
    p.append(batch(), 0).unwrap();
    let entries = p
        .with_log(|log| Ok(log.leader_epoch_entries().to_vec()))
        .unwrap();
    let pairs: Vec<(i32, i64)> = entries.iter().map(|e| (e.epoch, e.start_offset)).collect();
    assert_eq!(pairs, vec![(0, 0), (3, 1)]);
    assert_eq!(p.check_current_leader_epoch(-1), None);
    assert_eq!(p.check_current_leader_epoch(3), None);
    assert_eq!(
        p.check_current_leader_epoch(2),
        Some(ErrorCode::FencedLeaderEpoch)
    );
    assert_eq!(
        p.check_current_leader_epoch(4),
        Some(ErrorCode::UnknownLeaderEpoch)
    );
}

/// A whole CreateTopics request is one metadata frame (one fsync), topics in a request are
/// checked against the ones before them, and the topics replay from the image.
#[test]
fn a_batch_of_creations_is_one_frame() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        BrokerConfig::from_properties(vec![("log.dirs".into(), dir.path().display().to_string())])
            .unwrap();
    let m = TopicManager::open(&cfg).unwrap();
    let new = |name: &str, partitions| NewTopic {
        name: name.into(),
        partitions,
        configs: BTreeMap::new(),
    };
    let results = m.create_topics(vec![
        new("a.b", 3),
        new("c", 2),
        new("a.b", 1),
        new("a_b", 1),
        new("", 1),
    ]);
    let codes: Vec<Option<ErrorCode>> = results
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.code))
        .collect();
    assert_eq!(
        codes,
        vec![
            None,
            None,
            Some(ErrorCode::TopicAlreadyExists),
            Some(ErrorCode::InvalidTopicException),
            Some(ErrorCode::InvalidTopicException),
        ]
    );
    let log = dir
        .path()
        .join(METADATA_DIR)
        .join(crate::metadata_log::LOG_FILE);
    let bytes = std::fs::read(&log).unwrap();
    let first = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    assert_eq!(first + 8, bytes.len(), "one frame");
    m.close_all(1);
    drop(m);
    let m = TopicManager::open(&cfg).unwrap();
    assert_eq!(m.get("a.b").unwrap().partition_count(), 3);
    assert_eq!(m.get("c").unwrap().leader_epochs(), vec![0, 0]);
    assert_eq!(m.all().len(), 2);
}

#[test]
fn topics_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        BrokerConfig::from_properties(vec![("log.dirs".into(), dir.path().display().to_string())])
            .unwrap();
    let m = TopicManager::open(&cfg).unwrap();
    let mut configs = BTreeMap::new();
    configs.insert("retention.ms".to_string(), "12345".to_string());
    let t = m
        .create_topic(NewTopic {
            name: "a.b".into(),
            partitions: 2,
            configs,
        })
        .unwrap();
    let collide = m.create_topic(NewTopic {
        name: "a_b".into(),
        partitions: 1,
        configs: BTreeMap::new(),
    });
    assert_eq!(collide.unwrap_err().code, ErrorCode::InvalidTopicException);
    let gone = m
        .create_topic(NewTopic {
            name: "gone".into(),
            partitions: 1,
            configs: BTreeMap::new(),
        })
        .unwrap();
    m.create_partitions(t.id(), 3, false).unwrap();
    assert_eq!(
        m.create_partitions(t.id(), 2, false).unwrap_err().code,
        ErrorCode::InvalidPartitions
    );
    m.delete_topic(gone.id()).unwrap();
    m.close_all(2);
    drop(m);
    let m = TopicManager::open(&cfg).unwrap();
    let t2 = m.get("a.b").unwrap();
    assert_eq!(t2.id(), t.id());
    assert_eq!(t2.partition_count(), 3);
    assert_eq!(t2.config().log.retention_ms, 12345);
    assert!(m.get("gone").is_none());
    assert!(!dir.path().join("gone-0").exists());
}

/// A partition owns its replication state, built from the metadata image: this node as the only
/// replica, ISR member and leader, the image's epochs, and a high watermark that follows the log
/// end as appends return (the ISR is the leader alone). It is rebuilt from the image after a
/// restart and moves with a leadership change.
#[test]
fn a_partition_owns_its_epoch_isr_and_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BrokerConfig::from_properties(vec![
        ("log.dirs".into(), dir.path().display().to_string()),
        ("node.id".into(), "4".into()),
    ])
    .unwrap();
    let batch = || {
        potok_records::RecordBatchBuilder::new()
            .key_value(1, None, Some(b"v"))
            .key_value(2, None, Some(b"w"))
            .build()
            .unwrap()
            .into_bytes()
    };
    {
        let m = TopicManager::open(&cfg).unwrap();
        let t = m
            .create_topic(NewTopic {
                name: "r".into(),
                partitions: 2,
                configs: BTreeMap::new(),
            })
            .unwrap();
        let p = t.partition(1).unwrap();
        let s = p.replication();
        assert_eq!(s.replicas(), &[BrokerId(4)][..]);
        assert_eq!(s.isr(), &[BrokerId(4)][..]);
        assert_eq!((s.leader_epoch(), s.partition_epoch()), (LeaderEpoch(0), 0));
        assert_eq!(s.high_watermark(), Offset(0));
        p.append(batch(), 0).unwrap();
        p.append(batch(), 0).unwrap();
        assert_eq!(p.replication().high_watermark(), Offset(4));
        assert_eq!(p.offsets().unwrap(), (Offset(0), Offset(4)));
        // What the metadata image holds for the partition is what the partition was built from.
        let meta = lock(&m.meta);
        let image = meta.image.topic(t.id()).unwrap().partitions[&1].clone();
        assert_eq!(image, single_node_partition(BrokerId(4)));
        drop(meta);
        // A leadership change (new epoch) starts the epoch at the log end.
        let mut moved = image;
        moved.leader_epoch = LeaderEpoch(2);
        moved.partition_epoch = 1;
        p.become_leader(BrokerId(4), &moved, 0).unwrap();
        let s = p.replication();
        assert_eq!(s.leader_epoch(), LeaderEpoch(2));
        assert_eq!(s.epoch_start_offset(), Offset(4));
        assert_eq!(s.high_watermark(), Offset(4));
        // Another broker cannot be made leader of this node's partition.
        let mut other = moved.clone();
        other.leader = Some(BrokerId(9));
        assert!(p.become_leader(BrokerId(4), &other, 0).is_err());
        m.close_all(1);
    }
    // After a restart the state comes from the replayed image and the recovered log.
    let m = TopicManager::open(&cfg).unwrap();
    let p = m.get("r").unwrap().partition(1).unwrap();
    let s = p.replication();
    assert_eq!(s.isr(), &[BrokerId(4)][..]);
    assert_eq!(s.high_watermark(), Offset(4));
    m.close_all(1);
}

/// A creation whose partition logs cannot be opened after its records are durable is rolled
/// back: the client gets the storage error, a retry of the same name succeeds, and the metadata
/// log still replays (before, the image kept the topic, the retry's second `TopicRecord` for the
/// name was refused, and the next start could not replay the log).
#[test]
fn a_creation_that_cannot_open_its_logs_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        BrokerConfig::from_properties(vec![("log.dirs".into(), dir.path().display().to_string())])
            .unwrap();
    let m = TopicManager::open(&cfg).unwrap();
    let new = || NewTopic {
        name: "t".into(),
        partitions: 3,
        configs: BTreeMap::new(),
    };
    // A regular file where partition 1's directory must go makes its log impossible to open
    // (the stale-directory cleanup removes directories only).
    let blocker = dir.path().join("t-1");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let err = m.create_topic(new()).unwrap_err();
    assert_eq!(err.code, ErrorCode::KafkaStorageError);
    assert!(m.get("t").is_none());
    assert!(
        !dir.path().join("t-0").exists(),
        "partition 0 of the failed creation remains"
    );
    std::fs::remove_file(&blocker).unwrap();
    let t = m.create_topic(new()).unwrap();
    assert_eq!(t.partition_count(), 3);
    let id = t.id();
    m.close_all(1);
    drop(m);
    let m = TopicManager::open(&cfg).unwrap();
    let t = m.get("t").expect("the retried topic replays");
    assert_eq!((t.id(), t.partition_count()), (id, 3));
    m.close_all(1);
}
