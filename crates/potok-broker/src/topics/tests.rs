//! Unit tests of the topic manager: creation, deletion, reopen, leader epochs.

use super::*;

/// Default broker settings with `log.dirs` = `dir`.
fn config_in(dir: &Path) -> BrokerConfig {
    BrokerConfig::from_properties(vec![("log.dirs".into(), dir.display().to_string())]).unwrap()
}

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
    let cfg = config_in(dir.path());
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
    let cfg = config_in(dir.path());
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
    let cfg = config_in(dir.path());
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
        let s = p.replication().unwrap();
        assert_eq!(s.replicas(), &[BrokerId(4)][..]);
        assert_eq!(s.isr(), &[BrokerId(4)][..]);
        assert_eq!((s.leader_epoch(), s.partition_epoch()), (LeaderEpoch(0), 0));
        assert_eq!(s.high_watermark(), Offset(0));
        p.append(batch(), 0).unwrap();
        p.append(batch(), 0).unwrap();
        assert_eq!(p.replication().unwrap().high_watermark(), Offset(4));
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
        let s = p.replication().unwrap();
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
    let s = p.replication().unwrap();
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
    let cfg = config_in(dir.path());
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

/// A storage that counts the fsyncs and file creations the partition logs ask for.
#[derive(Debug, Default)]
struct Counting {
    sync_dirs: std::sync::atomic::AtomicUsize,
    sync_files: std::sync::atomic::AtomicUsize,
    opens: std::sync::atomic::AtomicUsize,
}

#[derive(Debug)]
struct CountingFile(Arc<dyn potok_log::StorageFile>, Arc<Counting>);

impl potok_log::StorageFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
        self.0.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> std::io::Result<usize> {
        self.0.write_at(buf, pos)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.1.sync_files.fetch_add(1, Ordering::Relaxed);
        self.0.sync_data()
    }
    fn modified_ms(&self) -> std::io::Result<i64> {
        self.0.modified_ms()
    }
    fn std_file(&self) -> std::io::Result<Arc<std::fs::File>> {
        self.0.std_file()
    }
}

#[derive(Debug)]
struct CountingStorage(Arc<Counting>);

