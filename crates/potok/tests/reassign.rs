//! Partition reassignment on real `potok` processes (issue 19, acceptance 1's core): a fourth
//! broker joins a running three-broker cluster and partitions are moved onto it with
//! AlterPartitionReassignments (API 45, raw protocol: librdkafka's admin client has no call
//! for it) while `acks=all` producers keep writing; then no acknowledged record is lost, the
//! moved replicas are byte-identical, the removed replicas deleted their logs, and
//! ListPartitionReassignments (API 46) is empty. Request validation is checked on the wire
//! first.
//!
//! The fourth broker is a broker-only node (`process.roles=broker`, an observer of the
//! controller quorum, not in `controller.quorum.voters`), started only once the three voters
//! carry data (`Cluster::start_with_brokers`).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::wait_for;
use common::wire::{metadata, Client};
use potok_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use potok_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiVersionsRequest,
    ApiVersionsResponse, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use potok_protocol::{ApiKey, ErrorCode};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(90);
const TOPIC: &str = "moving";
const PARTITIONS: i32 = 2;

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "500");
    c
}

/// `partition -> (leader, replicas, isr)` of the topic.
type Parts = BTreeMap<i32, (i32, Vec<i32>, Vec<i32>)>;

/// The topic's partitions as `addr` reports them.
fn partitions(addr: &str) -> Option<Parts> {
    let m = metadata(addr)?;
    let t = m.topics.iter().find(|t| t.name.as_deref() == Some(TOPIC))?;
    Some(
        t.partitions
            .iter()
            .map(|p| {
                let mut isr = p.isr_nodes.clone();
                isr.sort_unstable();
                (
                    p.partition_index,
                    (p.leader_id, p.replica_nodes.clone(), isr),
                )
            })
            .collect(),
    )
}

/// The active controller's client address, as Metadata names it.
fn controller(c: &Cluster) -> String {
    wait_for(TIMEOUT, "an active controller", || {
        let m = metadata(&c.node(1).bootstrap())?;
        let b = m.brokers.iter().find(|b| b.node_id == m.controller_id)?;
        Some(format!("{}:{}", b.host, b.port))
    })
}

fn alter(
    addr: &str,
    moves: &[(&str, i32, Option<Vec<i32>>)],
) -> AlterPartitionReassignmentsResponse {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for (topic, p, replicas) in moves {
        let part = ReassignablePartition {
            partition_index: *p,
            replicas: replicas.clone(),
            ..Default::default()
        };
        match topics.iter_mut().find(|t| t.name == *topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(ReassignableTopic {
                name: topic.to_string(),
                partitions: vec![part],
                ..Default::default()
            }),
        }
    }
    let req = AlterPartitionReassignmentsRequest {
        timeout_ms: 30_000,
        topics,
        ..Default::default()
    };
    Client::connect(addr, Duration::from_secs(40)).call(
        ApiKey::AlterPartitionReassignments,
        0,
        &req,
    )
}

fn list(addr: &str) -> ListPartitionReassignmentsResponse {
    let req = ListPartitionReassignmentsRequest {
        timeout_ms: 10_000,
        topics: None,
        ..Default::default()
    };
    Client::connect(addr, Duration::from_secs(20)).call(ApiKey::ListPartitionReassignments, 0, &req)
}

/// Every partition's error code in `r`, topic by topic.
fn codes(r: &AlterPartitionReassignmentsResponse) -> Vec<ErrorCode> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| ErrorCode::from_code(p.error_code).unwrap_or(ErrorCode::UnknownServerError))
        .collect()
}

/// The bytes of every segment of partition `p` in node `id`'s data directory, in order
/// (`None` when the node has no directory for it).
fn log_bytes(c: &Cluster, id: i32, p: i32) -> Option<Vec<u8>> {
    let dir: PathBuf = c.node(id).data_dir().join(format!("{TOPIC}-{p}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    Some(
        files
            .iter()
            .flat_map(|f| std::fs::read(f).unwrap_or_default())
            .collect(),
    )
}

/// Every `(offset, value)` of partition `p` up to its high watermark.
fn read_partition(bootstrap: &str, p: i32) -> BTreeMap<i64, String> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "reassign-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut out = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut next = 0;
    while next < high {
        assert!(Instant::now() < deadline, "read {next} of {high}");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            next = m.offset() + 1;
            out.insert(
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            );
        }
    }
    out
}

