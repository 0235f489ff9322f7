//! Three real `potok` processes as one cluster (issue 17): the controller quorum across
//! processes, admin writes through the active controller, failover after SIGKILL, catch-up of a
//! restarted voter from the replicated log.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::wire::{describe_quorum_request, Client};
use potok_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use potok_protocol::messages::create_topics_request::CreatableTopic;
use potok_protocol::messages::delete_topics_request::DeleteTopicState;
use potok_protocol::messages::describe_configs_request::DescribeConfigsResource;
use potok_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use potok_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeConfigsResponse, DescribeQuorumResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, InitProducerIdRequest, InitProducerIdResponse,
    MetadataRequest, MetadataResponse,
};
use potok_protocol::{ApiKey, ErrorCode};

/// Kafka's defaults, which the cluster runs with.
const ELECTION_TIMEOUT_MS: u64 = 1000;
const FETCH_TIMEOUT_MS: u64 = 2000;
const TIMEOUT: Duration = Duration::from_secs(30);

fn client(addr: &str) -> Client {
    Client::connect(addr, Duration::from_secs(10))
}

fn metadata(addr: &str) -> MetadataResponse {
    let all = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    client(addr).call(ApiKey::Metadata, 12, &all)
}

/// The leader and epoch as `addr` answers DescribeQuorum, if it is the leader.
fn describe_quorum(addr: &str) -> Option<(i32, i32, DescribeQuorumResponse)> {
    let mut c = std::net::TcpStream::connect(addr)
        .ok()
        .map(|_| client(addr))?;
    let r: DescribeQuorumResponse = c.call(ApiKey::DescribeQuorum, 2, &describe_quorum_request());
    let p = &r.topics[0].partitions[0];
    (p.error_code == 0).then(|| (p.leader_id, p.leader_epoch, r.clone()))
}

