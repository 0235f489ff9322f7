//! Acceptance 3: rows and settings the relay cannot publish stop it with an error that names
//! the row or the setting, and nothing behind the bad row is skipped or reordered (in poll
//! mode the rows stay in the table; in logical mode the slot and the stored position stay).

use std::time::Duration;

use crate::common::postgres::Postgres;
use crate::common::Broker;
use crate::support::*;

const TIMEOUT: Duration = Duration::from_secs(90);

fn insert(pg: &Postgres, id: u32, aggregatetype: &str, aggregateid: Option<&str>, payload: &str) {
    let agg = aggregateid.map_or("NULL".to_string(), |a| format!("'{a}'"));
    pg.psql(&format!(
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES \
         ('00000000-0000-0000-0000-{id:012}', '{aggregatetype}', {agg}, 'T', '{payload}')"
    ));
}

fn uuid(id: u32) -> String {
    format!("00000000-0000-0000-0000-{id:012}")
}

/// Runs the relay with --once and returns its log after checking it failed.
fn run_failing(pg: &Postgres, b: &Broker, mode: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut args = relay_args(pg, b, mode, &["--once"]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut relay = Relay::new(dir.path(), &args);
    let status = relay.run_to_end(TIMEOUT);
    let log = relay.log();
    assert!(!status.success(), "the relay succeeded on bad input\n{log}");
    log
}

fn ids(got: &[Got]) -> Vec<String> {
    got.iter().map(|g| g.headers["id"].clone()).collect()
}

fn null_aggregate_id(mode: &str) {
    let pg = Postgres::start();
    let b = Broker::start();
    init(&pg, &["--mode", mode]);
    pg.psql("ALTER TABLE outbox ALTER aggregateid DROP NOT NULL");
    insert(&pg, 1, "order", Some("a"), "{}");
    insert(&pg, 2, "order", None, "{}");
    insert(&pg, 3, "order", Some("a"), "{}");
    let log = run_failing(&pg, &b, mode, &[]);
    assert!(
        log.contains(&format!("outbox row id={}", uuid(2))) && log.contains("aggregate id is NULL"),
        "{log}"
    );
    // The row before it went out; the bad row and the one behind it did not.
    let got = drain(&b, &["outbox.event.order"], 3, Duration::from_secs(5));
    assert_eq!(ids(&got), vec![uuid(1)], "{log}");
    if mode == "poll" {
        assert_eq!(pg.psql("SELECT count(*) FROM outbox").trim(), "2");
    }
}

#[test]
fn a_null_aggregate_id_stops_the_poll_relay_naming_the_row() {
    null_aggregate_id("poll");
}

#[test]
fn a_null_aggregate_id_stops_the_logical_relay_naming_the_row() {
    null_aggregate_id("logical");
}

#[test]
fn an_invalid_topic_from_the_template_stops_the_relay_naming_the_row() {
    let pg = Postgres::start();
    let b = Broker::start();
    init(&pg, &["--mode", "poll"]);
    insert(&pg, 1, "order", Some("a"), "{}");
    insert(&pg, 2, "bad type!", Some("a"), "{}");
    insert(&pg, 3, "order", Some("a"), "{}");
    let log = run_failing(&pg, &b, "poll", &[]);
    assert!(
        log.contains(&uuid(2))
            && log.contains("\"outbox.event.bad type!\"")
            && log.contains("not a valid topic name"),
        "{log}"
    );
    let got = drain(&b, &["outbox.event.order"], 3, Duration::from_secs(5));
    assert_eq!(ids(&got), vec![uuid(1)]);
    assert_eq!(pg.psql("SELECT count(*) FROM outbox").trim(), "2");
}

#[test]
fn a_payload_over_the_topics_max_message_bytes_stops_the_relay_naming_the_row() {
    let pg = Postgres::start();
    let b = Broker::start();
    let out = potok()
        .args(["topics", "create", "outbox.event.big", "-b", &b.bootstrap()])
        .args(["--config", "max.message.bytes=2000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    init(&pg, &["--mode", "poll"]);
    insert(&pg, 1, "big", Some("a"), "{}");
    insert(
        &pg,
        2,
        "big",
        Some("a"),
        &format!("{{\"x\": \"{}\"}}", "y".repeat(5000)),
    );
    insert(&pg, 3, "big", Some("a"), "{}");
    let log = run_failing(&pg, &b, "poll", &[]);
    assert!(
        log.contains(&uuid(2))
            && log.contains("max.message.bytes")
            && log.contains("outbox.event.big"),
        "{log}"
    );
    // The batch's transaction was aborted: nothing of it is visible, every row is still there.
    let got = drain(&b, &["outbox.event.big"], 3, Duration::from_secs(5));
    assert!(!ids(&got).contains(&uuid(2)) && !ids(&got).contains(&uuid(3)));
    assert_eq!(pg.psql("SELECT count(*) FROM outbox").trim(), "3");
}

#[test]
fn a_missing_table_is_named() {
    let pg = Postgres::start();
    let b = Broker::start();
    for mode in ["poll", "logical"] {
        let log = run_failing(&pg, &b, mode, &["--table", "public.nope"]);
        assert!(
            log.contains("the outbox table public.nope (--table) does not exist"),
            "{log}"
        );
    }
}

#[test]
fn insufficient_privileges_are_named() {
    let pg = Postgres::start();
    let b = Broker::start();
    init(&pg, &[]);
    pg.psql("CREATE ROLE relay LOGIN");
    let dir = tempfile::tempdir().unwrap();
    let run = |mode: &str| {
        let mut args = vec![
            "--db".to_string(),
            pg.conninfo_as("relay"),
            "-b".into(),
            b.bootstrap(),
            "--mode".into(),
            mode.into(),
            "--once".into(),
        ];
        args.push("--backoff-max-ms".into());
        args.push("1000".into());
        let mut relay = Relay::new(dir.path(), &args);
        let status = relay.run_to_end(TIMEOUT);
        assert!(!status.success());
        relay.log()
    };
    let log = run("poll");
    assert!(
        log.contains("role \"relay\" lacks the SELECT privilege on the outbox table public.outbox"),
        "{log}"
    );
    let log = run("logical");
    assert!(
        log.contains("role \"relay\" has neither REPLICATION nor SUPERUSER"),
        "{log}"
    );
    pg.psql("GRANT SELECT ON outbox TO relay");
    let log = run("poll");
    assert!(log.contains("lacks the UPDATE privilege"), "{log}");
}
