//! The leader-epoch cache and its `leader-epoch-checkpoint`: kept on append, truncation and
//! log-start advance, rebuilt after a crash or a lost file, and OffsetForLeaderEpoch lookups.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use common::*;
use potok_log::{
    EpochEntry, FaultPlan, FaultyStorage, Log, LogConfig, Storage, LEADER_EPOCH_CHECKPOINT_FILE,
};
use potok_records::{set_partition_leader_epoch, split_batches, LeaderEpoch, Offset};

/// A batch of `n` small records stamped with partition leader epoch `epoch`.
fn epoch_batch(n: usize, epoch: i32, tag: u8) -> Bytes {
    epoch_batch_at(n, epoch, tag, 1000)
}

/// Like [`epoch_batch`] with the records stamped `ts`.
fn epoch_batch_at(n: usize, epoch: i32, tag: u8, ts: i64) -> Bytes {
    let mut b = BytesMut::from(&simple_batch(n, ts, 20, tag)[..]);
    set_partition_leader_epoch(&mut b, LeaderEpoch(epoch)).unwrap();
    b.freeze()
}

fn entries(log: &Log) -> Vec<(i32, i64)> {
    log.leader_epoch_entries()
        .iter()
        .map(|e: &EpochEntry| (e.epoch, e.start_offset))
        .collect()
}

fn file_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap()
}

/// The entries a cache built from the log's batches must have: the first batch of each new
/// higher epoch.
fn entries_from_batches(log: &Log) -> Vec<(i32, i64)> {
    let mut out: Vec<(i32, i64)> = Vec::new();
    let mut next = log.log_start_offset().0;
    while next < log.log_end_offset().0 {
        let slice = log.read(Offset(next), 1 << 20, None).unwrap();
        let bytes = slice.read_bytes().unwrap();
        for b in split_batches(bytes) {
            let h = *b.unwrap().header();
            let e = h.partition_leader_epoch;
            if e >= 0 && out.last().is_none_or(|l| l.0 < e) {
                out.push((e, h.base_offset));
            }
            next = h.last_offset().0 + 1;
        }
    }
    out
}

#[test]
fn appends_record_new_epochs_and_the_file_follows() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    assert_eq!(file_text(dir.path()), "0\n0\n");
    for (epoch, n) in [(0, 2), (0, 3), (2, 1), (2, 4), (5, 2)] {
        log.append(epoch_batch(n, epoch, 1), 0).unwrap();
    }
    assert_eq!(entries(&log), vec![(0, 0), (2, 5), (5, 10)]);
    assert_eq!(file_text(dir.path()), "0\n3\n0 0\n2 5\n5 10\n");
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(5)));
    let end = |e| log.end_offset_for_epoch(LeaderEpoch(e));
    assert_eq!(end(5), Some((LeaderEpoch(5), Offset(12))));
    assert_eq!(end(2), Some((LeaderEpoch(2), Offset(10))));
    assert_eq!(end(1), Some((LeaderEpoch(0), Offset(5))));
    assert_eq!(end(6), None);
    assert_eq!(end(-1), None);
    assert_eq!(log.epoch_for_offset(Offset(7)), Some(LeaderEpoch(2)));

    // A new leader epoch starts at the log end offset before any batch carries it.
    log.assign_leader_epoch(LeaderEpoch(6)).unwrap();
    let end = |e| log.end_offset_for_epoch(LeaderEpoch(e));
    assert_eq!(end(6), Some((LeaderEpoch(6), Offset(12))));
    assert_eq!(end(5), Some((LeaderEpoch(5), Offset(12))));
    // Truncation drops the epochs that started at or after the new end.
    log.truncate_to(Offset(12), 0).unwrap();
    assert_eq!(entries(&log), vec![(0, 0), (2, 5), (5, 10)]);
    log.truncate_to(Offset(10), 0).unwrap();
    assert_eq!(entries(&log), vec![(0, 0), (2, 5)]);
    assert_eq!(
        log.end_offset_for_epoch(LeaderEpoch(2)),
        Some((LeaderEpoch(2), Offset(10)))
    );
    // DeleteRecords keeps the epoch of the new first offset, moved up to it.
    log.delete_records_before(Offset(6)).unwrap();
    assert_eq!(entries(&log), vec![(2, 6)]);
    assert_eq!(file_text(dir.path()), "0\n1\n2 6\n");
    log.close().unwrap();

    let log = open(dir.path(), small_config(), 0);
    assert_eq!(entries(&log), vec![(2, 6)]);
}

/// A replica made leader in an epoch that appended nothing, then a follower of another leader
/// whose log lacks that epoch: the leader answers DivergingEpoch at the follower's log end, and
/// the follower's truncation to its own log end must still drop the empty epoch, or its next
/// fetch names the same last fetched epoch and the pair loop for ever (the stall of the long
/// chaos runs, docs/reliability.md; Kafka's `UnifiedLog.truncateTo` does the same).
#[test]
fn truncation_to_the_log_end_drops_an_epoch_without_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    log.append(epoch_batch(3, 4, 1), 0).unwrap();
    log.assign_leader_epoch(LeaderEpoch(5)).unwrap();
    assert_eq!(entries(&log), vec![(4, 0), (5, 3)]);
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(5)));
    // Nothing to remove: the log end stays, but epoch 5 (no batch) goes, on disk too.
    assert!(!log.truncate_to(Offset(3), 0).unwrap());
    assert_eq!(log.log_end_offset(), Offset(3));
    assert_eq!(entries(&log), vec![(4, 0)]);
    assert_eq!(log.latest_epoch(), Some(LeaderEpoch(4)));
    assert_eq!(file_text(dir.path()), "0\n1\n4 0\n");
    // A target beyond the log end likewise keeps the log and drops nothing else.
    assert!(!log.truncate_to(Offset(9), 0).unwrap());
    assert_eq!(entries(&log), vec![(4, 0)]);
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(entries(&log), vec![(4, 0)]);
}

