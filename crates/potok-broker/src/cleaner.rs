//! The log cleaner driver (Kafka's `LogCleaner` and `LogCleanerManager`): `log.cleaner.threads`
//! dedicated OS threads — never tokio workers — that repeatedly pick the compacted partition
//! most in need of cleaning and compact it with [`potok_log::Cleaner`].
//!
//! Choice (Kafka's `grabFilthiestCompactedLog`): among partitions of topics whose
//! `cleanup.policy` contains `compact` and that no other cleaner thread is cleaning, those
//! whose oldest dirty record is past `max.compaction.lag.ms` come first, then the one with the
//! highest dirty ratio at or above `min.cleanable.dirty.ratio`. With nothing to clean a thread
//! sleeps `log.cleaner.backoff.ms`.
//!
//! The partition's lock (the one produce and fetch take) is held only while a cleaning is
//! prepared, for each segment swap and for the checkpoint (nothing at or above the partition's
//! high watermark is cleaned, as Kafka stops at the last stable offset); reading, filtering and writing
//! happen without it. All threads share one rate limit, `log.cleaner.io.max.bytes.per.second`,
//! on the bytes they read and write ([`Throttle`]). A partition whose cleaning fails (corrupt
//! data) is skipped while it exists, as Kafka marks it uncleanable; a partition deleted and
//! created again under the same name is a new partition and is cleaned (Kafka's
//! `maintainUncleanablePartitions`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use potok_log::{CleanStats, Cleaner, CleanerConfig, CleanerIo};

use crate::topic_config::effective_value;
use crate::topics::{now_ms, Partition};
use crate::Broker;

