//! The inbox (`potok-inbox`, issue 22 acceptance 2) against a real PostgreSQL
//! (`common::postgres`) and a real broker. The consumer is a separate process: this test binary
//! run again with `--ignored --exact inbox_service_child`, which runs the example service
//! (`crates/potok-inbox/examples/inbox_service/service.rs`, compiled in here), so the tests can
//! SIGKILL it and crash it at the inbox's test-only failpoints.
//!
//! - `same_messages_three_times_apply_each_side_effect_once`: 5,000 messages produced three
//!   times (same `id` headers), the consumer SIGKILLed between and during batches and crashed
//!   twice between the database commit and the offset commit: each side effect (a
//!   `processed_orders` row, an outbox row) exists once, and the message of each crash is not
//!   delivered again.
//! - `stored_offsets_are_used_after_a_rebalance`: with no offset ever committed to the broker,
//!   a second consumer joins and leaves; nothing processed before is delivered again.
//! - `example_service_feeds_the_outbox_relay`: the example end to end with `potok outbox run`.
//! - `library.rs`: `process` (duplicates, handler errors, offsets never moving back) and
//!   pruning, in this process.

#[path = "../common/mod.rs"]
mod common;
mod library;
#[path = "../../../potok-inbox/examples/inbox_service/service.rs"]
mod service;
#[path = "../outbox/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::Broker;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

const TOPIC: &str = "orders";
const WAIT: Duration = Duration::from_secs(120);

fn broker() -> Broker {
    Broker::builder()
        .set("num.partitions", "3")
        .set("group.initial.rebalance.delay.ms", "0")
        .start()
}

/// The consumer process the tests start; configured by `POTOK_INBOX_CHILD_*`. Not a test on
/// its own: run alone it fails for lack of that configuration.
#[test]
#[ignore = "the consumer process of the inbox tests, started by them"]
fn inbox_service_child() {
    let var = |k: &str| std::env::var(format!("POTOK_INBOX_CHILD_{k}")).ok();
    let db = var("DB").expect("POTOK_INBOX_CHILD_DB: run by the inbox tests only");
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(std::io::stderr)
        .try_init();
    let mut inbox = potok_inbox::InboxConfig::new(
        &db,
        &var("BOOTSTRAP").expect("bootstrap"),
        &var("GROUP").expect("group"),
    );
    inbox.id_header = var("ID_HEADER");
    // A SIGKILLed member stays in the group until its session times out, and the group
    // waits for it before a restarted consumer gets partitions: the broker's minimum keeps
    // the restarts short.
    inbox.kafka = vec![
        ("session.timeout.ms".into(), "6000".into()),
        ("heartbeat.interval.ms".into(), "500".into()),
        ("topic.metadata.refresh.interval.ms".into(), "500".into()),
    ];
    let cfg = service::ServiceConfig {
        inbox,
        input_topic: TOPIC.into(),
        outbox_table: "outbox".into(),
        delivery_log: var("LOG").map(PathBuf::from),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        service::init(&cfg.inbox).await.expect("init");
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("sig");
        service::run(cfg, async move {
            term.recv().await;
        })
        .await
        .expect("service");
    });
}

