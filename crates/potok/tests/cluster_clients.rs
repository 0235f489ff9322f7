//! A real client (librdkafka through the `rdkafka` crate) against three `potok` processes,
//! through one bootstrap address (issue 17, acceptance 3 for librdkafka): it sees three
//! brokers, creates a topic with 3 replicas per partition (placed on 3 distinct brokers),
//! produces to every partition (each one's leader may be another node than the bootstrap) and
//! reads every record back. Consumer groups do not run in a cluster yet, so the consumer
//! assigns its partitions.

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_uses_the_cluster_through_one_bootstrap_address() {
    let c = Cluster::start(3, &[]);
    let bootstrap = c.node(2).bootstrap();
    let admin: AdminClient<DefaultClientContext> =
        config(&bootstrap).create().expect("admin client");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        // Until the nodes have registered, Metadata lists fewer brokers (none at first, which
        // librdkafka reports as a partial response).
        let md = admin.inner().fetch_metadata(None, Duration::from_secs(5));
        if md.is_ok_and(|md| md.brokers().len() == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "librdkafka does not see 3 brokers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let opts = AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT));
    let created = admin
        .create_topics(
            &[NewTopic::new("rf3", 3, TopicReplication::Fixed(3))],
            &opts,
        )
        .await
        .expect("create_topics");
    assert!(created[0].is_ok(), "{created:?}");
    // Every node applies the creation; librdkafka then sees 3 distinct replicas per partition.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let md = admin
            .inner()
            .fetch_metadata(Some("rf3"), Duration::from_secs(5))
            .expect("metadata");
        let t = &md.topics()[0];
        if t.partitions().len() == 3 {
            for p in t.partitions() {
                let mut r = p.replicas().to_vec();
                r.sort_unstable();
                assert_eq!(r, vec![1, 2, 3], "partition {}", p.id());
            }
            break;
        }
        assert!(Instant::now() < deadline, "rf3 not listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config(&bootstrap)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in 0..30 {
        let payload = format!("record-{i}");
        producer
            .send(
                BaseRecord::<(), str>::to("rf3")
                    .partition(i % 3)
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(TIMEOUT).expect("flush");
    let consumer: BaseConsumer = config(&bootstrap)
        // librdkafka needs a group id to assign; nothing is committed.
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("rf3", p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + TIMEOUT;
    while seen.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "read back {} of 30 records",
            seen.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            seen.insert(v);
        }
    }
    assert!((0..30).all(|i| seen.contains(&format!("record-{i}"))));
}
