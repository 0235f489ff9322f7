//! `potok bench`: its figures against the broker's own counts, and warm-up records.

use super::*;

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

/// `--transactional-batch` / `--abort-every` (issue 21, the benchmarks of acceptance 4): every
/// 100 records are one transaction, every fifth is aborted, the report counts them, and the
/// records read back at each isolation level are exactly the committed ones or all of them.
#[test]
fn bench_transactional_batches_commit_and_abort() {
    let b = common::Broker::start();
    let r = cli(
        &b,
        &[
            "bench",
            "produce",
            "--topic",
            "bt",
            "--count",
            "1000",
            "--size",
            "64",
            "--transactional-batch",
            "100",
            "--abort-every",
            "5",
            "--output",
            "json",
        ],
        b"",
    )
    .success("bench produce --transactional-batch")
    .json();
    assert_eq!(r["records"], 1000, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    let t = &r["transactions"];
    assert_eq!(t["batch"], 100, "{r}");
    assert_eq!(t["committed"], 8, "{r}");
    assert_eq!(t["aborted"], 2, "{r}");
    assert!(t["commit_p50_ms"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        t["commit_p50_ms"].as_f64() <= t["commit_max_ms"].as_f64(),
        "{r}"
    );

    for (level, expected) in [("read_committed", 800), ("read_uncommitted", 1000)] {
        let c = cli(
            &b,
            &[
                "bench",
                "consume",
                "--topic",
                "bt",
                "-X",
                &format!("isolation.level={level}"),
                "--output",
                "json",
            ],
            b"",
        )
        .success("bench consume after transactions")
        .json();
        assert_eq!(c["records"], expected, "{level}: {c}");
        assert_eq!(c["transactions"], serde_json::Value::Null, "{c}");
    }

    cli(
        &b,
        &[
            "bench",
            "consume",
            "--topic",
            "bt",
            "--transactional-batch",
            "10",
        ],
        b"",
    )
    .fails_with(
        "transactions on consume",
        "--transactional-batch applies to `bench produce` only",
    );
    cli(
        &b,
        &[
            "bench",
            "produce",
            "--topic",
            "bt",
            "--transactional-batch",
            "0",
        ],
        b"",
    )
    .fails_with("an empty transaction size", "must be at least 1");
}