impl Storage for CountingStorage {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Arc<dyn potok_log::StorageFile>> {
        self.0.opens.fetch_add(1, Ordering::Relaxed);
        let f = RealStorage.open(path, create)?;
        Ok(Arc::new(CountingFile(f, Arc::clone(&self.0))))
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        RealStorage.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        RealStorage.list_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        RealStorage.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        RealStorage.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        RealStorage.remove_dir_all(dir)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        RealStorage.exists(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.sync_dirs.fetch_add(1, Ordering::Relaxed);
        RealStorage.sync_dir(dir)
    }
    fn map_mut(
        &self,
        file: &dyn potok_log::StorageFile,
        len: usize,
    ) -> std::io::Result<memmap2::MmapMut> {
        RealStorage.map_mut(file, len)
    }
    fn map(&self, file: &dyn potok_log::StorageFile, len: usize) -> std::io::Result<memmap2::Mmap> {
        RealStorage.map(file, len)
    }
}

/// Issue #14's batched creation: a CreateTopics request (and a CreatePartitions) makes each
/// partition's directory and leader-epoch file with no fsync of its own and one fsync of the
/// data directory for the whole request; no segment file exists before the first append, and
/// the never-written partitions reopen after a clean shutdown and after a crash.
#[test]
fn creation_is_batched_with_one_directory_fsync_per_request() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path());
    let counts = Arc::new(Counting::default());
    let storage = || Arc::new(CountingStorage(Arc::clone(&counts))) as Arc<dyn Storage>;
    let m = TopicManager::open_with_storage(&cfg, storage()).unwrap();
    let before = |c: &Counting| {
        (
            c.sync_dirs.load(Ordering::Relaxed),
            c.sync_files.load(Ordering::Relaxed),
            c.opens.load(Ordering::Relaxed),
        )
    };
    let (dirs0, files0, opens0) = before(&counts);
    let new = |name: &str| NewTopic {
        name: name.into(),
        partitions: 50,
        configs: BTreeMap::new(),
    };
    let results = m.create_topics(vec![new("a"), new("b")]);
    assert!(results.iter().all(Result::is_ok));
    let (dirs1, files1, opens1) = before(&counts);
    assert_eq!(dirs1 - dirs0, 1, "one directory fsync for the request");
    assert_eq!(files1 - files0, 0, "no file fsync per partition");
    assert_eq!(
        opens1 - opens0,
        100,
        "one file (the leader-epoch file) per partition"
    );
    let p0 = dir.path().join("a-0");
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&p0), [potok_log::LEADER_EPOCH_CHECKPOINT_FILE]);
    // CreatePartitions likewise.
    let a = m.get("a").unwrap();
    m.create_partitions(a.id(), 80, false).unwrap();
    let (dirs2, files2, _) = before(&counts);
    assert_eq!((dirs2 - dirs1, files2 - files1), (1, 0));
    assert_eq!(a.partition_count(), 80);
    // A record in one partition; every other partition stays never written.
    a.partition(0)
        .unwrap()
        .append(
            potok_records::RecordBatchBuilder::new()
                .key_value(1, None, Some(b"v"))
                .build()
                .unwrap()
                .into_bytes(),
            now_ms(),
        )
        .unwrap();
    m.close_all(2);
    drop(m);
    assert_eq!(
        names(&dir.path().join("b-7")),
        [potok_log::LEADER_EPOCH_CHECKPOINT_FILE]
    );
    // A clean restart recovers nothing and leaves the never-written partitions without files.
    let m = TopicManager::open_with_storage(&cfg, storage()).unwrap();
    assert_eq!(m.segments_recovered(), 0);
    assert_eq!(m.get("a").unwrap().partition_count(), 80);
    assert_eq!(
        names(&dir.path().join("a-79")),
        [potok_log::LEADER_EPOCH_CHECKPOINT_FILE]
    );
    let offsets = m.get("a").unwrap().partition(0).unwrap().offsets().unwrap();
    assert_eq!(offsets, (Offset(0), Offset(1)));
    // A crash (no close_all): the next start opens every partition again.
    drop(m);
    let m = TopicManager::open_with_storage(&cfg, storage()).unwrap();
    let b = m.get("b").unwrap();
    assert_eq!(b.partition_count(), 50);
    assert_eq!(
        b.partition(49).unwrap().offsets().unwrap(),
        (Offset(0), Offset(0))
    );
    assert_eq!(
        m.get("a").unwrap().partition(0).unwrap().offsets().unwrap(),
        (Offset(0), Offset(1))
    );
    m.close_all(1);
}

/// KIP-98 on the partition layer that Fetch and ListOffsets read through: a read_committed read
/// stops at the last stable offset (the first offset of the earliest open transaction) while a
/// read_uncommitted one goes to the high watermark, and a real COMMIT marker written through the
/// partition's append moves the last stable offset up to the high watermark.
#[test]
fn read_committed_stops_at_the_last_stable_offset() {
    use potok_records::{ControlRecordType, ProducerEpoch, ProducerId, RecordBatchBuilder};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path());
    let m = TopicManager::open(&cfg).unwrap();
    let t = m
        .create_topic(NewTopic {
            name: "txn".into(),
            partitions: 1,
            configs: BTreeMap::new(),
        })
        .unwrap();
    let p = t.partition(0).unwrap();
    let plain = RecordBatchBuilder::new()
        .key_value(1, None, Some(b"a"))
        .key_value(1, None, Some(b"b"))
        .build()
        .unwrap()
        .into_bytes();
    let txn = RecordBatchBuilder::new()
        .producer(ProducerId(7), ProducerEpoch(0), 0)
        .transactional(true)
        .key_value(1, None, Some(b"t"))
        .build()
        .unwrap()
        .into_bytes();
    p.append(plain.clone(), 0).unwrap();
    p.append(txn, 0).unwrap();
    p.append(plain, 0).unwrap();
    assert_eq!(
        p.stable_offsets().unwrap(),
        (Offset(0), Offset(5), Offset(2))
    );
    let committed = p.read_isolated(Offset(0), 1 << 20, true).unwrap();
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (Offset(5), Offset(2))
    );
    let got: Vec<i64> = potok_records::split_batches(committed.slice.read_bytes().unwrap())
        .map(|b| b.unwrap().header().last_offset().0)
        .collect();
    assert_eq!(got, vec![1], "only the batch below the open transaction");
    let uncommitted = p.read_isolated(Offset(0), 1 << 20, false).unwrap();
    let got = potok_records::split_batches(uncommitted.slice.read_bytes().unwrap()).count();
    assert_eq!(got, 3);
    // At or past the last stable offset a read_committed fetch is empty, not an error.
    assert!(p
        .read_isolated(Offset(3), 1 << 20, true)
        .unwrap()
        .slice
        .is_empty());
    let marker = RecordBatchBuilder::end_transaction_marker(
        ProducerId(7),
        ProducerEpoch(0),
        ControlRecordType::Commit,
        0,
        1,
    )
    .build()
    .unwrap()
    .into_bytes();
    p.append(marker, 0).unwrap();
    assert_eq!(
        p.stable_offsets().unwrap(),
        (Offset(0), Offset(6), Offset(6))
    );
    let got = potok_records::split_batches(
        p.read_isolated(Offset(0), 1 << 20, true)
            .unwrap()
            .slice
            .read_bytes()
            .unwrap(),
    )
    .count();
    assert_eq!(
        got, 4,
        "the committed transaction and its marker are readable"
    );
}

