//! `potok groups`: describe with lag, and offset resets.

use super::*;

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
