//! End-to-end with the `rdkafka` crate (librdkafka): create a topic, produce keyed records
//! with headers and timestamps, consume them back byte for byte.

mod common;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn admin(b: &common::Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_keyed_records_with_headers() {
    let b = common::Broker::start();
    let r = admin(&b)
        .create_topics(
            &[NewTopic::new("orders", 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    assert!(r[0].is_ok(), "{r:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut sent = Vec::new();
    let mut pending = Vec::new();
    for i in 0..300u32 {
        let key = format!("key-{}", i % 7);
        let value: Vec<u8> = (0..(i % 50) * 13).map(|j| (i as u8) ^ (j as u8)).collect();
        let ts = 1_700_000_000_000i64 + i64::from(i);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "n",
                value: Some(&i.to_be_bytes()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        // Enqueued without waiting, so the records are batched; librdkafka keeps them in
        // enqueue order per partition.
        let fut = producer
            .send_result(
                FutureRecord::to("orders")
                    .key(&key)
                    .payload(&value)
                    .timestamp(ts)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        pending.push((fut, key, value, ts, i));
    }
    for (fut, key, value, ts, i) in pending {
        let rdkafka::producer::future_producer::Delivery {
            partition, offset, ..
        } = tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .expect("delivery timed out")
            .expect("delivery canceled")
            .map_err(|(e, _)| e)
            .expect("delivery");
        sent.push((partition, offset, key, value, ts, i));
    }

    // Consume every partition from the beginning and compare byte for byte.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "unused-no-commit")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("orders", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got.len() < sent.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {} of {}",
            got.len(),
            sent.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let headers: Vec<(String, Option<Vec<u8>>)> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            got.push((
                m.partition(),
                m.offset(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                m.timestamp().to_millis(),
                headers,
            ));
        }
    }
    got.sort_by_key(|g| (g.0, g.1));
    let mut want = sent.clone();
    want.sort_by_key(|s| (s.0, s.1));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, g.1), (w.0, w.1));
        assert_eq!(g.2.as_deref(), Some(w.2.as_bytes()));
        // librdkafka reports an empty payload as None.
        assert_eq!(g.3.clone().unwrap_or_default(), w.3);
        assert_eq!(g.4, Some(w.4));
        assert_eq!(
            g.5,
            vec![
                ("n".to_string(), Some(w.5.to_be_bytes().to_vec())),
                ("empty".to_string(), None)
            ]
        );
    }
    // Keyed records stay in one partition, in send order.
    for k in 0..7 {
        let key = format!("key-{k}");
        let mine: Vec<_> = want.iter().filter(|w| w.2 == key).collect();
        assert!(
            mine.iter().all(|w| w.0 == mine[0].0),
            "key {key} spread over partitions"
        );
        assert!(mine.windows(2).all(|p| p[0].5 < p[1].5 && p[0].1 < p[1].1));
    }
    // Offsets are dense per partition from 0.
    for p in 0..3 {
        let offs: Vec<i64> = want.iter().filter(|w| w.0 == p).map(|w| w.1).collect();
        assert_eq!(offs, (0..offs.len() as i64).collect::<Vec<_>>());
    }
    let (lo, hi) = consumer
        .fetch_watermarks("orders", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!(lo, 0);
    assert_eq!(hi, want.iter().filter(|w| w.0 == 0).count() as i64);
}
