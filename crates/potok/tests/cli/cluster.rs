//! `potok cluster describe` (issue 17): the brokers from DescribeCluster and the controller
//! quorum from DescribeQuorum, against three real nodes and against a single node (no quorum).

use super::*;
use crate::common::cluster::Cluster;

#[test]
fn cluster_describe_shows_brokers_and_the_quorum() {
    let c = Cluster::start(3, &[]);
    let bootstrap = c.node(3).bootstrap();
    let describe = |output: &str| {
        potok(
            &["cluster", "describe", "-b", &bootstrap, "--output", output],
            b"",
        )
    };
    // The nodes register with the controller within a few seconds of the start.
    let deadline = Instant::now() + Duration::from_secs(30);
    let json = loop {
        let r = describe("json");
        if r.ok() {
            let v = r.json();
            let brokers = v["brokers"].as_array().map_or(0, Vec::len);
            if brokers == 3 && v["quorum"]["leader_id"].as_i64().is_some_and(|l| l > 0) {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "3 brokers and a leader: {}\nstderr: {}",
            r.stdout(),
            r.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(json["cluster_id"], c.cluster_id.as_str());
    let ids: Vec<i64> = json["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    let q = &json["quorum"];
    let leader = q["leader_id"].as_i64().unwrap();
    assert_eq!(json["controller_id"].as_i64(), Some(leader), "{json}");
    assert!(q["leader_epoch"].as_i64().unwrap() >= 1);
    let hw = q["high_watermark"].as_i64().unwrap();
    assert!(hw >= 1, "{json}");
    let voters = q["voters"].as_array().unwrap();
    let mut voter_ids: Vec<i64> = voters.iter().map(|v| v["id"].as_i64().unwrap()).collect();
    voter_ids.sort_unstable();
    assert_eq!(voter_ids, vec![1, 2, 3]);
    for v in voters {
        assert_eq!(
            v["lag"].as_i64(),
            Some((hw - v["log_end_offset"].as_i64().unwrap()).max(0)),
            "{v}"
        );
    }
    // The text form: one row per broker, one per voter with its role.
    let text = describe("text").success("describe").stdout();
    for id in 1..=3 {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{id} ")) && l.contains("127.0.0.1:")),
            "broker {id}:\n{text}"
        );
    }
    let roles: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|r| *r == "Leader" || *r == "Follower")
        .collect();
    assert_eq!(
        roles.iter().filter(|r| **r == "Leader").count(),
        1,
        "{text}"
    );
    assert_eq!(
        roles.iter().filter(|r| **r == "Follower").count(),
        2,
        "{text}"
    );
}

#[test]
fn cluster_describe_on_a_single_node_has_no_quorum() {
    let b = common::Broker::start();
    let v = cli(&b, &["cluster", "describe", "--output", "json"], b"")
        .success("describe")
        .json();
    assert_eq!(v["brokers"].as_array().map(Vec::len), Some(1), "{v}");
    assert!(v["quorum"].is_null(), "{v}");
    let text = cli(&b, &["cluster", "describe"], b"")
        .success("describe")
        .stdout();
    assert!(text.contains("Quorum:      none"), "{text}");
    // No broker: one error line naming the address.
    let (_held, port) = common::refusing_port();
    potok(
        &[
            "cluster",
            "describe",
            "-b",
            &format!("127.0.0.1:{port}"),
            "--timeout-ms",
            "2000",
        ],
        b"",
    )
    .fails_with("no broker", "cannot reach a broker");
}
