//! Recovery from torn, garbage and zero-filled tails, missing or damaged index files,
//! corruption inside closed segments, and injected IO faults.

mod common;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use common::*;
use potok_log::{
    segment_file, FaultPlan, FaultyStorage, Log, LogConfig, LogError, Offset, Storage,
};

/// Fills a log with 40 batches of 2 records (offsets 0..80) and returns its records.
fn fill(dir: &Path) -> (Log, Vec<Rec>) {
    let mut log = open(dir, small_config(), 0);
    for i in 0..40u8 {
        log.append(simple_batch(2, 1000 + i64::from(i), 60, i), 0)
            .unwrap();
    }
    let recs = read_all(&log, 0);
    (log, recs)
}

fn active_log_file(log: &Log) -> std::path::PathBuf {
    let base = log.segment_base_offsets().last().unwrap().0;
    segment_file(log.dir(), base, "log")
}

fn append_to(path: &Path, bytes: &[u8]) {
    let mut f = OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// After a damaged tail: everything valid is back, the tail is gone, appends continue.
fn check_recovered(dir: &Path, before: &[Rec], expect_cut: bool) {
    let mut log = open(dir, small_config(), 0);
    let rep = log.recovery_report().clone();
    assert_eq!(read_all(&log, 0), before);
    if expect_cut {
        assert!(rep.truncated_bytes > 0, "{rep:?}");
    }
    let leo = before.last().unwrap().0 + 1;
    assert_eq!(log.log_end_offset(), Offset(leo));
    let info = log.append(simple_batch(1, 5, 5, 0), 0).unwrap();
    assert_eq!(info.first_offset, Offset(leo));
    drop(log);
    // And the repaired log reopens cleanly.
    let log = open(dir, small_config(), 0);
    assert_eq!(log.recovery_report().truncated_bytes, 0);
    assert_eq!(read_all(&log, 0).len(), before.len() + 1);
}

#[test]
fn garbage_tail_is_truncated() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (log, before) = fill(dir.path());
        let path = active_log_file(&log);
        if clean {
            log.close().unwrap();
        } else {
            drop(log);
        }
        let mut junk = vec![0u8; 777];
        let mut x = 0x12345678u32;
        for b in junk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *b = x as u8;
        }
        append_to(&path, &junk);
        check_recovered(dir.path(), &before, true);
    }
}

#[test]
fn half_written_batch_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = fill(dir.path());
    let path = active_log_file(&log);
    drop(log);
    // The next batch the log would have written, with its offset, cut in several places.
    let mut next = simple_batch(2, 9, 60, 0).to_vec();
    next[..8].copy_from_slice(&80i64.to_be_bytes());
    let orig_len = std::fs::metadata(&path).unwrap().len();
    for cut in [1, 12, 60, 61, next.len() - 1] {
        append_to(&path, &next[..cut]);
        check_recovered(dir.path(), &before, true);
        // check_recovered appended one more batch; cut the file back for the next round.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(orig_len).unwrap();
        drop(f);
        std::fs::remove_file(dir.path().join(potok_log::CLEAN_SHUTDOWN_FILE)).ok();
    }
}

#[test]
fn batch_with_bad_crc_at_the_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = fill(dir.path());
    let path = active_log_file(&log);
    drop(log);
    let mut next = simple_batch(2, 9, 60, 0).to_vec();
    next[..8].copy_from_slice(&80i64.to_be_bytes());
    let last = next.len() - 1;
    next[last] ^= 0xff;
    append_to(&path, &next);
    check_recovered(dir.path(), &before, true);
}

#[test]
fn zero_filled_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = fill(dir.path());
    let path = active_log_file(&log);
    drop(log);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + 8192).unwrap();
    drop(f);
    check_recovered(dir.path(), &before, true);
}

