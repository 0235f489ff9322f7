//! Broker benchmark (issue #4 acceptance 4) until `potok bench` exists: starts the release
//! `potok` binary on an empty data directory and measures, in one run,
//!
//! - start-up time: process spawn to the first accepted TCP connection;
//! - idle RSS;
//! - produce of 1 KiB records with acks=1 into 1 and 8 partitions (librdkafka via rdkafka):
//!   MB/s and delivery latency p50/p99/p99.9 (enqueue to acknowledgement, under full load);
//! - consume of everything just written (from the page cache) with librdkafka: MB/s (an
//!   application's consume rate: librdkafka decodes and delivers every record);
//! - the broker's serving rate from the page cache with a raw Fetch client
//!   ([`raw_fetch`]: Fetch v16 with librdkafka's default sizes, every batch CRC-checked and
//!   counted from its header, records not decoded), over one connection for 1 and 8
//!   partitions and over one connection per partition for 8: MB/s, records/s, per-Fetch
//!   round-trip latency p50/p99/p99.9 and the broker's CPU time;
//! - broker RSS under load (sampled during the runs, maximum reported);
//! - the loopback limit with `iperf3 -c 127.0.0.1` (single stream).
//!
//! Run: `cargo run --release -p potok --example broker_bench -- [--records N] [--potok PATH]
//! [--passes N] [--raw-only]` (defaults: 1,000,000 records per produce run,
//! `target/release/potok`, and at least 5 raw Fetch passes over each topic, more with one
//! connection until it has made 1000 round trips, so that p99.9 is not just the maximum). `--raw-only` skips the librdkafka consume runs and
//! the latency probe, for profiling the serving path.

mod raw_fetch;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