#[test]
fn missing_or_damaged_file_is_rebuilt_from_the_batches() {
    for damage in ["remove", "garbage", "behind"] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config(), 0);
        for (i, epoch) in [1, 1, 3, 4, 4, 9].into_iter().enumerate() {
            log.append(epoch_batch(2, epoch, i as u8), 0).unwrap();
        }
        let want = vec![(1, 0), (3, 4), (4, 6), (9, 10)];
        assert_eq!(entries(&log), want);
        log.close().unwrap();
        let path = dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE);
        match damage {
            "remove" => std::fs::remove_file(&path).unwrap(),
            "garbage" => std::fs::write(&path, b"0\n7\n1 x\n").unwrap(),
            // An older file after an unclean shutdown: the tail is assigned again.
            _ => {
                std::fs::write(&path, b"0\n1\n1 0\n").unwrap();
                std::fs::remove_file(dir.path().join(potok_log::CLEAN_SHUTDOWN_FILE)).unwrap();
                std::fs::write(dir.path().join(potok_log::RECOVERY_POINT_FILE), b"0\n0\n").unwrap();
            }
        }
        let log = open(dir.path(), small_config(), 0);
        assert_eq!(entries(&log), want, "{damage}");
        assert_eq!(
            file_text(dir.path()),
            "0\n4\n1 0\n3 4\n4 6\n9 10\n",
            "{damage}"
        );
    }
}

#[test]
fn retention_advances_the_first_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1000,
        ..small_config()
    };
    let mut log = open(dir.path(), config, 0);
    for i in 0..60u8 {
        let ts = 1000 * i64::from(i);
        log.append(epoch_batch_at(2, i32::from(i / 20), i, ts), 0)
            .unwrap();
    }
    assert_eq!(entries(&log), vec![(0, 0), (1, 40), (2, 80)]);
    // Segments whose newest record is older than 49 000 expire: the log then starts inside
    // epoch 1.
    let deleted = log.apply_retention(50_000).unwrap();
    assert!(!deleted.is_empty());
    let start = log.log_start_offset().0;
    assert!((41..80).contains(&start), "{start}");
    assert_eq!(entries(&log).first().map(|e| e.1), Some(start));
    assert_eq!(entries(&log), entries_from_batches(&log));
}

/// Retention rewrites the checkpoint without fsyncs (it runs under the partition's lock; Kafka's
/// KAFKA-15046). A power loss right after it leaves the file garbled or empty, and the next open
/// rebuilds it to match the surviving batches, starting at the log start offset.
#[test]
fn retention_rewrite_lost_to_a_power_loss_is_rebuilt() {
    for garble in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_ms: 1000,
            fsync_before_ack: true,
            ..small_config()
        };
        let fs = FaultyStorage::new();
        let mut log = faulty(dir.path(), &fs, config.clone()).unwrap();
        for i in 0..60u8 {
            let ts = 1000 * i64::from(i);
            log.append(epoch_batch_at(2, i32::from(i / 20), i, ts), 0)
                .unwrap();
        }
        let synced = file_text(dir.path());
        assert!(!log.apply_retention(50_000).unwrap().is_empty());
        let start = log.log_start_offset().0;
        let rewritten = file_text(dir.path());
        assert_ne!(rewritten, synced);
        drop(log);
        fs.simulate_power_loss(garble, 7).unwrap();
        // The unsynced rewrite is gone: the file is empty or garbage now.
        let lost = std::fs::read(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_ne!(lost, rewritten.as_bytes(), "garble {garble}");
        let log = open(dir.path(), config, 0);
        assert_eq!(log.log_start_offset().0, start);
        assert_eq!(entries(&log), entries_from_batches(&log), "garble {garble}");
        assert_eq!(entries(&log).first().map(|e| e.1), Some(start));
    }
}

fn faulty(dir: &Path, fs: &FaultyStorage, config: LogConfig) -> potok_log::Result<Log> {
    Log::open(dir, config, Arc::new(fs.clone()) as Arc<dyn Storage>, 0)
}

/// In-process crash sweep: the storage dies after N bytes and a power loss discards or garbles
/// what was not fsynced. After recovery the cache matches the surviving batches exactly, and
/// every acknowledged epoch is still there.
#[test]
fn crash_at_any_byte_leaves_a_cache_matching_the_log() {
    let config = LogConfig {
        fsync_before_ack: true,
        ..small_config()
    };
    for (k, budget) in (200..6000u64).step_by(370).enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyStorage::new();
        let mut acked: Vec<(i32, i64)> = Vec::new();
        {
            let mut log = faulty(dir.path(), &fs, config.clone()).unwrap();
            fs.set_plan(FaultPlan {
                crash_after_bytes: Some(budget),
                max_write_chunk: Some(50),
                ..FaultPlan::default()
            });
            for i in 0..200u8 {
                let epoch = i32::from(i / 3);
                match log.append(epoch_batch(1, epoch, i), 0) {
                    Ok(info) => {
                        if acked.last().is_none_or(|l| l.0 < epoch) {
                            acked.push((epoch, info.first_offset.0));
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        fs.simulate_power_loss(k % 2 == 0, budget).unwrap();
        let log = open(dir.path(), config.clone(), 0);
        let got = entries(&log);
        assert_eq!(got, entries_from_batches(&log), "budget {budget}");
        assert_eq!(&got[..acked.len()], &acked[..], "budget {budget}");
    }
}
