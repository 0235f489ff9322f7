//! Append, read, lookup, truncation and reopen behaviour of the partition log.

mod common;

use common::*;
use std::sync::Arc;

use potok_log::{
    FaultyStorage, Log, LogConfig, LogError, Offset, RealStorage, Storage, TimestampPolicy,
};

#[test]
fn append_assigns_offsets_and_reads_back_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), 0);
    let a = log.append(simple_batch(3, 100, 10, 1), 0).unwrap();
    assert_eq!((a.first_offset, a.last_offset), (Offset(0), Offset(2)));
    let b = log.append(simple_batch(2, 200, 10, 2), 0).unwrap();
    assert_eq!((b.first_offset, b.last_offset), (Offset(3), Offset(4)));
    assert_eq!(b.max_timestamp, 200);
    assert_eq!(log.log_end_offset(), Offset(5));
    let recs = read_all(&log, 0);
    assert_eq!(
        recs.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    // Reading from the middle of a batch returns the whole batch (Kafka semantics).
    let s = log.read(Offset(4), 1 << 20, None).unwrap();
    assert_eq!(s.first_offset, Offset(3));
    assert_eq!(decode(&s).len(), 2);
    // At the log end: empty; beyond it: out of range.
    assert!(log.read(Offset(5), 100, None).unwrap().is_empty());
    assert!(matches!(
        log.read(Offset(6), 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn read_respects_max_bytes_but_returns_at_least_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), 0);
    let mut sizes = Vec::new();
    for i in 0..10 {
        let b = simple_batch(1, 10, 100, i);
        sizes.push(b.len());
        log.append(b, 0).unwrap();
    }
    // max_bytes smaller than one batch: still one whole batch.
    let s = log.read(Offset(0), 1, None).unwrap();
    assert_eq!(s.len, sizes[0]);
    // Exactly three batches fit.
    let three = sizes[0] + sizes[1] + sizes[2];
    let s = log.read(Offset(0), three + sizes[3] - 1, None).unwrap();
    assert_eq!(s.len, three);
    assert_eq!(decode(&s).len(), 3);
    // max_offset (high watermark) excludes the batch containing it and everything after.
    let s = log.read(Offset(2), 1 << 20, Some(Offset(5))).unwrap();
    assert_eq!(
        decode(&s).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    assert!(log
        .read(Offset(5), 1 << 20, Some(Offset(5)))
        .unwrap()
        .is_empty());
}

#[test]
fn rolls_on_segment_bytes_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..100u8 {
        log.append(simple_batch(2, i64::from(i), 50, i), 0).unwrap();
    }
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 5, "expected several segments, got {bases:?}");
    // Every segment file stays within segment.bytes.
    for b in &bases {
        let len = std::fs::metadata(potok_log::segment_file(dir.path(), b.0, "log"))
            .unwrap()
            .len();
        assert!(len <= 4096);
    }
    let recs = read_all(&log, 0);
    assert_eq!(recs.len(), 200);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.0, i as i64);
    }
    // Each closed segment's index was trimmed to its entries.
    let (entries, _) = log.index_entries(bases[0]).unwrap();
    assert!(entries > 0);
    let idx_len = std::fs::metadata(potok_log::segment_file(dir.path(), bases[0].0, "index"))
        .unwrap()
        .len();
    assert_eq!(idx_len, entries as u64 * 8);
    // The active segment's entries live in memory and its index file is not preallocated
    // (issue #14: no mapping or descriptor per partition); closing the log writes them.
    let active = *bases.last().unwrap();
    let active_index = potok_log::segment_file(dir.path(), active.0, "index");
    assert_eq!(std::fs::metadata(&active_index).unwrap().len(), 0);
    let (active_entries, _) = log.index_entries(active).unwrap();
    assert!(active_entries > 0);
    log.close().unwrap();
    let idx_len = std::fs::metadata(&active_index).unwrap().len();
    assert_eq!(idx_len, active_entries as u64 * 8);
}