/// One consumer process.
struct Consumer1 {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Consumer1 {
    fn start(dir: &Path, name: &str, envs: &[(&str, &str)]) -> Consumer1 {
        let stderr = dir.join(format!("{name}.stderr"));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr)
            .expect("stderr file");
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            "--ignored",
            "--exact",
            "inbox_service_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(f);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        Consumer1 {
            child: Some(cmd.spawn().expect("spawn the consumer")),
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the process to end by itself (a failpoint); panics after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        let c = self.child.as_mut().expect("running");
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                self.child = None;
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the consumer did not exit within {timeout:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A clean stop (the consumer leaves its group); panics if it does not exit in time.
    fn sigterm(&mut self) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        let s = self.wait_exit(Duration::from_secs(30));
        assert!(s.success(), "the consumer failed: {s}\n{}", self.log());
    }
}

impl Drop for Consumer1 {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// Produces messages `range` to `TOPIC`, key `k-{i % 50}`, with header `id: m-{i}` when
/// `with_id`; waits until all are acknowledged.
fn produce(broker: &Broker, range: std::ops::Range<usize>, with_id: bool) {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    for i in range {
        let key = format!("k-{}", i % 50);
        let value = format!("{{\"n\":{i}}}");
        let id = format!("m-{i}");
        let mut rec = BaseRecord::to(TOPIC).key(&key).payload(&value);
        if with_id {
            rec = rec.headers(OwnedHeaders::new().insert(Header {
                key: "id",
                value: Some(&id),
            }));
        }
        let mut rec = rec;
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((e, r)) => {
                    assert!(e.to_string().contains("QueueFull"), "produce {i}: {e}");
                    rec = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(p.in_flight_count(), 0, "unacknowledged messages");
}

/// The outbox table (`potok outbox init --apply`, `mode` as given), the inbox tables and the
/// example's business table, created before any consumer starts so the tests can query them.
fn prepare(pg: &Postgres, init_args: &[&str]) {
    support::init(pg, init_args);
    pg.psql(&potok_inbox::schema_sql("inbox", "inbox_offsets").expect("schema"));
    pg.psql(service::BUSINESS_SQL);
}

fn count(pg: &Postgres, sql: &str) -> i64 {
    pg.psql(sql)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Messages the group consumed so far: the sum of the stored next offsets.
fn progress(pg: &Postgres, group: &str) -> i64 {
    count(
        pg,
        &format!(
            "SELECT coalesce(sum(next_offset), 0) FROM inbox_offsets WHERE consumer_group = '{group}'"
        ),
    )
}

fn wait_progress(pg: &Postgres, group: &str, at_least: i64, logs: &[&Consumer1]) {
    let deadline = Instant::now() + WAIT;
    while progress(pg, group) < at_least {
        if Instant::now() > deadline {
            let logs: Vec<String> = logs.iter().map(|c| c.log()).collect();
            panic!(
                "progress {} < {at_least} after {WAIT:?}\n{}",
                progress(pg, group),
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `(partition, offset)` lines of a delivery log.
fn deliveries(path: &Path) -> Vec<(i32, i64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.rsplitn(3, '/');
            let o = it.next()?.parse().ok()?;
            let p = it.next()?.parse().ok()?;
            Some((p, o))
        })
        .collect()
}

/// `at TOPIC/P/O` of the failpoint line in a consumer's stderr.
fn failpoint_position(log: &str) -> (i32, i64) {
    let line = log
        .lines()
        .find(|l| l.contains("potok inbox: failpoint after-db-commit at "))
        .unwrap_or_else(|| panic!("no failpoint line in:\n{log}"));
    let at = line.rsplit(' ').next().unwrap_or_default();
    let mut it = at.rsplitn(3, '/');
    let o = it.next().and_then(|s| s.parse().ok()).expect("offset");
    let p = it.next().and_then(|s| s.parse().ok()).expect("partition");
    (p, o)
}

fn child_env<'a>(
    pg_conn: &'a str,
    bootstrap: &'a str,
    group: &'a str,
    log: &'a str,
    id_header: bool,
) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("POTOK_INBOX_CHILD_DB", pg_conn),
        ("POTOK_INBOX_CHILD_BOOTSTRAP", bootstrap),
        ("POTOK_INBOX_CHILD_GROUP", group),
        ("POTOK_INBOX_CHILD_LOG", log),
    ];
    if id_header {
        v.push(("POTOK_INBOX_CHILD_ID_HEADER", "id"));
    }
    v
}

/// Acceptance 2: the same 5,000 messages three times, the consumer SIGKILLed and crashed
/// between the database commit and the offset commit; each side effect exactly once.
#[test]
fn same_messages_three_times_apply_each_side_effect_once() {
    const N: usize = 5_000;
    let broker = broker();
    let pg = Postgres::start();
    prepare(&pg, &["--mode", "poll"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (conn, boot) = (pg.conninfo(), broker.bootstrap());
    let log = dir.path().join("deliveries");
    let log_s = log.to_string_lossy().into_owned();
    let env = child_env(&conn, &boot, "svc", &log_s, true);
    let with = |extra: (&'static str, &'static str)| {
        let mut e = env.clone();
        e.push(extra);
        e
    };
    let mut crashes = Vec::new();

    // Batch 1: a crash right after the 1,234th database commit, then a SIGKILL midway.
    produce(&broker, 0..N, true);
    let mut c = Consumer1::start(
        dir.path(),
        "c1",
        &with(("POTOK_TEST_INBOX_FAILPOINT", "after-db-commit:1234")),
    );
    let s = c.wait_exit(WAIT);
    assert!(!s.success(), "the failpoint did not crash the consumer");
    crashes.push(failpoint_position(&c.log()));
    let mut c = Consumer1::start(dir.path(), "c2", &env);
    wait_progress(&pg, "svc", 3_000, &[&c]);
    c.sigkill();
    let mut c = Consumer1::start(dir.path(), "c3", &env);
    wait_progress(&pg, "svc", N as i64, &[&c]);

    // Batch 2, the same messages again: SIGKILL midway, then a crash at the failpoint.
    produce(&broker, 0..N, true);
    wait_progress(&pg, "svc", 6_500, &[&c]);
    c.sigkill();
    let mut c = Consumer1::start(
        dir.path(),
        "c4",
        &with(("POTOK_TEST_INBOX_FAILPOINT", "after-db-commit:700")),
    );
    let s = c.wait_exit(WAIT);
    assert!(!s.success(), "the failpoint did not crash the consumer");
    crashes.push(failpoint_position(&c.log()));
    let mut c = Consumer1::start(dir.path(), "c5", &env);
    wait_progress(&pg, "svc", 2 * N as i64, &[&c]);

    // Batch 3, once more, with a SIGKILL midway.
    produce(&broker, 0..N, true);
    wait_progress(&pg, "svc", 12_000, &[&c]);
    c.sigkill();
    let mut c = Consumer1::start(dir.path(), "c6", &env);
    wait_progress(&pg, "svc", 3 * N as i64, &[&c]);
    c.sigterm();

    // Every side effect once: 5,000 business rows, one per message, and 5,000 outbox rows.
    assert_eq!(
        count(&pg, "SELECT count(*) FROM processed_orders"),
        N as i64
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(DISTINCT message_ref) FROM processed_orders"
        ),
        N as i64
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(*) FROM processed_orders WHERE message_ref NOT LIKE 'm-%'"
        ),
        0
    );
    assert_eq!(count(&pg, "SELECT count(*) FROM outbox"), N as i64);
    assert_eq!(count(&pg, "SELECT count(*) FROM inbox"), N as i64);
    // All 15,000 records were delivered, and the message committed to the database just
    // before each crash was not delivered again: the restarted consumer started at the stored
    // offset, not at the broker's (which the crash left one behind).
    let delivered = deliveries(&log);
    let distinct: HashSet<_> = delivered.iter().copied().collect();
    assert_eq!(distinct.len(), 3 * N, "not every record was delivered");
    for at in &crashes {
        let times = delivered.iter().filter(|d| *d == at).count();
        assert_eq!(
            times, 1,
            "{at:?}, committed to the database before a crash, was delivered {times} times"
        );
    }
    println!(
        "{} deliveries of {} records; crashes at {crashes:?}",
        delivered.len(),
        3 * N
    );
}

/// The broker's committed offsets of `group` for partitions 0..3 of `TOPIC`.
fn broker_committed(broker: &Broker, group: &str) -> Vec<Offset> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(TOPIC, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements().iter().map(|e| e.offset()).collect()
}

/// The DB-stored offsets are what a rebalance assigns: the consumers never commit to the
/// broker (failpoint `no-broker-commit`), so a consumer using the broker's offsets would start
/// every partition it gets at the beginning.
#[test]
fn stored_offsets_are_used_after_a_rebalance() {
    let broker = broker();
    let pg = Postgres::start();
    prepare(&pg, &["--mode", "poll"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (conn, boot) = (pg.conninfo(), broker.bootstrap());
    let logs: Vec<String> = ["first", "a", "b"]
        .iter()
        .map(|n| dir.path().join(n).to_string_lossy().into_owned())
        .collect();
    let env = |log: &str| {
        let mut e = child_env(&conn, &boot, "rb", log, false);
        e.push(("POTOK_TEST_INBOX_FAILPOINT", "no-broker-commit"));
        e.into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let start = |name: &str, log: &str| {
        let e = env(log);
        let e: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Consumer1::start(dir.path(), name, &e)
    };

    produce(&broker, 0..600, false);
    let mut first = start("first", &logs[0]);
    wait_progress(&pg, "rb", 600, &[&first]);
    first.sigterm();
    assert!(
        broker_committed(&broker, "rb")
            .iter()
            .all(|o| matches!(o, Offset::Invalid)),
        "the group has offsets at the broker: {:?}",
        broker_committed(&broker, "rb")
    );
    let stored: HashMap<i32, i64> = pg
        .psql("SELECT \"partition\", next_offset FROM inbox_offsets WHERE consumer_group = 'rb'")
        .lines()
        .filter_map(|l| {
            let (p, o) = l.split_once('|')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect();
    assert_eq!(stored.values().sum::<i64>(), 600, "{stored:?}");

    // A restarts alone (an assignment of all partitions), B joins (partitions move to B),
    // B leaves (they move back to A); messages keep coming meanwhile.
    let mut a = start("a", &logs[1]);
    produce(&broker, 600..900, false);
    wait_progress(&pg, "rb", 900, &[&a]);
    let mut b = start("b", &logs[2]);
    let deadline = Instant::now() + WAIT;
    let mut n = 900;
    // Until B has processed something of its own.
    while deliveries(Path::new(&logs[2])).is_empty() {
        assert!(
            Instant::now() < deadline,
            "B never got a partition\n{}",
            b.log()
        );
        produce(&broker, n..n + 30, false);
        n += 30;
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_progress(&pg, "rb", n as i64, &[&a, &b]);
    b.sigterm();
    produce(&broker, n..n + 300, false);
    n += 300;
    wait_progress(&pg, "rb", n as i64, &[&a]);
    a.sigterm();

    let da = deliveries(Path::new(&logs[1]));
    let db = deliveries(Path::new(&logs[2]));
    assert!(!da.is_empty() && !db.is_empty());
    // Nothing processed before the restart came again, to A or to B.
    for (p, o) in da.iter().chain(db.iter()) {
        let from = stored.get(p).copied().unwrap_or(0);
        assert!(
            *o >= from,
            "partition {p} offset {o} delivered again (stored next offset {from})"
        );
    }
    // Nor did anything one of them processed reach the other after the partition moved.
    let sa: HashSet<_> = da.iter().collect();
    let both: Vec<_> = db.iter().filter(|d| sa.contains(d)).collect();
    assert!(both.is_empty(), "delivered to both A and B: {both:?}");
    assert_eq!(
        count(&pg, "SELECT count(*) FROM processed_orders"),
        n as i64,
        "side effects"
    );
    assert_eq!(
        count(
            &pg,
            "SELECT count(DISTINCT message_ref) FROM processed_orders"
        ),
        n as i64
    );
}

/// The example service end to end: input → inbox → business row + outbox row → `potok outbox
/// run` (logical mode) → `outbox.event.order-processed`, duplicates of the input dropped.
#[test]
fn example_service_feeds_the_outbox_relay() {
    let broker = broker();
    let pg = Postgres::start();
    prepare(&pg, &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let (conn, boot) = (pg.conninfo(), broker.bootstrap());
    let log = dir.path().join("deliveries").to_string_lossy().into_owned();
    let mut c = Consumer1::start(
        dir.path(),
        "svc",
        &child_env(&conn, &boot, "example", &log, true),
    );
    produce(&broker, 0..200, true);
    // Fifty of them again, as an at-least-once producer might.
    produce(&broker, 100..150, true);
    wait_progress(&pg, "example", 250, &[&c]);
    c.sigterm();
    let args = support::relay_args(&pg, &broker, "logical", &["--once"]);
    let mut relay = support::Relay::new(dir.path(), &args);
    let s = relay.run_to_end(WAIT);
    assert!(s.success(), "relay: {s}\n{}", relay.log());
    let got = support::drain(
        &broker,
        &["outbox.event.order-processed"],
        250,
        Duration::from_secs(10),
    );
    assert_eq!(got.len(), 200, "events");
    let refs: HashSet<String> = got
        .iter()
        .map(|g| {
            let v: serde_json::Value = serde_json::from_str(&g.value).expect("json payload");
            assert_eq!(v["order"].as_str(), Some(g.key.as_str()));
            v["ref"].as_str().expect("ref").to_string()
        })
        .collect();
    assert_eq!(refs.len(), 200);
    assert!(got
        .iter()
        .all(|g| g.headers.get("type").map(String::as_str) == Some("OrderProcessed")));
    assert_eq!(count(&pg, "SELECT count(*) FROM processed_orders"), 200);
}
