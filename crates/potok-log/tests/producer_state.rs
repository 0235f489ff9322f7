//! Idempotent producer state in the log (issue #6, acceptance 1): duplicates among the last
//! five batches are answered with their original offsets, gaps and stale epochs are refused,
//! and the state is the same after a clean close/reopen, after a simulated crash (rebuilt from
//! the newest snapshot plus the log tail), after truncation and after retention. A property
//! test drives random produce/retry/roll/truncate/reopen/crash sequences against a model.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use potok_log::{
    FaultPlan, FaultyStorage, Log, LogConfig, LogError, Offset, ProducerStateManager, Storage,
    SNAPSHOT_SUFFIX,
};
use potok_records::{ProducerEpoch, ProducerId, RecordBatchBuilder};
use proptest::prelude::*;

/// An idempotent batch of `n` records with timestamp `ts`.
fn idem(pid: i64, epoch: i16, seq: i32, n: usize, ts: i64) -> Bytes {
    let mut b = RecordBatchBuilder::new().producer(ProducerId(pid), ProducerEpoch(epoch), seq);
    for i in 0..n {
        b = b.key_value(ts, None, Some(&[i as u8; 60]));
    }
    b.build().expect("build batch").into_bytes()
}

fn snapshots(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let (stem, suffix) = name.split_once('.')?;
            (suffix == SNAPSHOT_SUFFIX).then(|| stem.parse().unwrap())
        })
        .collect();
    v.sort_unstable();
    v
}

fn oos(r: potok_log::Result<potok_log::AppendInfo>) -> (i32, i32) {
    match r {
        Err(LogError::OutOfOrderSequence {
            sequence, expected, ..
        }) => (sequence, expected),
        other => panic!("expected OutOfOrderSequence, got {other:?}"),
    }
}

#[test]
fn duplicates_within_the_last_five_batches_get_their_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let mut originals = Vec::new();
    for i in 0..7 {
        // A plain batch in between, so original offsets differ from positions in the run.
        log.append(simple_batch(1, 5, 10, 0), 0).unwrap();
        let info = log
            .append(idem(1, 0, i * 3, 3, 100 + i64::from(i)), 0)
            .unwrap();
        assert!(!info.duplicate);
        originals.push(info);
    }
    let leo = log.log_end_offset();
    let size = log.size_bytes();
    for i in 2..7 {
        let info = log
            .append(idem(1, 0, i * 3, 3, 999), 0)
            .expect("retry of a recent batch");
        let orig = originals[i as usize];
        assert!(info.duplicate, "batch {i} must be a duplicate");
        assert_eq!(
            (info.first_offset, info.last_offset),
            (orig.first_offset, orig.last_offset)
        );
        assert_eq!(info.max_timestamp, 100 + i64::from(i), "original timestamp");
        assert_eq!((info.records, info.bytes), (0, 0));
    }
    assert_eq!(log.log_end_offset(), leo, "duplicates write nothing");
    assert_eq!(log.size_bytes(), size);
    // Batches older than the last five are no longer known: Kafka answers out of order.
    assert_eq!(oos(log.append(idem(1, 0, 3, 3, 0), 0)), (3, 21));
    // A retry with the right first sequence but another length is not the same batch.
    assert_eq!(oos(log.append(idem(1, 0, 18, 2, 0), 0)), (18, 21));
    let next = log.append(idem(1, 0, 21, 1, 0), 0).unwrap();
    assert_eq!(next.first_offset, leo);
    let e = log.producer_state().get(ProducerId(1)).unwrap();
    assert_eq!(e.last_sequence(), 21);
    assert_eq!(e.batches().len(), 5);
}

