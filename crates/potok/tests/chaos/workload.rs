//! The workload of the fault harness and its recording: producers sending unique values
//! (`acks=all`, optionally idempotent), consumers in a group committing offsets, and the final
//! drain, each recorded into a `potok_chaos::History` for the checker. Every wait is bounded.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use potok_chaos::{Commit, Event, History, Outcome, Produce, Session, Timeline, Writer};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// How long a produce may stay unresolved in the client: a write still pending when a fault
/// heals is retried, and one pending longer becomes indeterminate.
const MESSAGE_TIMEOUT_MS: &str = "15000";

/// Creates `topic` with `partitions` partitions of replication factor `rf`, retrying while the
/// cluster settles (every attempt bounded).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, rf: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = rt.block_on(
            admin.create_topics(
                &[{
                    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
                    // With replicas, an acks=all write needs two copies before it is
                    // acknowledged (the durable setting Kafka's docs recommend for RF=3).
                    if rf > 1 {
                        t.set("min.insync.replicas", "2")
                    } else {
                        t
                    }
                }],
                &AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(10)))
                    .request_timeout(Some(Duration::from_secs(15))),
            ),
        );
        match r.as_deref() {
            Ok([Ok(_)]) => return,
            Ok([Err((_, RDKafkaErrorCode::TopicAlreadyExists))]) => return,
            other => {
                assert!(Instant::now() < deadline, "create topic {topic}: {other:?}");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// What a producer's delivery callbacks saw.
struct Deliveries {
    outcomes: Mutex<Vec<Produce>>,
    /// The run's start, the origin of [`Produce::at_ms`].
    t0: Instant,
    /// Acknowledgements so far, shared with the run's progress lines.
    acked: Arc<AtomicUsize>,
}

impl Deliveries {
    fn now_ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }
}

impl ClientContext for Deliveries {
    /// librdkafka's log lines go to stderr with the run's time, so that a run with
    /// `POTOK_CHAOS_CLIENT_DEBUG` (librdkafka `debug` contexts) shows what the producer did.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!(
            "rdkafka t={:.3}s {level:?} {fac}: {message}",
            self.t0.elapsed().as_secs_f64()
        );
    }
}

/// Errors that mean the broker refused the batch before appending anything; every other error
/// (timeouts, lost connections, leadership moves) leaves the write indeterminate.
fn definitely_failed(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::TopicAuthorizationFailed
        )
    )
}

fn value_of(payload: Option<&[u8]>) -> Option<u64> {
    std::str::from_utf8(payload?).ok()?.parse().ok()
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let (payload, outcome) = match r {
            Ok(m) => (
                m.payload(),
                Outcome::Ack {
                    partition: m.partition(),
                    offset: m.offset(),
                },
            ),
            Err((e, m)) if definitely_failed(e) => (m.payload(), Outcome::Failed),
            Err((_, m)) => (m.payload(), Outcome::Indeterminate),
        };
        if matches!(outcome, Outcome::Ack { .. }) {
            self.acked.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(value) = value_of(payload) {
            let at_ms = self.now_ms();
            self.outcomes.lock().unwrap().push(Produce {
                value,
                outcome,
                at_ms,
            });
        }
    }
}

/// The shared settings of a run's clients.
#[derive(Debug, Clone)]
pub struct Workload {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// The topic under test.
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
    /// `enable.idempotence`.
    pub idempotent: bool,
    /// The consumer group.
    pub group: String,
}

/// A running producer thread; [`ProducerRun::finish`] returns its invocations' outcomes.
pub struct ProducerRun {
    handle: Option<JoinHandle<(Vec<Produce>, Option<String>)>>,
    done: mpsc::Receiver<()>,
}

