//! End-to-end tests of the client subcommands: the real `potok` binary (`topics`, `produce`,
//! `consume`, `groups`, `bench`, `completions`) against a real `potok serve` started by the
//! shared harness. Each test checks output and exit code, including the failure cases of
//! issue #7 (no broker, unknown topic, decreasing partitions).

mod bench;
mod cluster;
#[path = "../common/mod.rs"]
mod common;
mod groups;
mod reassign;
mod support;
mod transactions;

use support::*;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

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
