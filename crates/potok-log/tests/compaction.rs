//! Log compaction against a model (issue #20, acceptance 1 and 2): random keys, values and
//! tombstones, cleaner runs, clock advances and reopenings; and crashes injected between any
//! two file operations of a cleaning (a segment swap included), each followed by a power loss
//! and a reopen.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use potok_log::{
    BoundedStorage, CleanStats, Cleaner, CleanerConfig, FaultPlan, FaultyStorage, Log, LogConfig,
    Offset, OpenFiles, RealStorage, Storage, Unthrottled,
};
use potok_records::{split_batches, ProducerEpoch, ProducerId, RecordBatchBuilder};
use proptest::prelude::*;

const DELETE_RETENTION_MS: i64 = 1000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        segment_index_bytes: 4096,
        retention_ms: -1,
        compact: true,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..LogConfig::default()
    }
}

/// A model record: offset, key, value (`None`: tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    offset: i64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

fn keyed_batch(records: &[(Vec<u8>, Option<Vec<u8>>)], ts: i64) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    for (k, v) in records {
        b = b.key_value(ts, Some(k), v.as_deref());
    }
    b.build().expect("build").into_bytes()
}

/// Every record of the log, in order, reading batch by batch (empty batches included); checks
/// CRCs and that offsets only grow.
fn read_log(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset().0;
    let leo = log.log_end_offset().0;
    while next < leo {
        let s = log.read(Offset(next), 1 << 16, None).expect("read");
        assert!(
            !s.is_empty(),
            "empty slice at {next} below the log end {leo}"
        );
        let mut after = next;
        for b in split_batches(s.read_bytes().expect("slice bytes")) {
            let b = b.expect("whole batch");
            b.validate().expect("valid CRC");
            let h = *b.header();
            for r in b.records().expect("records") {
                let r = r.expect("record");
                let offset = r.offset(&h).0;
                if offset < next {
                    continue;
                }
                assert!(
                    out.last().is_none_or(|p: &Rec| p.offset < offset),
                    "offsets must increase"
                );
                out.push(Rec {
                    offset,
                    key: r.key.map(|k| k.to_vec()).unwrap_or_default(),
                    value: r.value.map(|v| v.to_vec()),
                });
            }
            after = after.max(h.next_offset().0);
        }
        assert!(after > next, "reading must progress");
        next = after;
    }
    out
}

/// The tests check semantics and crash points, not disk speed: tmpfs when there is one, where
/// fsync is free.
fn tmpdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

fn open_with(dir: &Path, storage: Arc<dyn Storage>, now: i64) -> Log {
    Log::open(dir, config(), storage, now).expect("open")
}

fn clean(log: &Mutex<Log>, cleaner: &mut Cleaner, now: i64) -> Option<CleanStats> {
    cleaner
        .clean(log, now, None, &mut Unthrottled)
        .expect("clean")
}

