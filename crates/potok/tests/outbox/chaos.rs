//! Acceptance 1: outbox rows written by concurrent transactions (some rolled back) while the
//! relay is SIGKILLed at random moments and the broker is restarted twice; then a
//! read_committed consumer must see every committed row exactly once (logical mode) or at least
//! once with duplicates carrying the same `id` (poll mode), no rolled-back row, and per
//! aggregate the rows in commit order.
//!
//! Commit order per aggregate is known exactly: each transaction first bumps its aggregate's
//! row in `agg` (`UPDATE ... RETURNING version`), which serialises the transactions of one
//! aggregate and numbers the committed ones 1, 2, 3, ... in commit order (a rolled-back bump
//! is undone); the rows carry `(version, index in the transaction)`.
//!
//! CI runs a scaled-down size; `scripts/outbox-chaos` runs the full one (10,000 rows, 50 kills)
//! through `POTOK_OUTBOX_CHAOS_ROWS` and `POTOK_OUTBOX_CHAOS_KILLS`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use crate::common::postgres::Postgres;
use crate::common::Broker;
use crate::support::*;

const AGGREGATES: u32 = 25;
const WRITERS: u32 = 4;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the writers committed and rolled back.
#[derive(Default)]
struct Written {
    /// id → (aggregate, version, index).
    committed: HashMap<String, (u32, i32, i32)>,
    rolled_back: HashSet<String>,
}

async fn writer(
    conninfo: String,
    w: u32,
    quota: usize,
    pace: Duration,
    seed: u64,
    out: Arc<Mutex<Written>>,
) {
    let (mut client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .expect("writer connects");
    tokio::spawn(conn);
    let mut rng = Rng::new(seed ^ (u64::from(w + 1) * 0x9e37_79b9));
    let mut n = 0u64;
    let mut committed = 0usize;
    while committed < quota {
        let agg = rng.below(u64::from(AGGREGATES)) as u32;
        let rows = 1 + rng.below(3) as i32;
        let rollback = rng.below(10) == 0;
        let tx = client.transaction().await.expect("begin");
        let version: i32 = tx
            .query_one(
                "UPDATE agg SET version = version + 1 WHERE id = $1 RETURNING version",
                &[&format!("a-{agg}")],
            )
            .await
            .expect("bump aggregate")
            .get(0);
        let mut ids = Vec::new();
        for k in 0..rows {
            n += 1;
            let id = format!("00000000-0000-0000-{w:04}-{n:012}");
            tx.execute(
                "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) \
                 VALUES ($1::text::uuid, 'agg', $2, 'Bumped', $3::text::jsonb)",
                &[
                    &id,
                    &format!("a-{agg}"),
                    &format!("{{\"v\": {version}, \"k\": {k}}}"),
                ],
            )
            .await
            .expect("insert outbox row");
            ids.push((id, k));
        }
        // Transactions stay open a random moment, so commits interleave across writers.
        if rng.below(4) == 0 {
            tokio::time::sleep(Duration::from_millis(rng.below(5))).await;
        }
        if rollback {
            tx.rollback().await.expect("rollback");
            let mut o = out.lock().unwrap();
            o.rolled_back.extend(ids.into_iter().map(|(id, _)| id));
        } else {
            tx.commit().await.expect("commit");
            let mut o = out.lock().unwrap();
            for (id, k) in ids {
                o.committed.insert(id, (agg, version, k));
            }
            committed += rows as usize;
        }
        // Paced so that the writing spans the relay's kills.
        tokio::time::sleep(pace).await;
    }
}

fn chaos(mode: &str) {
    let rows = env_or("POTOK_OUTBOX_CHAOS_ROWS", 3_000);
    let kills = env_or("POTOK_OUTBOX_CHAOS_KILLS", 20);
    let seed = seed();
    let mut rng = Rng::new(seed);
    let pg = Postgres::start();
    let mut b = Broker::builder()
        .set("num.partitions", "3")
        .set("group.initial.rebalance.delay.ms", "0")
        .start();
    init(&pg, &["--mode", mode]);
    pg.psql(&format!(
        "CREATE TABLE agg (id text PRIMARY KEY, version int NOT NULL);
         INSERT INTO agg SELECT 'a-' || g, 0 FROM generate_series(0, {}) g",
        AGGREGATES - 1
    ));

    // About 400 ms per kill cycle and two rows per transaction on average.
    let txns_per_writer = (rows / 2 / WRITERS as usize).max(1) as u32;
    let pace = Duration::from_millis(400) * kills as u32 / txns_per_writer;
    let written = Arc::new(Mutex::new(Written::default()));
    let done = Arc::new(AtomicBool::new(false));
    let writers = {
        let written = Arc::clone(&written);
        let done = Arc::clone(&done);
        let conninfo = pg.conninfo();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let tasks: Vec<_> = (0..WRITERS)
                    .map(|w| {
                        tokio::spawn(writer(
                            conninfo.clone(),
                            w,
                            rows.div_ceil(WRITERS as usize),
                            pace,
                            seed,
                            Arc::clone(&written),
                        ))
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("writer");
                }
            });
            done.store(true, Ordering::SeqCst);
        })
    };

    let dir = tempfile::tempdir().unwrap();
    let args = relay_args(
        &pg,
        &b,
        mode,
        &["--batch-max-rows", "200", "--linger-ms", "5"],
    );
    let mut relay = Relay::new(dir.path(), &args);
    let started = Instant::now();
    let mut done_kills = 0;
    while done_kills < kills || !done.load(Ordering::SeqCst) {
        relay.start();
        std::thread::sleep(Duration::from_millis(50 + rng.below(700)));
        if done_kills == kills / 3 || done_kills == 2 * kills / 3 {
            // The broker restarts twice under a running relay: once killed, once stopped
            // cleanly.
            if done_kills == kills / 3 {
                b.sigkill();
            } else {
                b.sigterm();
            }
            b.restart();
            std::thread::sleep(Duration::from_millis(200 + rng.below(1000)));
        }
        relay.sigkill();
        done_kills += 1;
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the chaos phase overran"
        );
    }
    writers.join().expect("writers");
    println!("{done_kills} relay kills in {:?}", started.elapsed());

    // The last relay publishes the rest.
    relay.start();
    let w = written.lock().unwrap();
    let committed = &w.committed;
    let got = drain_until(&b, committed, Duration::from_secs(180));
    relay.sigterm(Duration::from_secs(30));

    // No rolled-back or unknown row, every committed row, at the right multiplicity.
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (id, _, _) in &got {
        assert!(
            !w.rolled_back.contains(id),
            "rolled-back row {id} was published"
        );
        assert!(committed.contains_key(id), "unknown row {id} was published");
        *count.entry(id).or_default() += 1;
    }
    let missing: Vec<_> = committed
        .keys()
        .filter(|id| !count.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} committed rows never published (e.g. {:?})\n{}",
        missing.len(),
        missing.first(),
        relay.log()
    );
    let dups = count.values().filter(|&&c| c > 1).count();
    if mode == "logical" {
        assert_eq!(dups, 0, "rows published more than once in logical mode");
    }
    // Per aggregate, in partition order, the first occurrences follow commit order.
    let mut seen = HashSet::new();
    let mut last: HashMap<u32, (i32, i32)> = HashMap::new();
    for (id, _, _) in &got {
        if !seen.insert(id.clone()) {
            continue;
        }
        let (agg, v, k) = committed[id];
        if let Some(prev) = last.insert(agg, (v, k)) {
            assert!(
                prev < (v, k),
                "aggregate a-{agg}: {prev:?} then {:?}",
                (v, k)
            );
        }
    }
    println!(
        "{mode}: {} committed rows, {} rolled back, {} records read, {dups} duplicated ids",
        committed.len(),
        w.rolled_back.len(),
        got.len()
    );
}

