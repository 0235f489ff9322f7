//! Real-client integration tests (issue #4, acceptance 1): the `potok` binary is started on a free
//! loopback port and driven by Python `confluent-kafka`, `kafka-python` and `kcat`.
//!
//! Each test starts its own broker with its own data directory and runs one script from
//! `tests/python/` with the bootstrap address as its argument. The scripts assert everything
//! themselves and exit non-zero with a message on the first failed check; this file only
//! enforces a timeout and shows the script's output when it fails. The clients are installed by
//! `./scripts/install-test-deps` (run by `./scripts/test` and CI); a missing client is a failure,
//! never a skip, so CI cannot pass without exercising them.

mod common;

use std::path::{Path, PathBuf};

use std::time::Duration;

/// Longer than any script's own whole-run alarm (200 s), so the script reports where it got stuck
/// before this kill happens; both are far above a normal run (a few seconds) because up to four
/// scripts and their brokers share two cores with other tests in CI.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("python")
}

/// Runs `program args...` to completion or kills it after `SCRIPT_TIMEOUT`. Returns its stdout
/// on success, else a description of the failure with everything it printed.
fn run_client(program: &str, args: &[&str]) -> Result<String, String> {
    common::run_program(program, args, &script_dir(), SCRIPT_TIMEOUT)
}

fn run_python(script: &str) {
    let broker = common::Broker::start();
    let path = script_dir().join(script);
    match run_client(
        "python3",
        &[path.to_str().expect("utf-8 path"), &broker.bootstrap()],
    ) {
        // Shown with --nocapture: what the script checked and how long it took.
        Ok(out) => print!("{out}"),
        Err(failure) => {
            let log = broker.log();
            let tail: String = log
                .lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            panic!("{failure}\n--- broker log (last 60 lines) ---\n{tail}");
        }
    }
}

/// confluent-kafka: every acks level x every codec with keys, headers and timestamps read back
/// byte for byte; keyed ordering; offsets-for-times and max timestamp; watermarks;
/// LogAppendTime; a 1 MiB record accepted and records over the broker and topic limits refused.
#[test]
fn confluent_kafka_data_path() {
    run_python("confluent_data.py");
}

/// confluent-kafka AdminClient: create/describe topics and cluster, describe configs (topic and
/// broker), incremental and legacy alter configs, increase partitions and refuse a decrease,
/// delete records, delete topics.
#[test]
fn confluent_kafka_admin() {
    run_python("confluent_admin.py");
}

/// kafka-python: admin (DescribeCluster, DescribeTopicPartitions with a cursor, configs,
/// partitions, delete records, delete topics by name and by id) and a producer/consumer round
/// trip at every acks level.
#[test]
fn kafka_python_admin_and_round_trip() {
    run_python("kafka_python_clients.py");
}

/// kcat -L, -P (-K key delimiter, -H headers, every codec), -C -e round trip, auto-creation.
#[test]
fn kcat_list_produce_consume() {
    run_python("kcat_roundtrip.py");
}

/// confluent-kafka AdminClient: describe_topics / describe_cluster with
/// include_authorized_operations report every operation that applies to a topic and to the
/// cluster (no authorizer), and none when not requested (librdkafka test 0081).
#[test]
fn confluent_kafka_authorized_operations() {
    run_python("confluent_authorized_ops.py");
}