#[derive(Clone, Debug)]
enum Op {
    /// Records as (key index, value length or `None` for a tombstone).
    Append(Vec<(u8, Option<u8>)>),
    Roll,
    Clean,
    Advance(i64),
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => prop::collection::vec((0u8..12, prop::option::weighted(0.85, 0u8..60)), 1..8)
            .prop_map(Op::Append),
        2 => Just(Op::Roll),
        3 => Just(Op::Clean),
        2 => (1i64..1500).prop_map(Op::Advance),
        1 => Just(Op::Advance(DELETE_RETENTION_MS)),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

#[derive(Default)]
struct Model {
    records: Vec<Rec>,
    /// Offset of a tombstone -> the clock of the first cleaning that covered it (its batch's
    /// delete horizon is that plus `delete.retention.ms`).
    covered_at: HashMap<i64, i64>,
}

impl Model {
    /// What the log must hold right after a completed cleaning at `now` whose round ended at
    /// `end` (the first uncleanable offset): at or above `end` everything; below it only the
    /// latest record of each key among those below `end`, and tombstones only until their
    /// horizon has passed.
    fn expected_after_clean(&mut self, end: i64, now: i64) -> Vec<Rec> {
        let mut latest: HashMap<&[u8], i64> = HashMap::new();
        for r in self.records.iter().filter(|r| r.offset < end) {
            latest.insert(&r.key, r.offset);
        }
        for r in self
            .records
            .iter()
            .filter(|r| r.offset < end && r.value.is_none())
        {
            self.covered_at.entry(r.offset).or_insert(now);
        }
        self.records
            .iter()
            .filter(|r| {
                if r.offset >= end {
                    return true;
                }
                if latest.get(r.key.as_slice()) != Some(&r.offset) {
                    return false;
                }
                match &r.value {
                    Some(_) => true,
                    None => self
                        .covered_at
                        .get(&r.offset)
                        .is_none_or(|&t| now < t + DELETE_RETENTION_MS),
                }
            })
            .cloned()
            .collect()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tmpdir();
    let storage: Arc<dyn Storage> = Arc::new(RealStorage);
    let mut now = 1_000_000i64;
    let log = Mutex::new(Some(open_with(dir.path(), Arc::clone(&storage), now)));
    let mut cleaner = Cleaner::new(CleanerConfig::default());
    let mut m = Model::default();
    // What the log must hold now; `None` right after appends (then it is the model plus
    // whatever earlier cleanings left).
    let mut expected: Vec<Rec> = Vec::new();
    let mut tag = 0u8;
    for op in ops {
        match op {
            Op::Append(recs) => {
                tag = tag.wrapping_add(1);
                let recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = recs
                    .into_iter()
                    .map(|(k, v)| (vec![b'k', k], v.map(|len| vec![tag; len as usize])))
                    .collect();
                let mut guard = log.lock().unwrap();
                let l = guard.as_mut().unwrap();
                let info = l.append(keyed_batch(&recs, now), now).unwrap();
                for (i, (key, value)) in recs.into_iter().enumerate() {
                    let rec = Rec {
                        offset: info.first_offset.0 + i as i64,
                        key,
                        value,
                    };
                    m.records.push(rec.clone());
                    expected.push(rec);
                }
            }
            Op::Roll => log.lock().unwrap().as_mut().unwrap().roll(now).unwrap(),
            Op::Advance(ms) => now += ms,
            Op::Clean => {
                let end = {
                    let guard = log.lock().unwrap();
                    let l = guard.as_ref().unwrap();
                    let s = l.cleanable_stats(now, None);
                    (s.first_dirty_offset < s.first_uncleanable_offset)
                        .then_some(s.first_uncleanable_offset.0)
                };
                let stats = cleaner
                    .clean(&log, now, None, &mut Unthrottled)
                    .expect("clean");
                prop_assert_eq!(stats.is_some(), end.is_some());
                if let (Some(stats), Some(end)) = (stats, end) {
                    prop_assert!(!stats.aborted && !stats.map_full);
                    prop_assert_eq!(stats.end_offset.0, end);
                    expected = m.expected_after_clean(end, now);
                }
            }
            Op::Reopen { clean } => {
                let l = log.lock().unwrap().take().unwrap();
                if clean {
                    l.close().unwrap();
                } else {
                    drop(l);
                }
                *log.lock().unwrap() = Some(open_with(dir.path(), Arc::clone(&storage), now));
            }
        }
        let guard = log.lock().unwrap();
        let l = guard.as_ref().unwrap();
        prop_assert_eq!(
            l.log_end_offset().0,
            m.records.last().map_or(0, |r| r.offset + 1),
            "offsets are never reused"
        );
        prop_assert_eq!(read_log(l), expected.clone());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compaction_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}

/// Deterministic companion of the model test: 20 keys x 30 versions and 3 tombstones,
/// several segments; after one cleaning one record per live key is left below the active
/// segment, with the original offsets, and the tombstones go once their horizon passes.
#[test]
fn latest_value_per_key_survives_with_its_offset() {
    let dir = tmpdir();
    let mut now = 5_000_000;
    let log = Mutex::new(open_with(dir.path(), Arc::new(RealStorage), now));
    let mut latest: HashMap<Vec<u8>, (i64, Option<Vec<u8>>)> = HashMap::new();
    for v in 0..30u32 {
        for k in 0..20u32 {
            let key = format!("key-{k}").into_bytes();
            let value = (v < 29 || k >= 3).then(|| format!("v{v}").into_bytes());
            let info = log
                .lock()
                .unwrap()
                .append(keyed_batch(&[(key.clone(), value.clone())], now), now)
                .unwrap();
            latest.insert(key, (info.first_offset.0, value));
        }
    }
    log.lock().unwrap().roll(now).unwrap();
    assert!(log.lock().unwrap().segment_base_offsets().len() > 5);
    let mut cleaner = Cleaner::new(CleanerConfig::default());
    let stats = clean(&log, &mut cleaner, now).expect("something to clean");
    assert!(stats.segments_replaced > 1 && stats.bytes_written < stats.bytes_replaced);
    let mut got = read_log(&log.lock().unwrap());
    got.sort_by(|a, b| a.key.cmp(&b.key));
    let mut want: Vec<Rec> = latest
        .iter()
        .map(|(k, (o, v))| Rec {
            offset: *o,
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        got, want,
        "one record per key, tombstones kept until their horizon"
    );
    // Nothing dirty: no second round until the horizon passes and new data arrives.
    assert!(clean(&log, &mut cleaner, now).is_none());
    now += DELETE_RETENTION_MS;
    log.lock()
        .unwrap()
        .append(
            keyed_batch(&[(b"late".to_vec(), Some(b"x".to_vec()))], now),
            now,
        )
        .unwrap();
    log.lock().unwrap().roll(now).unwrap();
    clean(&log, &mut cleaner, now).expect("cleans the new segment");
    let got = read_log(&log.lock().unwrap());
    assert_eq!(
        got.len(),
        17 + 1,
        "tombstones dropped after delete.retention.ms"
    );
    assert!(got.iter().all(|r| r.value.is_some()));
    // Reopening (clean and unclean) serves the same records.
    let l = log.into_inner().unwrap();
    l.close().unwrap();
    let l = open_with(dir.path(), Arc::new(RealStorage), now);
    assert_eq!(read_log(&l), got);
    assert!(dir.path().join(potok_log::CLEANER_OFFSET_FILE).exists());
}

/// With the open-file bound at one descriptor (issue #14's lazily reopened segment files), a
/// cleaning pins the files it reads, and retention removing the oldest segment in the middle
/// of it only makes its swap give up; the next round cleans what is left.
#[test]
fn cleaning_works_under_the_open_file_bound_and_survives_retention() {
    let dir = tmpdir();
    let now = 6_000_000;
    let storage: Arc<dyn Storage> = Arc::new(BoundedStorage::new(
        Arc::new(RealStorage),
        OpenFiles::new(1),
    ));
    let log = Mutex::new(open_with(dir.path(), storage, now));
    for v in 0..20u8 {
        for k in 0..20u8 {
            let rec = (vec![b'k', k], Some(vec![v; 8]));
            log.lock()
                .unwrap()
                .append(keyed_batch(&[rec], now), now)
                .unwrap();
        }
    }
    log.lock().unwrap().roll(now).unwrap();
    // A job prepared, then the oldest segment deleted under it (DeleteRecords), then cleaned:
    // the swap that includes the deleted segment is refused and the round ends early.
    struct DeleteFirst<'a>(&'a Mutex<Log>, std::cell::Cell<bool>);
    impl potok_log::CleanerIo for DeleteFirst<'_> {
        fn throttle(&mut self, _bytes: u64) {
            if !self.1.replace(true) {
                let mut l = self.0.lock().unwrap();
                let second = l.segment_base_offsets()[1];
                l.delete_records_before(second).unwrap();
            }
        }
    }
    let mut cleaner = Cleaner::new(CleanerConfig::default());
    let mut io = DeleteFirst(&log, std::cell::Cell::new(false));
    let first = cleaner.clean(&log, now, None, &mut io).unwrap().unwrap();
    assert!(first.aborted, "{first:?}");
    let start = log.lock().unwrap().log_start_offset().0;
    while let Some(s) = clean(&log, &mut cleaner, now) {
        if !s.aborted {
            break;
        }
    }
    let got = read_log(&log.lock().unwrap());
    assert_eq!(got.len(), 20, "one record per key");
    assert!(got
        .iter()
        .all(|r| r.offset >= start && r.value.as_deref() == Some(&[19u8; 8][..])));
}

/// An idempotent producer's last batch stays (empty if need be) so its sequence survives a
/// cleaning and a rebuild of the producer state, as Kafka retains it.
#[test]
fn last_batch_of_an_idempotent_producer_is_kept() {
    let dir = tmpdir();
    let now = 7_000_000;
    let log = Mutex::new(open_with(dir.path(), Arc::new(RealStorage), now));
    for seq in 0..3 {
        let b = RecordBatchBuilder::new()
            .producer(ProducerId(42), ProducerEpoch(0), seq)
            .key_value(now, Some(b"k"), Some(b"v"))
            .build()
            .unwrap()
            .into_bytes();
        log.lock().unwrap().append(b, now).unwrap();
    }
    // A later record of the same key from a plain producer makes the idempotent ones obsolete.
    log.lock()
        .unwrap()
        .append(
            keyed_batch(&[(b"k".to_vec(), Some(b"w".to_vec()))], now),
            now,
        )
        .unwrap();
    log.lock().unwrap().roll(now).unwrap();
    let mut cleaner = Cleaner::new(CleanerConfig::default());
    clean(&log, &mut cleaner, now).expect("cleaned");
    let l = log.into_inner().unwrap();
    let got = read_log(&l);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].offset, 3);
    let entry = l.producer_state().get(ProducerId(42)).unwrap();
    assert_eq!(entry.last_sequence(), 2);
    // Rebuild the producer state from the log alone: the empty batch carries the sequence.
    drop(l);
    for p in std::fs::read_dir(dir.path()).unwrap() {
        let p = p.unwrap().path();
        if p.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let l = open_with(dir.path(), Arc::new(RealStorage), now);
    let entry = l
        .producer_state()
        .get(ProducerId(42))
        .expect("producer rebuilt");
    assert_eq!(entry.last_sequence(), 2);
    assert_eq!(entry.last_offset(), Some(Offset(2)));
}

/// A tiny dedupe buffer: each round covers what fits and the next continues from there, as
/// Kafka does; the result is the same as one big round.
#[test]
fn a_full_offset_map_cleans_in_several_rounds() {
    let dir = tmpdir();
    let now = 9_000_000;
    let log = Mutex::new(open_with(dir.path(), Arc::new(RealStorage), now));
    for v in 0..10u8 {
        for k in 0..30u8 {
            let rec = (vec![b'k', k], Some(vec![v; 3]));
            log.lock()
                .unwrap()
                .append(keyed_batch(&[rec], now), now)
                .unwrap();
        }
    }
    log.lock().unwrap().roll(now).unwrap();
    let entry = 2 + potok_log::cleaner::offset_map::ENTRY_OVERHEAD;
    let mut cleaner = Cleaner::new(CleanerConfig {
        dedupe_buffer_bytes: entry * 10,
        load_factor: 1.0,
        ..CleanerConfig::default()
    });
    let mut rounds = 0;
    while let Some(s) = clean(&log, &mut cleaner, now) {
        rounds += 1;
        assert!(rounds < 100);
        if !s.map_full {
            break;
        }
    }
    assert!(rounds > 1, "the map must have filled at least once");
    let got = read_log(&log.lock().unwrap());
    assert_eq!(got.len(), 30);
    assert!(got
        .iter()
        .all(|r| r.value.as_deref() == Some(&[9u8; 3][..])));
}

/// The latest value of every key (`None`: deleted).
type Latest = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// The log of one crash iteration: keys with several versions and a few tombstones over
/// several segments, optionally a first cleaning and more tombstones (so the crash may hit a
/// round over already cleaned segments). Returns the latest value of every key and every
/// record written.
fn crash_scenario(
    dir: &Path,
    storage: Arc<dyn Storage>,
    seed: u64,
    now: i64,
) -> (Mutex<Log>, Latest, Vec<Rec>) {
    let log = Mutex::new(open_with(dir, storage, now));
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut latest: Latest = HashMap::new();
    let mut all: Vec<Rec> = Vec::new();
    let mut write = |log: &Mutex<Log>, key: Vec<u8>, value: Option<Vec<u8>>| {
        let info = log
            .lock()
            .unwrap()
            .append(keyed_batch(&[(key.clone(), value.clone())], now), now)
            .unwrap();
        latest.insert(key.clone(), value.clone());
        all.push(Rec {
            offset: info.first_offset.0,
            key,
            value,
        });
    };
    for i in 0..(60 + next() % 60) {
        let key = vec![b'k', (next() % 15) as u8];
        let value = (next() % 8 != 0).then(|| vec![i as u8; (next() % 40) as usize]);
        write(&log, key, value);
        if next() % 9 == 0 {
            log.lock().unwrap().roll(now).unwrap();
        }
    }
    log.lock().unwrap().roll(now).unwrap();
    if seed.is_multiple_of(3) {
        clean(&log, &mut Cleaner::new(CleanerConfig::default()), now);
        for k in 0..5u8 {
            write(&log, vec![b'k', k], None);
        }
        log.lock().unwrap().roll(now).unwrap();
    }
    (log, latest, all)
}

/// Acceptance 2: a crash between any two file operations of a cleaning (writes, syncs,
/// renames, removals), followed by a power loss that drops or garbles unsynced bytes and a
/// reopen, never loses the latest value of a key, never brings back a deleted one and never
/// leaves unreadable segments; a cleaning after the reopen reaches the compacted state.
#[test]
fn crash_at_every_point_of_a_cleaning_loses_nothing() {
    let now = 11_000_000;
    let mut crashes = 0;
    let mut max_ops = 0;
    for seed in 1..=150u64 {
        // A first run without a crash counts the cleaning's file operations; the second run of
        // the same scenario crashes at one of them.
        let calibration = tmpdir();
        let fault = FaultyStorage::new();
        let (log, _, _) = crash_scenario(calibration.path(), Arc::new(fault.clone()), seed, now);
        fault.set_plan(FaultPlan::default());
        clean(&log, &mut Cleaner::new(CleanerConfig::default()), now);
        let total = fault.operations();
        max_ops = max_ops.max(total);
        drop(log);

        let dir = tmpdir();
        let fault = FaultyStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(fault.clone());
        let (log, latest, all) = crash_scenario(dir.path(), Arc::clone(&storage), seed, now);
        let crash_at = seed.wrapping_mul(2_654_435_761) % total.max(1);
        fault.set_plan(FaultPlan {
            crash_after_ops: Some(crash_at),
            ..FaultPlan::default()
        });
        let _ = Cleaner::new(CleanerConfig::default()).clean(&log, now, None, &mut Unthrottled);
        if fault.is_crashed() {
            crashes += 1;
        }
        drop(log);
        fault
            .simulate_power_loss(seed.is_multiple_of(2), seed)
            .unwrap();
        let reopened = Mutex::new(open_with(dir.path(), Arc::clone(&storage), now));
        let check = |l: &Log, compacted: bool| {
            let got = read_log(l);
            let by_offset: HashMap<i64, &Rec> = all.iter().map(|r| (r.offset, r)).collect();
            for r in &got {
                assert_eq!(
                    by_offset.get(&r.offset),
                    Some(&r),
                    "seed {seed}: foreign record"
                );
            }
            for (key, value) in &latest {
                let last = got.iter().rev().find(|r| &r.key == key);
                match value {
                    Some(_) => assert_eq!(
                        last.map(|r| &r.value),
                        Some(value),
                        "seed {seed} crash {crash_at}: latest value of {key:?} lost"
                    ),
                    None => assert!(
                        last.is_none_or(|r| r.value.is_none()),
                        "seed {seed} crash {crash_at}: deleted key {key:?} came back"
                    ),
                }
            }
            if compacted {
                let live = latest.values().filter(|v| v.is_some()).count();
                let values = got.iter().filter(|r| r.value.is_some()).count();
                assert_eq!(values, live, "seed {seed}: one value per live key");
            }
        };
        check(&reopened.lock().unwrap(), false);
        clean(&reopened, &mut Cleaner::new(CleanerConfig::default()), now);
        check(&reopened.lock().unwrap(), true);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| {
                !n.ends_with(".cleaned") && !n.ends_with(".swap") && !n.ends_with(".deleted")
            }),
            "seed {seed}: leftover files {names:?}"
        );
    }
    assert!(crashes >= 100, "only {crashes} crashes injected");
    assert!(max_ops >= 10, "a cleaning has {max_ops} file operations");
}

