//! The `.txnindex` of aborted transactions (issue #21, partition side): every ABORT marker of a
//! transaction with data in the log makes an entry (first offset, marker offset, last stable
//! offset after it) in the segment holding the marker, and a read_committed fetch collects the
//! entries overlapping what it reads. A property test drives transactional batches, markers,
//! rolls, clean reopens, crashes (unclean recovery, also with a torn `.txnindex`), truncations,
//! log start moves and retention against a model, checking the collected entries after each
//! step over the whole log and random ranges; unit tests cover the marker epoch checks.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use common::*;
use potok_log::{AbortedTxn, Log, LogError, MarkerRequest, Offset, TXN_INDEX_SUFFIX};
use potok_records::{
    ControlRecordType, LeaderEpoch, ProducerEpoch, ProducerId, RecordBatchBuilder,
};
use proptest::prelude::*;

/// A batch of producer `pid` (epoch 0) starting at sequence `seq`.
fn data(pid: i64, seq: i32, n: usize, transactional: bool) -> Bytes {
    let mut b = RecordBatchBuilder::new()
        .producer(ProducerId(pid), ProducerEpoch(0), seq)
        .transactional(transactional);
    for i in 0..n {
        b = b.key_value(10, None, Some(&[i as u8; 60]));
    }
    b.build().expect("build batch").into_bytes()
}

fn marker(pid: i64, commit: bool) -> Bytes {
    let kind = if commit {
        ControlRecordType::Commit
    } else {
        ControlRecordType::Abort
    };
    RecordBatchBuilder::end_transaction_marker(ProducerId(pid), ProducerEpoch(0), kind, 0, 10)
        .build()
        .expect("build marker")
        .into_bytes()
}

fn request(pid: i64, epoch: i16, commit: bool, coordinator_epoch: i32, tv: i16) -> MarkerRequest {
    MarkerRequest {
        producer_id: ProducerId(pid),
        producer_epoch: ProducerEpoch(epoch),
        commit,
        coordinator_epoch,
        leader_epoch: LeaderEpoch(0),
        transaction_version: tv,
    }
}

fn entry(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: ProducerId(pid),
        first_offset: Offset(first),
        last_offset: Offset(last),
        last_stable_offset: Offset(lso),
    }
}

fn txn_index_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(TXN_INDEX_SUFFIX))
        .collect();
    out.sort();
    out
}

#[test]
fn an_abort_adds_an_entry_in_its_segment_and_fetches_collect_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    let t1 = log.append(data(1, 0, 2, true), 0).unwrap();
    let t2 = log.append(data(2, 0, 1, true), 0).unwrap();
    // A committed transaction makes no entry, and no file.
    log.append(marker(2, true), 0).unwrap();
    assert!(txn_index_files(dir.path()).is_empty());
    let abort = log.append(marker(1, false), 0).unwrap();
    let e = entry(
        1,
        t1.first_offset.0,
        abort.first_offset.0,
        abort.first_offset.0 + 1,
    );
    assert_eq!(
        log.collect_aborted_transactions(Offset(0), log.log_end_offset()),
        vec![e]
    );
    assert_eq!(txn_index_files(dir.path()).len(), 1);
    // A read_committed read of the transaction's data reports it; one after the marker does not.
    let s = log.read(Offset(0), 1 << 20, None).unwrap();
    assert_eq!(s.end_offset, log.log_end_offset());
    assert_eq!(
        log.collect_aborted_transactions(Offset(0), s.end_offset),
        vec![e]
    );
    assert_eq!(
        log.collect_aborted_transactions(t2.first_offset, Offset(t2.first_offset.0 + 1)),
        vec![e],
        "the aborted transaction spans the read"
    );
    let after = Offset(abort.first_offset.0 + 1);
    assert!(log
        .collect_aborted_transactions(after, Offset(after.0 + 10))
        .is_empty());
    // An ABORT of a producer with no data here makes no entry (Kafka emits no completed
    // transaction for it).
    log.append(marker(3, false), 0).unwrap();
    assert_eq!(
        log.collect_aborted_transactions(Offset(0), log.log_end_offset()),
        vec![e]
    );
    // The entry survives a clean reopen and a crash.
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(
        log.collect_aborted_transactions(Offset(0), log.log_end_offset()),
        vec![e]
    );
    drop(log);
    let mut log = open(dir.path(), small_config(), 0);
    assert_eq!(
        log.collect_aborted_transactions(Offset(0), log.log_end_offset()),
        vec![e]
    );
    // Truncation below the marker removes the entry and reopens the transaction.
    log.truncate_to(abort.first_offset, 0).unwrap();
    assert!(log
        .collect_aborted_transactions(Offset(0), log.log_end_offset())
        .is_empty());
    assert_eq!(log.first_unstable_offset(), Some(t1.first_offset));
    // Deleting everything removes the files with the segments.
    log.truncate_fully_and_start_at(Offset(100), 0).unwrap();
    assert!(txn_index_files(dir.path()).is_empty());
}

