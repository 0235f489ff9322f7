//! Partition replication between three `potok` processes (issue 18): followers copy the
//! leader's log (Fetch with `ReplicaState`, appended with the leader's offsets and epochs), a
//! killed leader is replaced from the ISR and the new one serves every record below the old
//! high watermark, and a restarted old leader truncates its divergent tail by leader epoch and
//! catches up to a byte-identical log.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::wait_for;
use common::wire::{metadata, Client};
use potok_protocol::messages::fetch_request::ReplicaState;
use potok_protocol::messages::{FetchRequest, FetchResponse};
use potok_protocol::{ApiKey, ErrorCode};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(60);
const TOPIC: &str = "replicated";

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000");
    c
}

/// `(leader, leader epoch, replicas, isr)` of partition 0 of the topic as `addr` reports it.
fn partition(addr: &str) -> Option<(i32, i32, Vec<i32>, Vec<i32>)> {
    let m = metadata(addr)?;
    let t = m.topics.iter().find(|t| t.name.as_deref() == Some(TOPIC))?;
    let p = t.partitions.iter().find(|p| p.partition_index == 0)?;
    Some((
        p.leader_id,
        p.leader_epoch,
        p.replica_nodes.clone(),
        p.isr_nodes.clone(),
    ))
}

/// The bytes of every segment of partition 0 in node `id`'s data directory, in order.
fn log_bytes(c: &Cluster, id: i32) -> Vec<u8> {
    let dir: PathBuf = c.node(id).data_dir().join(format!("{TOPIC}-0"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap_or_default())
        .collect()
}

/// Waits until the logs of `nodes` are byte-identical and hold at least `min_len` bytes.
fn wait_identical(c: &Cluster, nodes: &[i32], min_len: usize) -> Vec<u8> {
    wait_for(TIMEOUT, "byte-identical replicas", || {
        let first = log_bytes(c, nodes[0]);
        (first.len() >= min_len && nodes[1..].iter().all(|&n| log_bytes(c, n) == first))
            .then_some(first)
    })
}

fn signal(c: &Cluster, id: i32, sig: libc::c_int) {
    let pid = c.node(id).pid().expect("running") as libc::pid_t;
    // SAFETY: kill(2) on the pid of a child the harness spawned and has not reaped.
    unsafe { libc::kill(pid, sig) };
}

async fn produce(bootstrap: &str, from: usize, to: usize) {
    let producer: FutureProducer = config(bootstrap)
        .set("acks", "1")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    for i in from..to {
        let v = format!("value-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(TOPIC).partition(0).payload(&v),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }
}

/// Every value from offset 0 up to the high watermark, read by librdkafka through the cluster.
fn consume_all(bootstrap: &str, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out.len() < expected && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            assert_eq!(m.offset() as usize, out.len(), "offsets without gaps");
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_copy_the_leader_survive_its_kill_and_a_returning_leader_truncates_by_epoch() {
    let mut c = Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "500"),
        ],
    );
    let bootstrap = c.bootstrap();
    let admin: AdminClient<DefaultClientContext> = config(&bootstrap).create().expect("admin");
    wait_for(TIMEOUT, "three brokers", || {
        metadata(&c.node(1).bootstrap()).filter(|m| m.brokers.len() == 3)
    });
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(30)))
        .operation_timeout(Some(Duration::from_secs(30)));
    let created = admin
        .create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3))],
            &opts,
        )
        .await
        .expect("create_topics");
    assert!(created[0].is_ok(), "{created:?}");
    let (leader, epoch, replicas, isr) = wait_for(TIMEOUT, "the partition on every node", || {
        partition(&c.node(1).bootstrap())
    });
    assert_eq!(replicas.len(), 3);
    assert_eq!(isr.len(), 3, "the ISR at creation is every replica");

    // 1. Followers copy the leader: the three logs become byte-identical.
    produce(&bootstrap, 0, 200).await;
    let before = wait_identical(&c, &[1, 2, 3], 1);
    let consumer: BaseConsumer = config(&bootstrap).create().unwrap();
    let (_, hw) = wait_for(TIMEOUT, "the high watermark covers every record", || {
        consumer
            .fetch_watermarks(TOPIC, 0, Duration::from_secs(5))
            .ok()
            .filter(|w| w.1 == 200)
    });
    assert_eq!(hw, 200);

    // 2. The followers are paused (so the quorum has no majority and nothing changes), the
    // leader takes records with acks=1 that no follower has, and is killed.
    let followers: Vec<i32> = replicas.iter().copied().filter(|&r| r != leader).collect();
    for &f in &followers {
        signal(&c, f, libc::SIGSTOP);
    }
    // A follower's fetch already waiting at the leader would still be answered (into the
    // stopped process's socket) with the next append: let those long polls
    // (replica.fetch.wait.max.ms, 500 ms) end empty first.
    std::thread::sleep(Duration::from_millis(1500));
    let mut direct = Client::connect(&c.node(leader).bootstrap(), Duration::from_secs(10));
    let tail = potok_records::RecordBatchBuilder::new()
        .key_value(0, None, Some(b"never-replicated"))
        .build()
        .unwrap()
        .into_bytes();
    let r = direct.produce(TOPIC, 0, tail);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "{r:?}");
    assert_eq!(r.responses[0].partition_responses[0].base_offset, 200);
    c.kill9(leader);
    for &f in &followers {
        signal(&c, f, libc::SIGCONT);
    }

    // 3. A new leader from the ISR at a higher epoch serves every record that was below the
    // high watermark.
    let survivor = c.node(followers[0]).bootstrap();
    let (new_leader, new_epoch, _, new_isr) = wait_for(TIMEOUT, "a new leader", || {
        partition(&survivor).filter(|p| p.0 >= 0 && p.0 != leader)
    });
    assert!(isr.contains(&new_leader) && new_epoch > epoch);
    assert!(!new_isr.contains(&leader), "the fenced broker left the ISR");
    let alive = format!(
        "{},{}",
        c.node(followers[0]).bootstrap(),
        c.node(followers[1]).bootstrap()
    );
    let values = consume_all(&alive, 200);
    assert_eq!(values.len(), 200, "records below the old high watermark");
    for (i, v) in values.iter().enumerate() {
        assert_eq!(v, &format!("value-{i}"));
    }
    produce(&alive, 200, 300).await;
    wait_identical(&c, &followers, before.len() + 1);

    // 4. The old leader returns as a follower: its divergent tail (offset 200 at the old
    // epoch) is cut by leader epoch and it catches up to a byte-identical log.
    c.restart(leader);
    let all = wait_identical(&c, &[1, 2, 3], before.len() + 1);
    assert_eq!(
        &all[..before.len()],
        &before[..],
        "the committed prefix is unchanged"
    );
    let log = c.node(leader).log();
    assert!(
        log.contains("truncating a divergent log by leader epoch"),
        "the returning leader truncated by epoch:\n{log}"
    );
    let values = consume_all(&c.bootstrap(), 300);
    assert_eq!(values.len(), 300);
    assert!(values.iter().all(|v| v != "never-replicated"));

    // Follower fetches use incremental fetch sessions (KIP-227): a full fetch opens one, the
    // next epoch continues it, a replayed epoch is refused.
    let mut wire = Client::connect(&c.node(new_leader).bootstrap(), Duration::from_secs(10));
    let fetch = |session_id: i32, session_epoch: i32| FetchRequest {
        replica_state: ReplicaState {
            replica_id: 99,
            replica_epoch: -1,
            ..Default::default()
        },
        max_wait_ms: 0,
        session_id,
        session_epoch,
        ..Default::default()
    };
    let opened: FetchResponse = wire.call(ApiKey::Fetch, 15, &fetch(0, 0));
    assert_eq!(opened.error_code, 0);
    assert!(opened.session_id > 0, "{opened:?}");
    let next: FetchResponse = wire.call(ApiKey::Fetch, 15, &fetch(opened.session_id, 1));
    assert_eq!((next.error_code, next.session_id), (0, opened.session_id));
    let replayed: FetchResponse = wire.call(ApiKey::Fetch, 15, &fetch(opened.session_id, 1));
    assert_eq!(
        replayed.error_code,
        ErrorCode::InvalidFetchSessionEpoch.code()
    );
}