/// A read_committed read through the partition returns the aborted transactions overlapping
/// the batches read (what Fetch reports as `aborted_transactions`), a read_uncommitted one
/// none; markers go through `Partition::append_marker`, which fences a stale coordinator.
#[test]
fn read_committed_reads_report_aborted_transactions() {
    use potok_log::MarkerRequest;
    use potok_records::{LeaderEpoch, ProducerEpoch, ProducerId, RecordBatchBuilder};
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_in(dir.path());
    let m = TopicManager::open(&cfg).unwrap();
    let t = m
        .create_topic(NewTopic {
            name: "aborts".into(),
            partitions: 1,
            configs: BTreeMap::new(),
        })
        .unwrap();
    let p = t.partition(0).unwrap();
    let txn = |pid: i64| {
        RecordBatchBuilder::new()
            .producer(ProducerId(pid), ProducerEpoch(0), 0)
            .transactional(true)
            .key_value(1, None, Some(b"t"))
            .build()
            .unwrap()
            .into_bytes()
    };
    let marker = |pid: i64, commit: bool, coordinator_epoch: i32| MarkerRequest {
        producer_id: ProducerId(pid),
        producer_epoch: ProducerEpoch(1),
        commit,
        coordinator_epoch,
        leader_epoch: LeaderEpoch(-1),
        transaction_version: 2,
    };
    p.append(txn(1), 0).unwrap();
    p.append(txn(2), 0).unwrap();
    p.append_marker(&marker(1, false, 3), 0).unwrap();
    p.append_marker(&marker(2, true, 2), 0).unwrap();
    // Producer 1's coordinator moved to epoch 3: a marker from epoch 2 is fenced.
    assert_eq!(
        log_error_code(
            &p.append_marker(
                &MarkerRequest {
                    producer_epoch: ProducerEpoch(2),
                    ..marker(1, true, 2)
                },
                0
            )
            .unwrap_err()
        ),
        ErrorCode::TransactionCoordinatorFenced
    );
    let r = p.read_isolated(Offset(0), 1 << 20, true).unwrap();
    assert_eq!(r.last_stable_offset, Offset(4));
    let aborted: Vec<(i64, i64)> = r
        .aborted_transactions
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset.0))
        .collect();
    assert_eq!(aborted, vec![(1, 0)]);
    // A read starting after the abort marker gets none; read_uncommitted never does.
    assert!(p
        .read_isolated(Offset(3), 1 << 20, true)
        .unwrap()
        .aborted_transactions
        .is_empty());
    assert!(p
        .read_isolated(Offset(0), 1 << 20, false)
        .unwrap()
        .aborted_transactions
        .is_empty());
}
