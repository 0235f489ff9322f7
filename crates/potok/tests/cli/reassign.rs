//! `potok topics reassign` (issue 19): a fourth broker joins, `--balance` plans replicas and
//! preferred leaders evenly over the four, `--balance --execute` moves them, `--list` ends empty,
//! and a plan file can be submitted and cancelled; bad plans fail before anything is sent.

use std::collections::BTreeMap;

use super::*;
use crate::common::cluster::Cluster;

/// Per broker: (replicas, first replicas) of every partition of `topic` as `bootstrap`'s
/// `topics describe` shows them.
fn counts(bootstrap: &str, topic: &str) -> Option<BTreeMap<i64, (usize, usize)>> {
    let r = potok(
        &[
            "topics", "describe", topic, "-b", bootstrap, "--output", "json",
        ],
        b"",
    );
    if !r.ok() {
        return None;
    }
    let v = r.json();
    let parts = v[0]["partitions"].as_array()?.clone();
    let mut out: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
    for p in parts {
        let replicas = p["replicas"].as_array()?.clone();
        for (i, r) in replicas.iter().enumerate() {
            let e = out.entry(r.as_i64()?).or_default();
            e.0 += 1;
            if i == 0 {
                e.1 += 1;
            }
        }
    }
    Some(out)
}

#[test]
fn topics_reassign_balances_onto_a_new_broker() {
    // Broker 4 is a broker-only node (process.roles=broker) added to the three voters.
    let mut c = Cluster::start_with_brokers(3, 1, &[("replica.lag.time.max.ms", "2000")]);
    let b1 = c.node(1).bootstrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = potok(
            &["topics", "create", "bal", "-p", "4", "-r", "2", "-b", &b1],
            b"",
        );
        if r.ok() {
            break;
        }
        assert!(Instant::now() < deadline, "create: {}", r.stderr);
        std::thread::sleep(Duration::from_millis(300));
    }
    c.start_node(4);
    // Broker 4 is registered (Metadata lists it) before the plan is made.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = potok(&["cluster", "describe", "-b", &b1, "--output", "json"], b"");
        if r.ok() && r.json()["brokers"].as_array().is_some_and(|b| b.len() == 4) {
            break;
        }
        assert!(Instant::now() < deadline, "broker 4 registered");
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = counts(&b1, "bal").expect("describe");
    assert!(!before.contains_key(&4), "{before:?}");

    // Bad plans fail before anything is sent; nothing to cancel yet.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"version":1,"partitions":[{"topic":"bal"}]}"#).unwrap();
    let bad = bad.display().to_string();
    potok(&["topics", "reassign", "--plan", &bad, "-b", &b1], b"").fails_with(
        "a plan without a partition index",
        "invalid reassignment plan",
    );
    let plan = dir.path().join("plan.json");
    let current = r#"{"version":1,"partitions":[{"topic":"bal","partition":0,"replicas":[1,2]}]}"#;
    std::fs::write(&plan, current).unwrap();
    let plan = plan.display().to_string();
    potok(
        &["topics", "reassign", "--plan", &plan, "--cancel", "-b", &b1],
        b"",
    )
    .fails_with(
        "cancel with nothing in progress",
        "NoReassignmentInProgress",
    );

    // The balance plan: 8 replicas and 4 leaders over 4 brokers, 2 and 1 each.
    let r = potok(
        &[
            "topics",
            "reassign",
            "--balance",
            "--topic",
            "bal",
            "-b",
            &b1,
        ],
        b"",
    );
    let printed = r.success("--balance").json();
    let moves = printed["partitions"].as_array().expect("a plan").len();
    assert!(moves >= 2, "{printed}");
    potok(
        &[
            "topics",
            "reassign",
            "--balance",
            "--topic",
            "bal",
            "--execute",
            "-b",
            &b1,
        ],
        b"",
    )
    .success("--balance --execute");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let listed = potok(&["topics", "reassign", "--list", "-b", &b1], b"");
        let done = listed.ok() && listed.stdout().contains("No partition reassignments");
        let balanced =
            counts(&b1, "bal").is_some_and(|c| (1..=4).all(|b| c.get(&b) == Some(&(2, 1))));
        if done && balanced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "balanced: {:?} / {}",
            counts(&b1, "bal"),
            listed.stdout()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Balanced now: the next plan moves nothing.
    let again = potok(
        &[
            "topics",
            "reassign",
            "--balance",
            "--topic",
            "bal",
            "-b",
            &b1,
        ],
        b"",
    )
    .success("--balance again")
    .json();
    assert_eq!(
        again["partitions"].as_array().map(Vec::len),
        Some(0),
        "{again}"
    );
}
