//! `potok outbox` (issue 22) against a real PostgreSQL (`common::postgres`) and a real broker:
//! the SQL of `init`, both modes end to end, the failpoints between the Kafka commit and the
//! database (`chaos.rs` has acceptance 1's crash run), and the bad inputs of acceptance 3
//! (`bad_input.rs`).

mod bad_input;
mod chaos;
#[path = "../common/mod.rs"]
mod common;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use common::postgres::Postgres;
use common::Broker;
use support::*;

const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn broker() -> Broker {
    Broker::builder()
        .set("num.partitions", "3")
        .set("group.initial.rebalance.delay.ms", "0")
        .start()
}

/// Inserts rows `first..first + n` (payload `{"n": i}`, aggregate `o-{i % aggs}`) in one
/// transaction; returns their ids in insertion order.
fn insert_rows(pg: &Postgres, first: usize, n: usize, aggs: usize, rollback: bool) -> Vec<String> {
    let mut ids = Vec::new();
    let mut sql = String::from("BEGIN;");
    for i in first..first + n {
        let id = format!(
            "00000000-0000-0000-0000-{:012}",
            ids_base() + (i - first) as u64
        );
        sql.push_str(&format!(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES \
             ('{id}', 'order', 'o-{}', 'Created', '{{\"n\": {i}}}');",
            i % aggs
        ));
        ids.push(id);
    }
    sql.push_str(if rollback { "ROLLBACK;" } else { "COMMIT;" });
    pg.psql(&sql);
    ids
}

/// Distinct ids across calls in one test process.
fn ids_base() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1000, Ordering::SeqCst)
}

#[test]
fn init_prints_the_sql_and_applies_it() {
    let out = potok()
        .args([
            "outbox",
            "init",
            "--db",
            "host=127.0.0.1",
            "--table",
            "app.events",
        ])
        .output()
        .expect("run init");
    assert!(out.status.success());
    let sql = String::from_utf8_lossy(&out.stdout);
    for want in [
        "CREATE TABLE IF NOT EXISTS \"app\".\"events\"",
        "CREATE PUBLICATION \"potok_outbox\" FOR TABLE \"app\".\"events\" WITH (publish = 'insert')",
        "pg_create_logical_replication_slot('potok_outbox', 'pgoutput')",
        "CREATE SEQUENCE IF NOT EXISTS \"app\".\"events_potok_batch_seq\"",
    ] {
        assert!(sql.contains(want), "missing {want:?} in\n{sql}");
    }
    let pg = Postgres::start();
    init(&pg, &["--table", "app.events"]);
    // Applying twice is harmless.
    init(&pg, &["--table", "app.events"]);
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_publication_tables WHERE pubname = 'potok_outbox' AND tablename = 'events'").trim(),
        "1"
    );
    assert_eq!(
        pg.psql("SELECT plugin FROM pg_replication_slots WHERE slot_name = 'potok_outbox'")
            .trim(),
        "pgoutput"
    );
}

/// Checks a drained topic against the expected ids: the mapping (key, headers, value) and,
/// per aggregate, the insertion order.
fn check_mapping(got: &[Got], ids: &[String], aggs: usize) {
    let by_id: HashMap<&str, &Got> = got
        .iter()
        .map(|g| (g.headers.get("id").map(String::as_str).unwrap_or(""), g))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let g = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("row {id} was not published"));
        assert_eq!(g.topic, "outbox.event.order");
        assert_eq!(g.key, format!("o-{}", i % aggs));
        assert_eq!(g.headers.get("type").map(String::as_str), Some("Created"));
        assert_eq!(g.value, format!("{{\"n\": {i}}}"));
    }
    // Per aggregate: the payload numbers rise in partition order.
    let mut last: HashMap<&str, i64> = HashMap::new();
    for g in got {
        let n: i64 = g
            .value
            .trim_start_matches("{\"n\": ")
            .trim_end_matches('}')
            .parse()
            .unwrap();
        if let Some(prev) = last.insert(&g.key, n) {
            assert!(prev < n, "aggregate {} went from {prev} to {n}", g.key);
        }
    }
}

