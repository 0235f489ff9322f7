//! Issue 14, acceptance 2, CI-sized: a broker holding five times more partitions than its
//! bound on open segment files (`potok.log.max.open.files`) keeps `/proc/PID/fd` within that
//! bound (plus its sockets and a few fixed files) while the partitions are created, produced to,
//! fetched from and reopened; a restart after a clean shutdown recovers no segment
//! (`segments_recovered` 0 in the log line and the metric), one after SIGKILL does, and every
//! record is still there. Raw protocol, real broker process.
//!
//! The 100,000-partition figures are a benchmark (`crates/potok/benches/partitions.py`,
//! `docs/benchmarks.md`); this test only checks the properties at a size CI runs in seconds.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest, ProduceResponse};
use potok_protocol::ApiKey;
use potok_records::RecordBatchBuilder;

use common::wire::Client;

const TOPICS: i32 = 10;
const PARTITIONS: i32 = 100;
/// The bound on open segment files; 1,000 partitions hold at least 1,000 segments.
const BOUND: usize = 200;
/// Descriptors besides segment files: stdio, the listeners and their epoll, the test's
/// connections, the metadata log and producer-id files, files being written at that instant.
const OTHER_FDS: usize = 64;

/// Counts `/proc/PID/fd` of the broker every few milliseconds and keeps the largest count.
struct FdSampler {
    pid: Arc<AtomicU32>,
    max: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FdSampler {
    fn start(pid: u32) -> FdSampler {
        let pid = Arc::new(AtomicU32::new(pid));
        let max = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pid, max, stop) = (Arc::clone(&pid), Arc::clone(&max), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let dir = format!("/proc/{}/fd", pid.load(Ordering::Relaxed));
                    if let Ok(d) = std::fs::read_dir(dir) {
                        max.fetch_max(d.count(), Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        FdSampler {
            pid,
            max,
            stop,
            thread: Some(thread),
        }
    }

    fn follow(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }
}

impl Drop for FdSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn topic(t: i32) -> String {
    format!("scale-{t}")
}

/// One Produce v9 (acks=1) with one single-record batch for every partition of `topic`;
/// returns each partition's base offset.
fn produce_all(c: &mut Client, topic: &str, tag: &str) -> Vec<i64> {
    // A current timestamp: a batch older than `segment.ms` would roll its segment, and a
    // fetch returns batches of one segment only.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let req = ProduceRequest {
        acks: 1,
        timeout_ms: 30_000,
        topic_data: vec![TopicProduceData {
            name: topic.into(),
            partition_data: (0..PARTITIONS)
                .map(|p| PartitionProduceData {
                    index: p,
                    records: Some(
                        RecordBatchBuilder::new()
                            .key_value(now, Some(b"k"), Some(format!("{tag}-{p}").as_bytes()))
                            .build()
                            .unwrap()
                            .into_bytes(),
                    ),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let r: ProduceResponse = c.call(ApiKey::Produce, 9, &req);
    let mut parts = r.responses[0].partition_responses.clone();
    parts.sort_by_key(|p| p.index);
    assert_eq!(parts.len(), PARTITIONS as usize);
    parts
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "{topic}/{}", p.index);
            p.base_offset
        })
        .collect()
}

/// Fetches every partition of `topic` from offset 0 and checks each returns `records`
/// records ending at that high watermark.
fn fetch_all(c: &mut Client, topic: &str, records: i64) {
    let req = FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 64 << 20,
        topics: vec![FetchTopic {
            topic: topic.into(),
            partitions: (0..PARTITIONS)
                .map(|p| FetchPartition {
                    partition: p,
                    fetch_offset: 0,
                    partition_max_bytes: 1 << 20,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    assert_eq!(f.error_code, 0);
    let parts = &f.responses[0].partitions;
    assert_eq!(parts.len(), PARTITIONS as usize);
    for p in parts {
        assert_eq!(p.error_code, 0, "{topic}/{}", p.partition_index);
        assert_eq!(p.high_watermark, records, "{topic}/{}", p.partition_index);
        // Each single-record batch of these sizes is 70-80 bytes; all of them must be there.
        let len = p.records.as_ref().map_or(0, |r| r.len());
        assert!(
            len as i64 >= records * 60,
            "{topic}/{}: {len} bytes for {records} records",
            p.partition_index
        );
    }
}

/// A value of the Prometheus text from the admin endpoint.
fn metric(b: &common::Broker, name: &str) -> u64 {
    let body = b.admin_get("/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

fn assert_within_bound(sampler: &FdSampler, when: &str) {
    let max = sampler.max();
    assert!(
        max <= BOUND + OTHER_FDS,
        "{when}: {max} descriptors open, bound {BOUND} + {OTHER_FDS}"
    );
}

#[test]
fn thousand_partitions_stay_within_the_descriptor_bound_and_restart_without_recovery() {
    let mut b = common::Broker::builder()
        .set("potok.log.max.open.files", &BOUND.to_string())
        .admin()
        .start();
    let sampler = FdSampler::start(b.pid().unwrap());
    let mut c = Client::with_timeout(&b, Duration::from_secs(120));
    for t in 0..TOPICS {
        c.create_topic(&topic(t), PARTITIONS, &[]);
    }
    assert_within_bound(&sampler, "creating 1,000 partitions");
    for t in 0..TOPICS {
        assert!(produce_all(&mut c, &topic(t), "a").iter().all(|&o| o == 0));
    }
    for t in 0..TOPICS {
        fetch_all(&mut c, &topic(t), 1);
    }
    assert_within_bound(&sampler, "producing to and fetching from every partition");
    // The bound was really needed: files were closed to stay within it.
    assert!(metric(&b, "potok_log_segment_file_closes_total") > 0);
    assert!(metric(&b, "potok_log_open_segment_files") <= BOUND as u64);
    assert_eq!(metric(&b, "potok_log_max_open_segment_files"), BOUND as u64);
    drop(c);

    // Clean restart: nothing is scanned.
    assert!(b.sigterm().success(), "{}", b.log());
    b.restart();
    sampler.follow(b.pid().unwrap());
    let log = b.log();
    let opened: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("opened partition logs"))
        .collect();
    assert_eq!(opened.len(), 2, "{log}");
    assert!(
        opened[1].contains("segments_recovered=0") && opened[1].contains("partitions=1000"),
        "{}",
        opened[1]
    );
    assert_eq!(metric(&b, "potok_log_segments_recovered"), 0);
    let mut c = Client::with_timeout(&b, Duration::from_secs(120));
    for t in 0..TOPICS {
        // Offsets continue: every partition reopened at its end.
        assert!(produce_all(&mut c, &topic(t), "b").iter().all(|&o| o == 1));
    }
    for t in 0..TOPICS {
        fetch_all(&mut c, &topic(t), 2);
    }
    assert_within_bound(&sampler, "after a clean restart");
    drop(c);

    // After SIGKILL the segments written since the last checkpoint are scanned, and the
    // counter says so; every acknowledged record is back.
    b.sigkill();
    b.restart();
    sampler.follow(b.pid().unwrap());
    assert!(
        metric(&b, "potok_log_segments_recovered") >= 1000,
        "{}",
        b.log()
    );
    let mut c = Client::with_timeout(&b, Duration::from_secs(120));
    for t in 0..TOPICS {
        fetch_all(&mut c, &topic(t), 2);
    }
    assert_within_bound(&sampler, "after recovery from SIGKILL");
    eprintln!(
        "most descriptors open: {} (bound {BOUND} + {OTHER_FDS})",
        sampler.max()
    );
}
