//! End-to-end tests of the client subcommands: the real `potok` binary (`topics`, `produce`,
//! `consume`, `groups`, `bench`, `completions`) against a real `potok serve` started by the
//! shared harness. Each test checks output and exit code, including the failure cases of
//! issue #7 (no broker, unknown topic, decreasing partitions).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

/// Longest any single CLI invocation may take before the test fails (it is killed).
const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// What one `potok` run produced.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout(),
                self.stderr
            )
        })
    }
    /// Asserts success and returns self, printing both streams on failure.
    fn success(self, what: &str) -> Run {
        assert!(
            self.ok(),
            "{what}: exit {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout(),
            self.stderr
        );
        self
    }
    /// Asserts a failure reported as exactly one `potok: error: ...` line containing `needle`.
    fn fails_with(self, what: &str, needle: &str) {
        assert!(
            !self.ok() && self.code.is_some(),
            "{what}: expected a non-zero exit, got {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout(),
            self.stderr
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("potok: error:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{what}: want one error line, stderr: {}",
            self.stderr
        );
        assert!(
            errors[0].contains(needle),
            "{what}: error line {:?} lacks {needle:?}",
            errors[0]
        );
    }
}

/// Runs `potok ARGS` with `stdin`, killing it after [`CMD_TIMEOUT`].
fn potok(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_potok"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn potok");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + CMD_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("potok {args:?} did not finish within {CMD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Run {
        code: status.code(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

/// `potok ARGS -b BOOTSTRAP`.
fn cli(b: &common::Broker, args: &[&str], stdin: &[u8]) -> Run {
    let bootstrap = b.bootstrap();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-b", &bootstrap]);
    potok(&all, stdin)
}

fn create_topic(b: &common::Broker, topic: &str, partitions: u32) {
    cli(
        b,
        &[
            "topics",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ],
        b"",
    )
    .success("topics create");
}

/// Sum of the high watermarks of `topic`, read directly from the broker with librdkafka (the
/// broker-side count of records the tests compare the CLI's figures with).
fn broker_record_count(b: &common::Broker, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn topics_create_list_describe() {
    let b = common::Broker::start();
    cli(&b, &["topics", "create", "alpha", "--partitions", "3"], b"")
        .success("create")
        .stdout()
        .contains("alpha")
        .then_some(())
        .expect("create names the topic");
    // Creating it again fails with the broker's reason, unless --if-not-exists.
    cli(&b, &["topics", "create", "alpha"], b"").fails_with("create twice", "TopicAlreadyExists");
    cli(&b, &["topics", "create", "alpha", "--if-not-exists"], b"")
        .success("create --if-not-exists");

    let list = cli(&b, &["topics", "list", "--output", "json"], b"")
        .success("list")
        .json();
    let alpha = list
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == "alpha"))
        .unwrap_or_else(|| panic!("alpha missing from {list}"));
    assert_eq!(alpha["partitions"], 3);
    assert_eq!(alpha["replication_factor"], 1);
    let text = cli(&b, &["topics", "list"], b"")
        .success("list text")
        .stdout();
    assert!(
        text.lines()
            .any(|l| l.starts_with("alpha ") && l.contains(" 3 ")),
        "{text}"
    );

    cli(&b, &["produce", "alpha", "--partition", "1"], b"x\ny\n").success("produce");
    let d = cli(
        &b,
        &["topics", "describe", "alpha", "--output", "json"],
        b"",
    )
    .success("describe")
    .json();
    let parts = d[0]["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["partition"], i);
        assert!(p["leader"].as_i64().unwrap() >= 0, "{p}");
        assert_eq!(p["replicas"].as_array().unwrap().len(), 1, "{p}");
        assert_eq!(p["isr"], p["replicas"], "{p}");
        assert_eq!(p["low_watermark"], 0);
        assert_eq!(p["high_watermark"], if i == 1 { 2 } else { 0 }, "{p}");
    }
    let text = cli(&b, &["topics", "describe", "alpha"], b"")
        .success("describe text")
        .stdout();
    assert!(
        text.contains("Topic: alpha") && text.contains("Partitions: 3"),
        "{text}"
    );
}

#[test]
fn topics_alter_refuses_to_shrink() {
    let b = common::Broker::start();
    create_topic(&b, "shrink", 3);
    cli(&b, &["topics", "alter", "shrink", "--partitions", "2"], b"").fails_with(
        "shrink",
        "topic 'shrink' has 3 partitions; the partition count can only grow",
    );
    cli(
        &b,
        &["topics", "alter", "missing", "--partitions", "3"],
        b"",
    )
    .fails_with("alter missing", "topic 'missing' does not exist");
    // clap requires something to change.
    assert_eq!(cli(&b, &["topics", "alter", "shrink"], b"").code, Some(2));
    let d = cli(
        &b,
        &["topics", "describe", "shrink", "--output", "json"],
        b"",
    )
    .success("describe")
    .json();
    assert_eq!(d[0]["partitions"].as_array().unwrap().len(), 3, "{d}");
}

#[test]
fn every_subcommand_fails_in_one_line_without_a_broker() {
    // A port nobody listens on, held bound for the whole test.
    let (_held, port) = common::refusing_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let b = bootstrap.as_str();
    let t = "1000";
    let cases: Vec<Vec<&str>> = vec![
        vec!["topics", "list"],
        vec!["topics", "create", "x"],
        vec!["topics", "describe", "x"],
        vec!["topics", "alter", "x", "--partitions", "2"],
        vec!["topics", "delete", "x"],
        vec!["produce", "x"],
        vec!["consume", "x"],
        vec!["groups", "list"],
        vec!["groups", "describe", "g"],
        vec![
            "groups",
            "reset-offsets",
            "g",
            "--all-topics",
            "--to-earliest",
            "--dry-run",
        ],
        vec!["groups", "delete", "g"],
        vec!["bench", "produce", "--count", "10"],
        vec!["bench", "consume", "--count", "10"],
        vec!["bench", "e2e", "--count", "10"],
    ];
    for mut args in cases {
        let what = args.join(" ");
        args.extend(["-b", b, "--timeout-ms", t]);
        let started = Instant::now();
        potok(&args, b"line\n").fails_with(&what, "cannot reach a broker");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} took {:?} to give up",
            started.elapsed()
        );
    }
}