#[test]
fn sequence_gaps_and_stale_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    log.append(idem(7, 3, 0, 2, 1), 0).unwrap();
    log.append(idem(7, 3, 2, 2, 1), 0).unwrap();
    let leo = log.log_end_offset();
    // Gap.
    assert_eq!(oos(log.append(idem(7, 3, 5, 1, 1), 0)), (5, 4));
    // Stale epoch, even with the right sequence.
    match log.append(idem(7, 2, 4, 1, 1), 0) {
        Err(LogError::InvalidProducerEpoch {
            producer_id,
            epoch,
            current_epoch,
        }) => assert_eq!(
            (producer_id, epoch, current_epoch),
            (ProducerId(7), ProducerEpoch(2), ProducerEpoch(3))
        ),
        other => panic!("expected InvalidProducerEpoch, got {other:?}"),
    }
    // A bumped epoch (KIP-360) must restart at sequence 0.
    assert_eq!(oos(log.append(idem(7, 4, 4, 1, 1), 0)), (4, 0));
    assert_eq!(log.log_end_offset(), leo, "refused batches write nothing");
    log.append(idem(7, 4, 0, 1, 1), 0).unwrap();
    let e = log.producer_state().get(ProducerId(7)).unwrap();
    assert_eq!(
        (e.epoch, e.last_sequence(), e.batches().len()),
        (ProducerEpoch(4), 0, 1)
    );
    // The old epoch is now stale, and its batches are no longer duplicates.
    assert!(matches!(
        log.append(idem(7, 3, 2, 2, 1), 0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    // Negative sequences with a producer id are malformed (Kafka's INVALID_RECORD).
    assert!(matches!(
        log.append(idem(7, 4, -5, 1, 1), 0),
        Err(LogError::InvalidBatchFields(_))
    ));
}

#[test]
fn unknown_producers_may_start_anywhere_and_sequences_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    // KIP-360: a producer the partition does not know (new, expired or retained away) is
    // accepted at any sequence instead of getting UNKNOWN_PRODUCER_ID.
    log.append(idem(9, 0, i32::MAX - 1, 2, 1), 0).unwrap();
    assert_eq!(
        log.producer_state()
            .get(ProducerId(9))
            .unwrap()
            .last_sequence(),
        i32::MAX
    );
    // Sequences wrap to 0 after i32::MAX, as the clients do.
    log.append(idem(9, 0, 0, 3, 1), 0).unwrap();
    let dup = log.append(idem(9, 0, i32::MAX - 1, 2, 1), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.first_offset, Offset(0));
    // A batch that itself wraps.
    log.append(idem(10, 0, i32::MAX, 2, 1), 0).unwrap();
    log.append(idem(10, 0, 1, 1, 1), 0).unwrap();
    assert!(
        log.append(idem(10, 0, i32::MAX, 2, 1), 0)
            .unwrap()
            .duplicate
    );
}

#[test]
fn several_batches_in_one_append_are_checked_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let mut buf = idem(4, 0, 0, 2, 1).to_vec();
    buf.extend_from_slice(&idem(4, 0, 2, 2, 1));
    log.append(Bytes::from(buf), 0).unwrap();
    let mut bad = idem(4, 0, 4, 1, 1).to_vec();
    bad.extend_from_slice(&idem(4, 0, 6, 1, 1));
    assert_eq!(oos(log.append(Bytes::from(bad), 0)), (6, 5));
    assert_eq!(log.log_end_offset(), Offset(4), "nothing written");
}

#[test]
fn follower_appends_update_the_state_without_checks() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let at = |base: i64, pid: i64, epoch: i16, seq: i32| {
        RecordBatchBuilder::new()
            .base_offset(Offset(base))
            .producer(ProducerId(pid), ProducerEpoch(epoch), seq)
            .key_value(1, None, Some(b"v"))
            .build()
            .unwrap()
            .into_bytes()
    };
    log.append_as_follower(at(0, 5, 1, 0), 0).unwrap();
    // A gap the leader accepted (e.g. after a producer expired there) is replicated as is.
    log.append_as_follower(at(1, 5, 1, 40), 0).unwrap();
    let e = log.producer_state().get(ProducerId(5)).unwrap();
    assert_eq!((e.last_sequence(), e.batches().len()), (40, 2));
    // A duplicate of it appended as the leader now is recognised.
    let dup = log.append(at(0, 5, 1, 40), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.first_offset, Offset(1));
}