#[test]
fn every_offset_lookup_finds_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let mut expected = Vec::new();
    for i in 0..60u8 {
        let n = (i % 4) as usize + 1;
        let info = log
            .append(simple_batch(n, 1000 + i64::from(i), 30, i), 0)
            .unwrap();
        expected.push((info.first_offset.0, info.last_offset.0));
    }
    for &(first, last) in &expected {
        for o in first..=last {
            let s = log.read(Offset(o), 1, None).unwrap();
            assert_eq!(s.first_offset, Offset(first), "offset {o}");
            let recs = decode(&s);
            assert_eq!(recs.last().unwrap().0, last);
        }
    }
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    // Timestamps 0, 10, 20, ... one record per 10 ms, several records per batch.
    let mut ts = 0;
    for _ in 0..50 {
        let recs: Vec<(i64, Vec<u8>)> = (0..3)
            .map(|_| {
                ts += 10;
                (ts, vec![1; 40])
            })
            .collect();
        log.append(batch(&recs), 0).unwrap();
    }
    for target in [0, 10, 11, 15, 20, 333, 1000, 1495, 1500] {
        let expected = if target <= 10 {
            0
        } else {
            (target + 9) / 10 - 1
        };
        let got = log.offset_for_timestamp(target).unwrap().unwrap();
        assert_eq!(
            got,
            (Offset(expected), (expected + 1) * 10),
            "target {target}"
        );
    }
    assert_eq!(log.offset_for_timestamp(1501).unwrap(), None);
    assert_eq!(
        log.max_timestamp_and_offset().unwrap(),
        Some((1500, Offset(149)))
    );
}

/// Timestamp lookups walk record prefixes through a mapping of the `.log` file (RealStorage) or
/// through page-sized read windows (FaultyStorage refuses to map logs); records smaller than a
/// page, straddling page boundaries and larger than several pages (whose bodies are skipped)
/// must all give the brute-force answer on both paths, on the active segment, after more
/// appends (the mapping is re-made), and after a roll and reopen, with either index density.
#[test]
fn offset_for_timestamp_matches_brute_force_across_record_sizes() {
    let dense = LogConfig {
        segment_bytes: 256 * 1024,
        ..small_config()
    };
    let real = || Arc::new(RealStorage) as Arc<dyn Storage>;
    let faulty = || Arc::new(FaultyStorage::new()) as Arc<dyn Storage>;
    for (config, storage) in [
        (LogConfig::default(), real as fn() -> Arc<dyn Storage>),
        (dense.clone(), real),
        (LogConfig::default(), faulty),
        (dense, faulty),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config.clone(), storage(), 0).unwrap();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut all: Vec<i64> = Vec::new();
        for round in 0..120 {
            if round == 60 {
                // A lookup now maps (or reads) the first half; later ones must see the rest.
                let t = 10 * all.len() as i64 - 200;
                let first = all.iter().position(|&x| x >= t).unwrap() as i64;
                assert_eq!(
                    log.offset_for_timestamp(t).unwrap().unwrap().0,
                    Offset(first)
                );
            }
            let n = 1 + next(12) as usize;
            let recs: Vec<(i64, Vec<u8>)> = (0..n)
                .map(|_| {
                    let len = match next(4) {
                        0 => next(40),
                        1 => 900 + next(300),
                        2 => 3000 + next(3000),
                        _ => 9000 + next(12000),
                    } as usize;
                    // Rising timestamps with jitter, so targets land all over the log and
                    // some records are out of order.
                    let ts = 10 * all.len() as i64 + next(40) as i64;
                    all.push(ts);
                    (ts, vec![7; len])
                })
                .collect();
            log.append(batch(&recs), 0).unwrap();
        }
        let brute = |target: i64| {
            all.iter()
                .position(|&t| t >= target)
                .map(|i| (Offset(i as i64), all[i]))
        };
        let end = 10 * all.len() as u64 + 60;
        let targets: Vec<i64> = (0..400).map(|_| next(end) as i64).collect();
        for &t in &targets {
            assert_eq!(log.offset_for_timestamp(t).unwrap(), brute(t), "target {t}");
        }
        log.roll(0).unwrap();
        log.close().unwrap();
        let log = Log::open(dir.path(), config, storage(), 0).unwrap();
        for &t in &targets {
            assert_eq!(log.offset_for_timestamp(t).unwrap(), brute(t), "target {t}");
        }
    }
}

