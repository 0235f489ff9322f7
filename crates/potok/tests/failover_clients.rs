//! Real clients across a partition leader's SIGKILL (issue 18, acceptance 2): confluent-kafka,
//! kafka-python and kcat (`tests/python/failover_clients.py`) and Kafka's Java client
//! (`compat/java/src/potok/compat/Failover.java`, kafka-clients as pinned in `compat/java/pom.xml`)
//! each produce with `acks=all`, retries and idempotence to a topic with replication factor 3 and
//! `min.insync.replicas=2` on three nodes, through ONE bootstrap address, while a consumer that
//! assigned every partition keeps polling. When the client has acknowledged the first records,
//! this test SIGKILLs the leader of partition 0 — in one variant a node other than the
//! bootstrap, in the other the bootstrap node itself (clients keep every broker Metadata named, as
//! they do against Kafka) — and restarts it once the records sent after the kill are
//! acknowledged, while the client sends its last records. The client must surface no error: every delivery succeeds, and the
//! consumer reads every value exactly once, in order, per partition. Consumer groups do not run
//! in a cluster yet, so the consumers assign their partitions.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

const TIMEOUT: Duration = Duration::from_secs(60);
/// A whole client run: the scripts and the JVM share two cores with other tests, and a client
/// waits out the failover (the session timeout below plus an election) before it drains.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
const PARTITIONS: i32 = 3;

/// Three nodes whose controller fences a killed broker after 3 s, as in `tests/acks_isr.rs`.
fn cluster() -> Cluster {
    Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "300"),
            ("replica.lag.time.max.ms", "2000"),
        ],
    )
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000");
    c
}

/// `(leader, isr size, replicas)` of each partition of `topic` as `m` reads Metadata.
fn partitions(m: &BaseConsumer, topic: &str) -> Option<Vec<(i32, usize, usize)>> {
    let md = m.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().len() != PARTITIONS as usize {
        return None;
    }
    let mut parts: Vec<_> = t.partitions().iter().collect();
    parts.sort_by_key(|p| p.id());
    Some(
        parts
            .iter()
            .map(|p| (p.leader(), p.isr().len(), p.replicas().len()))
            .collect(),
    )
}