#[test]
fn deleted_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = fill(dir.path());
    let segs = log.segment_base_offsets();
    let entries: Vec<_> = segs
        .iter()
        .map(|s| log.index_entries(*s).unwrap())
        .collect();
    log.close().unwrap();
    for s in &segs {
        std::fs::remove_file(segment_file(dir.path(), s.0, "index")).unwrap();
    }
    let log = open(dir.path(), small_config(), 0);
    let rep = log.recovery_report();
    assert_eq!(
        rep.rebuilt_indexes,
        segs.iter().map(|s| s.0).collect::<Vec<_>>()
    );
    assert_eq!(read_all(&log, 0), before);
    for (s, e) in segs.iter().zip(&entries) {
        assert_eq!(log.index_entries(*s).unwrap(), *e, "segment {s}");
    }
    for r in &before {
        assert_eq!(
            log.offset_for_timestamp(r.1).unwrap().unwrap().0 .0,
            r.0 & !1
        );
    }
}

#[test]
fn truncated_time_index_is_rebuilt() {
    for cut_to in [5u64, 0] {
        let dir = tempfile::tempdir().unwrap();
        let (log, before) = fill(dir.path());
        let segs = log.segment_base_offsets();
        log.close().unwrap();
        let p = segment_file(dir.path(), segs[0].0, "timeindex");
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len >= 12);
        let cut = if cut_to == 0 { 0 } else { len - cut_to };
        OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let log = open(dir.path(), small_config(), 0);
        assert_eq!(log.recovery_report().rebuilt_indexes, vec![segs[0].0]);
        assert_eq!(read_all(&log, 0), before);
        // Timestamp lookups into the repaired segment work again.
        assert_eq!(
            log.offset_for_timestamp(1000).unwrap(),
            Some((Offset(0), 1000))
        );
        assert_eq!(
            log.offset_for_timestamp(1003).unwrap(),
            Some((Offset(6), 1003))
        );
        assert_eq!(std::fs::metadata(&p).unwrap().len() % 12, 0);
    }
}

#[test]
fn corruption_inside_a_closed_segment_is_reported_not_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let (log, before) = fill(dir.path());
    let segs = log.segment_base_offsets();
    log.close().unwrap();
    // Smash the length field of a batch in the middle of the first (closed, flushed) segment.
    let p = segment_file(dir.path(), segs[0].0, "log");
    let data = std::fs::read(&p).unwrap();
    let second = i32::from_be_bytes(data[8..12].try_into().unwrap()) as usize + 12;
    let mut bad = data.clone();
    bad[second + 8..second + 12].copy_from_slice(&(-5i32).to_be_bytes());
    std::fs::write(&p, &bad).unwrap();

    // Trusted path (clean shutdown, index intact): the damage is found when read.
    let log = open(dir.path(), small_config(), 0);
    let r = log.read(Offset(2), 1 << 20, None);
    assert!(matches!(r, Err(LogError::Corrupt { .. })), "{r:?}");
    // Offsets in later segments are unaffected.
    let later = segs[1].0;
    assert_eq!(read_all(&log, later), before[later as usize..].to_vec());
    drop(log);

    // Forcing a rebuild of that segment's index: the corruption is reported, data before it is
    // served, the segment's file is left alone, later segments are intact.
    std::fs::remove_file(segment_file(dir.path(), segs[0].0, "index")).unwrap();
    let log = open(dir.path(), small_config(), 0);
    let rep = log.recovery_report().clone();
    assert_eq!(rep.corrupt_segments.len(), 1, "{rep:?}");
    assert_eq!(rep.corrupt_segments[0].0, segs[0].0);
    assert_eq!(std::fs::read(&p).unwrap(), bad);
    let s = log.read(Offset(0), 1 << 20, None).unwrap();
    assert_eq!(
        decode(&s).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(read_all(&log, later), before[later as usize..].to_vec());
    drop(log);

    // Unclean shutdown with the corrupt segment past the recovery point: Kafka's rule,
    // truncate there and drop the later segments; never panic.
    std::fs::remove_file(dir.path().join(potok_log::RECOVERY_POINT_FILE)).unwrap();
    std::fs::remove_file(dir.path().join(potok_log::CLEAN_SHUTDOWN_FILE)).ok();
    let mut log = open(dir.path(), small_config(), 0);
    let rep = log.recovery_report().clone();
    assert!(rep.truncated_bytes > 0);
    assert_eq!(rep.deleted_segments.len(), segs.len() - 1);
    assert_eq!(log.log_end_offset(), Offset(2));
    assert_eq!(
        log.append(simple_batch(1, 1, 1, 1), 0)
            .unwrap()
            .first_offset,
        Offset(2)
    );
}

