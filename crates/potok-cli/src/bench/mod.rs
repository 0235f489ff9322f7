//! `potok bench produce|consume|e2e`: a load generator that measures any Kafka-compatible broker
//! the same way, through librdkafka.
//!
//! Latency is recorded per record in an HDR histogram (microsecond resolution, 3 significant
//! digits):
//! - `produce`: from the moment the record is handed to the producer until its delivery report
//!   (the broker's acknowledgement at `--acks`);
//! - `e2e`: from the moment the record is handed to the producer until a consumer in the same
//!   process receives it (the send time travels in the first 8 bytes of the value);
//! - `consume` reads what is already in the topic, whose age says nothing about the broker, so it
//!   reports throughput only.
//!
//! With `--rate`, record k of a producer is *scheduled* at `start + k / rate`, and its latency is
//! measured from that scheduled time rather than from when it was actually sent. When the broker
//! stalls, the records that should have been sent during the stall are then charged the time they
//! waited, which is the correction for coordinated omission (Gil Tene; the same approach as
//! wrk2's and the Kafka `ProducerPerformance` tool's intended start times) — without it a stall
//! shows up as one slow record instead of thousands.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{block_on, metadata, ClientArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::produce::{send_blocking, ProducerTuning};
use crate::signal;

mod report;
mod txn;

use report::{report, Outcome};
use txn::{Transactions, TxnStats};

/// `potok bench ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum BenchCommand {
    /// Produce records as fast as possible (or at `--rate`); latency = acknowledgement time.
    Produce(BenchArgs),
    /// Read the topic from the beginning to its end (or `--count` records); throughput only.
    Consume(BenchArgs),
    /// Produce and consume at once; latency = from send to receipt by the consumer.
    E2e(BenchArgs),
}

/// Options of every bench mode.
#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Topic to use; created with `--partitions` if missing.
    #[arg(long, default_value = "potok-bench")]
    pub topic: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Number of records (default 100000 unless `--duration` is given).
    #[arg(long, conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Run for this many seconds instead of a fixed count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Partitions of the topic when the bench creates it.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    #[command(flatten)]
    pub tuning: ProducerTuning,
    /// Producer threads (each with its own connection).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer threads; partitions are split among them.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Target records per second over all producers (fixed-rate run with coordinated-omission
    /// correction); unlimited when absent.
    #[arg(long)]
    pub rate: Option<u64>,
    /// `produce` only: the first N records (part of the count) are sent and their
    /// acknowledgements awaited before the clock starts, and are left out of the figures, as
    /// Kafka's `producer-perf-test --warmup-records` does (KIP-1052). Connection set-up and,
    /// with `enable.idempotence`, the client's producer-id acquisition (librdkafka retries it
    /// on a 500 ms timer) then do not count against throughput or latency.
    #[arg(long, default_value_t = 0)]
    pub warmup_records: u64,
    /// Give records keys `key-0` .. `key-{N-1}` in turn (a compacted topic refuses records
    /// without a key); without it records have no key.
    #[arg(long)]
    pub keys: Option<u64>,
    /// `produce` only: each producer thread is transactional (its own `transactional.id`) and
    /// commits every N records; the commit latency is reported beside the figures
    /// (`bench/txn.rs`).
    #[arg(long)]
    pub transactional_batch: Option<u64>,
    /// With `--transactional-batch`: abort every K-th transaction instead of committing it
    /// (its records are acknowledged first, so they stay in the log behind an ABORT marker).
    #[arg(long, requires = "transactional_batch")]
    pub abort_every: Option<u64>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

const DEFAULT_COUNT: u64 = 100_000;
/// Histogram range: 1 µs to one hour; anything slower saturates at the top.
const HIST_MAX_US: u64 = 3_600_000_000;

pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("constant bounds are valid")
}

/// Counters shared by the worker threads and the progress bar.
#[derive(Default)]
struct Shared {
    produced: AtomicU64,
    produced_bytes: AtomicU64,
    failed: AtomicU64,
    consumed: AtomicU64,
    consumed_bytes: AtomicU64,
    producers_done: AtomicBool,
    first_error: Mutex<Option<String>>,
}