/// Polls the running nodes until one answers DescribeQuorum as leader.
fn wait_leader(c: &Cluster, deadline: Instant) -> (i32, i32, DescribeQuorumResponse) {
    loop {
        for n in c.nodes.iter().filter(|n| n.is_running()) {
            if let Some(l) = describe_quorum(&n.bootstrap()) {
                return l;
            }
        }
        assert!(Instant::now() < deadline, "no quorum leader in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates `name` as a client bootstrapped at `addr` does: NOT_CONTROLLER sends it to the
/// controller that Metadata names.
fn create_topic(addr: &str, name: &str, partitions: i32, rf: i16) -> CreateTopicsResponse {
    let req = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let deadline = Instant::now() + TIMEOUT;
    let mut target = addr.to_string();
    loop {
        let r: CreateTopicsResponse = client(&target).call(ApiKey::CreateTopics, 7, &req);
        if r.topics[0].error_code != ErrorCode::NotController.code() {
            return r;
        }
        assert!(Instant::now() < deadline, "no controller took the creation");
        let m = metadata(addr);
        if let Some(b) = m.brokers.iter().find(|b| b.node_id == m.controller_id) {
            target = format!("{}:{}", b.host, b.port);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls Metadata at `addr` until `f` holds.
fn wait_metadata(
    addr: &str,
    what: &str,
    f: impl Fn(&MetadataResponse) -> bool,
) -> MetadataResponse {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let m = metadata(addr);
        if f(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: {what}; last Metadata: {m:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lists(m: &MetadataResponse, topic: &str, partitions: usize) -> bool {
    m.topics
        .iter()
        .any(|t| t.name.as_deref() == Some(topic) && t.partitions.len() == partitions)
}

#[test]
fn topics_replicate_to_every_node_and_survive_a_leader_kill() {
    let mut c = Cluster::start(3, &[]);
    let (leader, epoch, dq) = wait_leader(&c, Instant::now() + TIMEOUT);
    let voters = &dq.topics[0].partitions[0].current_voters;
    assert_eq!(voters.len(), 3, "{dq:?}");
    // Every node registers itself; Metadata anywhere lists all three and the controller.
    for n in &c.nodes {
        wait_metadata(&n.bootstrap(), "three brokers", |m| {
            m.brokers.len() == 3 && m.controller_id == leader
        });
    }
    // The leader reports the quorum: after the three registrations the high watermark has
    // moved and every voter has replicated up to it (log end offsets from the leader's view).
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (_, _, dq) = wait_leader(&c, deadline);
        let p = &dq.topics[0].partitions[0];
        let mut ids: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id).collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![1, 2, 3]);
        if p.high_watermark >= 3
            && p.current_voters
                .iter()
                .all(|v| v.log_end_offset >= p.high_watermark)
        {
            break;
        }
        assert!(Instant::now() < deadline, "quorum never caught up: {dq:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let follower = c.nodes.iter().find(|n| n.id != leader).unwrap().bootstrap();
    let r: DescribeQuorumResponse =
        client(&follower).call(ApiKey::DescribeQuorum, 2, &describe_quorum_request());
    // A follower forwards DescribeQuorum to the leader, as Kafka's brokers forward it to the
    // active controller (kafka-metadata-quorum may bootstrap at any broker).
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{r:?}");
    assert_eq!(p.leader_id, leader);
    assert_eq!(p.current_voters.len(), 3, "{r:?}");
    assert_eq!(r.nodes.len(), 3, "v2 lists the voters' endpoints: {r:?}");
    // ApiVersions advertises DescribeQuorum on a voter.
    let av: ApiVersionsResponse = client(&c.node(1).bootstrap()).call(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest {
            client_software_name: "t".into(),
            client_software_version: "1".into(),
            ..Default::default()
        },
    );
    assert!(av
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::DescribeQuorum as i16));

    // A topic created by a client bootstrapped at node 2, with 3 replicas per partition.
    let r = create_topic(&c.node(2).bootstrap(), "orders", 3, 3);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    for n in &c.nodes {
        let m = wait_metadata(&n.bootstrap(), "orders listed", |m| lists(m, "orders", 3));
        let t = m
            .topics
            .iter()
            .find(|t| t.name.as_deref() == Some("orders"))
            .unwrap();
        for p in &t.partitions {
            let mut r = p.replica_nodes.clone();
            r.sort_unstable();
            assert_eq!(r, vec![1, 2, 3], "distinct replicas: {p:?}");
            assert_eq!(p.leader_id, p.replica_nodes[0]);
        }
        // Leaders are spread over the brokers.
        let mut leaders: Vec<i32> = t.partitions.iter().map(|p| p.leader_id).collect();
        leaders.sort_unstable();
        assert_eq!(leaders, vec![1, 2, 3]);
    }
    // A partition's data lives on its leader only: another broker answers
    // NOT_LEADER_OR_FOLLOWER (before looking at the bytes), so clients re-route.
    let m = metadata(&c.node(1).bootstrap());
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some("orders"))
        .unwrap();
    let p = &t.partitions[0];
    let elsewhere = c.nodes.iter().find(|n| n.id != p.leader_id).unwrap();
    let r = client(&elsewhere.bootstrap()).produce(
        "orders",
        p.partition_index,
        bytes::Bytes::from_static(b"not even a batch"),
    );
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ErrorCode::NotLeaderOrFollower.code()
    );
    // More replicas than brokers is Kafka's INVALID_REPLICATION_FACTOR.
    let r = create_topic(&c.node(2).bootstrap(), "too-many", 1, 4);
    assert_eq!(
        r.topics[0].error_code,
        ErrorCode::InvalidReplicationFactor.code()
    );

    // SIGKILL the active controller: a survivor leads within the bound of issue 17.
    c.kill9(leader);
    let killed = Instant::now();
    let bound = Duration::from_millis(FETCH_TIMEOUT_MS + 2 * ELECTION_TIMEOUT_MS);
    let (new_leader, new_epoch, _) = wait_leader(&c, killed + TIMEOUT);
    let took = killed.elapsed();
    assert_ne!(new_leader, leader);
    assert!(new_epoch > epoch, "epoch {new_epoch} after {epoch}");
    eprintln!("failover: a new leader answered DescribeQuorum {took:?} after SIGKILL");
    assert!(took <= bound, "failover took {took:?}, more than {bound:?}");

    // A topic created afterwards is visible on both survivors...
    let survivor = c.nodes.iter().find(|n| n.is_running()).unwrap().bootstrap();
    let r = create_topic(&survivor, "after-failover", 2, 1);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    for n in c.nodes.iter().filter(|n| n.is_running()) {
        wait_metadata(&n.bootstrap(), "after-failover listed", |m| {
            lists(m, "after-failover", 2) && lists(m, "orders", 3)
        });
    }
    // ...and on the killed node once it restarted and caught up from the log.
    c.restart(leader);
    let m = wait_metadata(&c.node(leader).bootstrap(), "caught up", |m| {
        lists(m, "after-failover", 2) && lists(m, "orders", 3) && m.brokers.len() == 3
    });
    assert_eq!(m.controller_id, new_leader);
}

#[test]
fn a_voter_refuses_a_data_directory_of_another_cluster() {
    // A one-voter quorum is enough: the cluster id check is the node's own.
    let mut c = Cluster::start(1, &[]);
    wait_leader(&c, Instant::now() + TIMEOUT);
    c.kill9(1);
    c.cluster_id = "another-cluster".into();
    let node = &c.nodes[0];
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_potok"))
        .args(["serve", "--set", "node.id=1", "--set"])
        .arg(format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            node.port, node.controller_port
        ))
        .arg("--set")
        .arg(format!(
            "controller.quorum.voters=1@127.0.0.1:{}",
            node.controller_port
        ))
        .arg("--set")
        .arg("potok.cluster.id=another-cluster")
        .arg("--set")
        .arg(format!("log.dirs={}", node.data_dir().display()))
        .output()
        .expect("run potok");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("belongs to cluster potok-test-cluster"),
        "{err}"
    );
}

fn retention_ms(addr: &str, topic: &str) -> Option<String> {
    let r: DescribeConfigsResponse = client(addr).call(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: 2,
                resource_name: topic.into(),
                configuration_keys: Some(vec!["retention.ms".into()]),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.results.first()?.configs.first()?.value.clone()
}

/// Every admin write sent to a node that is not the active controller is forwarded to it
/// (KIP-590) and answered as the controller answers: no NOT_CONTROLLER reaches the client,
/// and the change reaches every node. Without forwarding each of these calls fails.
#[test]
fn admin_writes_go_through_the_active_controller() {
    let c = Cluster::start(3, &[]);
    let (leader, _, _) = wait_leader(&c, Instant::now() + TIMEOUT);
    let others: Vec<String> = c
        .nodes
        .iter()
        .filter(|n| n.id != leader)
        .map(|n| n.bootstrap())
        .collect();
    let (other, third) = (&others[0], &others[1]);
    for n in &c.nodes {
        wait_metadata(&n.bootstrap(), "three brokers", |m| m.brokers.len() == 3);
    }
    // DescribeCluster lists every registered broker and the active controller.
    let dc: DescribeClusterResponse = client(other).call(
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest {
            endpoint_type: 1,
            ..Default::default()
        },
    );
    assert_eq!(dc.brokers.len(), 3, "{dc:?}");
    assert_eq!(dc.controller_id, leader);
    // CreateTopics, once, at a node that does not lead: no retry at the controller.
    let create = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: "grow".into(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let r: CreateTopicsResponse = client(other).call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    // The controller's own answers are relayed, errors included.
    let r: CreateTopicsResponse = client(third).call(ApiKey::CreateTopics, 7, &create);
    assert_eq!(
        r.topics[0].error_code,
        ErrorCode::TopicAlreadyExists.code(),
        "{:?}",
        r.topics[0].error_message
    );
    // The creation is answered once the controller applied it; the others follow shortly.
    for n in &c.nodes {
        wait_metadata(&n.bootstrap(), "grow listed", |m| lists(m, "grow", 1));
    }

    // CreatePartitions at the other node.
    let grow = CreatePartitionsRequest {
        topics: vec![CreatePartitionsTopic {
            name: "grow".into(),
            count: 3,
            assignments: None,
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let r: CreatePartitionsResponse = client(third).call(ApiKey::CreatePartitions, 3, &grow);
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );

    // A topic config change at a node that does not lead.
    let alter = IncrementalAlterConfigsRequest {
        resources: vec![AlterConfigsResource {
            resource_type: 2,
            resource_name: "grow".into(),
            configs: vec![AlterableConfig {
                name: "retention.ms".into(),
                config_operation: 0,
                value: Some("1234567".into()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let r: IncrementalAlterConfigsResponse =
        client(other).call(ApiKey::IncrementalAlterConfigs, 1, &alter);
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    for n in &c.nodes {
        wait_metadata(&n.bootstrap(), "grow has 3 partitions", |m| {
            lists(m, "grow", 3)
        });
        let deadline = Instant::now() + TIMEOUT;
        while retention_ms(&n.bootstrap(), "grow").as_deref() != Some("1234567") {
            assert!(
                Instant::now() < deadline,
                "node {}: config not applied",
                n.id
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // DeleteTopics at a node that does not lead.
    let delete = DeleteTopicsRequest {
        topics: vec![DeleteTopicState {
            name: Some("grow".into()),
            ..Default::default()
        }],
        timeout_ms: 10_000,
        ..Default::default()
    };
    let r: DeleteTopicsResponse = client(third).call(ApiKey::DeleteTopics, 6, &delete);
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    for n in &c.nodes {
        wait_metadata(&n.bootstrap(), "grow deleted", |m| {
            !m.topics.iter().any(|t| t.name.as_deref() == Some("grow"))
        });
    }
}

/// Kafka's own `kafka-configs` (ConfigCommand, Kafka 4.4 from `./scripts/install-java-deps`)
/// altering a topic's config with `--bootstrap-server` naming every node: the Java admin client
/// sends IncrementalAlterConfigs to its least-loaded node, which is most often not the active
/// controller; that node forwards it. Three runs, so that a run reaching a non-controller is
/// all but certain (without forwarding such a run times out "waiting for a node assignment").
#[test]
fn kafka_configs_tool_alters_a_topic_through_any_node() {
    let c = Cluster::start(3, &[]);
    for n in &c.nodes {
        wait_metadata(&n.bootstrap(), "three brokers", |m| m.brokers.len() == 3);
    }
    let r = create_topic(&c.nodes[0].bootstrap(), "configured", 1, 3);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    for n in &c.nodes {
        wait_metadata(&n.bootstrap(), "configured listed", |m| {
            lists(m, "configured", 1)
        });
    }
    let all = c
        .nodes
        .iter()
        .map(|n| n.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let cp = common::java::kafka_classpath();
    let root = common::java::repo_root();
    for value in ["1111111", "2222222", "3333333"] {
        let config = format!("retention.ms={value}");
        let args = [
            "-cp",
            &cp,
            "org.apache.kafka.tools.ConfigCommand",
            "--bootstrap-server",
            &all,
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            "configured",
            "--add-config",
            &config,
        ];
        let out = common::run_program("java", &args, &root, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("kafka-configs --add-config {config}: {e}"));
        println!("{out}");
        assert!(
            out.contains("Completed updating config for topic configured."),
            "{out}"
        );
        for n in &c.nodes {
            let deadline = Instant::now() + TIMEOUT;
            while retention_ms(&n.bootstrap(), "configured").as_deref() != Some(value) {
                assert!(
                    Instant::now() < deadline,
                    "node {}: retention.ms={value} not applied",
                    n.id
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// A short broker session, so that fencing is observable in seconds; heartbeats at a tenth of
/// it (Kafka's defaults are 9,000 and 2,000 ms).
const SESSION_TIMEOUT_MS: u64 = 2000;
const HEARTBEAT_INTERVAL_MS: u64 = 200;

fn partitions_of(m: &MetadataResponse, topic: &str) -> Vec<(i32, i32, i32, Vec<i32>)> {
    m.topics
        .iter()
        .find(|t| t.name.as_deref() == Some(topic))
        .map(|t| {
            t.partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.leader_id,
                        p.leader_epoch,
                        p.isr_nodes.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn broker_ids(m: &MetadataResponse) -> Vec<i32> {
    let mut ids: Vec<i32> = m.brokers.iter().map(|b| b.node_id).collect();
    ids.sort_unstable();
    ids
}

#[test]
fn a_killed_broker_is_fenced_and_a_restarted_one_registers_again() {
    let session = SESSION_TIMEOUT_MS.to_string();
    let heartbeat = HEARTBEAT_INTERVAL_MS.to_string();
    let mut c = Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", &session),
            ("broker.heartbeat.interval.ms", &heartbeat),
        ],
    );
    let (controller, _, _) = wait_leader(&c, Instant::now() + TIMEOUT);
    // Every broker registers through the active controller and is unfenced once its heartbeat
    // reports the metadata offset of its registration: Metadata lists only unfenced brokers.
    for n in &c.nodes {
        wait_metadata(&n.bootstrap(), "three unfenced brokers", |m| {
            broker_ids(m) == vec![1, 2, 3]
        });
    }
    // One replica per partition: the fenced broker stays its partitions' last ISR member
    // (replicated partitions' failover is tests/replication.rs's).
    let r = create_topic(&c.node(1).bootstrap(), "fenced", 3, 1);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    let at = c.node(controller).bootstrap();
    let before = partitions_of(
        &wait_metadata(&at, "fenced listed", |m| lists(m, "fenced", 3)),
        "fenced",
    );
    // A broker that is not the active controller (that failover is the other test's).
    let victim = c
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|&i| i != controller)
        .unwrap();
    let led: Vec<_> = before.iter().filter(|p| p.1 == victim).cloned().collect();
    assert!(!led.is_empty(), "leaders are balanced: {before:?}");

    c.kill9(victim);
    let killed = Instant::now();
    // The ISR of a partition is its only replica, so no other broker may take over: the
    // controller elects from the ISR only (unclean.leader.election.enable
    // is false) and, as KIP-841 has it, keeps the fenced broker as the ISR's last member with
    // no leader (-1) rather than an empty ISR; the leader epoch is bumped all the same. The
    // other partitions keep their leaders and epochs.
    let m = wait_metadata(&at, "the killed broker fenced", |m| {
        let now = partitions_of(m, "fenced");
        !broker_ids(m).contains(&victim)
            && led.iter().all(|(p, _, epoch, _)| {
                now.iter().any(|(q, leader, e, isr)| {
                    q == p && *leader == -1 && e > epoch && *isr == vec![victim]
                })
            })
    });
    let took = killed.elapsed();
    let bound = Duration::from_millis(SESSION_TIMEOUT_MS + 2000);
    eprintln!("fencing: the killed broker's partitions lost their leader {took:?} after SIGKILL");
    assert!(took <= bound, "fencing took {took:?}, more than {bound:?}");
    assert_eq!(broker_ids(&m), {
        let mut v: Vec<i32> = vec![1, 2, 3];
        v.retain(|&i| i != victim);
        v
    });
    // Every partition lists the fenced broker's replica offline (Kafka's
    // KRaftMetadataCache: unregistered or fenced brokers' replicas are offline).
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some("fenced"))
        .unwrap();
    for p in &t.partitions {
        let expected = if p.replica_nodes.contains(&victim) {
            vec![victim]
        } else {
            vec![]
        };
        assert_eq!(p.offline_replicas, expected, "{p:?}");
    }
    let after = partitions_of(&m, "fenced");
    for p in before.iter().filter(|p| p.1 != victim) {
        assert!(after.contains(p), "{p:?} changed: {after:?}");
    }
    // Every survivor applies the same records.
    for n in c.nodes.iter().filter(|n| n.is_running()) {
        wait_metadata(&n.bootstrap(), "the survivors agree", |x| {
            partitions_of(x, "fenced") == after && broker_ids(x) == broker_ids(&m)
        });
    }

    // The restarted process registers again (a new broker epoch), catches up, is unfenced,
    // and, being its partitions' only ISR member, leads them again at a higher epoch.
    c.restart(victim);
    let m = wait_metadata(&at, "the restarted broker unfenced and leading", |m| {
        let now = partitions_of(m, "fenced");
        broker_ids(m) == vec![1, 2, 3]
            && led.iter().all(|(p, _, _, _)| {
                let fenced_epoch = after.iter().find(|x| x.0 == *p).unwrap().2;
                now.iter()
                    .any(|(q, leader, e, _)| q == p && *leader == victim && *e > fenced_epoch)
            })
    });
    wait_metadata(
        &c.node(victim).bootstrap(),
        "the restarted broker caught up",
        |x| {
            partitions_of(x, "fenced") == partitions_of(&m, "fenced")
                && broker_ids(x) == vec![1, 2, 3]
        },
    );

    // SIGTERM: controlled shutdown. The broker asks want_shut_down, the controller moves its
    // leaderships away (here, with the ISR its leader alone, to no leader, KIP-841) and fences
    // it, and answers should_shut_down; the process exits once it has that answer.
    let stopped = c
        .terminate(victim, Duration::from_secs(20))
        .expect("the broker exits after SIGTERM");
    let log = c.node(victim).log();
    assert!(
        log.contains("controlled shutdown: the controller let this broker go"),
        "exited after {stopped:?} without the controller's permission:\n{log}"
    );
    let m = metadata(&at);
    assert!(!broker_ids(&m).contains(&victim), "{m:?}");
    for (p, leader, _, isr) in partitions_of(&m, "fenced") {
        if led.iter().any(|x| x.0 == p) {
            assert_eq!((leader, isr), (-1, vec![victim]), "partition {p}");
        }
    }
}

/// InitProducerId at `addr` for a new idempotent producer (or, with `current`, a bump of its
/// epoch, KIP-360), retried while the broker has no producer-id block yet.
fn init_producer_id(addr: &str, current: Option<(i64, i16)>) -> (i64, i16) {
    let (producer_id, producer_epoch) = current.unwrap_or((-1, -1));
    let req = InitProducerIdRequest {
        transactional_id: None,
        transaction_timeout_ms: -1,
        producer_id,
        producer_epoch,
        ..Default::default()
    };
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r: InitProducerIdResponse = client(addr).call(ApiKey::InitProducerId, 4, &req);
        if r.error_code == 0 {
            return (r.producer_id, r.producer_epoch);
        }
        assert_eq!(
            r.error_code,
            ErrorCode::CoordinatorLoadInProgress.code(),
            "{addr}: {r:?}"
        );
        assert!(Instant::now() < deadline, "{addr}: no producer id in time");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue 17: producer ids come in blocks from the active controller (AllocateProducerIds,
/// KIP-730), so producers bootstrapped at different nodes never share an id, also after the
/// active controller is killed and a node restarts.
#[test]
fn producer_ids_are_unique_across_the_cluster() {
    let mut c = Cluster::start(3, &[]);
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.bootstrap()).collect();
    let mut ids = std::collections::BTreeSet::new();
    let mut blocks = std::collections::BTreeSet::new();
    for a in &addrs {
        let (first, epoch) = init_producer_id(a, None);
        let (second, _) = init_producer_id(a, None);
        assert_eq!(epoch, 0);
        assert_eq!(second, first + 1, "{a}: ids of one block are consecutive");
        assert!(ids.insert(first) && ids.insert(second), "{a}: {ids:?}");
        // Each broker holds a block of its own (Kafka's block size, 1000).
        assert!(
            blocks.insert(first / 1000),
            "{a}: {first} in a block of another node"
        );
    }
    // An id issued by node 1 keeps its id with a bumped epoch at node 3 (KIP-360).
    let (id1, _) = init_producer_id(&addrs[0], None);
    assert_eq!(init_producer_id(&addrs[2], Some((id1, 0))), (id1, 1));
    // The active controller dies; the others still get new ids (blocks from the new one) and
    // a restarted node continues in a block no one had.
    let (leader, _, _) = wait_leader(&c, Instant::now() + TIMEOUT);
    c.kill9(leader);
    for (i, a) in addrs.iter().enumerate() {
        if i as i32 + 1 != leader {
            let (id, _) = init_producer_id(a, None);
            assert!(ids.insert(id), "{a}: {id} issued twice");
        }
    }
    c.restart(leader);
    let (id, _) = init_producer_id(&addrs[(leader - 1) as usize], None);
    assert!(ids.insert(id), "restarted node {leader}: {id} issued twice");
    assert!(
        blocks.insert(id / 1000),
        "restarted node {leader} reuses a block: {id}"
    );
}