fn wait_partitions(
    m: &BaseConsumer,
    topic: &str,
    what: &str,
    ok: impl Fn(&[(i32, usize, usize)]) -> bool,
) -> Vec<(i32, usize, usize)> {
    let deadline = Instant::now() + TIMEOUT;
    let mut last = None;
    loop {
        if let Some(p) = partitions(m, topic) {
            if ok(&p) {
                return p;
            }
            last = Some(p);
        }
        assert!(Instant::now() < deadline, "{what}: last seen {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates `topic` (RF=3, `min.insync.replicas=2`) and waits until every replica is in the ISR;
/// returns the leader of partition 0.
fn create_rf3(c: &Cluster, topic: &str) -> i32 {
    let bootstrap = c.bootstrap();
    common::kafka::create_topic_retrying(
        &bootstrap,
        &NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2"),
        TIMEOUT,
    );
    let m: BaseConsumer = client_config(&bootstrap).create().expect("metadata client");
    let parts = wait_partitions(&m, topic, "every replica in the ISR", |p| {
        p.iter().all(|(l, isr, r)| *l >= 0 && isr == r && *r == 3)
    });
    parts[0].0
}

/// The client programs.
enum Client {
    Python(&'static str),
    Java,
}

/// Runs `which` against a fresh cluster, bootstrapped at the leader of partition 0 (which is
/// then killed) when `bootstrap_is_killed`, else at another node. The client runs on a thread;
/// this one SIGKILLs the leader when the client asks (`ready`), and restarts it when the client
/// has its records after the kill acknowledged (`rejoin`).
fn failover(which: Client, name: &str, bootstrap_is_killed: bool) {
    let mut c = cluster();
    let topic = format!("failover-{name}");
    let leader = create_rf3(&c, &topic);
    let bootstrap_node = if bootstrap_is_killed {
        leader
    } else {
        (1..=3).find(|n| *n != leader).expect("another node")
    };
    let bootstrap = c.node(bootstrap_node).bootstrap();
    eprintln!("{name}: leader of partition 0 is node {leader}, bootstrap node {bootstrap_node}");
    let handshake = tempfile::tempdir().expect("handshake dir");
    let (program, args, dir): (&str, Vec<String>, PathBuf) = match which {
        Client::Python(client) => (
            "python3",
            vec!["failover_clients.py".into(), client.into()],
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python"),
        ),
        Client::Java => (
            "java",
            common::java::jvm_args("potok.compat.Failover"),
            common::java::repo_root(),
        ),
    };
    let mut args = args;
    args.extend([
        bootstrap,
        topic.clone(),
        PARTITIONS.to_string(),
        handshake.path().display().to_string(),
    ]);
    let client = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::run_program(program, &args, &dir, RUN_TIMEOUT)
    });
    let hs = handshake.path();
    let killed = common::wait_file(hs, "ready", &client, RUN_TIMEOUT);
    if killed {
        c.kill9(leader);
        std::fs::write(hs.join("killed"), "1\n").expect("write the killed file");
    }
    let restarted = killed && common::wait_file(hs, "rejoin", &client, RUN_TIMEOUT);
    if restarted {
        c.restart(leader);
        std::fs::write(hs.join("restarted"), "1\n").expect("write the restarted file");
    }
    let result = client.join().expect("client thread");
    let out = result.unwrap_or_else(|failure| panic!("{failure}\n{}", c.log_tails(40)));
    print!("{out}");
    assert!(killed && restarted, "the client skipped a step:\n{out}");
    assert!(out.contains("OK "), "{out}");
    // The records of the AFTER phase were acknowledged (acks=all) while the old leader was
    // dead (`rejoin` comes before the restart), so another node led partition 0 by then.
}

#[test]
fn confluent_kafka_across_a_leader_kill_bootstrapped_at_a_survivor() {
    failover(Client::Python("confluent-kafka"), "ck-survivor", false);
}

#[test]
fn confluent_kafka_across_a_kill_of_its_bootstrap_leader() {
    failover(Client::Python("confluent-kafka"), "ck-bootstrap", true);
}

#[test]
fn kafka_python_across_a_leader_kill_bootstrapped_at_a_survivor() {
    failover(Client::Python("kafka-python"), "kp-survivor", false);
}

#[test]
fn kafka_python_across_a_kill_of_its_bootstrap_leader() {
    failover(Client::Python("kafka-python"), "kp-bootstrap", true);
}

#[test]
fn kcat_across_a_leader_kill_bootstrapped_at_a_survivor() {
    failover(Client::Python("kcat"), "kcat-survivor", false);
}

#[test]
fn kcat_across_a_kill_of_its_bootstrap_leader() {
    failover(Client::Python("kcat"), "kcat-bootstrap", true);
}

#[test]
fn java_client_across_a_leader_kill_bootstrapped_at_a_survivor() {
    failover(Client::Java, "java-survivor", false);
}

#[test]
fn java_client_across_a_kill_of_its_bootstrap_leader() {
    failover(Client::Java, "java-bootstrap", true);
}

/// `(leader, leader epoch)` of partition 0 of `topic` in a Metadata v12 answer from `addr`, on
/// a new connection (as a client bootstrapping there would ask).
fn wire_leader(addr: &str, topic: &str) -> Result<(i32, i32), String> {
    use potok_protocol::messages::metadata_request::MetadataRequestTopic;
    use potok_protocol::messages::{MetadataRequest, MetadataResponse};
    let mut w = common::wire::Client::connect(addr, Duration::from_secs(20));
    let req = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some(topic.to_string()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    w.send(potok_protocol::ApiKey::Metadata, 12, &req);
    let r: MetadataResponse = w.recv(potok_protocol::ApiKey::Metadata, 12)?;
    let t = r
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
        .ok_or("topic missing")?;
    let p = t
        .partitions
        .iter()
        .find(|p| p.partition_index == 0)
        .ok_or("partition 0 missing")?;
    Ok((p.leader_id, p.leader_epoch))
}

/// What a client bootstrapping at a deposed leader that restarts is told (found when the killed
/// node came back in a manual run of the clients above): the node replays a local metadata log
/// in which it still leads, and used to answer Metadata from that image for about a second,
/// sending producers and consumers to itself at the old epoch. Like Kafka's broker (which
/// enables request processing only after its initial metadata catch-up), a node now reads no
/// client request before it applied what the quorum had committed when it started
/// (`Quorum::caught_up`, a Raft ReadIndex).
#[test]
fn a_restarted_deposed_leader_never_names_itself_leader() {
    let mut c = cluster();
    let topic = "restart-stale";
    let old = create_rf3(&c, topic);
    let survivor = (1..=3).find(|n| *n != old).expect("a survivor");
    let (_, old_epoch) = wire_leader(&c.node(survivor).bootstrap(), topic).expect("metadata");
    c.kill9(old);
    let deadline = Instant::now() + TIMEOUT;
    let (new, new_epoch) = loop {
        let now = wire_leader(&c.node(survivor).bootstrap(), topic).expect("metadata");
        if now.0 >= 0 && now.0 != old {
            break now;
        }
        assert!(Instant::now() < deadline, "no new leader: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(new_epoch > old_epoch, "{old_epoch} -> {new_epoch}");
    c.restart(old);
    // From the moment the restarted node accepts connections, every answer it gives names the
    // new leader at the new epoch or a later leadership (preferred-leader rebalancing may give
    // the partition back to the restarted node, at a still higher epoch).
    let addr = c.node(old).bootstrap();
    let until = Instant::now() + Duration::from_secs(3);
    let mut answers = Vec::new();
    while Instant::now() < until {
        let (leader, epoch) = wire_leader(&addr, topic).expect("metadata from the restarted node");
        assert!(
            epoch > new_epoch || (epoch == new_epoch && leader == new),
            "the restarted node {old} named leader {leader} at epoch {epoch} (the new leader is {new} at epoch {new_epoch}) after {} answers",
            answers.len()
        );
        answers.push((leader, epoch));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!answers.is_empty());
}