#[test]
fn unknown_topics_and_bad_arguments_fail_clearly() {
    let b = common::Broker::builder()
        .set("auto.create.topics.enable", "false")
        .start();
    cli(&b, &["topics", "describe", "nope"], b"")
        .fails_with("describe", "topic 'nope' does not exist");
    cli(&b, &["consume", "nope", "--exit-at-end"], b"")
        .fails_with("consume", "topic 'nope' does not exist");
    cli(&b, &["produce", "nope"], b"v\n").fails_with("produce", "topic 'nope' does not exist");
    create_topic(&b, "one", 1);
    cli(&b, &["produce", "one", "--partition", "5"], b"v\n")
        .fails_with("partition", "no partition 5");
    cli(&b, &["produce", "one", "-K", ":"], b"no separator here\n").fails_with("key sep", "line 1");
    // clap rejects malformed arguments itself, with its usage exit code 2.
    let r = cli(&b, &["consume", "one", "--format", "%q"], b"");
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}

/// A record as the JSON output shows it: key, value and headers.
type KeyValueHeaders = (Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

#[test]
fn produce_consume_round_trips_keys_values_and_headers() {
    let b = common::Broker::start();
    create_topic(&b, "rt", 3);
    // Values that are not UTF-8 (0xff, a lone continuation byte, NUL, CR): JSON output must
    // carry them as base64 and give back the exact bytes.
    let records: Vec<(&[u8], Vec<u8>)> = vec![
        (b"k1", b"plain text".to_vec()),
        (b"k2", vec![0xff, 0x00, 0x80, b'\r', 0xc3, 0x28]),
        (b"k\xe9y", "ünïcödé ✓".as_bytes().to_vec()),
        (b"k4", Vec::new()),
    ];
    let mut stdin = Vec::new();
    for (k, v) in &records {
        stdin.extend_from_slice(k);
        stdin.extend_from_slice(b"\t");
        stdin.extend_from_slice(v);
        stdin.push(b'\n');
    }
    let r = cli(
        &b,
        &[
            "produce",
            "rt",
            "--key-separator",
            "\t",
            "--header",
            "app=cli",
            "--header",
            "trace=a=b",
        ],
        &stdin,
    )
    .success("produce");
    assert!(r.stderr.contains("produced 4 record(s)"), "{}", r.stderr);

    let out = cli(
        &b,
        &[
            "consume",
            "rt",
            "--from-beginning",
            "--exit-at-end",
            "--format",
            "json",
        ],
        b"",
    )
    .success("consume json");
    let mut got: Vec<KeyValueHeaders> = Vec::new();
    for line in out.stdout().lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        let field = |name: &str| -> Vec<u8> {
            let enc = &v[format!("{name}_encoding")];
            let s = v[name].as_str().expect("string field");
            match enc.as_str() {
                Some("utf8") => s.as_bytes().to_vec(),
                Some("base64") => base64::engine::general_purpose::STANDARD.decode(s).unwrap(),
                other => panic!("encoding {other:?} in {v}"),
            }
        };
        let headers = v["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                assert_eq!(h["value_encoding"], "utf8");
                (
                    h["key"].as_str().unwrap().to_string(),
                    h["value"].as_str().unwrap().as_bytes().to_vec(),
                )
            })
            .collect();
        got.push((field("key"), field("value"), headers));
    }
    got.sort();
    let mut want: Vec<KeyValueHeaders> = records
        .iter()
        .map(|(k, v)| {
            (
                k.to_vec(),
                v.clone(),
                vec![
                    ("app".to_string(), b"cli".to_vec()),
                    ("trace".to_string(), b"a=b".to_vec()),
                ],
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
    // The binary value is base64 in the JSON output.
    assert!(out
        .stdout()
        .contains(&b64(&[0xff, 0x00, 0x80, b'\r', 0xc3, 0x28])));

    // Template output carries the raw bytes.
    let t = cli(
        &b,
        &[
            "consume",
            "rt",
            "--from-beginning",
            "--exit-at-end",
            "--format",
            "%k|%v|%h|%t\\n",
        ],
        b"",
    )
    .success("consume template");
    let mut lines: Vec<&[u8]> = t
        .stdout
        .split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    let mut want_lines: Vec<Vec<u8>> = records
        .iter()
        .map(|(k, v)| [*k, b"|", v, b"|app=cli,trace=a=b|rt"].concat())
        .collect();
    want_lines.sort();
    assert_eq!(
        lines,
        want_lines.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );

    // Plain output: values only, one per line; --max-messages stops early.
    let p = cli(
        &b,
        &[
            "consume",
            "rt",
            "--partition",
            "0",
            "--partition",
            "1",
            "--partition",
            "2",
            "--from-beginning",
            "--max-messages",
            "2",
        ],
        b"",
    )
    .success("consume plain");
    assert_eq!(p.stdout.iter().filter(|c| **c == b'\n').count(), 2);
}

#[test]
fn consume_positions_offset_timestamp_and_partition() {
    let b = common::Broker::start();
    create_topic(&b, "pos", 1);
    let lines: String = (0..10).map(|i| format!("v{i}\n")).collect();
    cli(&b, &["produce", "pos"], lines.as_bytes()).success("produce");
    let r = cli(
        &b,
        &[
            "consume",
            "pos",
            "--offset",
            "7",
            "--exit-at-end",
            "-f",
            "%o:%v\\n",
        ],
        b"",
    )
    .success("offset");
    assert_eq!(r.stdout(), "7:v7\n8:v8\n9:v9\n");
    let r = cli(
        &b,
        &["consume", "pos", "--offset", "-2", "--exit-at-end"],
        b"",
    )
    .success("tail");
    assert_eq!(r.stdout(), "v8\nv9\n");
    // A timestamp in the future: nothing at or after it, so the consumer starts at the end.
    let future = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let r = cli(
        &b,
        &["consume", "pos", "--timestamp", &future, "--exit-at-end"],
        b"",
    )
    .success("ts");
    assert_eq!(r.stdout(), "");
    let r = cli(
        &b,
        &[
            "consume",
            "pos",
            "--timestamp",
            "0",
            "--exit-at-end",
            "-n",
            "1",
        ],
        b"",
    )
    .success("ts0");
    assert_eq!(r.stdout(), "v0\n");
}

/// The murmur2 partitioner places keys where the Java client does: checked against librdkafka's
/// own Java-compatible `murmur2_random` partitioner, and against the formula.
#[test]
fn murmur2_partitioner_matches_librdkafka_and_java() {
    let b = common::Broker::start();
    create_topic(&b, "m-ours", 7);
    create_topic(&b, "m-rdkafka", 7);
    let stdin: String = (0..200).map(|i| format!("key-{i}:v\n")).collect();
    cli(
        &b,
        &["produce", "m-ours", "-K", ":", "--partitioner", "murmur2"],
        stdin.as_bytes(),
    )
    .success("produce murmur2");
    cli(
        &b,
        &[
            "produce",
            "m-rdkafka",
            "-K",
            ":",
            "-X",
            "partitioner=murmur2_random",
        ],
        stdin.as_bytes(),
    )
    .success("produce librdkafka murmur2_random");
    let placement = |topic: &str| {
        let out = cli(
            &b,
            &[
                "consume",
                topic,
                "--from-beginning",
                "--exit-at-end",
                "-f",
                "%k %p\\n",
            ],
            b"",
        )
        .success("consume");
        let mut v: Vec<(String, i32)> = out
            .stdout()
            .lines()
            .map(|l| {
                let (k, p) = l.split_once(' ').unwrap();
                (k.to_string(), p.parse().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let ours = placement("m-ours");
    assert_eq!(ours.len(), 200);
    assert_eq!(ours, placement("m-rdkafka"));
    for (k, p) in &ours {
        assert_eq!(
            *p,
            potok_cli::partitioner::partition_for_key(k.as_bytes(), 7),
            "{k}"
        );
    }
    // Keys are spread: every partition got some of the 200 keys.
    let used: std::collections::BTreeSet<i32> = ours.iter().map(|(_, p)| *p).collect();
    assert_eq!(used.len(), 7);
    // round-robin ignores keys and cycles.
    create_topic(&b, "m-rr", 3);
    cli(
        &b,
        &["produce", "m-rr", "-K", ":", "--partitioner", "round-robin"],
        b"a:1\na:2\na:3\n",
    )
    .success("round-robin");
    let d = cli(&b, &["topics", "describe", "m-rr", "--output", "json"], b"")
        .success("describe")
        .json();
    for p in d[0]["partitions"].as_array().unwrap() {
        assert_eq!(p["high_watermark"], 1, "{d}");
    }
}

#[test]
fn bench_figures_match_the_broker() {
    let b = common::Broker::start();
    let r = cli(
        &b,
        &[
            "bench",
            "produce",
            "--topic",
            "bp",
            "--partitions",
            "2",
            "--count",
            "3000",
            "--size",
            "64",
            "--output",
            "json",
        ],
        b"",
    )
    .success("bench produce")
    .json();
    assert_eq!(r["records"], 3000, "{r}");
    assert_eq!(r["bytes"], 3000 * 64, "{r}");
    assert_eq!(r["failed"], 0);
    assert!(r["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(r["latency"]["samples"], 3000, "{r}");
    for q in ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(r["latency"][q].as_f64().unwrap() > 0.0, "{q} in {r}");
    }
    assert!(r["latency"]["p50_ms"].as_f64() <= r["latency"]["max_ms"].as_f64());
    assert_eq!(broker_record_count(&b, "bp"), 3000);

    let c = cli(
        &b,
        &[
            "bench",
            "consume",
            "--topic",
            "bp",
            "--consumers",
            "2",
            "--output",
            "json",
        ],
        b"",
    )
    .success("bench consume")
    .json();
    assert_eq!(c["records"], 3000, "{c}");
    assert_eq!(c["bytes"], 3000 * 64, "{c}");

    let e = cli(
        &b,
        &[
            "bench",
            "e2e",
            "--topic",
            "bp",
            "--count",
            "1000",
            "--size",
            "32",
            "--producers",
            "2",
            "--output",
            "json",
        ],
        b"",
    )
    .success("bench e2e")
    .json();
    assert_eq!(e["produced"], 1000, "{e}");
    assert_eq!(e["records"], 1000, "{e}");
    assert_eq!(e["latency"]["kind"], "end-to-end");
    assert_eq!(e["latency"]["samples"], 1000);
    assert_eq!(broker_record_count(&b, "bp"), 4000);

    // A fixed-rate run is reported as corrected for coordinated omission.
    let f = cli(
        &b,
        &[
            "bench", "produce", "--topic", "bp", "--count", "200", "--rate", "1000", "--output",
            "json",
        ],
        b"",
    )
    .success("bench --rate")
    .json();
    assert_eq!(f["records"], 200);
    assert_eq!(f["latency"]["coordinated_omission_corrected"], true);
    // 200 records at 1000/s take at least 0.2 s minus one interval.
    assert!(f["elapsed_secs"].as_f64().unwrap() >= 0.19, "{f}");
    assert_eq!(broker_record_count(&b, "bp"), 4200);

    // Text output names the figures.
    let t = cli(
        &b,
        &[
            "bench",
            "produce",
            "--topic",
            "bp",
            "--count",
            "100",
            "--acks",
            "1",
            "--compression",
            "zstd",
        ],
        b"",
    )
    .success("bench text")
    .stdout();
    assert!(
        t.contains("msgs/s") && t.contains("MB/s") && t.contains("p99.9"),
        "{t}"
    );
    assert_eq!(broker_record_count(&b, "bp"), 4300);
}

#[test]
fn completions_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let r = potok(&["completions", shell], b"").success(shell);
        let s = r.stdout();
        assert!(
            s.contains("potok") && s.contains("reset-offsets"),
            "{shell}: {s}"
        );
    }
}
/// Growing and config changes; shrinking and a missing topic are refused in
/// `topics_alter_refuses_to_shrink`.
#[test]
fn topics_alter_grows_and_sets_configs() {
    let b = common::Broker::start();
    create_topic(&b, "grow", 2);
    cli(&b, &["topics", "alter", "grow", "--partitions", "4"], b"").success("grow");
    let d = cli(&b, &["topics", "describe", "grow", "--output", "json"], b"")
        .success("describe")
        .json();
    assert_eq!(d[0]["partitions"].as_array().unwrap().len(), 4, "{d}");
    cli(
        &b,
        &[
            "topics",
            "alter",
            "grow",
            "--config",
            "retention.ms=3600000",
        ],
        b"",
    )
    .success("alter config");
    let d = cli(&b, &["topics", "describe", "grow", "--output", "json"], b"")
        .success("describe")
        .json();
    assert_eq!(d[0]["configs"]["retention.ms"], "3600000", "{d}");
}

#[test]
fn topics_delete() {
    let b = common::Broker::start();
    create_topic(&b, "doomed", 1);
    cli(&b, &["topics", "delete", "doomed"], b"").success("delete");
    cli(&b, &["topics", "describe", "doomed"], b"")
        .fails_with("describe deleted", "topic 'doomed' does not exist");
    cli(&b, &["topics", "delete", "doomed"], b"").fails_with("delete twice", "does not exist");
    cli(&b, &["topics", "delete", "doomed", "--if-exists"], b"").success("delete --if-exists");
}

#[test]
fn groups_describe_lag_and_reset_offsets() {
    let b = common::Broker::start();
    create_topic(&b, "work", 2);
    let lines: String = (0..20).map(|i| format!("k{i}:v{i}\n")).collect();
    cli(&b, &["produce", "work", "-K", ":"], lines.as_bytes()).success("produce");
    let per_partition: Vec<i64> = {
        let d = cli(&b, &["topics", "describe", "work", "--output", "json"], b"")
            .success("describe")
            .json();
        d[0]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["high_watermark"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(per_partition.iter().sum::<i64>(), 20);

    // Consume 7 of the 20 records through the group; they are committed on exit.
    let r = cli(
        &b,
        &[
            "consume",
            "work",
            "--group",
            "g1",
            "--from-beginning",
            "--max-messages",
            "7",
        ],
        b"",
    )
    .success("partial consume");
    assert_eq!(r.stdout().lines().count(), 7);

    let list = cli(&b, &["groups", "list", "--output", "json"], b"")
        .success("groups list")
        .json();
    assert!(
        list.as_array().unwrap().iter().any(|g| g["group"] == "g1"),
        "{list}"
    );

    let d = cli(&b, &["groups", "describe", "g1", "--output", "json"], b"")
        .success("describe")
        .json();
    let parts = d["partitions"].as_array().unwrap();
    let committed: i64 = parts
        .iter()
        .map(|p| p["committed_offset"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(committed, 7, "{d}");
    // The consumer may have read all 7 records from one partition, in which case only that
    // partition has a committed offset. An Empty group's description lists the partitions it has
    // committed offsets for (as `kafka-consumer-groups.sh --describe` does), so the expected total
    // lag is the sum over the listed partitions of (log end - committed).
    let lag: i64 = parts
        .iter()
        .map(|p| p["lag"].as_i64().expect("numeric lag"))
        .sum();
    let expected_lag: i64 = parts
        .iter()
        .map(|p| {
            let i = p["partition"].as_u64().unwrap() as usize;
            per_partition[i] - p["committed_offset"].as_i64().unwrap()
        })
        .sum();
    assert!(expected_lag > 0, "{d}");
    assert_eq!(lag, expected_lag, "{d}");
    for p in parts {
        let i = p["partition"].as_u64().unwrap() as usize;
        assert_eq!(p["log_end_offset"], per_partition[i]);
        assert_eq!(
            p["lag"].as_i64().unwrap(),
            per_partition[i] - p["committed_offset"].as_i64().unwrap()
        );
    }
    assert_eq!(d["total_lag"], expected_lag);
    let text = cli(&b, &["groups", "describe", "g1"], b"")
        .success("describe text")
        .stdout();
    assert!(
        text.contains("LAG") && text.contains(&format!("Total lag: {expected_lag}")),
        "{text}"
    );

    // Dry run: shows the plan, commits nothing.
    let dry = cli(
        &b,
        &[
            "groups",
            "reset-offsets",
            "g1",
            "--topic",
            "work",
            "--to-earliest",
            "--dry-run",
            "--output",
            "json",
        ],
        b"",
    )
    .success("dry run")
    .json();
    assert!(
        dry["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["new_offset"] == 0),
        "{dry}"
    );
    let again = cli(&b, &["groups", "describe", "g1", "--output", "json"], b"")
        .success("describe")
        .json();
    assert_eq!(
        again["total_lag"], expected_lag,
        "dry run must not commit: {again}"
    );

    // Reset partition 0 to offset 1 and partition 1 to its end, then the group's consumer reads
    // exactly partition 0 from offset 1.
    cli(
        &b,
        &[
            "groups",
            "reset-offsets",
            "g1",
            "--topic",
            "work:0",
            "--to-offset",
            "1",
            "--execute",
        ],
        b"",
    )
    .success("reset p0");
    cli(
        &b,
        &[
            "groups",
            "reset-offsets",
            "g1",
            "--topic",
            "work:1",
            "--to-latest",
            "--execute",
        ],
        b"",
    )
    .success("reset p1");
    let d = cli(&b, &["groups", "describe", "g1", "--output", "json"], b"")
        .success("describe")
        .json();
    assert_eq!(d["total_lag"], per_partition[0] - 1, "{d}");
    let r = cli(
        &b,
        &[
            "consume",
            "work",
            "--group",
            "g1",
            "--exit-at-end",
            "-f",
            "%p:%o\\n",
        ],
        b"",
    )
    .success("consume after reset");
    let want: String = (1..per_partition[0]).map(|o| format!("0:{o}\n")).collect();
    assert_eq!(r.stdout(), want);

    // shift-by moves back from the committed offsets (now at the ends).
    cli(
        &b,
        &[
            "groups",
            "reset-offsets",
            "g1",
            "--all-topics",
            "--shift-by",
            "-2",
            "--execute",
        ],
        b"",
    )
    .success("shift");
    let d = cli(&b, &["groups", "describe", "g1", "--output", "json"], b"")
        .success("describe")
        .json();
    assert_eq!(d["total_lag"], 4, "{d}");
    // by timestamp 0: everything again.
    cli(
        &b,
        &[
            "groups",
            "reset-offsets",
            "g1",
            "--all-topics",
            "--to-timestamp",
            "0",
            "--execute",
        ],
        b"",
    )
    .success("timestamp");
    let d = cli(&b, &["groups", "describe", "g1", "--output", "json"], b"")
        .success("describe")
        .json();
    assert_eq!(d["total_lag"], 20, "{d}");

    cli(&b, &["groups", "delete", "g1"], b"").success("delete");
    cli(&b, &["groups", "describe", "g1"], b"")
        .fails_with("describe deleted", "group 'g1' does not exist");
}

/// `--warmup-records` (KIP-1052's producer-perf-test option): the warm-up records reach the
/// broker but are left out of the reported records and latency samples, and the option is
/// refused where it has no meaning.
#[test]
fn bench_warmup_records_are_sent_but_not_counted() {
    let b = common::Broker::start();
    let r = cli(
        &b,
        &[
            "bench",
            "produce",
            "--topic",
            "bw",
            "--partitions",
            "2",
            "--producers",
            "2",
            "--count",
            "3000",
            "--warmup-records",
            "501",
            "--size",
            "64",
            "-X",
            "enable.idempotence=true",
            "--output",
            "json",
        ],
        b"",
    )
    .success("bench produce with warm-up")
    .json();
    assert_eq!(r["warmup_records"], 501, "{r}");
    assert_eq!(r["records"], 2499, "{r}");
    assert_eq!(r["bytes"], 2499 * 64, "{r}");
    assert_eq!(r["latency"]["samples"], 2499, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(broker_record_count(&b, "bw"), 3000);

    cli(
        &b,
        &[
            "bench",
            "consume",
            "--topic",
            "bw",
            "--warmup-records",
            "10",
        ],
        b"",
    )
    .fails_with(
        "warm-up on consume",
        "--warmup-records applies to `bench produce` only",
    );
    cli(
        &b,
        &[
            "bench",
            "produce",
            "--topic",
            "bw",
            "--count",
            "10",
            "--warmup-records",
            "10",
        ],
        b"",
    )
    .fails_with("warm-up as large as the count", "smaller than --count");
}
