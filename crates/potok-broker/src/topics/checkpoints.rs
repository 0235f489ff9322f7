//! The data directory's checkpoint files as read at start, and the scoped-thread helper that
//! opens and closes partitions in parallel.

use super::*;

/// The data directory's checkpoint files as read at start.
pub(super) struct DirCheckpoints {
    /// The clean-shutdown marker was present.
    pub(super) clean: bool,
    pub(super) recovery_points: HashMap<(String, i32), i64>,
    pub(super) log_starts: HashMap<(String, i32), i64>,
}

impl DirCheckpoints {
    /// What the files say about one partition. A partition missing from the recovery points is
    /// recovered from its start even after a clean shutdown: nothing vouches for it.
    pub(super) fn partition(&self, topic: &str, p: i32) -> DirCheckpoint {
        let key = (topic.to_string(), p);
        let recovery_point = self.recovery_points.get(&key).copied();
        DirCheckpoint {
            clean_shutdown: self.clean && recovery_point.is_some(),
            recovery_point,
            log_start_offset: self.log_starts.get(&key).copied(),
        }
    }
}

/// `f` applied to every item on up to `threads` scoped threads; results in item order. Items
/// are handed out one at a time, so a slow item (a partition with much to recover) does not
/// hold up a whole share of the others.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| match w.join() {
                Ok(out) => out,
                // A panicking worker is a bug; re-raise it on the calling thread.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}