/// Appends a fixed workload across several segments: three producers, an epoch bump, plain
/// batches in between.
fn workload(log: &mut Log) {
    let mut seq = [0i32; 3];
    for i in 0..60i64 {
        let p = (i % 3) as usize;
        let n = 1 + (i % 4) as usize;
        let epoch = if p == 2 && i >= 30 { 1 } else { 0 };
        if p == 2 && i == 32 {
            seq[2] = 0;
        }
        log.append(idem(100 + p as i64, epoch, seq[p], n, i), 0)
            .unwrap();
        seq[p] += n as i32;
        if i % 5 == 0 {
            log.append(simple_batch(2, i, 50, 1), 0).unwrap();
        }
    }
}

fn expected_state(dir: &Path) -> ProducerStateManager {
    // Replaying the whole log as a follower rebuilds the state from scratch: the reference.
    let src = open(dir, small_config(), 0);
    let copy_dir = tempfile::tempdir().unwrap();
    let mut copy = open(copy_dir.path(), small_config(), 0);
    let mut next = src.log_start_offset().0;
    while next < src.log_end_offset().0 {
        let s = src.read(Offset(next), 1 << 20, None).unwrap();
        let bytes = s.read_bytes().unwrap();
        copy.append_as_follower(bytes, 0).unwrap();
        next = copy.log_end_offset().0;
    }
    copy.producer_state().clone()
}

#[test]
fn state_is_identical_after_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    workload(&mut log);
    assert!(
        log.segment_base_offsets().len() > 3,
        "the workload must roll"
    );
    let before = log.producer_state().clone();
    assert_eq!(before.len(), 3);
    let leo = log.log_end_offset();
    log.close().unwrap();
    // Snapshots on every roll and at the log end on close.
    let snaps = snapshots(dir.path());
    assert_eq!(snaps.last(), Some(&leo.0));
    assert!(snaps.len() > 3);

    let mut log = open(dir.path(), small_config(), 0);
    assert_eq!(log.recovery_report().producer_snapshot, Some(leo));
    assert_eq!(log.recovery_report().producer_batches_replayed, 0);
    assert_eq!(log.producer_state(), &before);
    // Duplicates are still answered with the original offsets after the restart.
    let e = before.get(ProducerId(101)).unwrap();
    let b = *e.batches().next().unwrap();
    let n = (b.last_offset.0 - b.first_offset.0 + 1) as usize;
    let dup = log.append(idem(101, 0, b.first_seq, n, 0), 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.first_offset, b.first_offset);
    log.close().unwrap();
    assert_eq!(expected_state(dir.path()), before);
}

fn faulty_open(dir: &Path, fs: &FaultyStorage, config: LogConfig) -> Log {
    Log::open(dir, config, Arc::new(fs.clone()) as Arc<dyn Storage>, 0).expect("open")
}

