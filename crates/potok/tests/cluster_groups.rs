//! Consumer groups on three real `potok` processes (issue 18, acceptance 2's last clause: a
//! consumer group's coordinator moves with its `__consumer_offsets` leader with committed
//! offsets intact). The group is driven by librdkafka (the `rdkafka` crate); FindCoordinator,
//! OffsetFetch and Metadata are also sent raw to each node, to see what every broker answers.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::kafka::{cluster_client as client, runtime};
use common::wire::Client;
use potok_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use potok_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use potok_protocol::messages::{
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use potok_protocol::ApiKey;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(60);
const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const OFFSETS_PARTITIONS: i32 = 3;

fn cluster() -> Cluster {
    Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "300"),
            ("replica.lag.time.max.ms", "2000"),
            ("offsets.topic.num.partitions", "3"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    )
}

/// What node `addr` answers FindCoordinator for `GROUP`: `Ok(node)` or `Err(error code)`.
fn find_coordinator(addr: &str) -> Result<i32, i16> {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest {
            key_type: 0,
            coordinator_keys: vec![GROUP.into()],
            ..Default::default()
        },
    );
    let k = &r.coordinators[0];
    if k.error_code == 0 {
        Ok(k.node_id)
    } else {
        Err(k.error_code)
    }
}

/// Waits until every node of `nodes` answers FindCoordinator with the same coordinator for
/// which `ok` holds; returns it.
fn agreed_coordinator(c: &Cluster, nodes: &[i32], ok: impl Fn(i32) -> bool) -> i32 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let answers: Vec<Result<i32, i16>> = nodes
            .iter()
            .map(|&n| find_coordinator(&c.node(n).bootstrap()))
            .collect();
        if let Ok(first) = answers[0] {
            if ok(first) && answers.iter().all(|a| *a == Ok(first)) {
                return first;
            }
        }
        assert!(
            Instant::now() < deadline,
            "FindCoordinator never agreed: {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// OffsetFetch for `GROUP`'s partition 0 of `TOPIC`, sent to node `addr`: `(error, offset)`.
fn offset_fetch(addr: &str) -> (i16, i64) {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest {
            group_id: GROUP.into(),
            topics: Some(vec![OffsetFetchRequestTopic {
                name: TOPIC.into(),
                partition_indexes: vec![0],
                ..Default::default()
            }]),
            ..Default::default()
        },
    );
    let offset = r
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.committed_offset);
    (r.error_code, offset)
}

/// A simple consumer's OffsetCommit (generation -1, as admin tools send it) of `offset` for
/// `GROUP`'s partition 0 of `TOPIC`, sent to node `addr`: the partition's error code.
fn offset_commit(addr: &str, offset: i64) -> i16 {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: OffsetCommitResponse = c.call(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest {
            group_id: GROUP.into(),
            generation_id_or_member_epoch: -1,
            topics: vec![OffsetCommitRequestTopic {
                name: TOPIC.into(),
                partitions: vec![OffsetCommitRequestPartition {
                    partition_index: 0,
                    committed_offset: offset,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.error_code)
}

/// [`offset_fetch`] once the node has loaded the group's partition: a new leader answers
/// COORDINATOR_LOAD_IN_PROGRESS (14) while it reads the partition's log.
fn offset_fetch_loaded(addr: &str) -> (i16, i64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = offset_fetch(addr);
        if r.0 != 14 {
            return r;
        }
        assert!(Instant::now() < deadline, "{addr} never finished loading");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `(leader, isr)` of `__consumer_offsets` partition `p` as node `addr` answers Metadata.
fn offsets_partition(addr: &str, p: i32) -> Option<(i32, Vec<i32>)> {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: MetadataResponse = c.call(
        ApiKey::Metadata,
        9,
        &MetadataRequest {
            // Every topic, internal ones included.
            topics: None,
            ..Default::default()
        },
    );
    let t = r
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some("__consumer_offsets"))?;
    let part = t.partitions.iter().find(|x| x.partition_index == p)?;
    let mut isr = part.isr_nodes.clone();
    isr.sort_unstable();
    Some((part.leader_id, isr))
}

/// Kafka's `abs(hashCode(group)) % partitions`.
fn offsets_partition_of(group: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % OFFSETS_PARTITIONS
}

fn create_topic(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> =
        client(bootstrap).create().expect("admin client");
    let rt = runtime();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let r = rt.block_on(
            admin.create_topics(
                &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3))
                    .set("min.insync.replicas", "2")],
                &AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(10)))
                    .request_timeout(Some(Duration::from_secs(15))),
            ),
        );
        match r.as_deref() {
            Ok([Ok(_)]) | Ok([Err((_, RDKafkaErrorCode::TopicAlreadyExists))]) => return,
            other => {
                assert!(Instant::now() < deadline, "create {TOPIC}: {other:?}");
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}

fn produce(bootstrap: &str, from: usize, to: usize) {
    let p: FutureProducer = client(bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let rt = runtime();
    for i in from..to {
        let value = format!("v{i}");
        rt.block_on(
            p.send(
                FutureRecord::<(), str>::to(TOPIC)
                    .partition(0)
                    .payload(&value),
                Duration::from_secs(30),
            ),
        )
        .unwrap_or_else(|(e, _)| panic!("produce {value}: {e}"));
    }
}

fn group_consumer(bootstrap: &str) -> BaseConsumer {
    let c: BaseConsumer = client(bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer");
    c.subscribe(&[TOPIC]).expect("subscribe");
    c
}

/// Polls `n` records of `TOPIC` partition 0; returns their `(offset, value)`.
fn consume(c: &BaseConsumer, n: usize) -> Vec<(i64, String)> {
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "consumed {} of {n}", out.len());
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(e)) => eprintln!("poll: {e}"),
            None => {}
        }
    }
    out
}