#[test]
fn out_of_order_timestamps_use_the_running_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let tss = [500, 100, 900, 200, 300, 950, 10];
    for &t in &tss {
        log.append(batch(&[(t, vec![0; 200])]), 0).unwrap();
    }
    // First record with timestamp >= 250 is offset 0 (500).
    assert_eq!(
        log.offset_for_timestamp(250).unwrap(),
        Some((Offset(0), 500))
    );
    assert_eq!(
        log.offset_for_timestamp(600).unwrap(),
        Some((Offset(2), 900))
    );
    assert_eq!(
        log.offset_for_timestamp(920).unwrap(),
        Some((Offset(5), 950))
    );
    log.roll(0).unwrap();
    let dir2 = dir.path().to_path_buf();
    log.close().unwrap();
    let log = open(&dir2, small_config(), 0);
    assert_eq!(
        log.offset_for_timestamp(920).unwrap(),
        Some((Offset(5), 950))
    );
    assert_eq!(
        log.max_timestamp_and_offset().unwrap(),
        Some((950, Offset(5)))
    );
}

#[test]
fn clean_reopen_keeps_everything_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..40u8 {
        log.append(simple_batch(2, 5, 60, i), 0).unwrap();
    }
    let before = read_all(&log, 0);
    log.close().unwrap();
    assert!(dir.path().join(potok_log::CLEAN_SHUTDOWN_FILE).exists());
    let mut log = open(dir.path(), small_config(), 0);
    assert!(log.recovery_report().clean_shutdown);
    assert!(log.recovery_report().scanned_segments.is_empty());
    assert!(!dir.path().join(potok_log::CLEAN_SHUTDOWN_FILE).exists());
    assert_eq!(read_all(&log, 0), before);
    let info = log.append(simple_batch(1, 5, 10, 9), 0).unwrap();
    assert_eq!(info.first_offset, Offset(80));
}

#[test]
fn unclean_reopen_scans_from_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..40u8 {
        log.append(simple_batch(2, 5, 60, i), 0).unwrap();
    }
    let before = read_all(&log, 0);
    let segs = log.segment_base_offsets();
    drop(log); // no close: unclean
    let log = open(dir.path(), small_config(), 0);
    let rep = log.recovery_report().clone();
    assert!(!rep.clean_shutdown);
    // Rolled segments were flushed and checkpointed, so only the active one is scanned.
    assert_eq!(rep.scanned_segments, vec![segs.last().unwrap().0]);
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(read_all(&log, 0), before);
}

#[test]
fn truncate_to_removes_whole_batches_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..50u8 {
        log.append(simple_batch(3, i64::from(i) * 10, 40, i), 0)
            .unwrap();
    }
    // Offset 100 is inside batch [99, 101]: truncation removes that batch too.
    assert!(log.truncate_to(Offset(100), 0).unwrap());
    assert_eq!(log.log_end_offset(), Offset(99));
    let recs = read_all(&log, 0);
    assert_eq!(recs.len(), 99);
    assert_eq!(log.max_timestamp_and_offset().unwrap().unwrap().0, 320);
    let info = log.append(simple_batch(1, 7, 5, 0), 0).unwrap();
    assert_eq!(info.first_offset, Offset(99));
    // Truncating to a segment base empties that segment but keeps it.
    let bases = log.segment_base_offsets();
    let b = bases[1];
    log.truncate_to(b, 0).unwrap();
    assert_eq!(log.log_end_offset(), b);
    assert_eq!(log.segment_base_offsets(), vec![bases[0], b]);
    assert_eq!(read_all(&log, 0).len() as i64, b.0);
    // Below the first segment: start afresh there.
    log.truncate_to(Offset(0), 0).unwrap();
    assert_eq!(log.log_end_offset(), Offset(0));
    log.append(simple_batch(1, 7, 5, 0), 0).unwrap();
    drop(log);
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(read_all(&log, 0).len(), 1);
}