#[test]
fn state_is_rebuilt_from_snapshot_and_log_tail_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        fsync_before_ack: true,
        ..small_config()
    };
    let fs = FaultyStorage::new();
    let mut log = faulty_open(dir.path(), &fs, config.clone());
    workload(&mut log);
    let before = log.producer_state().clone();
    let active_base = *log.segment_base_offsets().last().unwrap();
    // Crash: no close, and everything not fsynced is lost.
    drop(log);
    fs.simulate_power_loss(false, 1).unwrap();
    let log = faulty_open(dir.path(), &fs, config.clone());
    let report = log.recovery_report();
    assert!(!report.clean_shutdown);
    assert_eq!(
        report.producer_snapshot,
        Some(active_base),
        "newest roll snapshot"
    );
    assert!(
        report.producer_batches_replayed > 0,
        "the active segment's batches are replayed"
    );
    assert_eq!(log.producer_state(), &before);
    drop(log);

    // A corrupt newest snapshot is deleted and the one before it plus a longer tail is used.
    let snaps = snapshots(dir.path());
    assert!(snaps.len() >= 2);
    let newest = snaps[snaps.len() - 1];
    let path = dir.path().join(format!("{newest:020}.{SNAPSHOT_SUFFIX}"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let log = faulty_open(dir.path(), &fs, config.clone());
    assert!(!path.exists(), "invalid snapshot removed");
    let report = log.recovery_report();
    assert_eq!(
        report.producer_snapshot,
        Some(Offset(snaps[snaps.len() - 2]))
    );
    assert_eq!(log.producer_state(), &before);
    drop(log);

    // Without any snapshot the whole log is replayed, to the same state.
    for off in snapshots(dir.path()) {
        std::fs::remove_file(dir.path().join(format!("{off:020}.{SNAPSHOT_SUFFIX}"))).unwrap();
    }
    let log = faulty_open(dir.path(), &fs, config);
    assert_eq!(log.recovery_report().producer_snapshot, None);
    assert_eq!(log.producer_state(), &before);
}

#[test]
fn a_torn_append_leaves_the_state_of_the_surviving_log() {
    // Crash part-way through writes at many points; after recovery the state must equal a
    // from-scratch replay of whatever survived, and acknowledged batches must still be known.
    for budget in (200..9000).step_by(617) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            fsync_before_ack: true,
            ..small_config()
        };
        let fs = FaultyStorage::new();
        let mut log = faulty_open(dir.path(), &fs, config.clone());
        fs.set_plan(FaultPlan {
            crash_after_bytes: Some(budget),
            ..FaultPlan::default()
        });
        let mut acked = Vec::new();
        for i in 0..200i32 {
            match log.append(idem(1, 0, i * 2, 2, 0), 0) {
                Ok(info) => acked.push((i * 2, info.first_offset)),
                Err(_) => break,
            }
        }
        drop(log);
        fs.simulate_power_loss(true, budget).unwrap();
        let log = faulty_open(dir.path(), &fs, config);
        let state = log.producer_state().clone();
        let leo = log.log_end_offset();
        drop(log);
        assert_eq!(state, expected_state(dir.path()), "budget {budget}");
        if let Some(&(seq, _)) = acked.last() {
            let e = state.get(ProducerId(1)).expect("acked producer known");
            assert!(e.last_sequence() > seq, "budget {budget}");
            let mut log = open(dir.path(), config_small_fsync(), 0);
            // At most the one unacknowledged batch may have survived after the last acked one,
            // so the last acked batch is among the last five: a retry is a duplicate.
            let dup = log.append(idem(1, 0, seq, 2, 0), 0).unwrap();
            assert!(dup.duplicate, "budget {budget}");
            assert_eq!(log.log_end_offset(), leo);
        }
    }
}

fn config_small_fsync() -> LogConfig {
    LogConfig {
        fsync_before_ack: true,
        ..small_config()
    }
}

#[test]
fn truncation_drops_newer_snapshots_and_rebuilds_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    workload(&mut log);
    let bases = log.segment_base_offsets();
    let cut = bases[bases.len() - 2].0 - 3;
    log.truncate_to(Offset(cut), 0).unwrap();
    assert!(snapshots(dir.path())
        .iter()
        .all(|&s| s <= log.log_end_offset().0));
    let after = log.producer_state().clone();
    log.close().unwrap();
    assert_eq!(after, expected_state(dir.path()));
    // And a producer continues right after its last surviving batch.
    let mut log = open(dir.path(), small_config(), 0);
    let e = after.get(ProducerId(100)).unwrap();
    let next = e.last_sequence() + 1;
    log.append(idem(100, e.epoch.0, next, 1, 0), 0).unwrap();

    log.truncate_fully_and_start_at(Offset(500), 0).unwrap();
    assert!(log.producer_state().is_empty());
    assert!(snapshots(dir.path()).is_empty());
}

#[test]
fn retention_keeps_producers_and_their_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    workload(&mut log);
    let before = log.producer_state().clone();
    let bases = log.segment_base_offsets();
    let keep_from = bases[bases.len() - 1];
    log.delete_records_before(keep_from).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![keep_from]);
    // Producers outlive their data (KIP-360) until they expire.
    assert_eq!(log.producer_state(), &before);
    assert_eq!(snapshots(dir.path()), vec![keep_from.0]);
    drop(log); // crash: the snapshot at the first segment and the tail rebuild the state
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(log.producer_state(), &before);
}

