//! `potok transactions list|describe|abort` (issue 21): an open transaction of a real
//! transactional producer (librdkafka) is listed and described by the coordinator, and aborting
//! it on its partition by start offset moves the partition's last stable offset past it (and
//! `potok_partition_lso_lag` from the records it held back to 0).

use super::*;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// The last stable offset of `topic`-0 as a read_committed client sees it (ListOffsets latest
/// with isolation level READ_COMMITTED).
fn last_stable_offset(b: &common::Broker, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks")
        .1
}

/// `potok_partition_lso_lag` of `txn-cli`-0 from the Prometheus endpoint.
fn lso_lag(b: &common::Broker) -> Option<u64> {
    let text = b.admin_get("/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("potok_partition_lso_lag{topic=\"txn-cli\",partition=\"0\"} "))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn transactions_list_describe_and_abort_an_open_transaction() {
    let b = common::Broker::builder().admin().start();
    create_topic(&b, "txn-cli", 1);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("transactional.id", "cli-tx")
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init_transactions");
    producer.begin_transaction().expect("begin");
    for i in 0..5 {
        let v = format!("v{i}");
        producer
            .send(BaseRecord::<(), _>::to("txn-cli").partition(0).payload(&v))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    assert_eq!(
        last_stable_offset(&b, "txn-cli"),
        0,
        "the open transaction holds the LSO"
    );

    let list = cli(&b, &["transactions", "list", "--output", "json"], b"")
        .success("list")
        .json();
    let entry = list
        .as_array()
        .and_then(|a| a.iter().find(|t| t["transactional_id"] == "cli-tx"))
        .unwrap_or_else(|| panic!("cli-tx missing from {list}"));
    assert_eq!(entry["state"], "Ongoing", "{list}");
    let pid = entry["producer_id"].as_i64().expect("producer id");
    assert!(pid >= 0, "{list}");
    let text = cli(&b, &["transactions", "list"], b"")
        .success("list text")
        .stdout();
    assert!(
        text.lines()
            .any(|l| l.starts_with("cli-tx ") && l.contains("Ongoing")),
        "{text}"
    );

    let d = cli(
        &b,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "cli-tx",
            "--output",
            "json",
        ],
        b"",
    )
    .success("describe")
    .json();
    assert_eq!(d["state"], "Ongoing", "{d}");
    assert_eq!(d["producer_id"].as_i64(), Some(pid), "{d}");
    assert_eq!(d["partitions"], serde_json::json!(["txn-cli-0"]), "{d}");
    assert!(
        d["transaction_duration_ms"]
            .as_i64()
            .is_some_and(|ms| ms >= 0),
        "{d}"
    );
    cli(
        &b,
        &[
            "transactions",
            "describe",
            "--transactional-id",
            "no-such-tx",
        ],
        b"",
    )
    .fails_with("describe unknown", "TransactionalIdNotFound");

    // No transaction starts at offset 3: nothing is written.
    cli(
        &b,
        &[
            "transactions",
            "abort",
            "--topic",
            "txn-cli",
            "--partition",
            "0",
            "--start-offset",
            "3",
        ],
        b"",
    )
    .fails_with(
        "abort at a wrong offset",
        "no producer has an open transaction starting at offset 3",
    );
    assert_eq!(last_stable_offset(&b, "txn-cli"), 0);

    let out = cli(
        &b,
        &[
            "transactions",
            "abort",
            "--topic",
            "txn-cli",
            "--partition",
            "0",
            "--start-offset",
            "0",
        ],
        b"",
    )
    .success("abort")
    .stdout();
    assert!(out.contains(&format!("producer {pid}")), "{out}");
    // Five records and the ABORT marker: the LSO is past both, and the aborted records stay
    // invisible to read_committed (the partition's read_committed view holds nothing).
    assert_eq!(last_stable_offset(&b, "txn-cli"), 6);
    assert_eq!(lso_lag(&b), Some(0));
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "txn-cli-reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("txn-cli", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no end of partition seen");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => panic!("an aborted record was delivered: {m:?}"),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
            _ => {}
        }
    }
    drop(producer);
}