/// Per-producer context: delivery reports arrive on the thread that polls the producer (the
/// worker itself), so the histogram mutex is uncontended.
struct BenchProducerContext {
    base: Instant,
    hist: Mutex<Histogram<u64>>,
    shared: Arc<Shared>,
    size: u64,
    /// Set while the worker's warm-up records are in flight: their acknowledgements count
    /// neither as produced records nor as latency samples.
    warming: AtomicBool,
}

impl ClientContext for BenchProducerContext {}

impl ProducerContext for BenchProducerContext {
    /// Nanoseconds from `base` to the record's send (or scheduled) time: a plain integer, so no
    /// allocation per record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        match result {
            Ok(_) if self.warming.load(Ordering::Relaxed) => {}
            Ok(_) => {
                let now = self.base.elapsed().as_nanos() as u64;
                let us = now.saturating_sub(sent_ns as u64) / 1000;
                self.hist
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .saturating_record(us.max(1));
                self.shared.produced.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .produced_bytes
                    .fetch_add(self.size, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self
                    .shared
                    .first_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    *first = Some(e.to_string());
                }
            }
        }
    }
}

/// Runs a `potok bench` mode.
pub fn run(cmd: &BenchCommand) -> Result<()> {
    let (mode, args) = match cmd {
        BenchCommand::Produce(a) => ("produce", a),
        BenchCommand::Consume(a) => ("consume", a),
        BenchCommand::E2e(a) => ("e2e", a),
    };
    if args.producers == 0 || args.consumers == 0 {
        return Err(Error::Usage(
            "--producers and --consumers must be at least 1".into(),
        ));
    }
    if mode == "e2e" && args.size < 8 {
        return Err(Error::Usage(
            "e2e needs --size of at least 8 bytes (the send time travels in the value)".into(),
        ));
    }
    if args.warmup_records > 0 && mode != "produce" {
        return Err(Error::Usage(
            "--warmup-records applies to `bench produce` only".into(),
        ));
    }
    if args.count.is_some_and(|c| args.warmup_records >= c) {
        return Err(Error::Usage(
            "--warmup-records must be smaller than --count".into(),
        ));
    }
    if args.transactional_batch.is_some() && mode != "produce" {
        return Err(Error::Usage(
            "--transactional-batch applies to `bench produce` only".into(),
        ));
    }
    if args.transactional_batch == Some(0) || args.abort_every == Some(0) {
        return Err(Error::Usage(
            "--transactional-batch and --abort-every must be at least 1".into(),
        ));
    }
    if args.rate == Some(0) {
        return Err(Error::Usage("--rate must be at least 1".into()));
    }
    if args.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        return Err(Error::Usage(
            "--duration must be a positive number of seconds".into(),
        ));
    }
    let partitions = ensure_topic(args, mode != "consume")?;
    signal::install();
    let shared = Arc::new(Shared::default());
    let bar = progress_bar(args, mode);
    let ticker = {
        let shared = Arc::clone(&shared);
        let bar = bar.clone();
        let consume_side = mode != "produce";
        thread::spawn(move || {
            while !bar.is_finished() {
                let n = if consume_side {
                    shared.consumed.load(Ordering::Relaxed)
                } else {
                    shared.produced.load(Ordering::Relaxed)
                };
                bar.set_position(n);
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let outcome = match mode {
        "produce" => run_produce(args, &shared, None),
        "consume" => run_consume(args, &shared, &partitions),
        _ => run_e2e(args, &shared, &partitions),
    };
    bar.finish_and_clear();
    let _ = ticker.join();
    let outcome = outcome?;
    report(mode, args, &outcome)?;
    if outcome.failed > 0 {
        let first = shared
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        return Err(Error::Delivery {
            failed: outcome.failed,
            total: outcome.failed + outcome.produced,
            first,
        });
    }
    Ok(())
}

fn progress_bar(args: &BenchArgs, mode: &str) -> ProgressBar {
    // indicatif draws only when stderr is a terminal, so scripts and CI see nothing.
    let bar = match (args.count, args.duration) {
        (_, Some(_)) => ProgressBar::new_spinner(),
        (c, None) => ProgressBar::new(c.unwrap_or(DEFAULT_COUNT)),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let template = if args.duration.is_some() {
        "{spinner} bench {msg}: {pos} records, {per_sec} [{elapsed_precise}]"
    } else {
        "bench {msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(mode.to_string());
    bar
}

/// Makes sure the topic exists (creating it when `create` is set) and returns its partitions.
fn ensure_topic(args: &BenchArgs, create: bool) -> Result<Vec<i32>> {
    let admin = args.client.admin()?;
    match metadata(&args.client, admin.inner(), Some(&args.topic)) {
        Ok(md) => {
            let mut ids: Vec<i32> = md
                .topics()
                .iter()
                .find(|t| t.name() == args.topic)
                .map(|t| t.partitions().iter().map(|p| p.id()).collect())
                .unwrap_or_default();
            ids.sort_unstable();
            if create && ids.len() != args.partitions as usize {
                eprintln!(
                    "note: topic '{}' already exists with {} partition(s); using it as it is",
                    args.topic,
                    ids.len()
                );
            }
            Ok(ids)
        }
        Err(Error::UnknownTopic(_)) if create => {
            let topic = NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(1));
            let opts = AdminOptions::new()
                .request_timeout(Some(args.client.timeout()))
                .operation_timeout(Some(args.client.timeout()));
            let results = block_on(admin.create_topics([&topic], &opts))
                .map_err(|e| args.client.request_error("creating the bench topic", e))?;
            for r in results {
                if let Err((name, code)) = r {
                    if code != RDKafkaErrorCode::TopicAlreadyExists {
                        return Err(Error::broker(format!("creating topic '{name}'"), code));
                    }
                }
            }
            // Wait until the new topic's leaders are known so the first sends do not race
            // metadata propagation.
            let deadline = Instant::now() + args.client.timeout();
            loop {
                match metadata(&args.client, admin.inner(), Some(&args.topic)) {
                    Ok(md) => {
                        let t = md.topics().iter().find(|t| t.name() == args.topic);
                        if let Some(t) = t {
                            if t.partitions().len() == args.partitions as usize
                                && t.partitions().iter().all(|p| p.leader() >= 0)
                            {
                                return Ok((0..args.partitions).collect());
                            }
                        }
                    }
                    Err(Error::UnknownTopic(_)) => {}
                    Err(e) => return Err(e),
                }
                if Instant::now() > deadline {
                    return Err(Error::UnknownTopic(args.topic.clone()));
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        Err(e) => Err(e),
    }
}

/// Runs the producer threads to completion. With `e2e_base`, the send time (ns since that
/// instant) is written into the first 8 bytes of every value.
fn run_produce(
    args: &BenchArgs,
    shared: &Arc<Shared>,
    e2e_base: Option<Instant>,
) -> Result<Outcome> {
    let base = e2e_base.unwrap_or_else(Instant::now);
    let total = match (args.count, args.duration) {
        (Some(c), _) => Some(c),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_COUNT),
    };
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let started = Instant::now();
    let mut handles = Vec::new();
    let n = args.producers as u64;
    for i in 0..args.producers {
        let split = |t: u64| t / n + u64::from((i as u64) < t % n);
        let share = total.map(split);
        let warmup = split(args.warmup_records);
        let rate = args.rate.map(|r| r as f64 / args.producers as f64);
        let args = args.clone();
        let shared = Arc::clone(shared);
        handles.push(thread::spawn(move || {
            produce_worker(
                &args,
                shared,
                base,
                (share, warmup),
                deadline,
                rate,
                e2e_base.is_some(),
            )
        }));
    }
    let mut hist = new_histogram();
    let mut txns: Option<TxnStats> = None;
    let mut first_err = None;
    // The clock starts when the first worker has finished its warm-up (at once without one).
    let mut timed_from: Option<Instant> = None;
    for h in handles {
        match h.join() {
            Ok(Ok((hh, from, t))) => {
                let _ = hist.add(hh);
                if let Some(t) = t {
                    txns.get_or_insert_with(TxnStats::empty).add(&t);
                }
                timed_from = Some(timed_from.map_or(from, |t| t.min(from)));
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(Error::Usage("a producer thread panicked".into()));
            }
        }
    }
    shared.producers_done.store(true, Ordering::SeqCst);
    if let Some(e) = first_err {
        return Err(e);
    }
    let produced = shared.produced.load(Ordering::SeqCst);
    Ok(Outcome {
        records: produced,
        bytes: shared.produced_bytes.load(Ordering::SeqCst),
        produced,
        failed: shared.failed.load(Ordering::SeqCst),
        elapsed: timed_from.unwrap_or(started).elapsed(),
        latency: Some(hist),
        transactions: txns,
    })
}

/// One producer thread: sends `counts.0` records (until the deadline when `None`), the first
/// `counts.1` of which are a warm-up that is awaited before the timed part. Returns the latency
/// histogram of the timed records, the instant the timed part began and, with
/// `--transactional-batch`, what its transactions did.
fn produce_worker(
    args: &BenchArgs,
    shared: Arc<Shared>,
    base: Instant,
    counts: (Option<u64>, u64),
    deadline: Option<Instant>,
    rate: Option<f64>,
    stamp: bool,
) -> Result<(Histogram<u64>, Instant, Option<TxnStats>)> {
    let (count, warmup) = counts;
    let mut config = args.client.config();
    args.tuning.apply(&mut config);
    config.set(
        "message.timeout.ms",
        (args.client.timeout_ms.max(1000) * 6).to_string(),
    );
    if args.transactional_batch.is_some() {
        config.set("transactional.id", txn::transactional_id());
    }
    let context = BenchProducerContext {
        base,
        hist: Mutex::new(new_histogram()),
        shared: Arc::clone(&shared),
        size: args.size as u64,
        warming: AtomicBool::new(warmup > 0),
    };
    let producer: BaseProducer<BenchProducerContext> = args
        .client
        .finish(config)
        .create_with_context(context)
        .map_err(|e| Error::kafka("creating a bench producer", e))?;
    // A fixed, non-compressible-looking pattern so compression codecs do real work.
    let mut value: Vec<u8> = (0..args.size)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect();
    let flush_timeout = Duration::from_millis(args.client.timeout_ms.max(1000) * 7);
    let mut txn = match args.transactional_batch {
        Some(n) => Some(Transactions::start(
            &producer,
            n,
            args.abort_every,
            flush_timeout,
            warmup == 0,
        )?),
        None => None,
    };
    let mut k: u64 = 0;
    if warmup > 0 {
        while k < warmup {
            let key = args.keys.map(|n| format!("key-{}", k % n.max(1)));
            let mut record = BaseRecord::with_opaque_to(&args.topic, 0).payload(&value[..]);
            if let Some(key) = &key {
                record = record.key(key.as_bytes());
            }
            send_blocking(&producer, record)?;
            k += 1;
            if let Some(t) = txn.as_mut() {
                t.after_send(&producer)?;
            }
        }
        producer
            .flush(flush_timeout)
            .map_err(|e| Error::kafka("waiting for the warm-up records", e))?;
        if let Some(t) = txn.as_mut() {
            t.start_measuring(&producer)?;
        }
        if shared.failed.load(Ordering::SeqCst) > 0 {
            let first = shared.first_error.lock().unwrap_or_else(|p| p.into_inner());
            return Err(Error::Usage(format!(
                "a warm-up record failed: {}",
                first.as_deref().unwrap_or("unknown error")
            )));
        }
        producer.context().warming.store(false, Ordering::SeqCst);
    }
    let start = Instant::now();
    loop {
        if count.is_some_and(|c| k >= c)
            || deadline.is_some_and(|d| Instant::now() >= d)
            || signal::stop_requested()
        {
            break;
        }
        let scheduled = match rate {
            Some(r) => {
                let at = start + Duration::from_secs_f64((k - warmup) as f64 / r);
                let now = Instant::now();
                if at > now {
                    // Serve delivery reports while waiting instead of sleeping blindly.
                    producer.poll(at - now);
                    let now = Instant::now();
                    if at > now {
                        thread::sleep(at - now);
                    }
                }
                at
            }
            None => Instant::now(),
        };
        let sent_ns = scheduled.saturating_duration_since(base).as_nanos() as u64;
        if stamp {
            value[..8].copy_from_slice(&sent_ns.to_le_bytes());
        }
        let key = args.keys.map(|n| format!("key-{}", k % n.max(1)));
        let mut record =
            BaseRecord::with_opaque_to(&args.topic, sent_ns as usize).payload(&value[..]);
        if let Some(key) = &key {
            record = record.key(key.as_bytes());
        }
        send_blocking(&producer, record)?;
        k += 1;
        if let Some(t) = txn.as_mut() {
            t.after_send(&producer)?;
        }
        if k.is_multiple_of(64) {
            producer.poll(Duration::ZERO);
        }
    }
    let txn_stats = match txn {
        Some(t) => Some(t.finish(&producer)?),
        None => None,
    };
    let flush = producer.flush(flush_timeout);
    if let Err(e) = flush {
        let mut first = shared.first_error.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| e.to_string());
        shared
            .failed
            .fetch_add(producer.in_flight_count().max(0) as u64, Ordering::Relaxed);
    }
    let hist = producer
        .context()
        .hist
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok((hist, start, txn_stats))
}

/// A consumer assigned `parts` at the given start offsets.
fn bench_consumer(args: &BenchArgs, parts: &[(i32, Offset)]) -> Result<BaseConsumer> {
    let mut config = args.client.config();
    config
        .set("group.id", "potok-bench-unused")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer = args
        .client
        .finish(config)
        .create()
        .map_err(|e| Error::kafka("creating a bench consumer", e))?;
    let mut tpl = TopicPartitionList::new();
    for (p, o) in parts {
        tpl.add_partition_offset(&args.topic, *p, *o)
            .map_err(|e| Error::kafka("building the assignment", e))?;
    }
    consumer
        .assign(&tpl)
        .map_err(|e| Error::kafka("assigning partitions", e))?;
    Ok(consumer)
}

/// Splits partitions round-robin over `n` consumers (empty slices are dropped).
fn split(parts: &[(i32, Offset)], n: usize) -> Vec<Vec<(i32, Offset)>> {
    let mut out = vec![Vec::new(); n.min(parts.len()).max(1)];
    let len = out.len();
    for (i, p) in parts.iter().enumerate() {
        out[i % len].push(*p);
    }
    out.retain(|v| !v.is_empty());
    out
}

/// How a consumer thread decides it is done.
#[derive(Clone, Copy)]
enum StopRule {
    /// `consume`: at the end of its partitions, or when the shared count reaches the target.
    EndOrCount(Option<u64>),
    /// `e2e`: when everything the producers got acknowledged has been consumed.
    AllProduced,
}

fn consume_worker(
    args: &BenchArgs,
    shared: Arc<Shared>,
    parts: Vec<(i32, Offset)>,
    deadline: Option<Instant>,
    rule: StopRule,
    base: Option<Instant>,
) -> Result<Histogram<u64>> {
    let consumer = bench_consumer(args, &parts)?;
    let mut hist = new_histogram();
    let mut at_end = std::collections::BTreeSet::new();
    // After the producers finish, e2e consumers wait at most this long for the tail.
    let mut grace: Option<Instant> = None;
    loop {
        if signal::stop_requested() || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let consumed = shared.consumed.load(Ordering::Relaxed);
        match rule {
            StopRule::EndOrCount(target) => {
                if target.is_some_and(|t| consumed >= t) || at_end.len() == parts.len() {
                    break;
                }
            }
            StopRule::AllProduced => {
                if shared.producers_done.load(Ordering::SeqCst) {
                    if consumed >= shared.produced.load(Ordering::SeqCst) {
                        break;
                    }
                    let g = *grace.get_or_insert_with(|| {
                        Instant::now() + Duration::from_millis(args.client.timeout_ms.max(1000) * 2)
                    });
                    if Instant::now() >= g {
                        break;
                    }
                }
            }
        }
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => return Err(args.client.request_error("consuming", e)),
            Some(Ok(msg)) => {
                at_end.remove(&msg.partition());
                let payload = msg.payload().unwrap_or_default();
                shared.consumed.fetch_add(1, Ordering::Relaxed);
                shared
                    .consumed_bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                if let (Some(base), Some(stamp)) = (base, payload.get(..8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(stamp);
                    let sent = u64::from_le_bytes(b);
                    let now = base.elapsed().as_nanos() as u64;
                    hist.saturating_record((now.saturating_sub(sent) / 1000).max(1));
                }
            }
        }
    }
    Ok(hist)
}

fn join_consumers(
    handles: Vec<thread::JoinHandle<Result<Histogram<u64>>>>,
) -> Result<Histogram<u64>> {
    let mut hist = new_histogram();
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(hh)) => {
                let _ = hist.add(hh);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(_) => {
                first_err.get_or_insert(Error::Usage("a consumer thread panicked".into()));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(hist),
    }
}

/// Starts `args.consumers` consumer threads, splitting `parts` among them.
fn spawn_consumers(
    args: &BenchArgs,
    shared: &Arc<Shared>,
    parts: &[(i32, Offset)],
    deadline: Option<Instant>,
    rule: StopRule,
    base: Option<Instant>,
) -> Vec<thread::JoinHandle<Result<Histogram<u64>>>> {
    split(parts, args.consumers)
        .into_iter()
        .map(|mine| {
            let args = args.clone();
            let shared = Arc::clone(shared);
            thread::spawn(move || consume_worker(&args, shared, mine, deadline, rule, base))
        })
        .collect()
}

fn run_consume(args: &BenchArgs, shared: &Arc<Shared>, partitions: &[i32]) -> Result<Outcome> {
    let parts: Vec<(i32, Offset)> = partitions.iter().map(|p| (*p, Offset::Beginning)).collect();
    let deadline = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let started = Instant::now();
    let handles = spawn_consumers(
        args,
        shared,
        &parts,
        deadline,
        StopRule::EndOrCount(args.count),
        None,
    );
    join_consumers(handles)?;
    Ok(Outcome {
        records: shared.consumed.load(Ordering::SeqCst),
        bytes: shared.consumed_bytes.load(Ordering::SeqCst),
        produced: 0,
        failed: 0,
        elapsed: started.elapsed(),
        latency: None,
        transactions: None,
    })
}

fn run_e2e(args: &BenchArgs, shared: &Arc<Shared>, partitions: &[i32]) -> Result<Outcome> {
    // Consumers start at each partition's current end, looked up before any record is sent, so
    // they see exactly the records of this run.
    let probe = args.client.plain_consumer(None)?;
    let mut parts = Vec::new();
    for p in partitions {
        let (_, high) = crate::client::watermarks(&args.client, &probe, &args.topic, *p)?;
        parts.push((*p, Offset::Offset(high)));
    }
    drop(probe);
    let base = Instant::now();
    let deadline = args.duration.map(|d| {
        Instant::now()
            + Duration::from_secs_f64(d)
            + Duration::from_millis(args.client.timeout_ms.max(1000) * 3)
    });
    let started = Instant::now();
    let handles = spawn_consumers(
        args,
        shared,
        &parts,
        deadline,
        StopRule::AllProduced,
        Some(base),
    );
    let produced = run_produce(args, shared, Some(base));
    // Whatever happened to the producers, the consumers must be told to stop waiting.
    shared.producers_done.store(true, Ordering::SeqCst);
    let hist = join_consumers(handles)?;
    let produced = produced?;
    Ok(Outcome {
        records: shared.consumed.load(Ordering::SeqCst),
        bytes: shared.consumed_bytes.load(Ordering::SeqCst),
        produced: produced.produced,
        failed: produced.failed,
        elapsed: started.elapsed(),
        latency: Some(hist),
        transactions: None,
    })
}
