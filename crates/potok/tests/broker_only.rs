//! Broker-only nodes (`process.roles=broker`, KIP-631's broker role; KIP-595's observers) on
//! real `potok` processes: a fourth node that is not in `controller.quorum.voters` joins a
//! running three-voter cluster, fetches the metadata log, registers and is unfenced, hosts
//! replicas and serves clients; the leader's DescribeQuorum lists it as an observer, never as a
//! voter; killing it leaves the quorum's leader and epoch alone and metadata still commits;
//! restarted, it catches up with what was committed while it was down. The reassignment onto
//! such a node under `acks=all` producers is `tests/reassign.rs`.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::kafka::{cluster_client, consume, create_topic_retrying, runtime};
use common::wait_for;
use common::wire::{describe_quorum_request, metadata, Client};
use potok_protocol::messages::create_topics_request::CreatableTopic;
use potok_protocol::messages::delete_topics_request::DeleteTopicState;
use potok_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeQuorumResponse,
};
use potok_protocol::ApiKey;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Offset;

const TIMEOUT: Duration = Duration::from_secs(60);

fn brokers(addr: &str) -> Option<Vec<i32>> {
    let mut b: Vec<i32> = metadata(addr)?.brokers.iter().map(|b| b.node_id).collect();
    b.sort_unstable();
    Some(b)
}

/// `addr`'s DescribeQuorum answer (forwarded to the leader when `addr` does not lead), if it
/// names a leader: (leader, epoch, voters, observers).
fn quorum(addr: &str) -> Option<(i32, i32, Vec<i32>, Vec<i32>)> {
    std::net::TcpStream::connect(addr).ok()?;
    let r: DescribeQuorumResponse = Client::connect(addr, Duration::from_secs(10)).call(
        ApiKey::DescribeQuorum,
        2,
        &describe_quorum_request(),
    );
    let p = r.topics.first()?.partitions.first()?;
    if p.error_code != 0 || p.leader_id < 0 {
        return None;
    }
    let ids = |v: &[potok_protocol::messages::describe_quorum_response::ReplicaState]| {
        let mut ids: Vec<i32> = v.iter().map(|r| r.replica_id).collect();
        ids.sort_unstable();
        ids
    };
    Some((
        p.leader_id,
        p.leader_epoch,
        ids(&p.current_voters),
        ids(&p.observers),
    ))
}

/// `topic`'s partitions as `addr` reports them: (leader, replicas).
fn partitions(addr: &str, topic: &str) -> Option<Vec<(i32, Vec<i32>)>> {
    let m = metadata(addr)?;
    let t = m.topics.iter().find(|t| t.name.as_deref() == Some(topic))?;
    let mut p: Vec<_> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id, p.replica_nodes.clone()))
        .collect();
    p.sort_unstable();
    Some(p.into_iter().map(|(_, l, r)| (l, r)).collect())
}

