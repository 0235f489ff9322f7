//! Broker metrics and their Prometheus text exposition (served on `potok.admin.listener`).
//!
//! Hand-written rather than a metrics framework: a handful of atomics and two small maps keep
//! the hot path to a few relaxed atomic adds. Per-topic counters live in a map behind a
//! `Mutex` that is only touched once per partition per request (never per record) and never
//! held across an `.await`.
//!
//! Exposed series (all prefixed `potok_`):
//! - `active_connections` (gauge), `connections_total` (counter)
//! - `requests_total{api}` and `request_latency_seconds{api}` (histogram, handling through
//!   response written)
//! - `topic_bytes_in_total{topic}`, `topic_records_in_total{topic}`,
//!   `topic_bytes_out_total{topic}`, `topic_records_out_total{topic}` — records out are counted
//!   per batch header (`records_count`) of what a fetch returned, without reading the records.
//! - log cleaner: `cleaner_runs_total`, `cleaner_bytes_cleaned_total` (bytes read by
//!   cleanings), `cleaner_dirty_ratio{topic,partition}` (gauge, compacted partitions),
//!   `cleaner_seconds_since_last_clean{topic,partition}` (gauge, partitions cleaned since start)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use potok_protocol::ApiKey;

/// Histogram bucket upper bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct TopicCounters {
    bytes_in: u64,
    records_in: u64,
    bytes_out: u64,
    records_out: u64,
}

/// Per compacted partition (topic, index): its dirty ratio and the clock of its last cleaning.
type CleanerPartitions = BTreeMap<(String, i32), (f64, Option<i64>)>;

