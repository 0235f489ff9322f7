//! Apache Kafka's Java client and command-line tools against the real `potok` binary (issue 16).
//!
//! Kafka Streams runs a word count as well. Each test starts its own broker and runs one suite of `compat/java/` in one JVM; the suites
//! print one line per check and this file fails on any check that fails and is not in
//! [`KNOWN_FAILURES`], or that is listed there and passes. The Kafka artifacts are resolved by
//! `./scripts/install-java-deps` (run by `./scripts/test` and CI); the same checks run against
//! Apache Kafka itself in `kafka_reference.rs`, which shows that they assert Kafka's behaviour.

mod common;

use common::java::{expect_checks, judge, tail, KnownFailure, SuiteRun};

/// Checks that fail against Potok today, each explained in docs/compatibility.md. Empty means
/// every check passes.
const KNOWN_FAILURES: &[KnownFailure] = &[];

fn run_against_potok(suites: &str) {
    let broker = common::Broker::start();
    expect_checks(&broker.bootstrap(), "potok", suites, KNOWN_FAILURES, || {
        format!("--- broker log (tail) ---\n{}", tail(&broker.log(), 60))
    });
}

/// The producer with the Java defaults (idempotence, acks=all; DescribeProducers shows the
/// producer id and sequences), every codec, keys/headers/timestamps byte for byte,
/// max.in.flight=5 ordering, RECORD_TOO_LARGE; the consumer's watermarks, offsetsForTimes,
/// seeks and auto-commit on close.
#[test]
fn java_producer_and_consumer() {
    run_against_potok("clients");
}

/// Classic groups with two members, resuming from a commit, group.protocol=consumer (KIP-848:
/// the exact error while Potok lacks ConsumerGroupHeartbeat), static membership (rejoin without
/// rebalance, fencing, removal by instance id) and cooperative-sticky incremental rebalancing.
#[test]
fn java_consumer_groups() {
    run_against_potok("groups");
}

/// AdminClient: cluster, topics (create with configs, validate-only, errors, describe by name
/// and id, delete by name and id), configs (describe, incremental SET/DELETE/APPEND, errors),
/// partitions, list offsets, delete records, groups (list, describe, delete) and their offsets
/// (list, alter, delete, refusal while active).
#[test]
fn java_admin_client() {
    run_against_potok("admin");
}

/// Kafka's tools: kafka-topics, kafka-configs, console producer and consumer,
/// kafka-consumer-groups (list, describe, reset offsets), kafka-get-offsets,
/// kafka-delete-records, producer/consumer perf tests, verifiable producer/consumer.
#[test]
fn kafka_command_line_tools() {
    run_against_potok("tools");
}

/// Kafka Streams word count (KStream → groupBy through a repartition topic → count into a
/// RocksDB store with a compacted changelog → KTable → output topic), at_least_once, no record
/// cache: every word's counts arrive exactly 1, 2, ..., n, and the store answers the totals.
#[test]
fn kafka_streams_word_count() {
    run_against_potok("streams");
}

/// The known-failure list cannot go stale: an unlisted failure, a listed check that passes and a
/// listed check that no longer runs are each reported; a listed failure alone is not.
#[test]
fn known_failure_list_is_enforced() {
    let listed = KnownFailure {
        suite: "admin",
        check: "admin.listed",
        reason: "test",
    };
    let run = |passed: &[&str], failed: &[&str]| SuiteRun {
        passed: passed.iter().map(|s| s.to_string()).collect(),
        failed: failed
            .iter()
            .map(|s| (s.to_string(), "reason".to_string()))
            .collect(),
        stdout: String::new(),
        stderr: String::new(),
    };
    assert!(judge(&run(&["admin.other"], &["admin.listed"]), &[&listed]).is_empty());
    let unlisted = judge(&run(&[], &["admin.listed", "admin.other"]), &[&listed]);
    assert_eq!(unlisted, vec!["FAIL admin.other: reason".to_string()]);
    let fixed = judge(&run(&["admin.listed"], &[]), &[&listed]);
    assert!(
        fixed.len() == 1 && fixed[0].contains("passes now"),
        "{fixed:?}"
    );
    let gone = judge(&run(&["admin.other"], &[]), &[&listed]);
    assert!(
        gone.len() == 1 && gone[0].contains("did not run"),
        "{gone:?}"
    );
}