/// `acks=all` producers on every partition until `stop`, recording what was acknowledged:
/// `(partition, offset, value)`.
fn spawn_producers(
    bootstrap: String,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(i32, i64, String)>>>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let producer: FutureProducer = config(&bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "60000")
            .set("request.timeout.ms", "10000")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let mut failed = 0;
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // A few records in flight per round, on both partitions.
            let values: Vec<(i32, String)> = (0..8)
                .map(|k| {
                    i += 1;
                    ((k % PARTITIONS), format!("v-{i}"))
                })
                .collect();
            // Enqueued together, so several are in flight at once; awaited in order.
            let results: Vec<Result<(i32, i64), ()>> = values
                .iter()
                .map(|(p, v)| {
                    producer
                        .send_result(FutureRecord::<(), str>::to(TOPIC).partition(*p).payload(v))
                        .map_err(|_| ())
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|f| match f {
                    Ok(f) => match rt.block_on(f) {
                        Ok(Ok(d)) => Ok((d.partition, d.offset)),
                        _ => Err(()),
                    },
                    Err(()) => Err(()),
                })
                .collect();
            for ((_, v), r) in values.into_iter().zip(results) {
                match r {
                    Ok((p, o)) => acked.lock().unwrap().push((p, o, v)),
                    Err(_) => failed += 1,
                }
            }
        }
        failed
    })
}

