//! Transactions with real clients (issue 21): each test starts its own broker and runs one part
//! of `tests/python/confluent_transactions.py` (confluent-kafka) or
//! `tests/python/kafka_python_transactions.py`, which assert everything themselves; the crash
//! tests stop the broker at a coordinator failpoint (the test-only `POTOK_TEST_TXN_FAILPOINT`)
//! and check after a restart that the transaction completed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longer than the scripts' own alarm (200 s), so a stuck script reports where it stopped.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
        .join(name)
}

/// Runs a script to completion (killed after [`SCRIPT_TIMEOUT`]); `Ok(stdout)` or a failure
/// description with everything it printed.
fn run(broker: &common::Broker, name: &str, args: &[&str]) -> Result<String, String> {
    let path = script(name);
    let mut all = vec![
        path.to_str().expect("utf-8 path").to_string(),
        broker.bootstrap(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    common::run_program(
        "python3",
        &all,
        path.parent().expect("script dir"),
        SCRIPT_TIMEOUT,
    )
}

fn log_tail(broker: &common::Broker) -> String {
    let log = broker.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn run_ok(broker: &common::Broker, name: &str, args: &[&str]) {
    match run(broker, name, args) {
        Ok(out) => print!("{out}"),
        Err(failure) => panic!(
            "{failure}\n--- broker log (last 60 lines) ---\n{}",
            log_tail(broker)
        ),
    }
}

fn broker() -> common::Broker {
    common::Broker::builder()
        .set("group.initial.rebalance.delay.ms", "0")
        .start()
}

/// Acceptance 1: a transaction over 3 partitions is invisible to read_committed while open
/// and fully visible after the commit.
#[test]
fn commit_over_three_partitions_is_visible_to_read_committed() {
    run_ok(&broker(), "confluent_transactions.py", &["commit"]);
}

/// Acceptance 1: an aborted transaction over 3 partitions is invisible to read_committed and
/// visible to read_uncommitted.
#[test]
fn an_aborted_transaction_is_invisible_to_read_committed() {
    run_ok(&broker(), "confluent_transactions.py", &["abort"]);
}

/// Acceptance 1: a second producer with the same transactional.id fences the first.
#[test]
fn a_second_producer_with_the_same_id_fences_the_first() {
    run_ok(&broker(), "confluent_transactions.py", &["fence"]);
}

/// Acceptance 1: a transaction left open past transaction.timeout.ms is aborted by the broker.
#[test]
fn a_transaction_past_its_timeout_is_aborted_by_the_broker() {
    run_ok(&broker(), "confluent_transactions.py", &["timeout"]);
}

/// Acceptance 1: consume-transform-produce over 10,000 records with
/// send_offsets_to_transaction, each input exactly once and the group's offsets at the end.
#[test]
fn consume_transform_produce_is_exactly_once() {
    run_ok(&broker(), "confluent_transactions.py", &["ctp"]);
}

/// Acceptance 2: the coordinator crashes right after PrepareCommit is appended (or after the
/// first of three markers); after a restart the transaction is fully visible to read_committed
/// and no partition's last stable offset is held back.
fn crash_at(failpoint: &str) {
    let mut b = common::Broker::builder()
        .env("POTOK_TEST_TXN_FAILPOINT", failpoint)
        .start();
    // The commit dies with the broker; the script only checks that the records went out.
    run_ok(&b, "confluent_transactions.py", &["crash-commit"]);
    let status = b.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some(),
        "the broker did not stop at the failpoint {failpoint}\n{}",
        log_tail(&b)
    );
    assert!(
        b.log().contains(&format!("failpoint {failpoint}")),
        "the broker stopped for another reason\n{}",
        log_tail(&b)
    );
    b.clear_env();
    b.restart();
    run_ok(&b, "confluent_transactions.py", &["crash-check"]);
}

#[test]
fn a_coordinator_crash_after_prepare_commit_completes_the_commit() {
    crash_at("after-prepare-commit");
}

#[test]
fn a_coordinator_crash_after_some_markers_completes_the_commit() {
    crash_at("after-first-marker");
}

/// Acceptance 1: kafka-python's transactional producer (and read_committed consumer).
#[test]
fn kafka_python_transactional_producer() {
    run_ok(&broker(), "kafka_python_transactions.py", &[]);
}

/// Acceptance 2: a SIGKILL of the broker while a producer commits transactions back to back;
/// after the restart no last stable offset is held back and every transaction is visible to
/// read_committed entirely or not at all.
#[test]
fn a_broker_sigkill_in_the_middle_of_transactions_leaves_no_partial_transaction() {
    let mut b = broker();
    let path = script("confluent_transactions.py");
    let mut load = Command::new("python3")
        .arg(&path)
        .arg(b.bootstrap())
        .arg("kill-load")
        .current_dir(path.parent().expect("script dir"))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3");
    // Once the producer has started (its InitProducerId created __transaction_state), let it
    // commit for a few seconds, then kill the broker mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b
        .log()
        .contains("created the internal topic __transaction_state")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));
    b.sigkill();
    let _ = load.kill();
    let _ = load.wait();
    b.restart();
    run_ok(&b, "confluent_transactions.py", &["kill-check"]);
}
