//! Ongoing transactions in the log (issue #21, partition side): a producer's first
//! transactional batch opens its transaction, the COMMIT or ABORT marker ends it, and the last
//! stable offset is the high watermark lowered to the earliest open transaction. A property
//! test drives random transactional batches, markers, rolls, clean reopens, crashes and
//! truncations against a model and checks the first unstable offset after each step.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use potok_log::{Log, Offset};
use potok_records::{ControlRecordType, ProducerEpoch, ProducerId, RecordBatchBuilder};
use proptest::prelude::*;

/// A batch of producer `pid` (epoch 0) starting at sequence `seq`.
fn data(pid: i64, seq: i32, n: usize, transactional: bool) -> Bytes {
    let mut b = RecordBatchBuilder::new()
        .producer(ProducerId(pid), ProducerEpoch(0), seq)
        .transactional(transactional);
    for i in 0..n {
        b = b.key_value(10, None, Some(&[i as u8; 40]));
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

#[test]
fn last_stable_offset_stops_at_the_earliest_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), 0);
    log.append(data(1, 0, 2, false), 0).unwrap();
    assert_eq!(log.last_stable_offset(Offset(2)), Offset(2));
    let t2 = log.append(data(2, 0, 3, true), 0).unwrap();
    let t3 = log.append(data(3, 0, 1, true), 0).unwrap();
    log.append(data(2, 3, 1, true), 0).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(t2.first_offset));
    assert_eq!(log.last_stable_offset(Offset(1)), Offset(1), "HW below");
    assert_eq!(
        log.last_stable_offset(log.log_end_offset()),
        t2.first_offset
    );
    log.append(marker(2, true), 0).unwrap();
    assert_eq!(log.first_unstable_offset(), Some(t3.first_offset));
    // The sequence of producer 2 continues after its marker.
    log.append(data(2, 4, 1, false), 0).unwrap();
    // Open transactions survive a clean reopen (the snapshot) and a crash (the replay).
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 0);
    assert_eq!(log.first_unstable_offset(), Some(t3.first_offset));
    drop(log);
    let mut log = open(dir.path(), small_config(), 0);
    assert_eq!(log.first_unstable_offset(), Some(t3.first_offset));
    log.append(marker(3, false), 0).unwrap();
    assert_eq!(log.first_unstable_offset(), None);
    let leo = log.log_end_offset();
    assert_eq!(log.last_stable_offset(leo), leo);
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
    /// Truncate to this fraction (per mille) of the log end offset.
    Truncate(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0i64..3, 1usize..4, any::<bool>()).prop_map(|(pid, n, txn)| Op::Data { pid, n, txn }),
        3 => (0i64..3, any::<bool>()).prop_map(|(pid, commit)| Op::End { pid, commit }),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        1 => (0u16..1000).prop_map(Op::Truncate),
    ]
}

/// What the model keeps per batch: (base offset, producer id, transactional, control).
type Batch = (i64, i64, bool, bool);

/// The model's first unstable offset: replay the batches kept in the log.
fn model_first_unstable(batches: &[Batch]) -> Option<Offset> {
    let mut open: BTreeMap<i64, i64> = BTreeMap::new();
    for &(base, pid, txn, control) in batches {
        if control {
            open.remove(&pid);
        } else if txn {
            open.entry(pid).or_insert(base);
        }
    }
    open.values().min().map(|&o| Offset(o))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn open_transactions_match_a_model_across_restarts(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut log: Option<Log> = Some(open(dir.path(), small_config(), 0));
        let mut batches: Vec<Batch> = Vec::new();
        let mut next_seq: BTreeMap<i64, i32> = BTreeMap::new();
        for op in ops {
            let l = log.as_mut().unwrap();
            match op {
                Op::Data { pid, n, txn } => {
                    let seq = next_seq.get(&pid).copied().unwrap_or(0);
                    let info = l.append(data(pid, seq, n, txn), 0).unwrap();
                    next_seq.insert(pid, seq + n as i32);
                    batches.push((info.first_offset.0, pid, txn, false));
                }
                Op::End { pid, commit } => {
                    let info = l.append(marker(pid, commit), 0).unwrap();
                    batches.push((info.first_offset.0, pid, true, true));
                }
                Op::Roll => l.roll(0).unwrap(),
                Op::Reopen => {
                    log.take().unwrap().close().unwrap();
                    log = Some(open(dir.path(), small_config(), 0));
                }
                Op::Crash => {
                    drop(log.take());
                    log = Some(open(dir.path(), small_config(), 0));
                }
                Op::Truncate(per_mille) => {
                    let leo = l.log_end_offset().0;
                    let to = leo * i64::from(per_mille) / 1000;
                    l.truncate_to(Offset(to), 0).unwrap();
                    let leo = l.log_end_offset().0;
                    batches.retain(|b| b.0 < leo);
                    // A truncated producer restarts its sequence from what is left; the test
                    // keeps it simple by starting a new epoch-less run at what the log holds.
                    next_seq.clear();
                    for pid in 0..3 {
                        if let Some(e) = l.producer_state().get(ProducerId(pid)) {
                            next_seq.insert(pid, e.last_sequence() + 1);
                        }
                    }
                }
            }
            let l = log.as_ref().unwrap();
            prop_assert_eq!(l.first_unstable_offset(), model_first_unstable(&batches));
            let leo = l.log_end_offset();
            let expected_lso = model_first_unstable(&batches).map_or(leo, |o| o.min(leo));
            prop_assert_eq!(l.last_stable_offset(leo), expected_lso);
        }
    }
}