struct LatencyContext {
    micros: Mutex<Vec<u32>>,
    failed: AtomicU64,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = Box<Instant>;
    fn delivery(&self, r: &DeliveryResult<'_>, sent: Box<Instant>) {
        if r.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let us = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
        self.micros.lock().unwrap().push(us);
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The broker's user+system CPU time in seconds (from /proc/PID/stat, clock ticks of 100 Hz).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Latency at a modest fixed rate (no queueing in the client): acks=1, linger.ms=0.
fn latency_run(boot: &str, topic: &str, records: usize, rate_per_sec: u64) -> Vec<u32> {
    let ctx = LatencyContext {
        micros: Mutex::new(Vec::with_capacity(records)),
        failed: AtomicU64::new(0),
    };
    let p: BaseProducer<LatencyContext> = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("acks", "1")
        .set("linger.ms", "0")
        .set("socket.nagle.disable", "true")
        .create_with_context(ctx)
        .expect("producer");
    let payload = vec![0x33u8; 1024];
    let start = Instant::now();
    for i in 0..records {
        let due = start + Duration::from_micros(i as u64 * 1_000_000 / rate_per_sec);
        while Instant::now() < due {
            p.poll(
                due.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(1)),
            );
        }
        let rec =
            BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(topic, Box::new(Instant::now()))
                .payload(&payload[..])
                .partition(0);
        p.send(rec).map_err(|(e, _)| e).expect("send");
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    let mut lat = std::mem::take(&mut *p.context().micros.lock().unwrap());
    lat.sort_unstable();
    lat
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Broker {
    child: Child,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(potok: &str, dir: &std::path::Path, port: u16) -> (Broker, Duration) {
    let t0 = Instant::now();
    let child = Command::new(potok)
        .args(["serve", "--set"])
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--set")
        .arg(format!("log.dirs={}", dir.display()))
        .env("POTOK_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn potok");
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "broker did not start"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    (Broker { child }, t0.elapsed())
}

fn produce(
    boot: &str,
    topic: &str,
    partitions: i32,
    records: usize,
    pid: u32,
    max_rss: &AtomicU64,
) -> (f64, Vec<u32>) {
    let ctx = LatencyContext {
        micros: Mutex::new(Vec::with_capacity(records)),
        failed: AtomicU64::new(0),
    };
    let p: BaseProducer<LatencyContext> = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("socket.nagle.disable", "true")
        .create_with_context(ctx)
        .expect("producer");
    let payload = vec![0x5au8; 1024];
    let start = Instant::now();
    let mut last_sample = Instant::now();
    for i in 0..records {
        let part = (i as i32) % partitions;
        let mut rec =
            BaseRecord::<(), [u8], Box<Instant>>::with_opaque_to(topic, Box::new(Instant::now()))
                .payload(&payload[..])
                .partition(part);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    p.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
        if i % 1024 == 0 {
            p.poll(Duration::ZERO);
            if last_sample.elapsed() > Duration::from_millis(100) {
                max_rss.fetch_max(rss_kib(pid), Ordering::Relaxed);
                last_sample = Instant::now();
            }
        }
    }
    p.flush(Duration::from_secs(120)).expect("flush");
    let secs = start.elapsed().as_secs_f64();
    let ctx = p.context();
    assert_eq!(ctx.failed.load(Ordering::Relaxed), 0, "deliveries failed");
    let mut lat = std::mem::take(&mut *ctx.micros.lock().unwrap());
    lat.sort_unstable();
    ((records * 1024) as f64 / secs / 1e6, lat)
}

fn consume(
    boot: &str,
    topic: &str,
    partitions: i32,
    records: usize,
    pid: u32,
    max_rss: &AtomicU64,
) -> f64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "262144")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let start = Instant::now();
    let mut n = 0usize;
    let mut bytes = 0usize;
    let mut last_sample = Instant::now();
    while n < records {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            bytes += m.payload().map_or(0, |p| p.len());
            n += 1;
        }
        if n.is_multiple_of(4096) && last_sample.elapsed() > Duration::from_millis(100) {
            max_rss.fetch_max(rss_kib(pid), Ordering::Relaxed);
            last_sample = Instant::now();
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "consume timed out"
        );
    }
    bytes as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn iperf3() -> Option<f64> {
    let port = free_port();
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("iperf3")
        .args(["-c", "127.0.0.1", "-p", &port.to_string(), "-t", "3", "-J"])
        .output()
        .ok()?;
    let _ = server.wait();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 8.0 / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let records: usize = arg("--records").map_or(1_000_000, |v| v.parse().expect("--records N"));
    let passes: usize = arg("--passes").map_or(5, |v| v.parse().expect("--passes N"));
    // For profiling the serving path: skips the librdkafka consume runs and the latency probe.
    let raw_only = args.iter().any(|a| a == "--raw-only");
    let potok = arg("--potok").unwrap_or_else(|| "target/release/potok".into());

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (broker, startup) = start_broker(&potok, dir.path(), port);
    let pid = broker.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let idle_rss = rss_kib(pid);
    let boot = format!("127.0.0.1:{port}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &boot)
            .create()
            .unwrap();
        let topics = [
            NewTopic::new("bench1", 1, TopicReplication::Fixed(1)),
            NewTopic::new("bench8", 8, TopicReplication::Fixed(1)),
        ];
        for r in admin
            .create_topics(&topics, &AdminOptions::new())
            .await
            .unwrap()
        {
            r.expect("create topic");
        }
    });
    let max_rss = AtomicU64::new(0);
    let mut raw_rows: Vec<(String, f64)> = Vec::new();
    println!(
        "potok broker benchmark: {records} records of 1 KiB per run, acks=1, librdkafka {}",
        rdkafka::util::get_rdkafka_version().1
    );
    println!(
        "start-up to first accepted connection: {:.1} ms",
        startup.as_secs_f64() * 1e3
    );
    println!("idle RSS: {:.1} MiB", idle_rss as f64 / 1024.0);
    for (topic, parts) in [("bench1", 1), ("bench8", 8)] {
        let cpu0 = cpu_secs(pid);
        let (mbps, lat) = produce(&boot, topic, parts, records, pid, &max_rss);
        let cpu1 = cpu_secs(pid);
        println!(
            "produce {parts} partition(s): {mbps:.0} MB/s (broker CPU {:.2} s for {} MB), latency under full load ms p50 {:.2} p99 {:.2} p99.9 {:.2}",
            cpu1 - cpu0,
            records * 1024 / 1_000_000,
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 0.999)
        );
        if !raw_only {
            let cpu2 = cpu_secs(pid);
            let c = consume(&boot, topic, parts, records, pid, &max_rss);
            println!(
                "consume {parts} partition(s) (librdkafka): {c:.0} MB/s (broker CPU {:.2} s)",
                cpu_secs(pid) - cpu2
            );
        }
        // The produce loop sends record i to partition i % parts, so these are the offsets
        // each partition must end at.
        let ends: Vec<(i32, i64)> = (0..parts)
            .map(|p| {
                let n =
                    records / parts as usize + usize::from((p as usize) < records % parts as usize);
                (p, n as i64)
            })
            .collect();
        let cfg = raw_fetch::LIBRDKAFKA_DEFAULTS;
        let mut runs = vec![(
            format!("{parts} partition(s), 1 connection"),
            Box::new(|| raw_fetch::one_connection(&boot, topic, &ends, cfg, passes))
                as Box<dyn Fn() -> raw_fetch::RawResult>,
        )];
        if parts > 1 {
            runs.push((
                format!("{parts} partitions, 1 connection each"),
                Box::new(|| raw_fetch::connection_per_partition(&boot, topic, &ends, cfg, passes)),
            ));
        }
        for (label, run) in runs {
            let cpu0 = cpu_secs(pid);
            let self0 = cpu_secs(std::process::id());
            let r = run();
            let broker_cpu = cpu_secs(pid) - cpu0;
            let client_cpu = cpu_secs(std::process::id()) - self0;
            max_rss.fetch_max(rss_kib(pid), Ordering::Relaxed);
            let mbps = r.batch_bytes as f64 / r.secs / 1e6;
            println!(
                "raw fetch {label}: {mbps:.0} MB/s of record batches ({:.0} MB/s of 1 KiB values), {:.0}k records/s, {} fetches ({} passes) in {:.2} s, round trip ms p50 {:.2} p99 {:.2} p99.9 {:.2}; broker CPU {:.2} s ({:.0}% of one core, {:.3} s per GB served), client CPU {:.2} s; {} response buffer allocations",
                r.records as f64 * 1024.0 / r.secs / 1e6,
                r.records as f64 / r.secs / 1e3,
                r.fetches,
                r.passes,
                r.secs,
                pct(&r.rtt_us, 0.5),
                pct(&r.rtt_us, 0.99),
                pct(&r.rtt_us, 0.999),
                broker_cpu,
                broker_cpu / r.secs * 100.0,
                broker_cpu / (r.batch_bytes as f64 / 1e9),
                client_cpu,
                r.buffer_allocs,
            );
            raw_rows.push((label, mbps));
        }
    }
    if !raw_only {
        let n = (records / 20).clamp(1000, 20_000);
        let lat = latency_run(&boot, "bench1", n, 2000);
        println!(
            "produce latency at 2000 records/s (acks=1, linger.ms=0, {n} records) ms p50 {:.3} p99 {:.3} p99.9 {:.3}",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 0.999)
        );
    }
    println!(
        "broker RSS under load (max sampled): {:.1} MiB",
        max_rss.load(Ordering::Relaxed) as f64 / 1024.0
    );
    match iperf3() {
        Some(l) => {
            println!("loopback iperf3 -c 127.0.0.1 (1 stream, 3 s): {l:.0} MB/s");
            for (label, mbps) in &raw_rows {
                println!("raw fetch {label}: {:.0}% of loopback", mbps / l * 100.0);
            }
        }
        None => println!("iperf3 not available"),
    }
    let mut s = String::new();
    let _ = std::io::stdin().take(0).read_to_string(&mut s);
    drop(broker);
}