/// Commits `offset` for `TOPIC` partition 0 synchronously, retrying what librdkafka reports
/// as retriable while the coordinator moves.
fn commit(c: &BaseConsumer, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(offset))
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match c.commit(&tpl, CommitMode::Sync) {
            Ok(()) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "commit {offset}: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn expect_in_order(got: &[(i64, String)], from: i64) {
    for (i, (offset, value)) in got.iter().enumerate() {
        let want = from + i as i64;
        assert_eq!(
            (*offset, value.as_str()),
            (want, format!("v{want}").as_str()),
            "records must resume at the committed offset {from}, none re-read or skipped"
        );
    }
}

/// The bytes of every segment of `__consumer_offsets` partition `p` in `node`'s data
/// directory, in file-name order.
fn offsets_log_bytes(c: &Cluster, node: i32, p: i32) -> Vec<u8> {
    let dir = c
        .node(node)
        .data_dir()
        .join("__consumer_offsets")
        .join(format!("__consumer_offsets-{p}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|f| f.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

/// Acceptance 2's last clause (issue 18): a group on an RF=3 topic consumes and commits; its
/// coordinator's broker is SIGKILLed; FindCoordinator on every survivor moves to the new
/// leader of the group's `__consumer_offsets` partition, which has the committed offset; the
/// group resumes from it (no record re-read, none skipped) and commits there. Restarted, the
/// old coordinator is no longer the coordinator (NOT_COORDINATOR), every node agrees on the
/// new one, and its replica of the partition rejoins the ISR with the same log bytes.
#[test]
fn a_group_coordinator_moves_with_its_offsets_partition_leader() {
    let mut c = cluster();
    let bootstrap = c.bootstrap();
    create_topic(&bootstrap);
    produce(&bootstrap, 0, 100);

    // FindCoordinator answers COORDINATOR_NOT_AVAILABLE until the controller created
    // `__consumer_offsets` (RF 3: all three brokers are registered), then every node names
    // the same leader of the group's partition.
    let old = agreed_coordinator(&c, &[1, 2, 3], |n| n > 0);
    let p = offsets_partition_of(GROUP);
    let (leader, isr) = offsets_partition(&c.node(1).bootstrap(), p).expect("offsets topic");
    assert_eq!(leader, old, "the coordinator is the partition's leader");
    assert_eq!(isr.len(), 3, "__consumer_offsets has 3 replicas: {isr:?}");

    let consumer = group_consumer(&bootstrap);
    let first = consume(&consumer, 50);
    expect_in_order(&first, 0);
    commit(&consumer, 50);
    assert_eq!(offset_fetch_loaded(&c.node(old).bootstrap()), (0, 50));
    // The member leaves; the group is empty with its committed offset.
    drop(consumer);

    c.kill9(old);
    let survivors: Vec<i32> = (1..=3).filter(|&n| n != old).collect();
    let moved = agreed_coordinator(&c, &survivors, |n| n > 0 && n != old);
    assert_eq!(
        offset_fetch_loaded(&c.node(moved).bootstrap()),
        (0, 50),
        "the committed offset is intact on the new coordinator"
    );
    // The survivor that is not the coordinator says so.
    let other = survivors.iter().copied().find(|&n| n != moved).unwrap();
    assert_eq!(
        offset_fetch(&c.node(other).bootstrap()).0,
        16,
        "NOT_COORDINATOR"
    );

    // The group resumes from the committed offset.
    let consumer = group_consumer(&c.node(moved).bootstrap());
    let rest = consume(&consumer, 50);
    expect_in_order(&rest, 50);
    commit(&consumer, 100);
    assert_eq!(offset_fetch(&c.node(moved).bootstrap()), (0, 100));
    drop(consumer);

    // The old coordinator comes back as a follower of the partition: every node names the
    // new coordinator, the old one answers NOT_COORDINATOR, and once its replica is back in
    // the ISR it holds the same records (the commits replicated).
    c.restart(old);
    let after = agreed_coordinator(&c, &[1, 2, 3], |n| n > 0);
    assert_eq!(
        after, moved,
        "the restarted node did not take the group back"
    );
    assert_eq!(
        offset_fetch(&c.node(old).bootstrap()).0,
        16,
        "NOT_COORDINATOR"
    );
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let isr: BTreeSet<i32> = offsets_partition(&c.node(moved).bootstrap(), p)
            .map(|(_, isr)| isr.into_iter().collect())
            .unwrap_or_default();
        let (a, b) = (
            offsets_log_bytes(&c, moved, p),
            offsets_log_bytes(&c, old, p),
        );
        if isr.contains(&old) && !a.is_empty() && a == b {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old coordinator's replica never caught up: isr {isr:?}, {} vs {} bytes",
            a.len(),
            b.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(offset_fetch(&c.node(moved).bootstrap()), (0, 100));
}

/// OffsetFetch answers only commits the group's `__consumer_offsets` partition has replicated
/// (Kafka's coordinator reads its state as of the last committed offset): with both followers
/// of the partition paused, a commit is appended on the coordinator but cannot reach the ISR,
/// and an OffsetFetch meanwhile must not show it (it would be lost if the coordinator failed
/// now); it waits for the ISR and, within `offsets.commit.timeout.ms`, answers
/// COORDINATOR_NOT_AVAILABLE instead. Once the followers resume, everything replicates.
#[test]
fn an_offset_fetch_never_answers_an_unreplicated_commit() {
    let c = cluster();
    create_topic(&c.bootstrap());
    let coordinator = agreed_coordinator(&c, &[1, 2, 3], |n| n > 0);
    let p = offsets_partition_of(GROUP);
    let addr = c.node(coordinator).bootstrap();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let full = offsets_partition(&addr, p).is_some_and(|(_, isr)| isr.len() == 3);
        if full && offset_commit(&addr, 10) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first commit never succeeded"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(offset_fetch_loaded(&addr), (0, 10));

    let followers: Vec<u32> = (1..=3)
        .filter(|&n| n != coordinator)
        .map(|n| c.node(n).pid().expect("running follower"))
        .collect();
    for &pid in &followers {
        // SAFETY: kill(2) on a child process of this test.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
    }
    let commit_addr = addr.clone();
    let late = std::thread::spawn(move || offset_commit(&commit_addr, 20));
    std::thread::sleep(Duration::from_millis(500));
    let during = offset_fetch(&addr);
    let committed = late.join().expect("commit thread");
    for &pid in &followers {
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    }
    assert_ne!(
        during.1, 20,
        "OffsetFetch answered a commit no follower had: {during:?}"
    );
    assert_eq!(
        during,
        (15, -1),
        "COORDINATOR_NOT_AVAILABLE once offsets.commit.timeout.ms passed"
    );
    assert_eq!(
        committed, 15,
        "the unreplicated commit fails with COORDINATOR_NOT_AVAILABLE"
    );

    // Resumed, the followers copy the leader's log; the answer then covers it. The failed
    // commit's record stays in the log, as a timed-out acks=all write may in Kafka, so the
    // offset is 10 or 20 but the node answers again.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (err, offset) = offset_fetch(&addr);
        if err == 0 {
            assert!(offset == 10 || offset == 20, "unexpected offset {offset}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "OffsetFetch never answered again: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
