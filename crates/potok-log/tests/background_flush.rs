//! Background flushing (issue #14, point 1): with a [`BackgroundFlusher`] a roll and a
//! `flush.ms` flush queue their fsyncs instead of running them on the appending thread; the
//! recovery point follows the flushes that completed; retention renames under the caller's
//! lock and removes the files afterwards; and a crash at any file operation (including those of
//! a background flush) followed by a power loss keeps everything below the recovery point the
//! log reported before the crash.

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use memmap2::{Mmap, MmapMut};
use potok_log::{
    BackgroundFlusher, FaultPlan, FaultyStorage, Log, LogConfig, RealStorage, Storage, StorageFile,
};
use potok_records::Offset;

/// A gate that fsyncs wait at while it is closed.
#[derive(Debug, Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
    /// fsyncs that found the gate closed.
    blocked: Mutex<u64>,
}

impl Gate {
    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap() = closed;
        self.opened.notify_all();
    }

    fn pass(&self) {
        let mut c = self.closed.lock().unwrap();
        if *c {
            *self.blocked.lock().unwrap() += 1;
        }
        while *c {
            c = self.opened.wait(c).unwrap();
        }
    }
}

/// Real storage whose `sync_data` and `sync_dir` wait while the gate is closed, as an fsync
/// does on a slow or saturated disk.
#[derive(Debug, Clone)]
struct GatedStorage(Arc<Gate>);

#[derive(Debug)]
struct GatedFile(Arc<dyn StorageFile>, Arc<Gate>);

impl StorageFile for GatedFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.0.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        self.0.write_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.1.pass();
        self.0.sync_data()
    }
    fn modified_ms(&self) -> io::Result<i64> {
        self.0.modified_ms()
    }
    fn std_file(&self) -> io::Result<Arc<std::fs::File>> {
        self.0.std_file()
    }
}

impl Storage for GatedStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let f = RealStorage.open(path, create)?;
        Ok(Arc::new(GatedFile(f, Arc::clone(&self.0))))
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealStorage.create_dir_all(dir)
    }
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        RealStorage.list_dir(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealStorage.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealStorage.remove_file(path)
    }
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealStorage.remove_dir_all(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        RealStorage.exists(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.0.pass();
        RealStorage.sync_dir(dir)
    }
    fn map_mut(&self, file: &dyn StorageFile, len: usize) -> io::Result<MmapMut> {
        RealStorage.map_mut(file, len)
    }
    fn map(&self, file: &dyn StorageFile, len: usize) -> io::Result<Mmap> {
        RealStorage.map(file, len)
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Appends `batches` batches on another thread and returns the log once they are done, or
/// fails the test if they take 20 s (an append waiting for a blocked fsync never finishes).
fn append_elsewhere(mut log: Log, batches: u8) -> (Log, Vec<Rec>) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut recs = Vec::new();
        for i in 0..batches {
            let b = simple_batch(3, 1_000 + i64::from(i), 200, i);
            let info = log.append(b, 1_000).expect("append");
            for k in 0..3 {
                let v = vec![i.wrapping_add(k as u8); 200];
                recs.push((info.first_offset.0 + k as i64, 1_000 + i64::from(i), v));
            }
        }
        let _ = tx.send((log, recs));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("appends waited for a blocked fsync")
}

#[test]
fn appends_and_rolls_do_not_wait_for_a_blocked_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let storage = Arc::new(GatedStorage(Arc::clone(&gate))) as Arc<dyn Storage>;
    let mut log = Log::open(dir.path(), small_config(), storage, 1_000).unwrap();
    log.set_background_flusher(Some(BackgroundFlusher::start(1, 64).unwrap()));
    gate.set(true);
    // 60 batches of ~650 bytes roll a 4 KiB segment about ten times.
    let (log, recs) = append_elsewhere(log, 60);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 8, "expected several rolls, got {bases:?}");
    wait_until("the flusher to reach the closed gate", || {
        *gate.blocked.lock().unwrap() > 0
    });
    // Nothing is known to be durable yet, but everything is readable, through the closed
    // segments' indexes too.
    assert_eq!(log.recovery_point(), Offset(0));
    assert_eq!(read_all(&log, 0), recs);
    for r in recs.iter().step_by(7) {
        let s = log.read(Offset(r.0), 1, None).unwrap();
        assert!(decode(&s).iter().any(|x| x == r), "offset {}", r.0);
    }
    gate.set(false);
    let last_base = *bases.last().unwrap();
    wait_until("the recovery point", || log.recovery_point() >= last_base);
    assert_eq!(log.recovery_point(), last_base);
    // Each roll's producer snapshot was written by its flush.
    assert!(potok_log::producer_state::snapshot_file(dir.path(), last_base.0).exists());
    log.close().unwrap();
    let log = open(dir.path(), small_config(), 2_000);
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(read_all(&log, 0), recs);
}

