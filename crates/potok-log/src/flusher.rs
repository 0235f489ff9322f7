//! Background flushing (issue #14): the fsyncs a roll or the `flush.ms` policy asks for run on
//! dedicated threads instead of under the log's lock on the thread that appends.
//!
//! Kafka's `UnifiedLog.roll` creates the new segment on the appending thread and schedules the
//! flush of everything below it on its background scheduler (`flush-log`, one of the
//! `background.threads`); the recovery point advances only when that flush has completed. A
//! [`Log`](crate::Log) given a [`BackgroundFlusher`] with
//! [`Log::set_background_flusher`](crate::Log::set_background_flusher) does the same: a roll
//! writes the old segment's indexes into the page cache, creates the new segment and hands a
//! `FlushJob` to the flusher, which fdatasyncs the `.log` files below the new segment, fsyncs the old segment's
//! indexes and the directory, writes the producer-state snapshot of the roll and only then
//! reports the new recovery point back through the log's `FlushTracker`.
//!
//! Each job flushes every segment from the log's confirmed recovery point up to its target, not
//! just the segment that was rolled, so jobs of one log may complete in any order: whichever
//! completes, everything below its target is durable. A failed fsync takes the log offline
//! (the page cache may have dropped the data), as an inline one does.
//!
//! The queue is bounded; when it is full the log runs the job inline (under its lock, as
//! without a flusher), so a storm of rolls slows appends down instead of growing memory.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};

use crate::storage::{Storage, StorageFile};
use crate::{LogError, Result};

/// Threads that run the logs' background flushes. Shared by every log of a broker; the
/// threads end once the flusher and every log holding it are dropped.
#[derive(Debug)]
pub struct BackgroundFlusher {
    queue: SyncSender<FlushJob>,
    completed: Arc<AtomicU64>,
    /// Jobs queued and not finished.
    in_flight: Arc<AtomicU64>,
    inline: AtomicU64,
}

impl BackgroundFlusher {
    /// Starts `threads` flusher threads (at least one) sharing a queue of at most `queue_len`
    /// jobs.
    pub fn start(threads: usize, queue_len: usize) -> std::io::Result<Arc<BackgroundFlusher>> {
        let (tx, rx) = sync_channel::<FlushJob>(queue_len.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let completed = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(AtomicU64::new(0));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            let completed = Arc::clone(&completed);
            let in_flight = Arc::clone(&in_flight);
            std::thread::Builder::new()
                .name(format!("potok-log-flush-{i}"))
                .spawn(move || worker(&rx, &completed, &in_flight))?;
        }
        Ok(Arc::new(BackgroundFlusher {
            queue: tx,
            completed,
            in_flight,
            inline: AtomicU64::new(0),
        }))
    }

    /// Queues `job`; gives it back when the queue is full (the caller runs it inline).
    pub(crate) fn submit(&self, job: FlushJob) -> Option<FlushJob> {
        // Counted before the send, so a worker finishing it at once cannot underflow.
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        match self.queue.try_send(job) {
            Ok(()) => None,
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                self.inline.fetch_add(1, Ordering::Relaxed);
                Some(job)
            }
        }
    }

    /// Jobs queued or running.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Jobs completed by the flusher threads.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Jobs that found the queue full and ran inline on the appending thread.
    pub fn ran_inline(&self) -> u64 {
        self.inline.load(Ordering::Relaxed)
    }
}

fn worker(rx: &Mutex<Receiver<FlushJob>>, completed: &AtomicU64, in_flight: &AtomicU64) {
    loop {
        // The lock is held only while waiting for the next job, not while running it.
        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        job.run();
        completed.fetch_add(1, Ordering::Relaxed);
        in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a log's background flushes have achieved, shared between the log and its jobs.
///
/// Thread-safety: a leaf lock; the log takes it for a few field reads, a job once when it
/// finishes; nothing else is locked while it is held.
#[derive(Debug, Default)]
pub(crate) struct FlushTracker {
    state: Mutex<TrackerState>,
    idle: Condvar,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct TrackerState {
    /// Jobs submitted and not yet finished.
    pub(crate) pending: usize,
    /// The largest target of a job that completed: everything below it is durable.
    pub(crate) flushed_to: Option<i64>,
    /// Why a job failed; the log is offline from then on.
    pub(crate) failure: Option<String>,
}

impl FlushTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a job about to be submitted (before it can possibly finish).
    pub(crate) fn started(&self) {
        self.lock().pending += 1;
    }

    fn finished(&self, upto: i64, result: Result<()>) {
        let mut s = self.lock();
        s.pending = s.pending.saturating_sub(1);
        match result {
            Ok(()) => s.flushed_to = Some(s.flushed_to.map_or(upto, |f| f.max(upto))),
            Err(e) => {
                tracing::error!(error = %e, "background flush failed; the log goes offline");
                s.failure.get_or_insert_with(|| e.to_string());
            }
        }
        drop(s);
        self.idle.notify_all();
    }

    /// The current state.
    pub(crate) fn state(&self) -> TrackerState {
        self.lock().clone()
    }

    /// Whether a job failed.
    pub(crate) fn failed(&self) -> bool {
        self.lock().failure.is_some()
    }

    /// Waits until no job is pending, then forgets the completed targets (the caller folds
    /// them into its recovery point first: it gets the state back).
    pub(crate) fn wait_idle_and_take(&self) -> TrackerState {
        let mut s = self.lock();
        while s.pending > 0 {
            s = self.idle.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        let out = s.clone();
        s.flushed_to = None;
        out
    }
}

/// One background flush: make everything below `upto` durable, then report it.
#[derive(Debug)]
pub(crate) struct FlushJob {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) dir: PathBuf,
    /// The `.log` files of every segment from the confirmed recovery point up to `upto`.
    pub(crate) logs: Vec<(PathBuf, Arc<dyn StorageFile>)>,
    /// Index files written (not yet synced) by the roll.
    pub(crate) indexes: Vec<PathBuf>,
    /// The producer-state snapshot taken at the roll: its path and encoded bytes.
    pub(crate) snapshot: Option<(PathBuf, Vec<u8>)>,
    pub(crate) upto: i64,
    pub(crate) tracker: Arc<FlushTracker>,
}

/// A file the log removed meanwhile (retention) needs no flush.
fn gone_ok(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

impl FlushJob {
    /// Runs the job and reports its outcome to the log's tracker.
    pub(crate) fn run(self) {
        let result = self.work();
        self.tracker.finished(self.upto, result);
    }

    fn work(&self) -> Result<()> {
        let st = &*self.storage;
        for (path, file) in &self.logs {
            gone_ok(file.sync_data()).map_err(|e| LogError::io(path, e))?;
        }
        for path in &self.indexes {
            gone_ok(st.open(path, false).and_then(|f| f.sync_data()))
                .map_err(|e| LogError::io(path, e))?;
        }
        // The new segment's directory entry (and the old segment's, if it is new too) must be
        // durable before the recovery point moves past them.
        st.sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))?;
        // Written after the data it describes is durable, so a snapshot never describes data
        // a crash could lose (the same order as the inline roll).
        if let Some((path, bytes)) = &self.snapshot {
            crate::checkpoint::replace_file(st, &self.dir, path, bytes)?;
        }
        Ok(())
    }
}
