//! Helpers of the transaction tests on three real brokers (`tests/cluster_transactions.rs`,
//! `tests/cluster_exactly_once.rs`): the cluster, the topic, coordinators, leaders and last
//! stable offsets asked on the wire, read_committed reads, librdkafka transactional producers
//! and raw transaction requests.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use potok_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse,
};
use potok_protocol::ApiKey;
use potok_records::{ProducerEpoch, ProducerId, RecordBatchBuilder};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::cluster::Cluster;
use super::kafka::{cluster_client as client, create_topic_retrying};
use super::wire::Client;

/// A producer whose delivery reports are polled by its own thread (abort and commit need them).
pub type TxnProducer = ThreadedProducer<DefaultProducerContext>;

pub const TIMEOUT: Duration = Duration::from_secs(90);
pub const TOPIC: &str = "ledger";
pub const PARTITIONS: i32 = 3;
/// `transaction.state.log.num.partitions` of the test clusters.
pub const STATE_PARTITIONS: i32 = 3;

pub fn cluster() -> Cluster {
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

pub fn create_topic(c: &Cluster) {
    create_topic_retrying(
        &c.bootstrap(),
        &NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2"),
        TIMEOUT,
    );
}

/// Kafka's `abs(hashCode(id)) % partitions`.
pub fn state_partition_of(id: &str) -> i32 {
    let mut h: i32 = 0;
    for unit in id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % STATE_PARTITIONS
}

/// What node `addr` answers FindCoordinator (key type 1) for `id`: `Ok(node)` or the error.
pub fn find_txn_coordinator(addr: &str, id: &str) -> Result<i32, i16> {
    find_coordinator(addr, 1, id)
}

/// What node `addr` answers FindCoordinator of `key_type` for `key`.
pub fn find_coordinator(addr: &str, key_type: i8, key: &str) -> Result<i32, i16> {
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
pub fn agreed_txn_coordinator(c: &Cluster, nodes: &[i32], id: &str, not: Option<i32>) -> i32 {
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
pub fn leaders(addr: &str) -> BTreeMap<i32, i32> {
    leaders_of(addr, TOPIC)
}

/// [`leaders`] of `topic`.
pub fn leaders_of(addr: &str, topic: &str) -> BTreeMap<i32, i32> {
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
        .filter(|t| t.name.as_deref() == Some(topic))
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.leader_id))
        .collect()
}

/// ListOffsets `latest` of `partition` at `isolation_level`, asked of node `addr`:
/// `Ok(offset)` or the error code.
pub fn latest(addr: &str, partition: i32, isolation_level: i8) -> Result<i64, i16> {
    latest_of(addr, TOPIC, partition, isolation_level)
}

/// [`latest`] of `topic`.
pub fn latest_of(addr: &str, topic: &str, partition: i32, isolation_level: i8) -> Result<i64, i16> {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    let r: ListOffsetsResponse = c.call(
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest {
            replica_id: -1,
            isolation_level,
            topics: vec![ListOffsetsTopic {
                name: topic.into(),
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
pub fn wait_lso_reaches_hw(c: &Cluster, alive: &[i32]) {
    wait_lso_reaches_hw_of(c, alive, TOPIC)
}

/// [`wait_lso_reaches_hw`] of `topic`.
pub fn wait_lso_reaches_hw_of(c: &Cluster, alive: &[i32], topic: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut ends = BTreeMap::new();
        let mut last = Vec::new();
        let ls = leaders_of(&c.node(alive[0]).bootstrap(), topic);
        for p in 0..PARTITIONS {
            let Some(&l) = ls.get(&p).filter(|l| alive.contains(l)) else {
                last.push(format!("p{p}: leader {:?}", ls.get(&p)));
                continue;
            };
            let addr = c.node(l).bootstrap();
            match (latest_of(&addr, topic, p, 1), latest_of(&addr, topic, p, 0)) {
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
pub fn read_all(bootstrap: &str, isolation: &str) -> Vec<String> {
    read_all_of(bootstrap, isolation, TOPIC)
}

/// [`read_all`] of `topic`.
pub fn read_all_of(bootstrap: &str, isolation: &str, topic: &str) -> Vec<String> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", format!("check-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
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

pub fn transactional_producer(bootstrap: &str, id: &str) -> TxnProducer {
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
pub fn run_txn(
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

/// InitProducerId for `id` sent to its coordinator, retried while it loads or moves.
pub fn init_producer(addr: &str, id: &str) -> (i64, i16) {
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
pub fn add_partition(addr: &str, id: &str, (pid, epoch): (i64, i16), partition: i32) -> i16 {
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

/// EndTxn for `id`'s producer `(id, epoch)`: commit or abort.
pub fn end_txn_request(id: &str, (pid, epoch): (i64, i16), commit: bool) -> EndTxnRequest {
    EndTxnRequest {
        transactional_id: id.into(),
        producer_id: pid,
        producer_epoch: epoch,
        committed: commit,
        ..Default::default()
    }
}

/// EndTxn v`version` sent to `addr`.
pub fn end_txn(
    addr: &str,
    version: i16,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> EndTxnResponse {
    let mut c = Client::connect(addr, Duration::from_secs(10));
    c.call(
        ApiKey::EndTxn,
        version,
        &end_txn_request(id, producer, commit),
    )
}

/// A transactional batch of one record to `partition`, sent to `addr`: the error code.
pub fn produce_txn(addr: &str, id: &str, producer: (i64, i16), seq: i32, partition: i32) -> i16 {
    produce_txn_at(addr, 9, id, producer, seq, partition)
}

/// [`produce_txn`] with Produce `version` (v12+ adds the partition to the transaction,
/// KIP-890 part 2).
pub fn produce_txn_at(
    addr: &str,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    seq: i32,
    partition: i32,
) -> i16 {
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
        version,
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