#[test]
fn a_broker_only_node_joins_as_an_observer_and_its_loss_leaves_the_quorum_alone() {
    let mut c = Cluster::start_with_brokers(
        3,
        1,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "300"),
            ("replica.lag.time.max.ms", "2000"),
        ],
    );
    let voters = format!(
        "{},{},{}",
        c.node(1).bootstrap(),
        c.node(2).bootstrap(),
        c.node(3).bootstrap()
    );
    create_topic_retrying(
        &voters,
        &NewTopic::new("before", 3, TopicReplication::Fixed(3)),
        TIMEOUT,
    );

    // The broker-only node starts: it has no controller listener and is no voter.
    c.start_node(4);
    assert!(c.node(4).broker_only);
    // It registers and is unfenced: every voter and itself list four brokers, and it has
    // applied the topic created before it existed.
    for id in 1..=4 {
        let addr = c.node(id).bootstrap();
        wait_for(TIMEOUT, &format!("node {id} lists broker 4"), || {
            (brokers(&addr)? == vec![1, 2, 3, 4]).then_some(())
        });
    }
    wait_for(
        TIMEOUT,
        "the broker-only node knows the earlier topic",
        || (partitions(&c.node(4).bootstrap(), "before")?.len() == 3).then_some(()),
    );
    // The leader counts three voters and lists node 4 as an observer; asked at node 4, the
    // request is forwarded to the leader and answers the same.
    let (leader, epoch, v, o) = wait_for(TIMEOUT, "DescribeQuorum lists the observer", || {
        let q = quorum(&c.node(4).bootstrap())?;
        (q.3 == vec![4]).then_some(q)
    });
    assert_eq!(v, vec![1, 2, 3]);
    assert_eq!(o, vec![4]);
    assert!((1..=3).contains(&leader), "leader {leader}");
    eprintln!("quorum leader {leader}, epoch {epoch}, observers {o:?}");
    assert!(c.node(4).log().contains("observer (process.roles=broker)"));

    // It hosts replicas: an RF=4 topic has one on every broker, and clients bootstrapped at
    // the broker-only node alone produce (acks=all) and read back.
    let only4 = c.node(4).bootstrap();
    create_topic_retrying(
        &voters,
        &NewTopic::new("everywhere", 2, TopicReplication::Fixed(4)),
        TIMEOUT,
    );
    wait_for(TIMEOUT, "the RF=4 topic on every broker", || {
        let p = partitions(&only4, "everywhere")?;
        (p.len() == 2 && p.iter().all(|(l, r)| *l >= 0 && r.len() == 4)).then_some(())
    });
    let rt = runtime();
    let producer: FutureProducer = cluster_client(&only4)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    for i in 0..100 {
        let v = format!("r-{i}");
        rt.block_on(
            producer.send(
                FutureRecord::<(), str>::to("everywhere")
                    .partition(i % 2)
                    .payload(&v),
                Duration::from_secs(30),
            ),
        )
        .unwrap_or_else(|e| panic!("record {i} not acknowledged: {e:?}"));
    }
    let got = consume(&only4, "everywhere", &[0, 1], Offset::Beginning, 100);
    assert_eq!(got.len(), 100);
    // Its replica of each partition holds the records (it is in the ISR, so acks=all waited
    // for it, or it caught up since).
    for p in 0..2 {
        let dir = c.node(4).data_dir().join(format!("everywhere-{p}"));
        wait_for(
            TIMEOUT,
            "the broker-only node's replica has the records",
            || {
                let size: u64 = std::fs::read_dir(&dir)
                    .ok()?
                    .flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                    .sum();
                (size > 0).then_some(())
            },
        );
    }

    // SIGKILL of the broker-only node: the quorum's leader and epoch do not change (it was
    // never counted), metadata still commits, and it is fenced out of Metadata.
    c.kill9(4);
    let created = Instant::now();
    create_topic_retrying(
        &voters,
        &NewTopic::new("while-four-is-down", 1, TopicReplication::Fixed(3)),
        TIMEOUT,
    );
    eprintln!(
        "topic created {} ms after the broker-only node was killed",
        created.elapsed().as_millis()
    );
    let after = quorum(&c.node(1).bootstrap()).expect("a leader");
    assert_eq!((after.0, after.1), (leader, epoch), "the quorum changed");
    assert_eq!(after.2, vec![1, 2, 3]);
    wait_for(TIMEOUT, "broker 4 fenced out of Metadata", || {
        (brokers(&c.node(1).bootstrap())? == vec![1, 2, 3]).then_some(())
    });
    let after = quorum(&c.node(1).bootstrap()).expect("a leader");
    assert_eq!((after.0, after.1), (leader, epoch), "the quorum changed");

    // Restarted, it catches up from its stored log with what committed while it was down,
    // and registers again.
    c.restart(4);
    wait_for(
        TIMEOUT,
        "the restarted broker-only node knows the new topic",
        || partitions(&c.node(4).bootstrap(), "while-four-is-down").map(|_| ()),
    );
    wait_for(TIMEOUT, "broker 4 registered again", || {
        (brokers(&c.node(1).bootstrap())? == vec![1, 2, 3, 4]).then_some(())
    });
    let got = consume(&only4, "everywhere", &[0, 1], Offset::Beginning, 100);
    assert_eq!(got.len(), 100);
}