#[test]
fn poll_mode_publishes_committed_rows_in_order_and_deletes_them() {
    let pg = Postgres::start();
    let b = broker();
    init(&pg, &["--mode", "poll"]);
    let ids = insert_rows(&pg, 0, 300, 7, false);
    insert_rows(&pg, 0, 50, 7, true);
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::new(
        dir.path(),
        &relay_args(&pg, &b, "poll", &["--once", "--batch-max-rows", "64"]),
    );
    let status = relay.run_to_end(RUN_TIMEOUT);
    assert!(status.success(), "relay failed\n{}", relay.log());
    let got = drain(
        &b,
        &["outbox.event.order"],
        ids.len() + 1,
        Duration::from_secs(5),
    );
    assert_eq!(got.len(), ids.len(), "published rows");
    check_mapping(&got, &ids, 7);
    assert_eq!(pg.psql("SELECT count(*) FROM outbox").trim(), "0");
}

#[test]
fn logical_mode_publishes_committed_rows_once_and_stops_on_sigterm() {
    let pg = Postgres::start();
    let b = broker();
    init(&pg, &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::new(
        dir.path(),
        &relay_args(
            &pg,
            &b,
            "logical",
            &["--batch-max-rows", "50", "--delete-published"],
        ),
    );
    relay.start();
    let mut ids = insert_rows(&pg, 0, 200, 5, false);
    insert_rows(&pg, 0, 40, 5, true);
    ids.extend(insert_rows(&pg, 200, 100, 5, false));
    let got = drain(
        &b,
        &["outbox.event.order"],
        ids.len() + 1,
        Duration::from_secs(10),
    );
    assert_eq!(got.len(), ids.len(), "published rows\n{}", relay.log());
    check_mapping(&got, &ids, 5);
    let status = relay.sigterm(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        relay.log()
    );
    // The position is stored with the rows, the slot confirmed, the rows deleted.
    let confirmed = pg.psql(
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'potok_outbox'",
    );
    assert!(!confirmed.trim().is_empty());
    assert_eq!(pg.psql("SELECT count(*) FROM outbox").trim(), "0");
    // A restarted relay publishes nothing again.
    let mut relay2 = Relay::new(dir.path(), &relay_args(&pg, &b, "logical", &["--once"]));
    assert!(relay2.run_to_end(RUN_TIMEOUT).success(), "{}", relay2.log());
    let again = drain(
        &b,
        &["outbox.event.order"],
        ids.len() + 1,
        Duration::from_secs(5),
    );
    assert_eq!(again.len(), ids.len(), "rows published twice");
}

/// Acceptance 1's failpoint: the relay dies between the Kafka commit (rows and position) and
/// the slot's confirmation; after the restart no row is published again.
#[test]
fn logical_crash_between_kafka_commit_and_slot_confirm_publishes_once() {
    let pg = Postgres::start();
    let b = broker();
    init(&pg, &[]);
    let ids = insert_rows(&pg, 0, 120, 4, false);
    let dir = tempfile::tempdir().unwrap();
    let args = relay_args(&pg, &b, "logical", &["--once", "--batch-max-rows", "30"]);
    let mut relay = Relay::new(dir.path(), &args)
        .env("POTOK_TEST_OUTBOX_FAILPOINT", "logical-after-kafka-commit");
    let status = relay.run_to_end(RUN_TIMEOUT);
    assert!(!status.success(), "the failpoint did not stop the relay");
    assert!(
        relay.log().contains("failpoint logical-after-kafka-commit"),
        "{}",
        relay.log()
    );
    // The slot was not confirmed: PostgreSQL will send the transaction again.
    relay.clear_env();
    let status = relay.run_to_end(RUN_TIMEOUT);
    assert!(status.success(), "{}", relay.log());
    let got = drain(
        &b,
        &["outbox.event.order"],
        ids.len() + 1,
        Duration::from_secs(5),
    );
    assert_eq!(
        got.len(),
        ids.len(),
        "each row exactly once\n{}",
        relay.log()
    );
    check_mapping(&got, &ids, 4);
}

/// Acceptance 1's failpoint: the relay dies between the Kafka commit and the delete; after the
/// restart the batch is published again with the same ids (at least once), in the same order.
#[test]
fn poll_crash_between_kafka_commit_and_delete_republishes_with_the_same_ids() {
    let pg = Postgres::start();
    let b = broker();
    init(&pg, &["--mode", "poll"]);
    let ids = insert_rows(&pg, 0, 40, 4, false);
    let dir = tempfile::tempdir().unwrap();
    let args = relay_args(&pg, &b, "poll", &["--once", "--batch-max-rows", "100"]);
    let mut relay =
        Relay::new(dir.path(), &args).env("POTOK_TEST_OUTBOX_FAILPOINT", "poll-after-kafka-commit");
    assert!(!relay.run_to_end(RUN_TIMEOUT).success());
    assert!(
        relay.log().contains("failpoint poll-after-kafka-commit"),
        "{}",
        relay.log()
    );
    assert_eq!(pg.psql("SELECT count(*) FROM outbox").trim(), "40");
    relay.clear_env();
    assert!(relay.run_to_end(RUN_TIMEOUT).success(), "{}", relay.log());
    let got = drain(
        &b,
        &["outbox.event.order"],
        2 * ids.len() + 1,
        Duration::from_secs(5),
    );
    assert_eq!(got.len(), 2 * ids.len(), "the batch twice");
    let mut count: HashMap<&str, usize> = HashMap::new();
    for g in &got {
        *count.entry(g.headers["id"].as_str()).or_default() += 1;
    }
    assert!(ids.iter().all(|id| count.get(id.as_str()) == Some(&2)));
    check_mapping(&first_occurrences(&got), &ids, 4);
    assert_eq!(pg.psql("SELECT count(*) FROM outbox").trim(), "0");
}

/// The records whose `id` header was not seen before, in order: what an idempotent consumer
/// keeps of an at-least-once stream.
fn first_occurrences(got: &[Got]) -> Vec<Got> {
    let mut seen = std::collections::HashSet::new();
    got.iter()
        .filter(|g| seen.insert(g.headers.get("id").cloned().unwrap_or_default()))
        .cloned()
        .collect()
}

/// An idle outbox does not hold WAL back: after its rows are published, writes to another
/// table move the slot's confirmed position along (keepalives are answered).
#[test]
fn an_idle_outbox_lets_the_slot_free_wal() {
    let pg = Postgres::start();
    let b = broker();
    init(&pg, &[]);
    pg.psql("CREATE TABLE other (x text)");
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::new(dir.path(), &relay_args(&pg, &b, "logical", &[]));
    relay.start();
    let ids = insert_rows(&pg, 0, 5, 2, false);
    let got = drain(
        &b,
        &["outbox.event.order"],
        ids.len(),
        Duration::from_secs(10),
    );
    assert_eq!(got.len(), ids.len());
    // About 8 MB of WAL the publication does not include.
    pg.psql("INSERT INTO other SELECT repeat('x', 1000) FROM generate_series(1, 8000)");
    let retained = || -> i64 {
        pg.psql(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint \
             FROM pg_replication_slots WHERE slot_name = 'potok_outbox'",
        )
        .trim()
        .parse()
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while retained() > 1_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot still retains {} bytes\n{}",
            retained(),
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    relay.sigterm(Duration::from_secs(30));
}

#[test]
fn metrics_count_published_rows() {
    let pg = Postgres::start();
    let b = broker();
    init(&pg, &[]);
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let listener = format!("127.0.0.1:{port}");
    let mut relay = Relay::new(
        dir.path(),
        &relay_args(&pg, &b, "logical", &["--metrics-listener", &listener]),
    );
    relay.start();
    let ids = insert_rows(&pg, 0, 25, 3, false);
    let got = drain(
        &b,
        &["outbox.event.order"],
        ids.len(),
        Duration::from_secs(10),
    );
    assert_eq!(got.len(), ids.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(port, "/metrics");
        if body.contains("\npotok_outbox_rows_published_total 25\n") {
            assert!(body.contains("# TYPE potok_outbox_slot_retained_bytes gauge"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "metrics: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    relay.sigterm(Duration::from_secs(30));
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