#[test]
fn flush_ms_is_queued_and_the_recovery_point_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let storage = Arc::new(GatedStorage(Arc::clone(&gate))) as Arc<dyn Storage>;
    let config = LogConfig {
        segment_bytes: 1 << 20,
        flush_ms: Some(10),
        ..small_config()
    };
    let mut log = Log::open(dir.path(), config, storage, 1_000).unwrap();
    log.set_background_flusher(Some(BackgroundFlusher::start(1, 64).unwrap()));
    gate.set(true);
    let (mut log, recs) = append_elsewhere(log, 5);
    // The broker's periodic call: due, queued, returns at once.
    assert!(log.maybe_flush(5_000).unwrap());
    assert_eq!(log.recovery_point(), Offset(0));
    gate.set(false);
    let leo = log.log_end_offset();
    wait_until("the recovery point", || log.recovery_point() == leo);
    assert_eq!(recs.len() as i64, leo.0);
}

#[test]
fn retention_renames_under_the_lock_and_removes_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 0,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone(), 1_000);
    log.set_background_flusher(Some(BackgroundFlusher::start(1, 64).unwrap()));
    for i in 0..30u8 {
        log.append(simple_batch(3, 1_000, 200, i), 1_000).unwrap();
    }
    let before = log.segment_base_offsets();
    assert!(before.len() > 3);
    let deleted = log.detach_expired_segments(2_000, None).unwrap();
    // Everything expired: the active segment was rolled so it could go too.
    assert_eq!(deleted.bases(), &before[..]);
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    let renamed: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.ends_with(".deleted").then_some(n)
        })
        .collect();
    assert_eq!(renamed.len(), before.len() * 3, "{renamed:?}");
    assert_eq!(deleted.remove_files().unwrap(), before);
    let left = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name().into_string().unwrap();
            n.ends_with(".deleted")
                || n.ends_with(".log") && n != format!("{:020}.log", log.log_end_offset().0)
        })
        .count();
    assert_eq!(left, 0);
    // Appends continue; a reopen after a crash before the removal drops `.deleted` leftovers.
    log.append(simple_batch(1, 3_000, 10, 1), 3_000).unwrap();
    let leo = log.log_end_offset();
    let d = log.detach_expired_segments(4_000, None).unwrap();
    assert!(!d.is_empty());
    drop(d);
    drop(log);
    let log = open(dir.path(), config, 5_000);
    assert_eq!(log.log_end_offset(), leo);
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".deleted")));
}

/// Every record readable from the log start, in order; unlike `read_all` it stops at the first
/// empty read (a gap up to the log end after a power loss).
fn read_readable(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut next = log.log_start_offset().0;
    while next < log.log_end_offset().0 {
        let s = log.read(Offset(next), 1 << 20, None).expect("read");
        if s.is_empty() {
            break;
        }
        let recs = decode(&s);
        next = recs.last().expect("records").0 + 1;
        out.extend(recs);
    }
    out
}

