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

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(script_dir())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program} (run ./scripts/install-test-deps): {e}"))?;
    // Drain both pipes on threads so a chatty script cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for client") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    match status {
        Some(status) if status.success() => Ok(out),
        Some(status) => Err(format!(
            "{program} {args:?} failed ({status}) after {:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
            started.elapsed()
        )),
        None => Err(format!(
            "{program} {args:?} killed after the {SCRIPT_TIMEOUT:?} timeout\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )),
    }
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
