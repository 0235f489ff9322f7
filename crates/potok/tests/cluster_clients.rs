//! Real clients against three `potok` processes, through one bootstrap address (issue 17,
//! acceptance 3): librdkafka (through the `rdkafka` crate), confluent-kafka, kafka-python and kcat
//! (`tests/python/cluster_clients.py`) each see three brokers, create a topic with 3 replicas per
//! partition (placed on 3 distinct brokers), produce to every partition (each one's leader may be
//! another node than the bootstrap) and read every record back; Kafka's own
//! `kafka-metadata-quorum` tool (`MetadataQuorumCommand`) describes the quorum. Consumer groups
//! do not run in a cluster yet, so the consumers assign their partitions.

mod common;

use std::path::Path;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);
/// A whole client script or tool run (the scripts and the JVM share two cores with other tests).
const RUN_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs `program args` (in `dir`) to completion, killed after [`RUN_TIMEOUT`]; its stdout, or
/// the failure with everything it printed and the nodes' log tails.
fn run(c: &Cluster, dir: &Path, program: &str, args: &[&str]) -> String {
    let failure = match common::run_program(program, args, dir, RUN_TIMEOUT) {
        Ok(out) => return out,
        Err(failure) => failure,
    };
    let mut logs = String::new();
    for n in &c.nodes {
        let log = n.log();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        logs.push_str(&format!("--- node {} (last 30 lines) ---\n", n.id));
        for l in tail.into_iter().rev() {
            logs.push_str(l);
            logs.push('\n');
        }
    }
    panic!("{failure}\n{logs}");
}

/// confluent-kafka, kafka-python and kcat, bootstrapped at node 2 only.
#[test]
fn python_clients_and_kcat_use_the_cluster_through_one_bootstrap_address() {
    let c = Cluster::start(3, &[]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let out = run(
        &c,
        &dir,
        "python3",
        &["cluster_clients.py", &c.node(2).bootstrap()],
    );
    print!("{out}");
    assert!(out.contains("OK cluster_clients.py"), "{out}");
}

/// Kafka's `kafka-metadata-quorum.sh` (the `MetadataQuorumCommand` class of Kafka 4.4) against
/// one node: `describe --status` names the leader, its epoch and the three voters, and
/// `describe --replication` lists each voter's log end offset and lag.
#[test]
fn kafka_metadata_quorum_tool_describes_the_quorum() {
    let c = Cluster::start(3, &[]);
    let cp = common::java::kafka_classpath();
    let dir = common::java::repo_root();
    let bootstrap = c.node(1).bootstrap();
    let tool = |what: &str| {
        run(
            &c,
            &dir,
            "java",
            &[
                "-cp",
                &cp,
                "org.apache.kafka.tools.MetadataQuorumCommand",
                "--bootstrap-server",
                &bootstrap,
                "describe",
                what,
            ],
        )
    };
    // The quorum elects its leader within a few seconds of the start; until then the tool
    // reports an error (leader -1 is not an answer it accepts either).
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        let out = tool("--status");
        let leader = out
            .lines()
            .find_map(|l| l.strip_prefix("LeaderId:"))
            .and_then(|v| v.trim().parse::<i32>().ok());
        if leader.is_some_and(|l| (1..=3).contains(&l)) {
            break out;
        }
        assert!(Instant::now() < deadline, "no leader in --status:\n{out}");
        std::thread::sleep(Duration::from_millis(500));
    };
    println!("{status}");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{name} missing:\n{status}"))
            .to_string()
    };
    assert_eq!(field("ClusterId:"), c.cluster_id);
    assert!(field("LeaderEpoch:").parse::<i32>().unwrap() >= 1);
    assert!(field("HighWatermark:").parse::<i64>().unwrap() >= 1);
    let voters = field("CurrentVoters:");
    for id in 1..=3 {
        assert!(
            voters.contains(&format!("\"id\": {id}")) || voters.contains(&format!("\"id\":{id}")),
            "voter {id} missing from {voters}"
        );
    }
    let replication = tool("--replication");
    println!("{replication}");
    let rows: Vec<&str> = replication
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), 3, "one row per voter:\n{replication}");
    assert_eq!(
        rows.iter().filter(|r| r.contains("Leader")).count(),
        1,
        "{replication}"
    );
    assert_eq!(
        rows.iter().filter(|r| r.contains("Follower")).count(),
        2,
        "{replication}"
    );
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_uses_the_cluster_through_one_bootstrap_address() {
    let c = Cluster::start(3, &[]);
    let bootstrap = c.node(2).bootstrap();
    let admin: AdminClient<DefaultClientContext> =
        config(&bootstrap).create().expect("admin client");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        // Until the nodes have registered, Metadata lists fewer brokers (none at first, which
        // librdkafka reports as a partial response).
        let md = admin.inner().fetch_metadata(None, Duration::from_secs(5));
        if md.is_ok_and(|md| md.brokers().len() == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "librdkafka does not see 3 brokers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opts = AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT));
    let created = admin
        .create_topics(
            &[NewTopic::new("rf3", 3, TopicReplication::Fixed(3))],
            &opts,
        )
        .await
        .expect("create_topics");
    assert!(created[0].is_ok(), "{created:?}");
    // Every node applies the creation; librdkafka then sees 3 distinct replicas per partition.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some("rf3"), Duration::from_secs(5))
            .expect("metadata");
        let t = &md.topics()[0];
        if t.partitions().len() == 3 {
            for p in t.partitions() {
                let mut r = p.replicas().to_vec();
                r.sort_unstable();
                assert_eq!(r, vec![1, 2, 3], "partition {}", p.id());
            }
            break;
        }
        assert!(Instant::now() < deadline, "rf3 not listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config(&bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..30 {
        let payload = format!("record-{i}");
        producer
            .send(
                BaseRecord::<(), str>::to("rf3")
                    .partition(i % 3)
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(TIMEOUT).expect("flush");
    let consumer: BaseConsumer = config(&bootstrap)
        // librdkafka needs a group id to assign; nothing is committed.
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("rf3", p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "read back {} of 30 records",
            seen.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            seen.insert(v);
        }
    }
    assert!((0..30).all(|i| seen.contains(&format!("record-{i}"))));
}