/// The `log.cleaner.*` broker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.threads`.
    pub threads: usize,
    /// `log.cleaner.backoff.ms`.
    pub backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`, shared among the threads.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.size`, shared among the threads.
    pub io_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor`.
    pub load_factor: f64,
    /// `log.cleaner.io.max.bytes.per.second`.
    pub io_max_bytes_per_second: f64,
}

/// Partitions a thread is cleaning, so no two threads clean the same one, and partitions whose
/// cleaning failed.
#[derive(Debug, Default)]
struct Claims {
    in_progress: HashSet<(String, i32)>,
    /// Held weakly: a deleted partition drops out, and one re-created under the same name is
    /// another `Partition`.
    uncleanable: Vec<Weak<Partition>>,
}

impl Claims {
    fn is_uncleanable(&mut self, p: &Arc<Partition>) -> bool {
        self.uncleanable.retain(|w| w.strong_count() > 0);
        self.uncleanable
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(p)))
    }
}

/// The rate limit shared by all cleaner threads (Kafka's `Throttler`): it counts bytes in
/// windows of about a second and sleeps a thread whose bytes would exceed the rate.
#[derive(Debug)]
pub struct Throttle {
    rate: f64,
    window: Mutex<(Instant, f64)>,
}

impl Throttle {
    /// A limit of `rate` bytes per second (`f64::MAX`: none).
    pub fn new(rate: f64) -> Throttle {
        Throttle {
            rate,
            window: Mutex::new((Instant::now(), 0.0)),
        }
    }

    /// How long to sleep after `bytes` more bytes.
    fn account(&self, bytes: u64) -> Duration {
        if !(self.rate.is_finite() && self.rate > 0.0) || self.rate >= f64::MAX / 2.0 {
            return Duration::ZERO;
        }
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.1 += bytes as f64;
        let elapsed = w.0.elapsed().as_secs_f64();
        let needed = w.1 / self.rate;
        let sleep = if needed > elapsed {
            Duration::from_secs_f64(needed - elapsed)
        } else {
            Duration::ZERO
        };
        if elapsed >= 1.0 && sleep.is_zero() {
            *w = (Instant::now(), 0.0);
        }
        sleep
    }
}

/// One cleaning's IO policy: the shared throttle and the shutdown flag.
struct Io<'a> {
    throttle: &'a Throttle,
    stop: &'a AtomicBool,
    broker: &'a Broker,
}

impl CleanerIo for Io<'_> {
    fn throttle(&mut self, bytes: u64) {
        let mut left = self.throttle.account(bytes);
        // Sleep in slices so shutdown is not held up by a low rate.
        while !left.is_zero() && !self.should_abort() {
            let slice = left.min(Duration::from_millis(100));
            std::thread::sleep(slice);
            left -= slice;
        }
    }

    fn should_abort(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.broker.is_shutting_down()
    }
}

/// The running cleaner threads.
#[derive(Debug)]
pub struct CleanerThreads {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CleanerThreads {
    /// Starts `log.cleaner.threads` threads (none when `log.cleaner.enable` is false).
    pub fn start(broker: &Arc<Broker>) -> CleanerThreads {
        let s = broker.config.cleaner.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        if s.enable {
            let claims = Arc::new(Mutex::new(Claims::default()));
            let throttle = Arc::new(Throttle::new(s.io_max_bytes_per_second));
            let n = s.threads.max(1);
            for i in 0..n {
                let config = CleanerConfig {
                    dedupe_buffer_bytes: s.dedupe_buffer_bytes / n,
                    load_factor: s.load_factor,
                    io_buffer_bytes: (s.io_buffer_bytes / n).max(4096),
                    ..CleanerConfig::default()
                };
                let (b, c, t, st) = (
                    Arc::clone(broker),
                    Arc::clone(&claims),
                    Arc::clone(&throttle),
                    Arc::clone(&stop),
                );
                let spawned = std::thread::Builder::new()
                    .name(format!("potok-cleaner-{i}"))
                    .spawn(move || run(&b, config, &c, &t, &st));
                match spawned {
                    Ok(h) => threads.push(h),
                    Err(e) => tracing::error!(error = %e, "could not start a log cleaner thread"),
                }
            }
        }
        CleanerThreads { stop, threads }
    }

    /// Stops the threads (a cleaning in progress ends at its next check, leaving at most
    /// `.cleaned` files that the next open removes) and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// A candidate partition and why.
struct Candidate {
    partition: Arc<Partition>,
    overdue: bool,
    ratio: f64,
}

fn run(
    broker: &Broker,
    config: CleanerConfig,
    claims: &Mutex<Claims>,
    throttle: &Throttle,
    stop: &AtomicBool,
) {
    let mut cleaner = Cleaner::new(config);
    let backoff = Duration::from_millis(broker.config.cleaner.backoff_ms);
    let stopping = || stop.load(Ordering::Relaxed) || broker.is_shutting_down();
    while !stopping() {
        let cleaned = match grab_filthiest(broker, claims) {
            Some(p) => {
                let key = (p.topic().to_string(), p.index());
                let outcome = clean_one(broker, &mut cleaner, &p, throttle, stop);
                let mut c = claims.lock().unwrap_or_else(|e| e.into_inner());
                c.in_progress.remove(&key);
                if !outcome {
                    c.uncleanable.push(Arc::downgrade(&p));
                }
                true
            }
            None => false,
        };
        if !cleaned {
            let until = Instant::now() + backoff;
            while !stopping() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50).min(backoff));
            }
        }
    }
}

/// Cleans one partition; false when it failed and the partition should be left alone.
fn clean_one(
    broker: &Broker,
    cleaner: &mut Cleaner,
    p: &Arc<Partition>,
    throttle: &Throttle,
    stop: &AtomicBool,
) -> bool {
    let started = Instant::now();
    let mut io = Io {
        throttle,
        stop,
        broker,
    };
    let now = now_ms();
    // Kafka never cleans at or above the last stable offset (the high watermark here, with no
    // transactions): records not yet committed to the ISR must stay as written.
    let hw = match p.offsets() {
        Ok((_, hw)) => hw,
        Err(_) => return true,
    };
    match cleaner.clean(p.log_cell(), now, Some(hw), &mut io) {
        Ok(Some(stats)) => {
            log_stats(p, &stats, started.elapsed());
            broker
                .metrics
                .cleaner_ran(p.topic(), p.index(), stats.bytes_read, now);
            true
        }
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "log cleaning failed; the partition is not cleaned again until restart");
            false
        }
    }
}

fn log_stats(p: &Partition, s: &CleanStats, elapsed: Duration) {
    tracing::info!(
        topic = p.topic(),
        partition = p.index(),
        from = s.first_dirty_offset.0,
        to = s.end_offset.0,
        segments = s.segments_replaced,
        bytes_before = s.bytes_replaced,
        bytes_after = s.bytes_written,
        records_read = s.records_read,
        records_kept = s.records_retained,
        map_full = s.map_full,
        aborted = s.aborted,
        ms = elapsed.as_millis() as u64,
        "log cleaned"
    );
}

/// Picks and claims the partition to clean next, updating every compacted partition's
/// dirty-ratio metric on the way.
fn grab_filthiest(broker: &Broker, claims: &Mutex<Claims>) -> Option<Arc<Partition>> {
    let now = now_ms();
    let mut best: Option<Candidate> = None;
    // `log.cleaner.min.cleanable.ratio` may be changed dynamically; copy the layer out rather
    // than hold its lock while partition locks are taken.
    let dynamic = broker
        .dynamic
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let lookup = crate::dynamic_config::Layered {
        config: &broker.config,
        dynamic: &dynamic,
    };
    for topic in broker.topics.all() {
        let state = topic.state();
        if !state.config.log.compact {
            continue;
        }
        let min_ratio = effective_value("min.cleanable.dirty.ratio", &state.overrides, &lookup)
            .and_then(|(v, _)| v.parse::<f64>().ok())
            .unwrap_or(0.5);
        for p in &state.partitions {
            let Ok((_, hw)) = p.offsets() else {
                continue;
            };
            let Ok(stats) = p.with_log(|l| Ok(l.cleanable_stats(now, Some(hw)))) else {
                continue;
            };
            broker
                .metrics
                .cleaner_dirty_ratio(p.topic(), p.index(), stats.dirty_ratio);
            let overdue = stats.max_compaction_delay_ms > 0;
            let dirty = stats.first_dirty_offset < stats.first_uncleanable_offset;
            if !dirty || !(overdue || stats.dirty_ratio >= min_ratio) {
                continue;
            }
            {
                let mut c = claims.lock().unwrap_or_else(|e| e.into_inner());
                let key = (p.topic().to_string(), p.index());
                if c.in_progress.contains(&key) || c.is_uncleanable(p) {
                    continue;
                }
            }
            let better = best
                .as_ref()
                .is_none_or(|b| (overdue, stats.dirty_ratio) > (b.overdue, b.ratio));
            if better {
                best = Some(Candidate {
                    partition: Arc::clone(p),
                    overdue,
                    ratio: stats.dirty_ratio,
                });
            }
        }
    }
    let best = best?;
    let key = (best.partition.topic().to_string(), best.partition.index());
    let mut c = claims.lock().unwrap_or_else(|e| e.into_inner());
    c.in_progress.insert(key).then_some(best.partition)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_asks_for_sleep_beyond_the_rate() {
        let t = Throttle::new(1000.0);
        assert!(t.account(10) < Duration::from_millis(20));
        let s = t.account(2000);
        assert!(s > Duration::from_millis(1500), "{s:?}");
        let unlimited = Throttle::new(f64::MAX);
        assert_eq!(unlimited.account(u64::MAX / 2), Duration::ZERO);
    }
}