/// Starts a producer that sends unique values (`base`, `base + 1`, ...) until `stop`, about one
/// every `every`; half of them go to partition 0 (the busy partition the nemesis aims at).
/// Outcome times are measured from `t0`; every acknowledgement increments `acked`.
pub fn start_producer(
    w: &Workload,
    base: u64,
    every: Duration,
    stop: Arc<AtomicBool>,
    t0: Instant,
    acked: Arc<AtomicUsize>,
) -> ProducerRun {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &w.bootstrap)
        .set("acks", "all")
        .set(
            "enable.idempotence",
            if w.idempotent { "true" } else { "false" },
        )
        .set("linger.ms", "5")
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
        .set("request.timeout.ms", "5000")
        .set("socket.timeout.ms", "5000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500")
        .set("retry.backoff.ms", "50")
        .set("topic.metadata.refresh.interval.ms", "1000");
    // Diagnosis only: librdkafka debug contexts for the producers (e.g. `broker,metadata,msg`).
    if let Ok(debug) = std::env::var("POTOK_CHAOS_CLIENT_DEBUG") {
        cfg.set("debug", debug);
    }
    let producer: ThreadedProducer<Deliveries> = cfg
        .create_with_context(Deliveries {
            outcomes: Mutex::default(),
            t0,
            acked,
        })
        .expect("producer");
    let (tx, done) = mpsc::channel();
    let topic = w.topic.clone();
    let partitions = w.partitions;
    let handle = std::thread::spawn(move || {
        let mut sent = Vec::new();
        let mut fatal = None;
        let mut value = base;
        while !stop.load(Ordering::SeqCst) {
            let text = value.to_string();
            let partition = if value.is_multiple_of(2) {
                0
            } else {
                ((value / 2) % partitions as u64) as i32
            };
            let rec: BaseRecord<'_, (), String> =
                BaseRecord::to(&topic).partition(partition).payload(&text);
            match producer.send(rec) {
                Ok(()) => sent.push(value),
                // A full queue during a fault: nothing was invoked, so nothing is recorded.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
                // An idempotent producer's fatal error (e.g. an out-of-order sequence) ends it:
                // librdkafka fails everything it still holds, and the run reports the reason.
                Err((e, _)) => {
                    let why = producer
                        .client()
                        .fatal_error()
                        .map(|(code, text)| format!("{code:?}: {text}"))
                        .unwrap_or_else(|| e.to_string());
                    fatal = Some(why);
                    break;
                }
            }
            value += 1;
            std::thread::sleep(every);
        }
        // Every pending write resolves within the message timeout.
        let _ = producer.flush(Duration::from_secs(30));
        let mut outcomes = std::mem::take(&mut *producer.context().outcomes.lock().unwrap());
        let resolved: HashSet<u64> = outcomes.iter().map(|p| p.value).collect();
        let at_ms = producer.context().now_ms();
        for v in sent {
            if !resolved.contains(&v) {
                outcomes.push(Produce {
                    value: v,
                    outcome: Outcome::Indeterminate,
                    at_ms,
                });
            }
        }
        let _ = tx.send(());
        (outcomes, fatal)
    });
    ProducerRun {
        handle: Some(handle),
        done,
    }
}

impl ProducerRun {
    /// Waits (bounded) for the producer to flush and returns every invocation's outcome, and the
    /// fatal error that ended it early, if any.
    pub fn finish(mut self) -> (Vec<Produce>, Option<String>) {
        self.done
            .recv_timeout(Duration::from_secs(60))
            .expect("producer did not finish within 60 s of stop");
        self.handle.take().unwrap().join().expect("producer thread")
    }
}

/// Records rebalances into the session as resets of the partitions they move.
struct Recording {
    events: Arc<Mutex<Vec<Event>>>,
    name: String,
}

impl ClientContext for Recording {
    /// librdkafka's log lines go to stderr with the session's name, so that a run with
    /// `POTOK_CHAOS_CONSUMER_DEBUG` (librdkafka `debug` contexts, e.g. `cgrp,protocol`) shows
    /// which group request a consumer waits for.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("rdkafka consumer {} {level:?} {fac}: {message}", self.name);
    }
}

impl ConsumerContext for Recording {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        let tpl = match r {
            Rebalance::Assign(t) | Rebalance::Revoke(t) => *t,
            Rebalance::Error(_) => return,
        };
        let mut ev = self.events.lock().unwrap();
        for e in tpl.elements() {
            ev.push(Event::Reset {
                partition: e.partition(),
            });
        }
    }
}

/// A running group consumer; [`ConsumerRun::finish`] returns its session and acknowledged
/// commits.
pub struct ConsumerRun {
    handle: Option<JoinHandle<(Session, Vec<Commit>)>>,
    done: mpsc::Receiver<()>,
}

/// Starts a consumer session named `name` in the workload's group; it commits what it read
/// about every 200 ms.
pub fn start_consumer(w: &Workload, name: &str, stop: Arc<AtomicBool>) -> ConsumerRun {
    let events = Arc::new(Mutex::new(Vec::new()));
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &w.bootstrap)
        .set("group.id", &w.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("socket.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "500");
    // Diagnosis only: librdkafka debug contexts for the group consumers.
    if let Ok(debug) = std::env::var("POTOK_CHAOS_CONSUMER_DEBUG") {
        cfg.set("debug", debug)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let consumer: BaseConsumer<Recording> = cfg
        .create_with_context(Recording {
            events: events.clone(),
            name: name.to_string(),
        })
        .expect("consumer");
    consumer.subscribe(&[&w.topic]).expect("subscribe");
    let (tx, done) = mpsc::channel();
    let topic = w.topic.clone();
    let name = name.to_string();
    let handle = std::thread::spawn(move || {
        let mut commits = Vec::new();
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        let mut last_commit = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                if let Some(value) = value_of(m.payload()) {
                    events.lock().unwrap().push(Event::Record {
                        partition: m.partition(),
                        offset: m.offset(),
                        value,
                    });
                }
                next.insert(m.partition(), m.offset() + 1);
            }
            if last_commit.elapsed() > Duration::from_millis(200) && !next.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for (&p, &o) in &next {
                    let _ = tpl.add_partition_offset(&topic, p, Offset::Offset(o));
                }
                if consumer.commit(&tpl, CommitMode::Sync).is_ok() {
                    commits.extend(
                        next.iter()
                            .map(|(&partition, &offset)| Commit { partition, offset }),
                    );
                }
                next.clear();
                last_commit = Instant::now();
            }
        }
        drop(consumer);
        let _ = tx.send(());
        let events = std::mem::take(&mut *events.lock().unwrap());
        (Session { name, events }, commits)
    });
    ConsumerRun {
        handle: Some(handle),
        done,
    }
}

