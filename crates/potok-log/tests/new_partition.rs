//! A partition created with [`Log::create_managed`] (issue #14's batched creation): no segment
//! or index file until its first use, and a never-written partition that survives clean and
//! unclean restarts, retention, reads and deletion without gaining files.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use potok_log::{
    BoundedStorage, DirCheckpoint, EpochEntry, Log, LogConfig, Offset, OpenFiles, RealStorage,
    Storage, LEADER_EPOCH_CHECKPOINT_FILE,
};
use potok_records::LeaderEpoch;

fn storage() -> Arc<dyn Storage> {
    Arc::new(BoundedStorage::new(
        Arc::new(RealStorage),
        OpenFiles::new(16),
    ))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn reopen(dir: &Path, st: &Arc<dyn Storage>, clean: bool, rp: i64, epoch: i32) -> Log {
    let known = DirCheckpoint {
        clean_shutdown: clean,
        recovery_point: Some(rp),
        log_start_offset: Some(0),
    };
    Log::open_managed(
        dir,
        LogConfig::default(),
        Arc::clone(st),
        0,
        Some(known),
        Some(LeaderEpoch(epoch)),
    )
    .unwrap()
}

#[test]
fn a_new_partition_is_a_directory_and_its_epoch_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let st = storage();
    let log = Log::create_managed(
        &dir,
        LogConfig::default(),
        Arc::clone(&st),
        0,
        LeaderEpoch(3),
    )
    .unwrap();
    assert_eq!(names(&dir), [LEADER_EPOCH_CHECKPOINT_FILE]);
    assert_eq!(
        std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap(),
        "0\n1\n3 0\n"
    );
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.recovery_point()
        ),
        (Offset(0), Offset(0), Offset(0))
    );
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(3)),
        Some((LeaderEpoch(3), Offset(0)))
    );
    // Appending creates the segment; closing writes its indexes beside it.
    let mut log = log;
    log.append(simple_batch(2, 1000, 10, 1), 0).unwrap();
    assert!(dir.join("00000000000000000000.log").exists());
    log.close().unwrap();
    let files = names(&dir);
    for f in [
        "00000000000000000000.log",
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
    ] {
        assert!(files.iter().any(|n| n == f), "{files:?}");
    }
    // A clean reopen trusts those indexes (nothing rebuilt) and has the data.
    let log = reopen(&dir, &st, true, 2, 3);
    let rep = log.recovery_report();
    assert!(
        rep.rebuilt_indexes.is_empty() && rep.scanned_segments.is_empty(),
        "{rep:?}"
    );
    assert_eq!(read_all(&log, 0).len(), 2);
    assert_eq!(
        log.leader_epoch_entries(),
        [EpochEntry {
            epoch: 3,
            start_offset: 0
        }]
    );
}

#[test]
fn a_never_written_partition_gains_no_file_from_restarts_retention_or_lookups() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let st = storage();
    let mut log = Log::create_managed(
        &dir,
        LogConfig::default(),
        Arc::clone(&st),
        0,
        LeaderEpoch(0),
    )
    .unwrap();
    // Retention (which reads each segment's age), timestamp lookups and flushes need no file.
    let config = LogConfig {
        retention_ms: 1,
        retention_bytes: 0,
        ..LogConfig::default()
    };
    log.set_config(config).unwrap();
    assert!(log.apply_retention(1_000_000).unwrap().is_empty());
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp_and_offset().unwrap(), None);
    log.flush().unwrap();
    assert!(log.maybe_flush(1_000_000).is_ok());
    assert_eq!(names(&dir), [LEADER_EPOCH_CHECKPOINT_FILE]);
    // A clean shutdown and restart.
    log.close().unwrap();
    assert_eq!(names(&dir), [LEADER_EPOCH_CHECKPOINT_FILE]);
    let log = reopen(&dir, &st, true, 0, 0);
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(names(&dir), [LEADER_EPOCH_CHECKPOINT_FILE]);
    // A crash (no close) and an unclean restart: nothing to recover, nothing written.
    drop(log);
    let mut log = reopen(&dir, &st, false, 0, 0);
    assert!(log.recovery_report().scanned_segments.is_empty());
    assert_eq!(names(&dir), [LEADER_EPOCH_CHECKPOINT_FILE]);
    // Still a working log afterwards.
    log.append(simple_batch(1, 5, 5, 0), 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(1));
    assert_eq!(read_all(&log, 0).len(), 1);
    log.delete().unwrap();
    assert!(!dir.exists());
}

#[test]
fn a_read_at_the_end_of_a_never_written_partition_is_empty() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let st = storage();
    let log = Log::create_managed(
        &dir,
        LogConfig::default(),
        Arc::clone(&st),
        0,
        LeaderEpoch(0),
    )
    .unwrap();
    let slice = log.read(Offset(0), 1024, Some(Offset(0))).unwrap();
    assert!(slice.is_empty());
    assert!(log.read(Offset(1), 1024, None).is_err());
    // The read needed a descriptor, so the (empty) segment file now exists; closing gives it
    // its index files, so the next clean open has nothing to rebuild.
    log.close().unwrap();
    let log = reopen(&dir, &st, true, 0, 0);
    assert!(log.recovery_report().rebuilt_indexes.is_empty());
    assert_eq!(log.log_end_offset(), Offset(0));
}

#[test]
fn a_lost_or_torn_first_epoch_file_is_rebuilt_from_the_log() {
    // The first epoch file is written without fsync; a power loss can leave it missing or
    // empty. Either way the cache comes back from the batches.
    for damage in ["missing", "empty", "zeros"] {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("t-0");
        let st = storage();
        let mut log = Log::create_managed(
            &dir,
            LogConfig::default(),
            Arc::clone(&st),
            0,
            LeaderEpoch(2),
        )
        .unwrap();
        log.append_with_leader_epoch(simple_batch(3, 1000, 10, 1), LeaderEpoch(2), 0)
            .unwrap();
        drop(log);
        let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        match damage {
            "missing" => std::fs::remove_file(&path).unwrap(),
            "empty" => std::fs::write(&path, b"").unwrap(),
            _ => std::fs::write(&path, [0u8; 8]).unwrap(),
        }
        let log = reopen(&dir, &st, false, 0, 2);
        assert_eq!(log.log_end_offset(), Offset(3), "{damage}");
        assert_eq!(
            log.leader_epoch_entries(),
            [EpochEntry {
                epoch: 2,
                start_offset: 0
            }],
            "{damage}"
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "0\n1\n2 0\n",
            "{damage}: rewritten"
        );
    }
}