/// All broker metrics. Thread-safe; see the module docs.
#[derive(Debug)]
pub struct Metrics {
    active_connections: AtomicI64,
    connections_total: AtomicU64,
    /// Indexed by API key (0..=127).
    requests: Vec<Histogram>,
    topics: Mutex<BTreeMap<String, TopicCounters>>,
    cleaner_runs: AtomicU64,
    cleaner_bytes: AtomicU64,
    /// Per compacted partition: (dirty ratio, clock of the last cleaning in ms).
    cleaner_partitions: Mutex<CleanerPartitions>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            active_connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            requests: (0..128).map(|_| Histogram::default()).collect(),
            topics: Mutex::new(BTreeMap::new()),
            cleaner_runs: AtomicU64::new(0),
            cleaner_bytes: AtomicU64::new(0),
            cleaner_partitions: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Metrics {
    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.active_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Current connections.
    pub fn active_connections(&self) -> i64 {
        self.active_connections.load(Ordering::Relaxed)
    }

    /// A request of `api` was answered after `elapsed`.
    pub fn request_done(&self, api: ApiKey, elapsed: Duration) {
        let Some(h) = self.requests.get(api as i16 as usize) else {
            return;
        };
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
            h.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        h.count.fetch_add(1, Ordering::Relaxed);
        h.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Bytes and records appended to a topic.
    pub fn produced(&self, topic: &str, bytes: u64, records: u64) {
        let mut m = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let c = match m.get_mut(topic) {
            Some(c) => c,
            None => m.entry(topic.to_string()).or_default(),
        };
        c.bytes_in += bytes;
        c.records_in += records;
    }

    /// Bytes and records returned by fetches of a topic.
    pub fn fetched(&self, topic: &str, bytes: u64, records: u64) {
        let mut m = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        let c = match m.get_mut(topic) {
            Some(c) => c,
            None => m.entry(topic.to_string()).or_default(),
        };
        c.bytes_out += bytes;
        c.records_out += records;
    }

    /// Forgets a deleted topic's counters.
    pub fn remove_topic(&self, topic: &str) {
        self.topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(topic);
        self.cleaner_partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(t, _), _| t != topic);
    }

    /// The log cleaner cleaned a partition at `now_ms`, reading `bytes`.
    pub fn cleaner_ran(&self, topic: &str, partition: i32, bytes: u64, now_ms: i64) {
        self.cleaner_runs.fetch_add(1, Ordering::Relaxed);
        self.cleaner_bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut m = self
            .cleaner_partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.entry((topic.to_string(), partition))
            .or_insert((0.0, None))
            .1 = Some(now_ms);
    }

    /// A compacted partition's current dirty ratio.
    pub fn cleaner_dirty_ratio(&self, topic: &str, partition: i32, ratio: f64) {
        let mut m = self
            .cleaner_partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match m.get_mut(&(topic.to_string(), partition)) {
            Some(e) => e.0 = ratio,
            None => {
                m.insert((topic.to_string(), partition), (ratio, None));
            }
        }
    }

    fn render_cleaner(&self, s: &mut String) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let _ = writeln!(
            s,
            "# HELP potok_cleaner_runs_total Log cleanings completed."
        );
        let _ = writeln!(s, "# TYPE potok_cleaner_runs_total counter");
        let _ = writeln!(
            s,
            "potok_cleaner_runs_total {}",
            self.cleaner_runs.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP potok_cleaner_bytes_cleaned_total Bytes read by log cleanings."
        );
        let _ = writeln!(s, "# TYPE potok_cleaner_bytes_cleaned_total counter");
        let _ = writeln!(
            s,
            "potok_cleaner_bytes_cleaned_total {}",
            self.cleaner_bytes.load(Ordering::Relaxed)
        );
        let parts = self
            .cleaner_partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let _ = writeln!(s, "# HELP potok_cleaner_dirty_ratio Share of a compacted partition's cleanable bytes not yet cleaned.");
        let _ = writeln!(s, "# TYPE potok_cleaner_dirty_ratio gauge");
        for ((t, p), (ratio, _)) in &parts {
            let _ = writeln!(
                s,
                "potok_cleaner_dirty_ratio{{topic=\"{t}\",partition=\"{p}\"}} {ratio}"
            );
        }
        let _ = writeln!(s, "# HELP potok_cleaner_seconds_since_last_clean Time since the partition was last cleaned.");
        let _ = writeln!(s, "# TYPE potok_cleaner_seconds_since_last_clean gauge");
        for ((t, p), (_, last)) in &parts {
            if let Some(last) = last {
                let secs = now_ms.saturating_sub(*last).max(0) as f64 / 1000.0;
                let _ = writeln!(s, "potok_cleaner_seconds_since_last_clean{{topic=\"{t}\",partition=\"{p}\"}} {secs}");
            }
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP potok_active_connections Open client connections."
        );
        let _ = writeln!(s, "# TYPE potok_active_connections gauge");
        let _ = writeln!(s, "potok_active_connections {}", self.active_connections());
        let _ = writeln!(
            s,
            "# HELP potok_connections_total Client connections accepted."
        );
        let _ = writeln!(s, "# TYPE potok_connections_total counter");
        let _ = writeln!(
            s,
            "potok_connections_total {}",
            self.connections_total.load(Ordering::Relaxed)
        );
        let _ = writeln!(s, "# HELP potok_request_latency_seconds Time from a request being read to its response being written.");
        let _ = writeln!(s, "# TYPE potok_request_latency_seconds histogram");
        for (key, h) in self.requests.iter().enumerate() {
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let name = ApiKey::from_i16(key as i16).map_or("unknown", |k| k.name());
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += h.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    s,
                    "potok_request_latency_seconds_bucket{{api=\"{name}\",le=\"{b}\"}} {cum}"
                );
            }
            let _ = writeln!(
                s,
                "potok_request_latency_seconds_bucket{{api=\"{name}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                s,
                "potok_request_latency_seconds_sum{{api=\"{name}\"}} {}",
                h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                s,
                "potok_request_latency_seconds_count{{api=\"{name}\"}} {count}"
            );
        }
        let _ = writeln!(s, "# HELP potok_requests_total Requests answered, by API.");
        let _ = writeln!(s, "# TYPE potok_requests_total counter");
        for (key, h) in self.requests.iter().enumerate() {
            let count = h.count.load(Ordering::Relaxed);
            if count > 0 {
                let name = ApiKey::from_i16(key as i16).map_or("unknown", |k| k.name());
                let _ = writeln!(s, "potok_requests_total{{api=\"{name}\"}} {count}");
            }
        }
        let topics = self
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (metric, help, get) in [
            (
                "potok_topic_bytes_in_total",
                "Record batch bytes appended.",
                (|c: &TopicCounters| c.bytes_in) as fn(&TopicCounters) -> u64,
            ),
            ("potok_topic_records_in_total", "Records appended.", |c| {
                c.records_in
            }),
            (
                "potok_topic_bytes_out_total",
                "Record batch bytes sent to consumers.",
                |c| c.bytes_out,
            ),
            (
                "potok_topic_records_out_total",
                "Records sent to consumers.",
                |c| c.records_out,
            ),
        ] {
            let _ = writeln!(s, "# HELP {metric} {help}");
            let _ = writeln!(s, "# TYPE {metric} counter");
            for (t, c) in &topics {
                let _ = writeln!(s, "{metric}{{topic=\"{t}\"}} {}", get(c));
            }
        }
        self.render_cleaner(&mut s);
        s
    }
}