#[test]
fn producer_ids_expire() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: 1000,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone(), 0);
    log.append(idem(1, 0, 0, 1, 100), 100).unwrap();
    log.append(idem(2, 0, 0, 1, 900), 900).unwrap();
    assert_eq!(log.remove_expired_producers(1099), 0);
    assert_eq!(log.remove_expired_producers(1100), 1);
    assert!(log.producer_state().get(ProducerId(1)).is_none());
    // An expired producer is unknown again: any sequence is accepted.
    log.append(idem(1, 0, 77, 1, 1150), 1150).unwrap();
    log.close().unwrap();
    // Reopening later expires on load, and the snapshot does not bring them back.
    let log = open(dir.path(), config.clone(), 2000);
    assert_eq!(log.producer_state().len(), 1);
    assert!(log.producer_state().get(ProducerId(1)).is_some());
    drop(log);
    let mut log = open(dir.path(), config, 2000);
    // Appends sweep on their own every 10 minutes of the clock.
    log.append(simple_batch(1, 0, 1, 0), 2000 + 10 * 60 * 1000)
        .unwrap();
    assert!(log.producer_state().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Property test against a model.

#[derive(Clone, Debug)]
enum Kind {
    /// The next sequence in the current epoch.
    Next,
    /// Resend the k-th most recent batch of this producer (any age).
    Retry(usize),
    /// Skip a sequence number.
    Gap,
    /// An epoch below the current one.
    Stale,
    /// Epoch + 1 starting at sequence 0 (KIP-360), or wrongly at 1.
    Bump { bad: bool },
}

#[derive(Clone, Debug)]
enum Op {
    Produce { pid: i64, kind: Kind, n: usize },
    Plain,
    Roll,
    Truncate(f64),
    Reopen { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        8 => Just(Kind::Next),
        4 => (0usize..8).prop_map(Kind::Retry),
        1 => Just(Kind::Gap),
        1 => Just(Kind::Stale),
        1 => any::<bool>().prop_map(|bad| Kind::Bump { bad }),
    ];
    prop_oneof![
        12 => (0i64..3, kind, 1usize..4).prop_map(|(pid, kind, n)| Op::Produce { pid, kind, n }),
        2 => Just(Op::Plain),
        1 => Just(Op::Roll),
        1 => (0.0f64..=1.0).prop_map(Op::Truncate),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct MBatch {
    pid: i64,
    epoch: i16,
    first_seq: i32,
    n: usize,
    first_off: i64,
}

impl MBatch {
    fn last_seq(&self) -> i32 {
        self.first_seq + self.n as i32 - 1
    }
    fn last_off(&self) -> i64 {
        self.first_off + self.n as i64 - 1
    }
}

/// The model keeps the whole history of idempotent batches still in the log; a producer's state
/// is derived from it: its newest epoch and the last five batches of that epoch.
#[derive(Default)]
struct Model {
    history: Vec<MBatch>,
    leo: i64,
}

impl Model {
    fn of(&self, pid: i64) -> Vec<MBatch> {
        self.history
            .iter()
            .filter(|b| b.pid == pid)
            .copied()
            .collect()
    }

    fn current(&self, pid: i64) -> Option<(i16, Vec<MBatch>)> {
        let all = self.of(pid);
        let epoch = all.last()?.epoch;
        let run: Vec<MBatch> = all
            .iter()
            .rev()
            .take_while(|b| b.epoch == epoch)
            .copied()
            .collect();
        let mut last5: Vec<MBatch> = run.into_iter().take(5).collect();
        last5.reverse();
        Some((epoch, last5))
    }
}

enum Expect {
    Append,
    Duplicate(i64, i64),
    Stale,
    OutOfOrder,
}

fn check_state(log: &Log, m: &Model) -> Result<(), TestCaseError> {
    let state = log.producer_state();
    let pids: Vec<i64> = state.entries().map(|e| e.producer_id.0).collect();
    let mut want: Vec<i64> = m.history.iter().map(|b| b.pid).collect();
    want.sort_unstable();
    want.dedup();
    prop_assert_eq!(pids, want);
    for e in state.entries() {
        let (epoch, batches) = m.current(e.producer_id.0).unwrap();
        prop_assert_eq!(e.epoch.0, epoch);
        let got: Vec<(i32, i32, i64, i64)> = e
            .batches()
            .map(|b| (b.first_seq, b.last_seq, b.first_offset.0, b.last_offset.0))
            .collect();
        let want: Vec<(i32, i32, i64, i64)> = batches
            .iter()
            .map(|b| (b.first_seq, b.last_seq(), b.first_off, b.last_off()))
            .collect();
        prop_assert_eq!(got, want);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let config = LogConfig {
        segment_bytes: 1024,
        ..small_config()
    };
    let mut log = Some(open(dir.path(), config.clone(), 0));
    let mut m = Model::default();
    for op in ops {
        let l = log.as_mut().unwrap();
        match op {
            Op::Produce { pid, kind, n } => {
                let cur = m.current(pid);
                let (epoch, seq, n) = match (&kind, &cur) {
                    (Kind::Retry(k), _) => {
                        let all = m.of(pid);
                        match all.len().checked_sub(1 + k) {
                            Some(i) => (all[i].epoch, all[i].first_seq, all[i].n),
                            None => (0, 0, n),
                        }
                    }
                    (_, None) => (0, if matches!(kind, Kind::Gap) { 5 } else { 0 }, n),
                    (Kind::Next, Some((e, b))) => (*e, b.last().unwrap().last_seq() + 1, n),
                    (Kind::Gap, Some((e, b))) => (*e, b.last().unwrap().last_seq() + 2, n),
                    (Kind::Stale, Some((e, b))) if *e > 0 => {
                        (e - 1, b.last().unwrap().last_seq() + 1, n)
                    }
                    (Kind::Stale, Some((e, b))) => (*e, b.last().unwrap().last_seq() + 1, n),
                    (Kind::Bump { bad }, Some((e, _))) => (e + 1, i32::from(*bad), n),
                };
                let expect = match &cur {
                    None => Expect::Append,
                    Some((e, batches)) => {
                        let dup = batches
                            .iter()
                            .find(|b| b.epoch == epoch && b.first_seq == seq && b.n == n);
                        if let Some(d) = dup {
                            Expect::Duplicate(d.first_off, d.last_off())
                        } else if epoch < *e {
                            Expect::Stale
                        } else if epoch > *e {
                            if seq == 0 {
                                Expect::Append
                            } else {
                                Expect::OutOfOrder
                            }
                        } else if seq == batches.last().unwrap().last_seq() + 1 {
                            Expect::Append
                        } else {
                            Expect::OutOfOrder
                        }
                    }
                };
                let r = l.append(idem(pid, epoch, seq, n, 0), 0);
                match expect {
                    Expect::Append => {
                        let info = r.unwrap();
                        prop_assert!(!info.duplicate);
                        prop_assert_eq!(info.first_offset, Offset(m.leo));
                        m.history.push(MBatch {
                            pid,
                            epoch,
                            first_seq: seq,
                            n,
                            first_off: m.leo,
                        });
                        m.leo += n as i64;
                    }
                    Expect::Duplicate(first, last) => {
                        let info = r.unwrap();
                        prop_assert!(info.duplicate);
                        prop_assert_eq!((info.first_offset.0, info.last_offset.0), (first, last));
                    }
                    Expect::Stale => {
                        prop_assert!(
                            matches!(r, Err(LogError::InvalidProducerEpoch { .. })),
                            "{:?}",
                            r
                        );
                    }
                    Expect::OutOfOrder => {
                        prop_assert!(
                            matches!(r, Err(LogError::OutOfOrderSequence { .. })),
                            "{:?}",
                            r
                        );
                    }
                }
            }
            Op::Plain => {
                let info = l.append(simple_batch(2, 0, 30, 9), 0).unwrap();
                prop_assert_eq!(info.first_offset, Offset(m.leo));
                m.leo += 2;
            }
            Op::Roll => l.roll(0).unwrap(),
            Op::Truncate(f) => {
                let to = (m.leo as f64 * f).floor() as i64;
                l.truncate_to(Offset(to), 0).unwrap();
                m.leo = l.log_end_offset().0;
                m.history.retain(|b| b.last_off() < m.leo);
                if let Some(b) = m.history.last() {
                    prop_assert!(b.last_off() < m.leo);
                }
            }
            Op::Reopen { clean } => {
                let l = log.take().unwrap();
                if clean {
                    l.close().unwrap();
                } else {
                    drop(l);
                }
                log = Some(open(dir.path(), config.clone(), 0));
            }
        }
        let l = log.as_ref().unwrap();
        prop_assert_eq!(l.log_end_offset(), Offset(m.leo));
        check_state(l, &m)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn producer_state_matches_the_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
