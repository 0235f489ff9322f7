//! rdkafka helpers shared by integration tests: create topics, produce and wait for every
//! acknowledgement, consume partitions from an offset until a count is reached (with timeouts).

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// A consumed record: (partition, offset, key, value, timestamp ms).
pub type Got = (i32, i64, Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>);

/// Creates `name` with `partitions` and topic configs; panics on failure.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let r = admin
        .create_topics(
            &[t],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    assert!(r[0].is_ok(), "create {name}: {r:?}");
}

/// A producer with `acks` and extra settings.
pub fn producer(bootstrap: &str, acks: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

/// Sends `(partition, key, value)` records concurrently and waits for every delivery report;
/// returns `(partition, offset)` per record in input order.
pub async fn produce_all(
    p: &FutureProducer,
    topic: &str,
    records: &[(i32, Vec<u8>, Vec<u8>)],
) -> Vec<(i32, i64)> {
    let futs: Vec<_> = records
        .iter()
        .map(|(part, k, v)| {
            p.send_result(FutureRecord::to(topic).partition(*part).key(k).payload(v))
                .map_err(|(e, _)| e)
                .expect("enqueue")
        })
        .collect();
    let mut out = Vec::with_capacity(futs.len());
    for f in futs {
        let d = tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("delivery timed out")
            .expect("delivery canceled")
            .map_err(|(e, _)| e)
            .expect("delivery failed");
        out.push((d.partition, d.offset));
    }
    out
}

/// Reads `count` records from the given partitions starting at `from`; panics after 60 s.
pub fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    from: Offset,
    count: usize,
) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-no-commit")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, from).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "timed out after {} of {count} records",
            got.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume error");
            got.push((
                m.partition(),
                m.offset(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                m.timestamp().to_millis(),
            ));
        }
    }
    got.sort_by_key(|g| (g.0, g.1));
    got
}

/// (low, high) watermarks of a partition.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks")
}

/// A client of a test cluster: a 10 s socket timeout and Metadata refreshed every 500 ms, so
/// that clients follow leadership changes within a test's time.
pub fn cluster_client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "500");
    c
}

/// A current-thread runtime for the rdkafka futures of synchronous tests.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Creates `topic` through `bootstrap`, retrying for up to `timeout` while the cluster cannot
/// take it yet (no active controller, brokers still fenced right after a start), as an operator
/// would; an existing topic counts as created. Panics with the last answer after `timeout`.
pub fn create_topic_retrying(bootstrap: &str, topic: &NewTopic<'_>, timeout: Duration) {
    let admin: AdminClient<DefaultClientContext> =
        cluster_client(bootstrap).create().expect("admin client");
    let rt = runtime();
    let deadline = Instant::now() + timeout;
    loop {
        let r = rt.block_on(
            admin.create_topics(
                std::slice::from_ref(topic),
                &AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(10)))
                    .request_timeout(Some(Duration::from_secs(15))),
            ),
        );
        match r.as_deref() {
            Ok([Ok(_)]) | Ok([Err((_, rdkafka::error::RDKafkaErrorCode::TopicAlreadyExists))]) => {
                return
            }
            other => {
                assert!(
                    Instant::now() < deadline,
                    "create {}: {other:?}",
                    topic.name
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}