#[test]
fn follower_append_keeps_offsets_and_rejects_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let mut buf = Vec::new();
    buf.extend_from_slice(&batch_at(0, &[(1, vec![1]), (2, vec![2])]));
    buf.extend_from_slice(&batch_at(2, &[(3, vec![3])]));
    let info = log.append_as_follower(buf.into(), 0).unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.batches),
        (Offset(0), Offset(2), 2)
    );
    // A gap (compacted leader) is fine; overlap is not.
    log.append_as_follower(batch_at(10, &[(4, vec![4])]), 0)
        .unwrap();
    assert_eq!(log.log_end_offset(), Offset(11));
    assert!(matches!(
        log.append_as_follower(batch_at(5, &[(4, vec![4])]), 0),
        Err(LogError::OutOfOrderOffsets { .. })
    ));
    let offs: Vec<i64> = read_all(&log, 0).iter().map(|r| r.0).collect();
    assert_eq!(offs, vec![0, 1, 2, 10]);
    // Reading an offset inside the gap returns the next batch.
    assert_eq!(
        log.read(Offset(5), 100, None).unwrap().first_offset,
        Offset(10)
    );
}

#[test]
fn rejects_malformed_input_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), 0);
    let good = simple_batch(2, 1, 10, 0);
    let mut cut = good.to_vec();
    cut.truncate(cut.len() - 3);
    assert!(log.append(cut.into(), 0).is_err());
    let mut legacy = good.to_vec();
    legacy[16] = 1;
    assert!(log.append(legacy.into(), 0).is_err());
    let mut bad_count = good.to_vec();
    bad_count[57..61].copy_from_slice(&5i32.to_be_bytes());
    assert!(matches!(
        log.append(bad_count.into(), 0),
        Err(LogError::InvalidBatchFields(_))
    ));
    assert!(log.append(bytes::Bytes::new(), 0).is_err());
    assert_eq!(log.log_end_offset(), Offset(0));
    assert_eq!(log.size_bytes(), 0);
    let big = LogConfig {
        segment_bytes: 100,
        ..LogConfig::default()
    };
    let dir2 = tempfile::tempdir().unwrap();
    let mut small = open(dir2.path(), big, 0);
    assert!(matches!(
        small.append(simple_batch(1, 1, 200, 0), 0),
        Err(LogError::BatchTooLarge { .. })
    ));
}

#[test]
fn log_append_time_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_policy: TimestampPolicy::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), cfg, 0);
    let info = log.append(simple_batch(2, 5, 10, 0), 777).unwrap();
    assert_eq!(info.log_append_time_ms, Some(777));
    assert_eq!(info.max_timestamp, 777);
    let recs = read_all(&log, 0);
    assert!(recs.iter().all(|r| r.1 == 777));
}

#[test]
fn delete_records_before_advances_start_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..60u8 {
        log.append(simple_batch(2, 5, 60, i), 0).unwrap();
    }
    let segs_before = log.segment_base_offsets().len();
    assert_eq!(log.delete_records_before(Offset(50)).unwrap(), Offset(50));
    assert!(log.segment_base_offsets().len() < segs_before);
    assert!(log.segment_base_offsets()[0].0 <= 50);
    assert!(matches!(
        log.read(Offset(49), 10, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(!log.read(Offset(50), 10, None).unwrap().is_empty());
    assert!(log.delete_records_before(Offset(1000)).is_err());
    drop(log);
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(log.log_start_offset(), Offset(50));
    assert_eq!(read_all(&log, 50).first().unwrap().0, 50);
}

#[test]
fn closed_index_mappings_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_mapped_closed_indexes: 3,
        ..small_config()
    };
    let mut log = open(dir.path(), cfg, 0);
    for i in 0..200u8 {
        log.append(simple_batch(2, 5, 60, i), 0).unwrap();
    }
    assert!(log.segment_base_offsets().len() >= 8);
    assert_eq!(read_all(&log, 0).len(), 400);
    let mapped = log.mapped_closed_indexes();
    assert!(mapped > 0 && mapped <= 3, "mapped {mapped}");
}

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<potok_log::Log>();
    assert_send_sync::<potok_log::ReadSlice>();
}