#[test]
fn markers_check_producer_and_coordinator_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    log.append(data(1, 0, 1, true), 0).unwrap();
    // transaction.version 2: the marker carries the epoch bumped by EndTxn; the current epoch
    // is a stale marker.
    assert!(matches!(
        log.append_marker(&request(1, 0, false, 5, 2), 0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    let abort = log.append_marker(&request(1, 1, false, 5, 2), 0).unwrap();
    assert_eq!(
        log.collect_aborted_transactions(Offset(0), abort.last_offset)
            .len(),
        1
    );
    let p = log.producer_state().get(ProducerId(1)).unwrap().clone();
    assert_eq!((p.epoch, p.coordinator_epoch), (ProducerEpoch(1), 5));
    // A late data batch of the ended transaction's epoch is fenced (KIP-890).
    assert!(matches!(
        log.append(data(1, 1, 1, true), 0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    // A marker from an older coordinator is fenced; an older producer epoch is refused at
    // any transaction version.
    assert!(matches!(
        log.append_marker(&request(1, 2, true, 4, 2), 0),
        Err(LogError::TransactionCoordinatorFenced { current: 5, .. })
    ));
    assert!(matches!(
        log.append_marker(&request(1, 0, true, 5, 1), 0),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
    // transaction.version 1 accepts a marker at the current epoch.
    log.append_marker(&request(1, 1, true, 6, 1), 0).unwrap();
    // The epochs survive a clean reopen (snapshot v3) and a crash (replay of the markers).
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(
        log.producer_state()
            .get(ProducerId(1))
            .unwrap()
            .coordinator_epoch,
        6
    );
    drop(log);
    let mut log = open(dir.path(), small_config(), 0);
    assert_eq!(
        log.producer_state()
            .get(ProducerId(1))
            .unwrap()
            .coordinator_epoch,
        6
    );
    assert!(matches!(
        log.append_marker(&request(1, 2, true, 5, 2), 0),
        Err(LogError::TransactionCoordinatorFenced { .. })
    ));
    // A control batch that is no transaction marker is refused on the leader.
    let other = RecordBatchBuilder::new()
        .producer(ProducerId(1), ProducerEpoch(1), -1)
        .control(true)
        .key_value(0, Some(&[0, 0, 0, 2]), Some(&[0, 0]))
        .build()
        .unwrap()
        .into_bytes();
    assert!(matches!(
        log.append(other, 0),
        Err(LogError::InvalidBatchFields(_))
    ));
}

#[derive(Clone, Debug)]
enum Op {
    Data {
        pid: i64,
        n: usize,
        txn: bool,
    },
    End {
        pid: i64,
        commit: bool,
    },
    Roll,
    Reopen,
    Crash,
    /// A crash that also tears the newest `.txnindex` file (a write cut short) when its last
    /// entry was not yet durable.
    CrashTearingIndex,
    /// Truncate to this fraction (per mille) of the log end offset.
    Truncate(u16),
    /// Move the log start offset to this fraction of the log end offset (DeleteRecords) and
    /// delete the segments below it.
    DeleteRecords(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0i64..3, 1usize..5, any::<bool>()).prop_map(|(pid, n, txn)| Op::Data { pid, n, txn }),
        4 => (0i64..3, any::<bool>()).prop_map(|(pid, commit)| Op::End { pid, commit }),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => Just(Op::CrashTearingIndex),
        1 => (0u16..1000).prop_map(Op::Truncate),
        1 => (0u16..1000).prop_map(Op::DeleteRecords),
    ]
}

/// (base offset, producer id, transactional, marker: Some(commit)).
type Batch = (i64, i64, bool, Option<bool>);

/// The model's aborted transactions: replay the batches in the log, as Kafka's producer state
/// does, ending transactions at their markers.
fn model_aborted(batches: &[Batch]) -> Vec<AbortedTxn> {
    let mut open: BTreeMap<i64, i64> = BTreeMap::new();
    let mut out = Vec::new();
    for &(base, pid, txn, marker) in batches {
        match marker {
            Some(commit) => {
                if let Some(first) = open.remove(&pid) {
                    if !commit {
                        let lso = open.values().min().copied().unwrap_or(base + 1);
                        out.push(entry(pid, first, base, lso));
                    }
                }
            }
            None if txn => {
                open.entry(pid).or_insert(base);
            }
            None => {}
        }
    }
    out
}

fn reopen(dir: &Path) -> Log {
    open(dir, small_config(), 0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    // Found a real bug in its first runs: after DeleteRecords moved the log start past a
    // producer's last batch within a segment and the broker crashed, the replay at open started
    // at the log start, skipped the batches between the snapshot and the log start, and the
    // producer came back with an older sequence (OutOfOrderSequence expected 1, got 2). The
    // replay now reads every batch a segment still holds from the snapshot on.
    #[test]
    fn aborted_transactions_match_a_model_across_restarts_crashes_and_truncation(
        ops in proptest::collection::vec(op(), 1..50),
        ranges in proptest::collection::vec((0u16..1000, 0u16..1000), 4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log: Option<Log> = Some(reopen(dir.path()));
        let mut batches: Vec<Batch> = Vec::new();
        let mut next_seq: BTreeMap<i64, i32> = BTreeMap::new();
        for op in ops {
            let l = log.as_mut().unwrap();
            match op {
                Op::Data { pid, n, txn } => {
                    let seq = next_seq.get(&pid).copied().unwrap_or(0);
                    let info = l.append(data(pid, seq, n, txn), 0).unwrap();
                    next_seq.insert(pid, seq + n as i32);
                    batches.push((info.first_offset.0, pid, txn, None));
                }
                Op::End { pid, commit } => {
                    let info = l.append(marker(pid, commit), 0).unwrap();
                    batches.push((info.first_offset.0, pid, true, Some(commit)));
                }
                Op::Roll => l.roll(0).unwrap(),
                Op::Reopen => {
                    log.take().unwrap().close().unwrap();
                    log = Some(reopen(dir.path()));
                }
                Op::Crash => {
                    drop(log.take());
                    log = Some(reopen(dir.path()));
                }
                Op::CrashTearingIndex => {
                    drop(log.take());
                    // Only an entry written after the newest producer-state snapshot may be
                    // torn: a roll fsyncs the index before it writes its snapshot.
                    let newest_snapshot = std::fs::read_dir(dir.path())
                        .unwrap()
                        .filter_map(|e| {
                            let name = e.unwrap().file_name().into_string().unwrap();
                            name.strip_suffix(".snapshot")?.parse::<i64>().ok()
                        })
                        .max()
                        .unwrap_or(-1);
                    if let Some(newest) = txn_index_files(dir.path()).pop() {
                        let bytes = std::fs::read(&newest).unwrap();
                        let len = bytes.len() as u64;
                        let last_marker = (len >= 34).then(|| {
                            let e = &bytes[(len as usize / 34 - 1) * 34..][..34];
                            i64::from_be_bytes(e[18..26].try_into().unwrap())
                        });
                        if last_marker.is_some_and(|m| m >= newest_snapshot) {
                            let f = std::fs::OpenOptions::new().write(true).open(&newest).unwrap();
                            f.set_len(len - 7).unwrap();
                        }
                    }
                    log = Some(reopen(dir.path()));
                }
                Op::Truncate(per_mille) => {
                    let leo = l.log_end_offset().0;
                    let to = leo * i64::from(per_mille) / 1000;
                    l.truncate_to(Offset(to), 0).unwrap();
                    let leo = l.log_end_offset().0;
                    batches.retain(|b| b.0 < leo);
                    next_seq.clear();
                    for pid in 0..3 {
                        if let Some(e) = l.producer_state().get(ProducerId(pid)) {
                            next_seq.insert(pid, e.last_sequence() + 1);
                        }
                    }
                }
                Op::DeleteRecords(per_mille) => {
                    let leo = l.log_end_offset().0;
                    let to = leo * i64::from(per_mille) / 1000;
                    l.delete_records_before(Offset(to)).unwrap();
                    l.apply_retention(0).unwrap();
                }
            }
            let l = log.as_ref().unwrap();
            let leo = l.log_end_offset();
            let start = l.log_start_offset();
            // Entries of deleted segments go with them: the model keeps the markers still in
            // the log (whole segments below the log start are gone).
            let first_base = l.segment_base_offsets()[0].0;
            let expected: Vec<AbortedTxn> = model_aborted(&batches)
                .into_iter()
                .filter(|e| e.last_offset.0 >= first_base)
                .collect();
            let from_start: Vec<AbortedTxn> =
                expected.iter().filter(|e| e.last_offset >= start).copied().collect();
            let got = l.collect_aborted_transactions(start, leo);
            if start.0 == 0 {
                prop_assert_eq!(got, from_start);
            } else {
                // Once the log start moved, a restart's replay starts at the log start and
                // does not see a transaction's batches below it (as in Kafka): its entry then
                // starts at its first batch still in the log, or is not made when none is.
                // Every transaction with data in the log keeps an entry for its marker.
                let key = |e: &AbortedTxn| (e.producer_id, e.last_offset);
                let got_keys: Vec<_> = got.iter().map(key).collect();
                let all_keys: Vec<_> = from_start.iter().map(key).collect();
                prop_assert!(got_keys.iter().all(|k| all_keys.contains(k)), "{:?} {:?}", got, from_start);
                for e in &from_start {
                    let has_data = batches.iter().any(|&(base, pid, txn, marker)| {
                        pid == e.producer_id.0 && txn && marker.is_none()
                            && base >= start.0.max(e.first_offset.0) && base < e.last_offset.0
                    });
                    if has_data {
                        prop_assert!(got_keys.contains(&key(e)), "{:?} missing from {:?}", e, got);
                    }
                }
                continue;
            }
            for &(a, b) in &ranges {
                let span = leo.0 - start.0;
                let from = start.0 + span * i64::from(a.min(b)) / 1000;
                let upper = start.0 + span * i64::from(a.max(b)) / 1000;
                let want: Vec<AbortedTxn> = expected
                    .iter()
                    .filter(|e| from < upper && e.last_offset.0 >= from && e.first_offset.0 < upper)
                    .copied()
                    .collect();
                prop_assert_eq!(
                    l.collect_aborted_transactions(Offset(from), Offset(upper)),
                    want,
                    "range [{}, {})", from, upper
                );
            }
            // Every read reports the offset after its last batch.
            if start < leo {
                let s = l.read(start, 700, None).unwrap();
                let next = l.read(s.end_offset, 1, None).unwrap();
                prop_assert!(s.end_offset > start);
                prop_assert!(next.is_empty() || next.first_offset == s.end_offset);
            }
        }
    }
}

/// The batches of `log` as the model sees them, read back from the log itself.
fn batches_in(log: &Log) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    while next < log.log_end_offset() {
        let s = log.read(next, 1 << 20, None).unwrap();
        assert!(!s.is_empty());
        for b in potok_records::split_batches(s.read_bytes().unwrap()) {
            let b = b.unwrap();
            let h = *b.header();
            let marker = h.is_control().then(|| {
                potok_log::txn_marker::parse_marker(b.as_bytes())
                    .unwrap()
                    .unwrap()
                    .commit
            });
            out.push((h.base_offset, h.producer_id, h.is_transactional(), marker));
        }
        next = s.end_offset;
    }
    out
}

/// A process crash at every third file operation of a transactional workload (appends,
/// markers, rolls, `flush.messages` flushes), followed by a power loss that drops (or garbles) every
/// unsynced byte: the recovered log's `.txnindex` entries are exactly those of the ABORT
/// markers that survived.
#[test]
fn txn_indexes_match_the_recovered_log_after_a_crash_at_every_operation_and_power_loss() {
    use potok_log::{FaultPlan, FaultyStorage, Storage};
    use std::sync::Arc;
    let config = potok_log::LogConfig {
        flush_messages: Some(7),
        ..small_config()
    };
    let workload = |log: &mut Log| -> Result<(), LogError> {
        let mut seq = [0i32; 3];
        for i in 0..30i64 {
            let pid = i % 3;
            let n = 1 + (i % 2) as usize;
            log.append(data(pid, seq[pid as usize], n, i % 4 != 3), 0)?;
            seq[pid as usize] += n as i32;
            if i % 5 == 4 {
                log.append(marker((i + 1) % 3, i % 2 == 0), 0)?;
            }
            if i % 11 == 10 {
                log.roll(0)?;
            }
        }
        Ok(())
    };
    // Count the operations of a clean run.
    let total = {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyStorage::new();
        fs.set_plan(FaultPlan::default());
        let mut log = Log::open(
            dir.path(),
            config.clone(),
            Arc::new(fs.clone()) as Arc<dyn Storage>,
            0,
        )
        .unwrap();
        workload(&mut log).unwrap();
        fs.operations()
    };
    assert!(total > 50, "{total} operations");
    for k in (0..total).step_by(3) {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyStorage::new();
        let mut log = Log::open(
            dir.path(),
            config.clone(),
            Arc::new(fs.clone()) as Arc<dyn Storage>,
            0,
        )
        .unwrap();
        fs.set_plan(FaultPlan {
            crash_after_ops: Some(k),
            ..FaultPlan::default()
        });
        let _ = workload(&mut log);
        drop(log);
        fs.simulate_power_loss(k % 2 == 0, k).unwrap();
        let log = Log::open(
            dir.path(),
            config.clone(),
            Arc::new(fs.clone()) as Arc<dyn Storage>,
            0,
        )
        .unwrap();
        let expected = model_aborted(&batches_in(&log));
        assert_eq!(
            log.collect_aborted_transactions(Offset(0), log.log_end_offset()),
            expected,
            "crash after {k} operations"
        );
        log.close().unwrap();
        // And once more after a clean reopen.
        let log = Log::open(
            dir.path(),
            config.clone(),
            Arc::new(fs.clone()) as Arc<dyn Storage>,
            0,
        )
        .unwrap();
        assert_eq!(
            log.collect_aborted_transactions(Offset(0), log.log_end_offset()),
            expected
        );
    }
}