/// Reads the relay's topic at read_committed until every committed id arrived (then two more
/// seconds for duplicates), or `timeout`; (id, partition, offset) in partition order per key.
fn drain_until(
    b: &Broker,
    committed: &HashMap<String, (u32, i32, i32)>,
    timeout: Duration,
) -> Vec<(String, i32, i64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "outbox-chaos-check")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    c.subscribe(&["outbox.event.agg"]).expect("subscribe");
    let mut got = Vec::new();
    let mut missing: HashSet<&str> = committed.keys().map(String::as_str).collect();
    let deadline = Instant::now() + timeout;
    let mut complete_at: Option<Instant> = None;
    while Instant::now() < deadline
        && complete_at.is_none_or(|t| t.elapsed() < Duration::from_secs(2))
    {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let id = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "id"))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                missing.remove(id.as_str());
                got.push((id, m.partition(), m.offset()));
                if missing.is_empty() && complete_at.is_none() {
                    complete_at = Some(Instant::now());
                }
            }
            // The relay may not have created the topic yet.
            Some(Err(e)) if e.to_string().contains("UnknownTopicOrPartition") => {}
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    got
}

#[test]
fn logical_mode_survives_relay_kills_and_broker_restarts_exactly_once() {
    chaos("logical");
}

#[test]
fn poll_mode_survives_relay_kills_and_broker_restarts_at_least_once() {
    chaos("poll");
}