fn faulty(dir: &Path, fs: &FaultyStorage, config: LogConfig) -> potok_log::Result<Log> {
    Log::open(dir, config, Arc::new(fs.clone()) as Arc<dyn Storage>, 0)
}

/// In-process crash sweep: the storage "dies" after N bytes (the write crossing the budget is
/// torn), then a power loss discards or garbles everything not fsynced. Every acknowledged
/// (fsynced) append must survive, nothing invalid may be readable, and appends continue at the
/// log end offset.
#[test]
fn crash_after_n_bytes_then_power_loss_keeps_every_acked_batch() {
    let config = LogConfig {
        fsync_before_ack: true,
        ..small_config()
    };
    let mut budgets = Vec::new();
    let mut b = 1u64;
    while b < 12_000 {
        budgets.push(b);
        b = b * 5 / 4 + 37;
    }
    for (k, &budget) in budgets.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyStorage::new();
        let mut acked: Vec<Rec> = Vec::new();
        {
            let mut log = faulty(dir.path(), &fs, config.clone()).unwrap();
            fs.set_plan(FaultPlan {
                crash_after_bytes: Some(budget),
                max_write_chunk: Some(50),
                ..FaultPlan::default()
            });
            for i in 0..200u8 {
                let b = simple_batch(1 + (i % 3) as usize, 100 + i64::from(i), 40, i);
                match log.append(b.clone(), 0) {
                    Ok(info) => {
                        let recs = decode_batch(&b, info.first_offset.0);
                        acked.extend(recs);
                    }
                    Err(_) => break,
                }
            }
            assert!(fs.is_crashed(), "budget {budget} never reached");
        }
        fs.simulate_power_loss(k % 2 == 0, budget).unwrap();
        let mut log = open(dir.path(), config.clone(), 0);
        let got = read_all(&log, 0);
        assert!(
            got.len() >= acked.len(),
            "budget {budget}: lost acked records"
        );
        assert_eq!(&got[..acked.len()], &acked[..], "budget {budget}");
        let leo = log.log_end_offset();
        assert_eq!(leo.0, got.last().map_or(0, |r| r.0 + 1));
        assert_eq!(
            log.append(simple_batch(1, 1, 1, 1), 0)
                .unwrap()
                .first_offset,
            leo
        );
    }
}

/// Decodes a batch built by `simple_batch` as if appended at `base`.
fn decode_batch(b: &bytes::Bytes, base: i64) -> Vec<Rec> {
    let batch = potok_records::RecordBatch::new(b.clone()).unwrap();
    let h = *batch.header();
    batch
        .records()
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                base + i64::from(r.offset_delta),
                r.timestamp(&h),
                r.value.map(|v| v.to_vec()).unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn failed_write_is_undone_and_the_log_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyStorage::new();
    let mut log = faulty(dir.path(), &fs, small_config()).unwrap();
    log.append(simple_batch(2, 1, 10, 0), 0).unwrap();
    // Short writes are retried transparently.
    fs.set_plan(FaultPlan {
        max_write_chunk: Some(3),
        ..FaultPlan::default()
    });
    log.append(simple_batch(2, 2, 10, 0), 0).unwrap();
    // A write error mid-batch: the partial bytes are cut off again.
    fs.set_plan(FaultPlan {
        max_write_chunk: Some(20),
        ..FaultPlan::default()
    });
    let size = log.size_bytes();
    fs.set_plan(FaultPlan {
        fail_writes: 1,
        ..FaultPlan::default()
    });
    assert!(matches!(
        log.append(simple_batch(2, 3, 10, 0), 0),
        Err(LogError::Io { .. })
    ));
    assert_eq!(log.size_bytes(), size);
    assert_eq!(
        log.append(simple_batch(1, 4, 10, 0), 0)
            .unwrap()
            .first_offset,
        Offset(4)
    );
    assert_eq!(read_all(&log, 0).len(), 5);
    // A failed fsync takes the log offline (the page cache may have lost the data).
    fs.set_plan(FaultPlan {
        fail_syncs: 1,
        ..FaultPlan::default()
    });
    assert!(log.flush().is_err());
    assert!(matches!(
        log.append(simple_batch(1, 4, 10, 0), 0),
        Err(LogError::Offline)
    ));
    drop(log);
    let log = faulty(dir.path(), &fs, small_config()).unwrap();
    assert_eq!(read_all(&log, 0).len(), 5);
}