#[test]
fn malformed_checkpoints_are_errors_or_rescans_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..20u8 {
        log.append(simple_batch(2, 5, 60, i), 0).unwrap();
    }
    log.close().unwrap();
    // A garbled recovery point only costs a full scan.
    std::fs::write(dir.path().join(potok_log::RECOVERY_POINT_FILE), b"0\nxyz\n").unwrap();
    let log = open(dir.path(), small_config(), 0);
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(
        log.recovery_report().scanned_segments.len(),
        log.segment_base_offsets().len()
    );
    assert_eq!(read_all(&log, 0).len(), 40);
    drop(log);
    // A garbled log start offset is refused with a clear error.
    for bad in [&b"1\n5\n"[..], b"0\n-3\n", b"0\n", &[0xff; 100][..]] {
        std::fs::write(dir.path().join(potok_log::LOG_START_OFFSET_FILE), bad).unwrap();
        let r = potok_log::Log::open(
            dir.path(),
            small_config(),
            std::sync::Arc::new(potok_log::RealStorage),
            0,
        );
        assert!(matches!(r, Err(LogError::Corrupt { .. })), "{bad:?}");
    }
}

#[test]
fn truncate_fully_and_start_at_moves_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    for i in 0..30u8 {
        log.append(simple_batch(2, 5, 60, i), 0).unwrap();
    }
    log.truncate_fully_and_start_at(Offset(1000), 0).unwrap();
    assert_eq!(log.log_start_offset(), Offset(1000));
    assert_eq!(log.log_end_offset(), Offset(1000));
    assert_eq!(log.segment_base_offsets(), vec![Offset(1000)]);
    assert!(matches!(
        log.read(Offset(0), 10, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let info = log
        .append_as_follower(batch_at(1000, &[(1, vec![1]), (2, vec![2])]), 0)
        .unwrap();
    assert_eq!(info.first_offset, Offset(1000));
    drop(log);
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(log.log_start_offset(), Offset(1000));
    assert_eq!(
        read_all(&log, 1000).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1000, 1001]
    );
    // Only the new segment's files are left.
    let logs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert_eq!(logs, 1);
}

/// Through a storage that keeps only one descriptor open, a log reopened after a clean close
/// appends at its end and reads back every batch, even while other logs take the descriptor.
#[test]
fn logs_sharing_one_open_file_read_and_append_across_reopen() {
    use potok_log::{BoundedStorage, OpenFiles, RealStorage, Storage};
    let dir = tempfile::tempdir().unwrap();
    let files = OpenFiles::new(1);
    let storage: Arc<dyn Storage> = Arc::new(BoundedStorage::new(
        Arc::new(RealStorage),
        Arc::clone(&files),
    ));
    let dirs: Vec<_> = (0..3).map(|i| dir.path().join(format!("t-{i}"))).collect();
    let open_all = |clean: bool| -> Vec<Log> {
        dirs.iter()
            .map(|d| {
                let known = potok_log::DirCheckpoint {
                    clean_shutdown: clean,
                    recovery_point: clean.then_some(2),
                    log_start_offset: clean.then_some(0),
                };
                let mut log = Log::open_managed(
                    d,
                    LogConfig::default(),
                    Arc::clone(&storage),
                    0,
                    Some(known),
                    Some(potok_records::LeaderEpoch(0)),
                )
                .unwrap();
                log.assign_leader_epoch(potok_records::LeaderEpoch(0))
                    .unwrap();
                log
            })
            .collect()
    };
    let mut logs = open_all(false);
    for round in 0..2u8 {
        for log in logs.iter_mut() {
            log.append(simple_batch(1, 1000, 10, round), 0).unwrap();
        }
    }
    for log in logs.drain(..) {
        log.close().unwrap();
    }
    let mut logs = open_all(true);
    for log in logs.iter_mut() {
        assert!(log.recovery_report().clean_shutdown);
        assert_eq!(
            log.append(simple_batch(1, 1000, 10, 9), 0)
                .unwrap()
                .first_offset,
            Offset(2)
        );
    }
    for log in &logs {
        assert_eq!(read_all(log, 0).len(), 3);
        // One read returns every batch of the segment.
        assert_eq!(
            decode(&log.read(Offset(0), 1 << 20, None).unwrap()).len(),
            3
        );
    }
    assert!(files.evictions() > 0);
    assert!(files.open_count() <= 1);
}
