//! Transactions on three real `potok` processes (issue 21, acceptance 2's 3-node part): the
//! transaction coordinator of an id is the leader of its `__transaction_state` partition, the
//! partitions of a transaction are led by other brokers, and the coordinator's broker is
//! SIGKILLed while transactions are in flight. The producers are librdkafka's (the `rdkafka`
//! crate); FindCoordinator and ListOffsets are also sent raw, to see what each broker answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::kafka::{cluster_client as client, create_topic_retrying};
use common::wire::Client;
use potok_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse,
};
use potok_protocol::{ApiKey, ErrorCode};
use potok_records::{ProducerEpoch, ProducerId, RecordBatchBuilder};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

/// A producer whose delivery reports are polled by its own thread (abort and commit need them).
type TxnProducer = ThreadedProducer<DefaultProducerContext>;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(90);
const TOPIC: &str = "ledger";
const PARTITIONS: i32 = 3;
/// `transaction.state.log.num.partitions` of the test clusters.
const STATE_PARTITIONS: i32 = 3;

fn cluster() -> Cluster {
    Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "3000"),
            ("broker.heartbeat.interval.ms", "300"),
            ("replica.lag.time.max.ms", "2000"),
            ("offsets.topic.num.partitions", "3"),
            ("transaction.state.log.num.partitions", "3"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    )
}

fn create_topic(c: &Cluster) {
    create_topic_retrying(
        &c.bootstrap(),
        &NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2"),
        TIMEOUT,
    );
}

/// Kafka's `abs(hashCode(id)) % partitions`.
fn state_partition_of(id: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % STATE_PARTITIONS
}

/// What node `addr` answers FindCoordinator (key type 1) for `id`: `Ok(node)` or the error.
fn find_txn_coordinator(addr: &str, id: &str) -> Result<i32, i16> {
    find_coordinator(addr, 1, id)
}