#[test]
fn rebuilding_into_a_smaller_index_keeps_the_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let big = LogConfig {
        segment_bytes: 1 << 20,
        ..small_config()
    };
    let mut log = open(dir.path(), big.clone(), 0);
    // Increasing timestamps with the largest at the very end of the segment.
    for i in 0..60i64 {
        log.append(simple_batch(1, 1000 + i, 300, 0), 0).unwrap();
    }
    log.append(simple_batch(1, 999_999, 300, 0), 0).unwrap();
    log.close().unwrap();
    std::fs::remove_file(segment_file(dir.path(), 0, "timeindex")).unwrap();
    // Reopen with room for only four time index entries: the rebuild cannot hold them all.
    let tiny = LogConfig {
        segment_index_bytes: 48,
        ..big
    };
    let mut log = open(dir.path(), tiny.clone(), 0);
    assert_eq!(log.recovery_report().rebuilt_indexes, vec![0]);
    log.roll(0).unwrap();
    log.close().unwrap();
    let log = open(dir.path(), tiny, 0);
    // The closed segment's time index kept a slot for its final (largest) entry, so it now
    // passes the sanity checks without another rebuild.
    assert!(log.recovery_report().rebuilt_indexes.is_empty());
    assert_eq!(
        log.max_timestamp_and_offset().unwrap(),
        Some((999_999, Offset(60)))
    );
    assert_eq!(
        log.offset_for_timestamp(1030).unwrap(),
        Some((Offset(30), 1030))
    );
}

#[test]
fn failed_roll_takes_the_log_offline_and_reopen_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyStorage::new();
    let mut log = faulty(dir.path(), &fs, small_config()).unwrap();
    for i in 0..30u8 {
        log.append(simple_batch(1, 1, 100, i), 0).unwrap();
    }
    let before = read_all(&log, 0);
    // The roll closes the old segment and creates the new one, then its checkpoint write fails.
    fs.set_plan(FaultPlan {
        fail_writes: 1,
        ..FaultPlan::default()
    });
    assert!(log.roll(0).is_err());
    assert!(matches!(
        log.append(simple_batch(1, 1, 1, 0), 0),
        Err(LogError::Offline)
    ));
    assert!(matches!(log.roll(0), Err(LogError::Offline)));
    drop(log);
    let mut log = faulty(dir.path(), &fs, small_config()).unwrap();
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(
        log.append(simple_batch(1, 1, 1, 0), 0)
            .unwrap()
            .first_offset,
        Offset(30)
    );
}