#[test]
fn partitions_move_onto_a_fourth_broker_while_acks_all_producers_run() {
    let mut c = Cluster::start_with_brokers(
        3,
        1,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "300"),
            ("replica.lag.time.max.ms", "2000"),
        ],
    );
    let bootstrap = format!(
        "{},{},{}",
        c.node(1).bootstrap(),
        c.node(2).bootstrap(),
        c.node(3).bootstrap()
    );
    // RF=3 on the three running brokers (the fourth never registered, so placement skips it).
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    wait_for(TIMEOUT, "topic created", || {
        let r = rt.block_on(
            admin.create_topics(
                &[NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
                    .set("min.insync.replicas", "2")],
                &AdminOptions::new().request_timeout(Some(Duration::from_secs(15))),
            ),
        );
        matches!(r.as_deref(), Ok([Ok(_)])).then_some(())
    });
    let before = wait_for(TIMEOUT, "every replica in the ISR", || {
        let p = partitions(&c.node(1).bootstrap())?;
        (p.len() == PARTITIONS as usize
            && p.values()
                .all(|(l, r, isr)| *l >= 0 && r.len() == 3 && isr.len() == 3))
        .then_some(p)
    });

    // The APIs are advertised on a voter.
    let av: ApiVersionsResponse = Client::connect(&c.node(1).bootstrap(), Duration::from_secs(10))
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    for key in [
        ApiKey::AlterPartitionReassignments,
        ApiKey::ListPartitionReassignments,
    ] {
        assert!(
            av.api_keys
                .iter()
                .any(|k| k.api_key == key as i16 && (k.min_version, k.max_version) == (0, 0)),
            "{key:?} not advertised"
        );
    }

    // Validation, before anything is written: broker 4 is not registered yet.
    let ctl = controller(&c);
    let r = alter(
        &ctl,
        &[
            (TOPIC, 0, Some(vec![1, 2, 4])),
            (TOPIC, 0, Some(vec![1, 1, 2])),
            (TOPIC, 0, Some(vec![])),
            (TOPIC, 9, Some(vec![1, 2, 3])),
            ("no-such-topic", 0, Some(vec![1, 2, 3])),
            (TOPIC, 1, None),
        ],
    );
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(
        codes(&r),
        vec![
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::InvalidReplicaAssignment,
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::NoReassignmentInProgress,
            ErrorCode::UnknownTopicOrPartition,
        ],
        "{r:?}"
    );
    assert_eq!(partitions(&c.node(1).bootstrap()), Some(before.clone()));
    // A node that is not the active controller forwards both APIs to it (KIP-590): the
    // controller's validation answers, nothing is written.
    let other = (1..=3)
        .map(|id| c.node(id).bootstrap())
        .find(|a| *a != ctl)
        .expect("a non-controller");
    let r = alter(&other, &[(TOPIC, 9, Some(vec![1, 2, 3])), (TOPIC, 1, None)]);
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(
        codes(&r),
        vec![
            ErrorCode::UnknownTopicOrPartition,
            ErrorCode::NoReassignmentInProgress
        ],
        "{r:?}"
    );
    let l = list(&other);
    assert_eq!(l.error_code, 0, "{l:?}");
    assert!(l.topics.is_empty(), "{l:?}");
    assert_eq!(partitions(&c.node(1).bootstrap()), Some(before.clone()));

    // Producers run from here to the end of the move.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let producers = spawn_producers(bootstrap.clone(), Arc::clone(&stop), Arc::clone(&acked));
    wait_for(TIMEOUT, "records acknowledged before the move", || {
        (acked.lock().unwrap().len() > 200).then_some(())
    });

    // The fourth broker, a broker-only node, joins the running cluster.
    c.start_node(4);
    assert!(c.node(4).broker_only);
    wait_for(TIMEOUT, "broker 4 registered", || {
        let m = metadata(&c.node(1).bootstrap())?;
        m.brokers.iter().any(|b| b.node_id == 4).then_some(())
    });

    // Partition 0 moves off its leader onto broker 4; partition 1 swaps a follower for it.
    let (l0, r0, _) = before[&0].clone();
    let target0: Vec<i32> = r0.iter().copied().filter(|&b| b != l0).chain([4]).collect();
    let (l1, r1, _) = before[&1].clone();
    let gone1 = *r1.iter().find(|&&b| b != l1).expect("a follower");
    let target1: Vec<i32> = r1.iter().map(|&b| if b == gone1 { 4 } else { b }).collect();
    let ctl = controller(&c);
    let at_alter = acked.lock().unwrap().len();
    let r = alter(
        &ctl,
        &[
            (TOPIC, 0, Some(target0.clone())),
            (TOPIC, 1, Some(target1.clone())),
        ],
    );
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(codes(&r), vec![ErrorCode::None, ErrorCode::None], "{r:?}");

    // The move completes: nothing listed, Metadata shows the targets with full ISRs.
    wait_for(TIMEOUT, "no reassignment left", || {
        let l = list(&controller(&c));
        (l.error_code == 0 && l.topics.is_empty()).then_some(())
    });
    let after = wait_for(TIMEOUT, "the targets in Metadata", || {
        let p = partitions(&c.node(4).bootstrap())?;
        let done = |i: i32, target: &[i32]| {
            p.get(&i).is_some_and(|(l, r, isr)| {
                r == target && isr.len() == target.len() && target.contains(l)
            })
        };
        (done(0, &target0) && done(1, &target1)).then_some(p)
    });
    assert_ne!(after[&0].0, l0, "the removed leader no longer leads");

    // More records after the move, then the producers stop.
    let moved_at = acked.lock().unwrap().len();
    wait_for(TIMEOUT, "records acknowledged after the move", || {
        (acked.lock().unwrap().len() > moved_at + 200).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    let failed = producers.join().expect("producer thread");
    let acked = acked.lock().unwrap().clone();
    eprintln!(
        "acknowledged {} records ({} failed sends): {} before the move, {} during it",
        acked.len(),
        failed,
        at_alter,
        moved_at - at_alter
    );

    // No acknowledged record lost: each is read back at its offset from the new replicas.
    let new_bootstrap = c.node(4).bootstrap();
    for p in 0..PARTITIONS {
        let read = read_partition(&new_bootstrap, p);
        for (_, offset, value) in acked.iter().filter(|(q, _, _)| *q == p) {
            assert_eq!(
                read.get(offset),
                Some(value),
                "partition {p}: acknowledged {value} at {offset} lost"
            );
        }
    }

    // The replicas of each target are byte-identical; the removed ones deleted their logs.
    for (p, target, gone) in [(0, &target0, l0), (1, &target1, gone1)] {
        wait_for(TIMEOUT, "byte-identical moved replicas", || {
            let first = log_bytes(&c, target[0], p)?;
            (!first.is_empty()
                && target[1..]
                    .iter()
                    .all(|&b| log_bytes(&c, b, p).as_ref() == Some(&first)))
            .then_some(())
        });
        wait_for(TIMEOUT, "the removed replica's log deleted", || {
            log_bytes(&c, gone, p).is_none().then_some(())
        });
    }
}

/// Kafka 4.4's own `kafka-reassign-partitions` (ReassignPartitionsCommand, from
/// `./scripts/install-java-deps`) against Potok: `--execute` of a plan file, `--verify` until
/// it reports the move completed (it then clears the reassignment throttles with
/// IncrementalAlterConfigs, as it always does), and `--list` with nothing in progress.
#[test]
fn kafka_reassign_partitions_tool_moves_a_partition() {
    let c = Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "300"),
            ("replica.lag.time.max.ms", "2000"),
        ],
    );
    let bootstrap = c.bootstrap();
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    wait_for(TIMEOUT, "topic created", || {
        let r = rt.block_on(admin.create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(2))],
            &AdminOptions::new().request_timeout(Some(Duration::from_secs(15))),
        ));
        matches!(r.as_deref(), Ok([Ok(_)])).then_some(())
    });
    let before = wait_for(TIMEOUT, "both replicas in the ISR", || {
        let p = partitions(&c.node(1).bootstrap())?;
        p.get(&0)
            .is_some_and(|(l, r, isr)| *l >= 0 && r.len() == 2 && isr.len() == 2)
            .then_some(p)
    });
    // Some data to move.
    let producer: FutureProducer = config(&bootstrap)
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..100 {
        let v = format!("t-{i}");
        rt.block_on(producer.send(
            FutureRecord::<(), str>::to(TOPIC).partition(0).payload(&v),
            Duration::from_secs(30),
        ))
        .expect("acknowledged");
    }
    // The broker that is not a replica takes the leader's place.
    let (leader, replicas, _) = before[&0].clone();
    let newcomer = (1..=3)
        .find(|b| !replicas.contains(b))
        .expect("a third broker");
    let target: Vec<i32> = replicas
        .iter()
        .map(|&b| if b == leader { newcomer } else { b })
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::json!({
            "version": 1,
            "partitions": [{"topic": TOPIC, "partition": 0, "replicas": target}]
        })
        .to_string(),
    )
    .expect("plan");
    let cp = common::java::kafka_classpath();
    let root = common::java::repo_root();
    let ctl = controller(&c);
    let plan = plan.display().to_string();
    let tool = |args: &[&str]| {
        let mut all = vec![
            "-cp",
            &cp,
            "org.apache.kafka.tools.reassign.ReassignPartitionsCommand",
            "--bootstrap-server",
            &ctl,
        ];
        all.extend(args);
        common::run_program("java", &all, &root, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("kafka-reassign-partitions {args:?}: {e}"))
    };
    let out = tool(&["--execute", "--reassignment-json-file", &plan]);
    println!("{out}");
    assert!(
        out.contains("Successfully started partition reassignment for moving-0"),
        "{out}"
    );
    wait_for(TIMEOUT, "the tool reports the move completed", || {
        let out = tool(&["--verify", "--reassignment-json-file", &plan]);
        println!("{out}");
        out.contains("Reassignment of partition moving-0 is completed.")
            .then_some(())
    });
    let out = tool(&["--list"]);
    println!("{out}");
    assert!(out.contains("No partition reassignments found."), "{out}");
    let after = partitions(&c.node(1).bootstrap()).expect("metadata");
    assert_eq!(after[&0].1, target);
    assert!(after[&0].0 != leader && target.contains(&after[&0].0));
    // Every record is still there.
    let read = read_partition(&c.node(newcomer).bootstrap(), 0);
    assert_eq!(read.len(), 100);
}