/// What node `addr` answers FindCoordinator of `key_type` for `key`.
fn find_coordinator(addr: &str, key_type: i8, key: &str) -> Result<i32, i16> {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: FindCoordinatorResponse = c.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest {
            key_type,
            coordinator_keys: vec![key.into()],
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

/// The coordinator of `id` once every node of `nodes` names the same one and it is not
/// `not` (a killed node the image still names until its session expires).
fn agreed_txn_coordinator(c: &Cluster, nodes: &[i32], id: &str, not: Option<i32>) -> i32 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let answers: Vec<Result<i32, i16>> = nodes
            .iter()
            .map(|&n| find_txn_coordinator(&c.node(n).bootstrap(), id))
            .collect();
        if let Ok(first) = answers[0] {
            if Some(first) != not && answers.iter().all(|a| *a == Ok(first)) {
                return first;
            }
        }
        assert!(
            Instant::now() < deadline,
            "FindCoordinator(transaction) never agreed: {answers:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The leader of each partition of `TOPIC` as node `addr` answers Metadata.
fn leaders(addr: &str) -> BTreeMap<i32, i32> {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: MetadataResponse = c.call(
        ApiKey::Metadata,
        9,
        &MetadataRequest {
            topics: None,
            ..Default::default()
        },
    );
    r.topics
        .iter()
        .filter(|t| t.name.as_deref() == Some(TOPIC))
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.leader_id))
        .collect()
}

/// ListOffsets `latest` of `partition` at `isolation_level`, asked of node `addr`:
/// `Ok(offset)` or the error code.
fn latest(addr: &str, partition: i32, isolation_level: i8) -> Result<i64, i16> {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: ListOffsetsResponse = c.call(
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest {
            replica_id: -1,
            isolation_level,
            topics: vec![ListOffsetsTopic {
                name: TOPIC.into(),
                partitions: vec![ListOffsetsPartition {
                    partition_index: partition,
                    current_leader_epoch: -1,
                    timestamp: -1,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    let p = &r.topics[0].partitions[0];
    if p.error_code == 0 {
        Ok(p.offset)
    } else {
        Err(p.error_code)
    }
}

/// Waits until every partition's last stable offset (ListOffsets under read_committed) equals
/// its high watermark, asking the partition's leader among the running nodes `alive`.
fn wait_lso_reaches_hw(c: &Cluster, alive: &[i32]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut ends = BTreeMap::new();
        let mut last = Vec::new();
        let ls = leaders(&c.node(alive[0]).bootstrap());
        for p in 0..PARTITIONS {
            let Some(&l) = ls.get(&p).filter(|l| alive.contains(l)) else {
                last.push(format!("p{p}: leader {:?}", ls.get(&p)));
                continue;
            };
            let addr = c.node(l).bootstrap();
            match (latest(&addr, p, 1), latest(&addr, p, 0)) {
                (Ok(lso), Ok(hw)) if lso == hw => {
                    ends.insert(p, hw);
                }
                other => last.push(format!("p{p} on {l}: (lso, hw) = {other:?}")),
            }
        }
        if ends.len() == PARTITIONS as usize {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the last stable offsets never reached the high watermarks: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Every value of `TOPIC` a consumer at `isolation` reads from the beginning (call once the
/// last stable offsets reached the high watermarks: everything is readable then), read until
/// nothing came for 5 s.
fn read_all(bootstrap: &str, isolation: &str) -> Vec<String> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", format!("check-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&tpl).expect("assign");
    let mut values = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(5) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                idle_since = Instant::now();
                values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
        assert!(
            Instant::now() < deadline,
            "reading {isolation} never finished: {} values",
            values.len()
        );
    }
    values
}

fn transactional_producer(bootstrap: &str, id: &str) -> TxnProducer {
    let p: TxnProducer = client(bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "10000")
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer");
    p.init_transactions(TIMEOUT).expect("init_transactions");
    p
}

/// One transaction: `per_partition` records `"{tag}:{i}"` to every partition, then commit or
/// abort.
fn run_txn(
    p: &TxnProducer,
    tag: &str,
    per_partition: usize,
    commit: bool,
) -> rdkafka::error::KafkaResult<()> {
    p.begin_transaction()?;
    for part in 0..PARTITIONS {
        for i in 0..per_partition {
            let value = format!("{tag}:{part}:{i}");
            loop {
                match p.send(
                    BaseRecord::<(), str>::to(TOPIC)
                        .partition(part)
                        .payload(&value),
                ) {
                    Ok(()) => break,
                    Err((e, _)) => {
                        if e.rdkafka_error_code()
                            == Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        {
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                        return Err(e);
                    }
                }
            }
        }
    }
    if commit {
        p.commit_transaction(Duration::from_secs(60))
    } else {
        // An abort drops what the client has not sent yet: flushed first, the records reach
        // the partitions and the ABORT markers hide them.
        p.flush(Duration::from_secs(60))?;
        p.abort_transaction(Duration::from_secs(60))
    }
}

/// Commit and abort on three nodes, the transaction's partitions led by other brokers than its
/// coordinator: the committed records are visible to read_committed, the aborted ones only to
/// read_uncommitted, and every partition's last stable offset reaches its high watermark.
#[test]
fn commit_and_abort_work_with_partitions_led_by_other_brokers() {
    let c = cluster();
    create_topic(&c);
    let id = "simple-txn";
    let p = transactional_producer(&c.bootstrap(), id);
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
    let ls = leaders(&c.node(1).bootstrap());
    assert!(
        ls.values().any(|l| *l != coordinator),
        "every partition is led by the coordinator {coordinator}: {ls:?}"
    );
    run_txn(&p, "c1", 20, true).expect("first commit");
    run_txn(&p, "a1", 20, false).expect("abort");
    run_txn(&p, "c2", 20, true).expect("second commit");
    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    let committed = read_all(&c.bootstrap(), "read_committed");
    let uncommitted = read_all(&c.bootstrap(), "read_uncommitted");
    let count = |vs: &[String], tag: &str| vs.iter().filter(|v| v.starts_with(tag)).count();
    let per_txn = 20 * PARTITIONS as usize;
    assert_eq!(count(&committed, "c1:"), per_txn, "{committed:?}");
    assert_eq!(count(&committed, "c2:"), per_txn);
    assert_eq!(
        count(&committed, "a1:"),
        0,
        "aborted records read_committed"
    );
    assert_eq!(count(&uncommitted, "a1:"), per_txn);
    assert_eq!(
        count(&uncommitted, "c1:") + count(&uncommitted, "c2:"),
        2 * per_txn
    );
}

/// What one producer thread saw of its transactions.
#[derive(Debug, Default)]
struct Outcomes {
    /// Transactions whose commit librdkafka acknowledged.
    committed: BTreeSet<String>,
    /// Transactions committed after the kill.
    committed_after_kill: usize,
}

/// Transactions in flight from several producers whose ids the same broker coordinates, each
/// spanning partitions led by different brokers; the coordinator's broker is SIGKILLed. Then
/// every transaction is entirely visible or entirely invisible to read_committed, every
/// acknowledged commit is visible, the producers commit again through the new coordinator, and
/// every partition's last stable offset reaches its high watermark.
#[test]
fn a_kill_9_of_the_transaction_coordinator_leaves_every_transaction_whole() {
    let mut c = cluster();
    create_topic(&c);
    // Ids that live in the same `__transaction_state` partition, so one broker coordinates
    // them all.
    let ids: Vec<String> = (0..)
        .map(|i| format!("eos-{i}"))
        .filter(|id| state_partition_of(id) == 0)
        .take(3)
        .collect();
    let per_partition = 5;
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(BTreeMap::<String, Outcomes>::new()));
    let bootstrap = c.bootstrap();
    let threads: Vec<_> = ids
        .iter()
        .map(|id| {
            let (id, stop, killed, outcomes, bootstrap) = (
                id.clone(),
                Arc::clone(&stop),
                Arc::clone(&killed),
                Arc::clone(&outcomes),
                bootstrap.clone(),
            );
            std::thread::spawn(move || {
                let mut p = transactional_producer(&bootstrap, &id);
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let tag = format!("{id}#{n}");
                    n += 1;
                    let after_kill = killed.load(Ordering::Acquire);
                    match run_txn(&p, &tag, per_partition, true) {
                        Ok(()) => {
                            let mut o = outcomes.lock().unwrap();
                            let o = o.entry(id.clone()).or_default();
                            o.committed.insert(tag);
                            if after_kill {
                                o.committed_after_kill += 1;
                            }
                        }
                        Err(e) => {
                            eprintln!("{tag}: {e}; starting over with a new producer");
                            // Its outcome is unknown (the commit may have gone through); the
                            // check below only needs it whole or absent.
                            drop(p);
                            p = transactional_producer(&bootstrap, &id);
                        }
                    }
                }
            })
        })
        .collect();
    // Let every producer commit a few transactions, then kill their coordinator mid-stream.
    let deadline = Instant::now() + TIMEOUT;
    while outcomes
        .lock()
        .unwrap()
        .values()
        .filter(|o| o.committed.len() >= 3)
        .count()
        < ids.len()
    {
        assert!(Instant::now() < deadline, "the producers never got going");
        std::thread::sleep(Duration::from_millis(100));
    }
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], &ids[0], None);
    let ls = leaders(&c.node(1).bootstrap());
    assert!(
        ls.values().any(|l| *l != coordinator),
        "every partition is led by the coordinator {coordinator}: {ls:?}"
    );
    c.kill9(coordinator);
    killed.store(true, Ordering::Release);
    let alive: Vec<i32> = (1..=3).filter(|n| *n != coordinator).collect();
    let new_coordinator = agreed_txn_coordinator(&c, &alive, &ids[0], Some(coordinator));
    // The producers go on through the new coordinator.
    let deadline = Instant::now() + TIMEOUT;
    while outcomes
        .lock()
        .unwrap()
        .values()
        .filter(|o| o.committed_after_kill >= 3)
        .count()
        < ids.len()
    {
        assert!(
            Instant::now() < deadline,
            "the producers did not commit through the new coordinator: {:?}\n--- node {new_coordinator} ---\n{}",
            outcomes.lock().unwrap(),
            tail(&c.node(new_coordinator).log())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().expect("producer thread");
    }
    wait_lso_reaches_hw(&c, &alive);
    let survivors = alive
        .iter()
        .map(|n| c.node(*n).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let values = read_all(&survivors, "read_committed");
    // Records per transaction read under read_committed.
    let mut per_txn: BTreeMap<String, usize> = BTreeMap::new();
    for v in &values {
        let tag = v.split(':').next().expect("tag");
        *per_txn.entry(tag.to_string()).or_default() += 1;
    }
    let whole = per_partition * PARTITIONS as usize;
    let partial: Vec<_> = per_txn.iter().filter(|(_, n)| **n != whole).collect();
    assert!(
        partial.is_empty(),
        "transactions read partly (or twice) under read_committed: {partial:?}"
    );
    let outcomes = outcomes.lock().unwrap();
    println!(
        "killed coordinator {coordinator}, new coordinator {new_coordinator}; {} transactions read whole, commits acknowledged: {:?}",
        per_txn.len(),
        outcomes
            .iter()
            .map(|(id, o)| (id, o.committed.len(), o.committed_after_kill))
            .collect::<Vec<_>>()
    );
    for (id, o) in outcomes.iter() {
        for tag in &o.committed {
            assert!(
                per_txn.contains_key(tag),
                "{id}: the acknowledged commit of {tag} is not visible"
            );
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// InitProducerId for `id` sent to its coordinator, retried while it loads or moves.
fn init_producer(addr: &str, id: &str) -> (i64, i16) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut c = Client::connect(addr, Duration::from_secs(10));
        let r: InitProducerIdResponse = c.call(
            ApiKey::InitProducerId,
            4,
            &InitProducerIdRequest {
                transactional_id: Some(id.into()),
                transaction_timeout_ms: 60_000,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            },
        );
        if r.error_code == 0 {
            return (r.producer_id, r.producer_epoch);
        }
        assert!(Instant::now() < deadline, "InitProducerId: {r:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// AddPartitionsToTxn (v3, as clients send it) of `partition` of `TOPIC`: its error code.
fn add_partition(addr: &str, id: &str, (pid, epoch): (i64, i16), partition: i32) -> i16 {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: AddPartitionsToTxnResponse = c.call(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest {
            v3_and_below_transactional_id: id.into(),
            v3_and_below_producer_id: pid,
            v3_and_below_producer_epoch: epoch,
            v3_and_below_topics: vec![AddPartitionsToTxnTopic {
                name: TOPIC.into(),
                partitions: vec![partition],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

/// A transactional batch of one record to `partition`, sent to `addr`: the error code.
fn produce_txn(addr: &str, id: &str, (pid, epoch): (i64, i16), seq: i32, partition: i32) -> i16 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let batch = RecordBatchBuilder::new()
        .producer(ProducerId(pid), ProducerEpoch(epoch), seq)
        .transactional(true)
        .key_value(now, Some(b"k"), Some(format!("late-{seq}").as_bytes()))
        .build()
        .expect("batch")
        .into_bytes();
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: ProduceResponse = c.call(
        ApiKey::Produce,
        9,
        &ProduceRequest {
            transactional_id: Some(id.into()),
            acks: -1,
            timeout_ms: 10_000,
            topic_data: vec![TopicProduceData {
                name: TOPIC.into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(batch),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    r.responses[0].partition_responses[0].error_code
}

/// KIP-890 part 1 with the coordinator on another broker than the partition's leader: the
/// leader has the coordinator verify a transactional batch before appending it, so a batch of
/// a partition not in the transaction, and a late write after the transaction committed (which
/// would otherwise open a transaction nothing ends and hold the last stable offset forever),
/// are refused with INVALID_TXN_STATE, while the transaction's own write goes in.
#[test]
fn a_late_transactional_write_to_a_partition_led_by_another_broker_is_refused() {
    let c = cluster();
    create_topic(&c);
    let id = "late-writer";
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
    let ls = leaders(&c.node(coordinator).bootstrap());
    let (&partition, &leader) = ls
        .iter()
        .find(|(_, l)| **l != coordinator)
        .expect("a partition led by another broker than the coordinator");
    let coord = c.node(coordinator).bootstrap();
    let lead = c.node(leader).bootstrap();
    let producer = init_producer(&coord, id);
    let invalid_txn_state = ErrorCode::InvalidTxnState.code();
    assert_eq!(
        produce_txn(&lead, id, producer, 0, partition),
        invalid_txn_state,
        "a write to a partition not in the transaction"
    );
    assert_eq!(add_partition(&coord, id, producer, partition), 0);
    assert_eq!(produce_txn(&lead, id, producer, 0, partition), 0);
    let mut end = Client::connect(&coord, Duration::from_secs(10));
    let r: EndTxnResponse = end.call(
        ApiKey::EndTxn,
        3,
        &EndTxnRequest {
            transactional_id: id.into(),
            producer_id: producer.0,
            producer_epoch: producer.1,
            committed: true,
            ..Default::default()
        },
    );
    assert_eq!(r.error_code, 0, "{r:?}");
    // The COMMIT marker reaches the partition through the network.
    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    let hw = latest(&lead, partition, 0).expect("high watermark");
    assert_eq!(
        produce_txn(&lead, id, producer, 1, partition),
        invalid_txn_state,
        "the late write of the committed transaction"
    );
    assert_eq!(latest(&lead, partition, 0), Ok(hw), "nothing was appended");
    assert_eq!(
        latest(&lead, partition, 1),
        Ok(hw),
        "no transaction holds the LSO"
    );
}

/// KIP-447 on three nodes: offsets sent to a transaction (`send_offsets_to_transaction`) for a
/// group whose coordinator is another broker than the transaction's are verified with the
/// transaction coordinator, become the group's committed offsets with the commit, and are
/// dropped with an abort.
#[test]
fn offsets_sent_to_a_transaction_commit_and_abort_with_it_across_brokers() {
    let c = cluster();
    create_topic(&c);
    let id = "offsets-txn";
    let p = transactional_producer(&c.bootstrap(), id);
    let txn_coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
    // A group whose coordinator (its `__consumer_offsets` leader) is another broker.
    let deadline = Instant::now() + TIMEOUT;
    let group = loop {
        let found = (0..30).map(|i| format!("eos-group-{i}")).find(|g| {
            matches!(find_coordinator(&c.node(1).bootstrap(), 0, g), Ok(n) if n != txn_coordinator)
        });
        if let Some(g) = found {
            break g;
        }
        assert!(Instant::now() < deadline, "no group coordinated elsewhere");
        std::thread::sleep(Duration::from_millis(300));
    };
    let consumer: BaseConsumer = client(&c.bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.group_metadata().expect("group metadata");
    let committed = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Offset(offset))
            .expect("offsets");
        tpl
    };
    let send = |offset: i64, commit: bool| {
        p.begin_transaction().expect("begin");
        p.send(BaseRecord::<(), str>::to(TOPIC).partition(1).payload("x"))
            .map_err(|(e, _)| e)
            .expect("send");
        p.send_offsets_to_transaction(&committed(offset), &metadata, Duration::from_secs(60))
            .expect("send_offsets_to_transaction");
        if commit {
            p.commit_transaction(Duration::from_secs(60))
                .expect("commit");
        } else {
            p.flush(Duration::from_secs(60)).expect("flush");
            p.abort_transaction(Duration::from_secs(60)).expect("abort");
        }
    };
    send(42, true);
    send(99, false);
    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = consumer
            .committed_offsets(tpl.clone(), Timeout::After(Duration::from_secs(10)))
            .expect("committed offsets");
        let offset = got
            .find_partition(TOPIC, 0)
            .map(|e| e.offset())
            .expect("partition 0");
        if offset == Offset::Offset(42) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the committed offset of {group} is {offset:?}, not 42"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