/// Recovery rebuilds the active segment's indexes in memory; their files are never
/// preallocated (once a preallocation of 10 MiB per index, zeroed by recovery, filled an 80 GB
/// disk after a crash of a broker with 4,000 partitions), so after a crash and recovery they
/// hold no more than their entries, which the next close writes.
#[test]
fn unclean_recovery_does_not_preallocate_index_files() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let mut log = open(dir.path(), config.clone(), 0);
    for i in 0..20u8 {
        log.append(simple_batch(2, 1000 + i64::from(i), 600, i), 0)
            .unwrap();
    }
    // No close: the next open is unclean and scans the active segment.
    drop(log);
    let log = open(dir.path(), config, 0);
    assert_eq!(log.recovery_report().scanned_segments, vec![0]);
    let (entries, time_entries) = log.index_entries(Offset(0)).unwrap();
    assert!(entries > 0 && time_entries > 0);
    for suffix in ["index", "timeindex"] {
        let meta = std::fs::metadata(segment_file(dir.path(), 0, suffix)).unwrap();
        assert_eq!(meta.len(), 0, "{suffix} is not preallocated");
        assert!(meta.blocks() * 512 <= 4096, "{suffix} allocates nothing");
    }
    log.close().unwrap();
    let meta = std::fs::metadata(segment_file(dir.path(), 0, "index")).unwrap();
    assert_eq!(meta.len(), entries as u64 * 8);
    // Closing adds the final time index entry (the segment's max timestamp) when it is new.
    let meta = std::fs::metadata(segment_file(dir.path(), 0, "timeindex")).unwrap();
    assert!([time_entries, time_entries + 1]
        .map(|n| n as u64 * 12)
        .contains(&meta.len()));
}

/// Opening and closing a log that nothing changed writes nothing: the checkpoints and the
/// producer-state snapshot already hold the right values, and rewriting them cost two fsyncs
/// each per partition at every start and stop (issue #14). A change is still written.
#[test]
fn unchanged_checkpoints_are_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyStorage::new();
    let mut log = faulty(dir.path(), &fs, small_config()).unwrap();
    log.append(simple_batch(3, 1000, 10, 1), 0).unwrap();
    log.close().unwrap();

    let before = fs.bytes_written();
    let log = faulty(dir.path(), &fs, small_config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    log.close().unwrap();
    assert_eq!(fs.bytes_written(), before, "an unchanged log was rewritten");

    let mut log = faulty(dir.path(), &fs, small_config()).unwrap();
    log.append(simple_batch(1, 2000, 10, 2), 0).unwrap();
    let appended = fs.bytes_written();
    log.close().unwrap();
    assert!(
        fs.bytes_written() > appended,
        "a changed log's checkpoints were not written"
    );
    let log = faulty(dir.path(), &fs, small_config()).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(log.recovery_point(), Offset(4));
    assert_eq!(log.log_end_offset(), Offset(4));
}

