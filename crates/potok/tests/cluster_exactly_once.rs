//! Exactly-once consume-transform-produce on three real `potok` processes (issue 21): a
//! librdkafka consumer reads an input topic at read_committed and a transactional producer
//! writes each record to an output topic and commits the consumer's offsets in the same
//! transaction (`send_offsets_to_transaction`), while the transaction coordinator's broker is
//! SIGKILLed. Afterwards every input record is in the output exactly once and the group's
//! committed offsets are at the input's end.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kafka::{
    cluster_client as client, create_topic_retrying, produce_all, producer, runtime,
};
use common::txn_cluster::{
    agreed_txn_coordinator, cluster, read_all_of, transactional_producer, wait_lso_reaches_hw_of,
    TxnProducer, PARTITIONS, TIMEOUT,
};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

const INPUT: &str = "ctp-in";
const OUTPUT: &str = "ctp-out";
const GROUP: &str = "ctp";
const ID: &str = "ctp-0";
const RECORDS: usize = 3_000;
/// Input records per transaction at most.
const BATCH: usize = 50;

/// The group's committed offsets of every input partition (`Offset::Invalid` for none);
/// librdkafka asks for stable offsets (KIP-447), so a commit whose transaction is still
/// completing is waited for.
fn committed(consumer: &BaseConsumer) -> rdkafka::error::KafkaResult<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(INPUT, p);
    }
    consumer.committed_offsets(tpl, Timeout::After(Duration::from_secs(10)))
}

/// Assigns every input partition at the group's committed offset (the beginning without one).
fn rewind(consumer: &BaseConsumer) -> rdkafka::error::KafkaResult<()> {
    let c = committed(consumer)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        let at = match c.find_partition(INPUT, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        tpl.add_partition_offset(INPUT, p, at)?;
    }
    consumer.assign(&tpl)
}

/// One transaction over up to [`BATCH`] polled input records: `Ok(records)` once committed.
fn transform_once(
    consumer: &BaseConsumer,
    producer: &TxnProducer,
) -> rdkafka::error::KafkaResult<usize> {
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut values = Vec::new();
    let started = Instant::now();
    while values.len() < BATCH && started.elapsed() < Duration::from_millis(500) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                next.insert(m.partition(), m.offset() + 1);
                values.push((
                    m.partition(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                ));
            }
            // librdkafka reports a lost broker connection (the killed node) as a consumer
            // error; the consumer goes on by itself.
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    if values.is_empty() {
        return Ok(0);
    }
    producer.begin_transaction()?;
    for (p, v) in &values {
        let out = format!("out-{v}");
        producer
            .send(
                BaseRecord::<(), str>::to(OUTPUT)
                    .partition(*p)
                    .payload(&out),
            )
            .map_err(|(e, _)| e)?;
    }
    let mut offsets = TopicPartitionList::new();
    for (p, o) in &next {
        offsets.add_partition_offset(INPUT, *p, Offset::Offset(*o))?;
    }
    let metadata = consumer.group_metadata().expect("group metadata");
    producer.send_offsets_to_transaction(&offsets, &metadata, Duration::from_secs(60))?;
    producer.commit_transaction(Duration::from_secs(60))?;
    Ok(values.len())
}

#[test]
fn consume_transform_produce_is_exactly_once_across_a_coordinator_kill() {
    let mut c = cluster();
    for topic in [INPUT, OUTPUT] {
        create_topic_retrying(
            &c.bootstrap(),
            &NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(3))
                .set("min.insync.replicas", "2"),
            TIMEOUT,
        );
    }
    let input = producer(&c.bootstrap(), "all", &[("enable.idempotence", "true")]);
    let records: Vec<(i32, Vec<u8>, Vec<u8>)> = (0..RECORDS)
        .map(|i| {
            let p = i32::try_from(i).expect("index") % PARTITIONS;
            (p, Vec::new(), format!("in-{i}").into_bytes())
        })
        .collect();
    runtime().block_on(produce_all(&input, INPUT, &records));
    drop(input);

    let bootstrap = c.bootstrap();
    let done = Arc::new(AtomicUsize::new(0));
    let worker = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            // Partitions are assigned by the worker itself (no rebalances); the offsets it
            // sends carry the group without a generation, as KIP-447 allows.
            let consumer: BaseConsumer = client(&bootstrap)
                .set("group.id", GROUP)
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed")
                .create()
                .expect("consumer");
            let mut producer = transactional_producer(&bootstrap, ID);
            rewind(&consumer).expect("assign");
            let deadline = Instant::now() + Duration::from_secs(240);
            let mut idle = 0;
            while idle < 6 {
                assert!(Instant::now() < deadline, "the worker never finished");
                match transform_once(&consumer, &producer) {
                    Ok(0) => idle += 1,
                    Ok(n) => {
                        idle = 0;
                        done.fetch_add(n, Ordering::AcqRel);
                    }
                    Err(e) => {
                        // Outcome unknown: start over from what the group committed, with a
                        // new producer (its InitProducerId aborts an open transaction).
                        eprintln!("transaction failed: {e}; starting over");
                        idle = 0;
                        drop(producer);
                        producer = transactional_producer(&bootstrap, ID);
                        while let Err(e) = rewind(&consumer) {
                            eprintln!("rewind: {e}");
                            std::thread::sleep(Duration::from_millis(500));
                        }
                    }
                }
            }
        })
    };
    let deadline = Instant::now() + TIMEOUT;
    while done.load(Ordering::Acquire) < RECORDS / 4 {
        assert!(Instant::now() < deadline, "the worker never got going");
        std::thread::sleep(Duration::from_millis(50));
    }
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], ID, None);
    c.kill9(coordinator);
    let alive: Vec<i32> = (1..=3).filter(|n| *n != coordinator).collect();
    worker.join().expect("worker");

    wait_lso_reaches_hw_of(&c, &alive, OUTPUT);
    let survivors = alive
        .iter()
        .map(|n| c.node(*n).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let out = read_all_of(&survivors, "read_committed", OUTPUT);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in &out {
        *counts.entry(v.clone()).or_default() += 1;
    }
    let missing: Vec<usize> = (0..RECORDS)
        .filter(|i| !counts.contains_key(&format!("out-in-{i}")))
        .collect();
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "killed coordinator {coordinator}; {} output records read_committed, processed {}",
        out.len(),
        done.load(Ordering::Acquire)
    );
    assert!(
        missing.is_empty(),
        "input records missing from the output: {missing:?}"
    );
    assert!(twice.is_empty(), "output records read twice: {twice:?}");
    assert_eq!(out.len(), RECORDS);
    let check: BaseConsumer = client(&survivors)
        .set("group.id", GROUP)
        .create()
        .expect("consumer");
    let offsets = committed(&check).expect("committed offsets");
    for p in 0..PARTITIONS {
        let want = (0..RECORDS)
            .filter(|i| i32::try_from(*i).expect("index") % PARTITIONS == p)
            .count();
        assert_eq!(
            offsets.find_partition(INPUT, p).map(|e| e.offset()),
            Some(Offset::Offset(i64::try_from(want).expect("count"))),
            "the group's committed offset of {INPUT}-{p}"
        );
    }
}