/// In-process crash sweep: the storage "dies" at its k-th mutating file operation, for every k
/// up to the operations of a whole run, whichever thread performs it: the appending thread
/// (writes, rolls) or the flusher (fdatasyncs, index and directory fsyncs, the producer
/// snapshot's write, fsync and rename). A power loss then drops or garbles everything not
/// fsynced. What the log had reported as its recovery point before the crash must be intact,
/// every readable record must be the one acknowledged at its offset (or, past what was
/// acknowledged, a valid batch whose append the crash interrupted), and appends continue at the
/// log end.
///
/// Beyond the recovery point a power loss may keep a later segment's data and drop an earlier
/// one's tail (nothing orders the page cache's write-back), leaving a gap in the offsets, as it
/// may in Kafka: only what lies below the recovery point is promised.
#[test]
fn crash_at_any_operation_of_a_background_flush_keeps_the_recovery_point() {
    let config = small_config();
    let run = |dir: &Path, fs: &FaultyStorage, plan: FaultPlan| -> (Vec<Rec>, i64) {
        let mut log = Log::open(
            dir,
            config.clone(),
            Arc::new(fs.clone()) as Arc<dyn Storage>,
            0,
        )
        .unwrap();
        fs.set_plan(plan);
        let flusher = BackgroundFlusher::start(1, 8).unwrap();
        log.set_background_flusher(Some(Arc::clone(&flusher)));
        let mut acked = Vec::new();
        let mut durable = 0i64;
        for i in 0..120u8 {
            let b = simple_batch(1 + (i % 3) as usize, 100 + i64::from(i), 150, i);
            match log.append(b.clone(), 0) {
                Ok(info) => {
                    for k in 0..1 + (i % 3) as usize {
                        let v = vec![i.wrapping_add(k as u8); 150];
                        acked.push((info.first_offset.0 + k as i64, 100 + i64::from(i), v));
                    }
                }
                Err(_) => break,
            }
            durable = durable.max(log.recovery_point().0);
        }
        // The flusher must be done before the power loss, or a job could write after it.
        wait_until("the flusher", || flusher.in_flight() == 0);
        durable = durable.max(log.recovery_point().0);
        (acked, durable)
    };
    // Operations of a run without a crash bound the sweep.
    let total_ops = {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyStorage::new();
        let plan = FaultPlan {
            max_write_chunk: Some(50),
            ..FaultPlan::default()
        };
        let (acked, durable) = run(dir.path(), &fs, plan);
        assert!(!acked.is_empty() && durable > 0);
        fs.operations()
    };
    assert!(total_ops > 100, "only {total_ops} operations");
    let mut below_recovery_point = 0usize;
    // About 150 crash points spread over the whole run.
    let step = usize::try_from(total_ops / 150).unwrap().max(1);
    for k in (1..total_ops).step_by(step) {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyStorage::new();
        let plan = FaultPlan {
            crash_after_ops: Some(k),
            max_write_chunk: Some(50),
            ..FaultPlan::default()
        };
        let (acked, durable) = run(dir.path(), &fs, plan);
        fs.simulate_power_loss(k % 2 == 0, k).unwrap();
        let mut log = open(dir.path(), config.clone(), 0);
        let got = read_readable(&log);
        let durable = usize::try_from(durable).unwrap();
        assert!(
            got.len() >= durable,
            "crash at op {k}: lost records below the recovery point {durable} (have {})",
            got.len()
        );
        assert_eq!(&got[..durable], &acked[..durable], "crash at op {k}");
        for w in got.windows(2) {
            assert!(w[0].0 < w[1].0, "crash at op {k}: offsets must increase");
        }
        for r in &got {
            if let Some(a) = acked.get(usize::try_from(r.0).unwrap()) {
                assert_eq!(r, a, "crash at op {k}: record at {}", r.0);
            }
        }
        below_recovery_point += durable;
        let leo = log.log_end_offset();
        assert_eq!(
            log.append(simple_batch(1, 1, 1, 1), 0)
                .unwrap()
                .first_offset,
            leo
        );
    }
    eprintln!("{total_ops} operations per run, crash every {step}th");
    assert!(
        below_recovery_point > 0,
        "no run got a background flush completed before its crash"
    );
}