/// A log whose checkpoints the caller keeps per data directory writes none of its own: after
/// `close` the partition holds no checkpoint or marker, and a reopen told "clean" with the
/// right offsets scans nothing; told "not clean" it scans from the recovery point on. An old
/// partition's own files are read once (migration) and its marker removed.
#[test]
fn managed_logs_use_the_callers_checkpoints() {
    use potok_log::{
        DirCheckpoint, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
    };
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 2048,
        ..LogConfig::default()
    };
    let storage: Arc<dyn potok_log::Storage> = Arc::new(potok_log::RealStorage);
    // An old-layout partition: its own checkpoints and marker.
    let mut log = open(dir.path(), config.clone(), 0);
    for i in 0..20u8 {
        log.append(simple_batch(2, 1000 + i64::from(i), 300, i), 0)
            .unwrap();
    }
    log.delete_records_before(Offset(4)).unwrap();
    log.close().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    let log = Log::open_managed(
        dir.path(),
        config.clone(),
        Arc::clone(&storage),
        0,
        None,
        None,
    )
    .unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert!(log.recovery_report().scanned_segments.is_empty());
    assert_eq!(log.log_start_offset(), Offset(4));
    assert!(
        !dir.path().join(CLEAN_SHUTDOWN_FILE).exists(),
        "old marker removed"
    );
    let segments = log.segment_base_offsets().len();
    assert!(segments > 2);
    let (rp, start, leo) = (
        log.recovery_point().0,
        log.log_start_offset().0,
        log.log_end_offset(),
    );
    for f in [RECOVERY_POINT_FILE, LOG_START_OFFSET_FILE] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    log.close().unwrap();
    for f in [
        RECOVERY_POINT_FILE,
        LOG_START_OFFSET_FILE,
        CLEAN_SHUTDOWN_FILE,
    ] {
        assert!(!dir.path().join(f).exists(), "{f} written by a managed log");
    }
    let known = DirCheckpoint {
        clean_shutdown: true,
        recovery_point: Some(rp),
        log_start_offset: Some(start),
    };
    let mut log = Log::open_managed(
        dir.path(),
        config.clone(),
        Arc::clone(&storage),
        0,
        Some(known),
        None,
    )
    .unwrap();
    assert!(log.recovery_report().scanned_segments.is_empty());
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (Offset(4), leo)
    );
    // A crash: appends past the recovery point, no close. Only the segments from the one
    // holding the recovery point on are scanned.
    let rp = log.recovery_point().0;
    for i in 0..4u8 {
        log.append(simple_batch(2, 2000 + i64::from(i), 300, i), 0)
            .unwrap();
    }
    let bases: Vec<i64> = log.segment_base_offsets().iter().map(|o| o.0).collect();
    let from = bases.iter().copied().filter(|&b| b <= rp).max().unwrap();
    let expected: Vec<i64> = bases.iter().copied().filter(|&b| b >= from).collect();
    drop(log);
    let unclean = DirCheckpoint {
        clean_shutdown: false,
        ..known
    };
    let log = Log::open_managed(dir.path(), config, storage, 0, Some(unclean), None).unwrap();
    assert_eq!(log.recovery_report().scanned_segments, expected);
    assert!(expected.len() < bases.len());
    assert_eq!(log.log_end_offset(), Offset(leo.0 + 8));
    for f in [
        RECOVERY_POINT_FILE,
        LOG_START_OFFSET_FILE,
        CLEAN_SHUTDOWN_FILE,
    ] {
        assert!(!dir.path().join(f).exists(), "{f} written by a managed log");
    }
}

/// Reopening an unchanged empty partition with its leader epoch rewrites no
/// `leader-epoch-checkpoint` (the file keeps its inode): recovery drops the entry starting at
/// the log end, and the epoch assigned in the same open puts it back. With data appended in a
/// new epoch the file is rewritten.
#[test]
fn reopening_with_the_same_leader_epoch_rewrites_no_epoch_checkpoint() {
    use potok_records::LeaderEpoch;
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn potok_log::Storage> = Arc::new(potok_log::RealStorage);
    let open = |epoch: i32| {
        Log::open_managed(
            dir.path(),
            LogConfig::default(),
            Arc::clone(&storage),
            0,
            Some(potok_log::DirCheckpoint::default()),
            Some(LeaderEpoch(epoch)),
        )
        .unwrap()
    };
    let inode = || {
        std::fs::metadata(dir.path().join(potok_log::LEADER_EPOCH_CHECKPOINT_FILE))
            .unwrap()
            .ino()
    };
    open(0).close().unwrap();
    let first = inode();
    for _ in 0..3 {
        let log = open(0);
        assert_eq!(
            log.end_offset_for_epoch(LeaderEpoch(0)),
            Some((LeaderEpoch(0), Offset(0)))
        );
        log.close().unwrap();
        assert_eq!(inode(), first, "leader-epoch-checkpoint rewritten");
    }
    let log = open(3);
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(3)));
    log.close().unwrap();
    assert_ne!(inode(), first);
}

/// Closing a log nothing was appended to writes no producer-state snapshot (two fsyncs per
/// partition at every shutdown of a broker with many idle partitions); one with data does.
#[test]
fn closing_a_never_written_log_writes_no_producer_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".snapshot"))
            .count()
    };
    open(dir.path(), LogConfig::default(), 0).close().unwrap();
    assert_eq!(snapshots(dir.path()), 0);
    let log = open(dir.path(), LogConfig::default(), 0);
    assert!(log.recovery_report().clean_shutdown);
    let mut log = log;
    log.append(simple_batch(1, 1000, 10, 1), 0).unwrap();
    log.close().unwrap();
    assert_eq!(snapshots(dir.path()), 1);
}