/// `potok dev-cluster --nodes 3 --brokers 1`: three voters and a broker-only node; the fourth
/// is registered and listed as the quorum's observer, and SIGTERM stops them all.
#[test]
fn dev_cluster_starts_broker_only_nodes() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    // Seven consecutive ports (three voters' pairs and one broker port), all free now.
    let base = (0..50)
        .map(|_| common::free_port())
        .find(|&p| {
            p < 32_000 && (p..p + 7).all(|q| std::net::TcpListener::bind(("127.0.0.1", q)).is_ok())
        })
        .expect("seven free consecutive ports");
    let dir = tempfile::tempdir().expect("dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_potok"))
        .args([
            "dev-cluster",
            "--nodes",
            "3",
            "--brokers",
            "1",
            "--base-port",
        ])
        .arg(base.to_string())
        .arg("--dir")
        .arg(dir.path())
        .args([
            "--set",
            "broker.session.timeout.ms=3000",
            "--set",
            "broker.heartbeat.interval.ms=300",
        ])
        .env("POTOK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn potok dev-cluster");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("bootstrap line");
    let broker_only = format!("127.0.0.1:{}", base + 6);
    assert_eq!(line.trim().split(',').count(), 4, "{line}");
    assert!(line.trim().ends_with(&broker_only), "{line}");
    let listed = std::panic::catch_unwind(|| {
        wait_for(TIMEOUT, "the dev cluster lists four brokers", || {
            (brokers(&broker_only)? == vec![1, 2, 3, 4]).then_some(())
        });
        wait_for(
            TIMEOUT,
            "the broker-only node is the quorum's observer",
            || {
                let q = quorum(&broker_only)?;
                (q.2 == vec![1, 2, 3] && q.3 == vec![4]).then_some(())
            },
        );
    });
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break true;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if let Err(e) = listed {
        std::panic::resume_unwind(e);
    }
    assert!(exited, "dev-cluster did not stop within 30 s of SIGTERM");
}

/// Kafka 4.4's `kafka-metadata-quorum describe --replication` (MetadataQuorumCommand), asked
/// at the broker-only node (DescribeQuorum forwarded to the leader), shows one Leader row, two
/// Followers and the broker-only node as an Observer.
#[test]
fn kafka_metadata_quorum_tool_shows_the_broker_only_node_as_an_observer() {
    let mut c = Cluster::start_with_brokers(3, 1, &[]);
    c.start_node(4);
    let only4 = c.node(4).bootstrap();
    wait_for(TIMEOUT, "node 4 fetches as an observer", || {
        (quorum(&only4)?.3 == vec![4]).then_some(())
    });
    let cp = common::java::kafka_classpath();
    let root = common::java::repo_root();
    let out = common::run_program(
        "java",
        &[
            "-cp",
            &cp,
            "org.apache.kafka.tools.MetadataQuorumCommand",
            "--bootstrap-server",
            &only4,
            "describe",
            "--replication",
        ],
        &root,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("kafka-metadata-quorum: {e}"));
    println!("{out}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    let status = |s: &str| rows.iter().filter(|r| r.contains(&s)).count();
    assert_eq!(
        (status("Leader"), status("Follower"), status("Observer")),
        (1, 2, 1),
        "{out}"
    );
    let observer = rows.iter().find(|r| r.contains(&"Observer")).unwrap();
    assert_eq!(observer.first(), Some(&"4"), "{out}");
}

/// A broker-only node is never the active controller, so every admin write it receives is
/// forwarded (KIP-590): CreateTopics and DeleteTopics sent once to it succeed and reach every
/// node. Without forwarding both are answered NOT_CONTROLLER.
#[test]
fn a_broker_only_node_forwards_admin_writes_to_the_active_controller() {
    let mut c = Cluster::start_with_brokers(3, 1, &[]);
    c.start_node(4);
    assert!(c.node(4).broker_only);
    let b = c.node(4).bootstrap();
    for id in 1..=4 {
        let addr = c.node(id).bootstrap();
        wait_for(TIMEOUT, "every node lists four brokers", || {
            (brokers(&addr)? == vec![1, 2, 3, 4]).then_some(())
        });
    }
    let create = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: "forwarded".into(),
            num_partitions: 2,
            replication_factor: 3,
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let r: CreateTopicsResponse =
        Client::connect(&b, Duration::from_secs(10)).call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    assert_eq!(r.topics[0].num_partitions, 2, "{r:?}");
    for id in 1..=4 {
        let addr = c.node(id).bootstrap();
        wait_for(TIMEOUT, "the forwarded creation on every node", || {
            let p = partitions(&addr, "forwarded")?;
            (p.len() == 2 && p.iter().all(|(_, r)| r.len() == 3)).then_some(())
        });
    }
    let delete = DeleteTopicsRequest {
        topics: vec![DeleteTopicState {
            name: Some("forwarded".into()),
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let r: DeleteTopicsResponse =
        Client::connect(&b, Duration::from_secs(10)).call(ApiKey::DeleteTopics, 6, &delete);
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    for id in 1..=4 {
        let addr = c.node(id).bootstrap();
        wait_for(TIMEOUT, "the forwarded deletion on every node", || {
            let m = metadata(&addr)?;
            (!m.topics
                .iter()
                .any(|t| t.name.as_deref() == Some("forwarded")))
            .then_some(())
        });
    }
}