impl ConsumerRun {
    /// Waits (bounded) for the consumer to close and returns its session and commits.
    pub fn finish(mut self) -> (Session, Vec<Commit>) {
        self.done
            .recv_timeout(Duration::from_secs(60))
            .expect("consumer did not close within 60 s of stop");
        self.handle.take().unwrap().join().expect("consumer thread")
    }
}

/// Reads every partition from its start to its high watermark.
pub fn drain(w: &Workload) -> BTreeMap<i32, Vec<(i64, u64)>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &w.bootstrap)
        .set("group.id", format!("{}-drain", w.group))
        .set("enable.auto.commit", "false")
        .set("socket.timeout.ms", "5000")
        .create()
        .expect("drain consumer");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ends = BTreeMap::new();
    for p in 0..w.partitions {
        let end = loop {
            match c.fetch_watermarks(&w.topic, p, Duration::from_secs(5)) {
                Ok((_, high)) => break high,
                Err(e) => {
                    assert!(Instant::now() < deadline, "watermarks of {p}: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        };
        ends.insert(p, end);
    }
    let mut tpl = TopicPartitionList::new();
    for p in 0..w.partitions {
        tpl.add_partition_offset(&w.topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out: BTreeMap<i32, Vec<(i64, u64)>> =
        (0..w.partitions).map(|p| (p, Vec::new())).collect();
    let caught_up = |out: &BTreeMap<i32, Vec<(i64, u64)>>| {
        ends.iter()
            .all(|(p, &end)| end == 0 || out[p].last().is_some_and(|&(o, _)| o + 1 >= end))
    };
    while !caught_up(&out) {
        assert!(
            Instant::now() < deadline,
            "drain did not reach the high watermarks {ends:?}: drained up to {:?}",
            out.iter()
                .map(|(p, r)| (*p, r.last().map(|&(o, _)| o)))
                .collect::<BTreeMap<_, _>>()
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                // A record without a harness value would still be a record at its offset; it
                // is recorded as value 0, which no producer sends, so the checker flags it.
                let value = value_of(m.payload()).unwrap_or(0);
                out.get_mut(&m.partition())
                    .expect("assigned partition")
                    .push((m.offset(), value));
            }
            Some(Err(e)) => eprintln!("drain: {e}"),
            None => {}
        }
    }
    out
}

/// Assembles the history of a run.
pub fn history(
    idempotent: bool,
    produces: Vec<Produce>,
    consumers: Vec<(Session, Vec<Commit>)>,
    drain: BTreeMap<i32, Vec<(i64, u64)>>,
    timeline: Timeline,
) -> History {
    let mut h = History {
        idempotent,
        produces,
        drain,
        timeline: Some(timeline),
        ..Default::default()
    };
    for (s, c) in consumers {
        h.sessions.push(s);
        h.commits.extend(c);
    }
    h
}

/// The writers (batch producer id and epoch) of every stored copy of a value the drain holds more
/// than once, read from the segment files under each of `data_dirs`. A position is named only
/// when every node holding it agrees, so a replica that diverged leaves it unnamed and the
/// checker keeps the duplicate as an anomaly.
pub fn writers_of_duplicates(
    h: &History,
    data_dirs: &[std::path::PathBuf],
    topic: &str,
) -> HashMap<(i32, i64), Writer> {
    let wanted: HashSet<(i32, i64)> = potok_chaos::duplicates(h)
        .into_iter()
        .flat_map(|(_, at)| at)
        .collect();
    let partitions: BTreeSet<i32> = wanted.iter().map(|&(p, _)| p).collect();
    let mut seen: HashMap<(i32, i64), Vec<Writer>> = HashMap::new();
    for dir in data_dirs {
        for &p in &partitions {
            let Ok(entries) = std::fs::read_dir(dir.join(format!("{topic}-{p}"))) else {
                continue;
            };
            let segments = entries
                .flatten()
                .map(|e| e.path())
                .filter(|path| path.extension().and_then(|x| x.to_str()) == Some("log"));
            for path in segments {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                // A torn tail ends the segment's batches (the iterator's first error).
                for batch in potok_records::split_batches(bytes.into()).map_while(Result::ok) {
                    let head = batch.header();
                    let last = head.base_offset + i64::from(head.last_offset_delta);
                    let writer = Writer {
                        producer_id: head.producer_id,
                        epoch: head.producer_epoch,
                    };
                    for &(wp, o) in &wanted {
                        if wp == p && (head.base_offset..=last).contains(&o) {
                            seen.entry((p, o)).or_default().push(writer);
                        }
                    }
                }
            }
        }
    }
    seen.into_iter()
        .filter(|(_, ws)| ws.windows(2).all(|w| w[0] == w[1]))
        .map(|(pos, ws)| (pos, ws[0]))
        .collect()
}