/// A batch of transactional producer `pid` (epoch 0) holding `records`.
fn txn_batch(pid: i64, seq: i32, records: &[(&[u8], &[u8])], ts: i64) -> Bytes {
    let mut b = RecordBatchBuilder::new()
        .producer(ProducerId(pid), ProducerEpoch(0), seq)
        .transactional(true);
    for (k, v) in records {
        b = b.key_value(ts, Some(k), Some(v));
    }
    b.build().expect("build").into_bytes()
}

fn txn_marker(pid: i64, commit: bool) -> Bytes {
    let kind = if commit {
        potok_records::ControlRecordType::Commit
    } else {
        potok_records::ControlRecordType::Abort
    };
    RecordBatchBuilder::end_transaction_marker(ProducerId(pid), ProducerEpoch(0), kind, 0, 10)
        .build()
        .expect("build marker")
        .into_bytes()
}

/// Issue 21 (the cleaner and transactions, Kafka's `CleanedTransactionMetadata`): a record of
/// an aborted transaction neither survives a cleaning nor makes the cleaner drop an older
/// committed value of its key, and nothing of a transaction still open is cleaned, so its
/// records cannot hide older values before their fate is known.
#[test]
fn aborted_transactions_are_dropped_and_never_hide_committed_values() {
    let dir = tmpdir();
    let now = 5_000_000;
    let log = Mutex::new(open_with(dir.path(), Arc::new(RealStorage), now));
    let append = |b: Bytes| log.lock().unwrap().append(b, now).unwrap();
    let v1 = append(keyed_batch(
        &[
            (b"k1".to_vec(), Some(b"v1".to_vec())),
            (b"k2".to_vec(), Some(b"w1".to_vec())),
        ],
        now,
    ));
    // Producer 7 writes both keys and aborts; producer 8 writes k2 and commits.
    append(txn_batch(
        7,
        0,
        &[(b"k1", b"v2-aborted"), (b"k2", b"w2-aborted")],
        now,
    ));
    let w3 = append(txn_batch(8, 0, &[(b"k2", b"w3")], now));
    append(txn_marker(7, false));
    append(txn_marker(8, true));
    // Filler so that all of it lies in closed segments.
    for i in 0..40u32 {
        append(keyed_batch(
            &[(format!("f{i}").into_bytes(), Some(vec![0; 40]))],
            now,
        ));
    }
    log.lock().unwrap().roll(now).unwrap();
    let mut cleaner = Cleaner::new(CleanerConfig::default());
    clean(&log, &mut cleaner, now).expect("something to clean");
    let values = |key: &[u8]| -> Vec<(i64, Vec<u8>)> {
        read_log(&log.lock().unwrap())
            .into_iter()
            .filter(|r| r.key == key)
            .map(|r| (r.offset, r.value.unwrap_or_default()))
            .collect()
    };
    assert_eq!(
        values(b"k1"),
        vec![(v1.first_offset.0, b"v1".to_vec())],
        "the aborted k1 is gone and the committed one it would have replaced stays"
    );
    assert_eq!(
        values(b"k2"),
        vec![(w3.first_offset.0, b"w3".to_vec())],
        "the committed transaction's k2 replaces the older one; the aborted one is gone"
    );

    // An open transaction: its k1 is neither cleaned away nor allowed to replace v1, and the
    // cleaning stops below it until it ends.
    let open = append(txn_batch(9, 0, &[(b"k1", b"v4-open")], now));
    for i in 0..40u32 {
        append(keyed_batch(
            &[(format!("g{i}").into_bytes(), Some(vec![0; 40]))],
            now,
        ));
    }
    log.lock().unwrap().roll(now).unwrap();
    let _ = clean(&log, &mut cleaner, now);
    assert_eq!(
        values(b"k1"),
        vec![
            (v1.first_offset.0, b"v1".to_vec()),
            (open.first_offset.0, b"v4-open".to_vec())
        ],
        "nothing of the open transaction's range is cleaned"
    );
    // Once it commits, its k1 replaces v1.
    append(txn_marker(9, true));
    for i in 0..40u32 {
        append(keyed_batch(
            &[(format!("h{i}").into_bytes(), Some(vec![0; 40]))],
            now,
        ));
    }
    log.lock().unwrap().roll(now).unwrap();
    while clean(&log, &mut cleaner, now).is_some() {}
    assert_eq!(
        values(b"k1"),
        vec![(open.first_offset.0, b"v4-open".to_vec())]
    );
}
